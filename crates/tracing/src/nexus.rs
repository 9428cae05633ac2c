//! The Nexus handler side: a `RunStartNexusOperationHandler` or
//! `RunCancelNexusOperationHandler` span around every request a worker's Nexus handlers get,
//! a child of the caller's context read from the `traceparent` Nexus header.

use std::fmt;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tower::{Layer, Service};
use tracing::Span;
use tracing::field::{Empty, display};
use trellis_worker::interceptors::{NexusInbound, NexusInboundResponse};

use crate::context::TraceContext;

/// A [`Layer`] that traces Nexus requests; from [`TracingInterceptor::nexus_layer`].
///
/// [`TracingInterceptor::nexus_layer`]: crate::TracingInterceptor::nexus_layer
#[derive(Clone, Debug, Default)]
pub struct NexusTracingLayer {
    _private: (),
}

impl NexusTracingLayer {
    pub(crate) fn new() -> Self {
        Self { _private: () }
    }
}

impl<S> Layer<S> for NexusTracingLayer {
    type Service = NexusTracing<S>;

    fn layer(&self, inner: S) -> Self::Service {
        NexusTracing { inner }
    }
}

/// The service made by [`NexusTracingLayer`]: opens a span for each start or cancel request,
/// a child of the context in the request's `traceparent` Nexus header (or a new trace), and
/// runs the handler with that span's context as [`TraceContext::current`], so client calls
/// the handler makes (e.g. starting a workflow) join the trace.
#[derive(Clone)]
pub struct NexusTracing<S> {
    inner: S,
}

impl<S> fmt::Debug for NexusTracing<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NexusTracing").finish_non_exhaustive()
    }
}

impl<S> Service<NexusInbound> for NexusTracing<S>
where
    S: Service<NexusInbound, Response = NexusInboundResponse>,
    S::Error: fmt::Display,
    S::Future: Send + 'static,
{
    type Response = NexusInboundResponse;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<NexusInboundResponse, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: NexusInbound) -> Self::Future {
        let (span, ctx) = request_span(&request);
        let fut = span.in_scope(|| ctx.sync_scope(|| self.inner.call(request)));
        crate::activity::traced(span, ctx, fut)
    }
}

/// The span of one request and its context.
pub(crate) fn request_span(request: &NexusInbound) -> (Span, TraceContext) {
    let parent = TraceContext::from_nexus_headers(request.headers());
    let ctx = TraceContext::child_or_root(parent.as_ref());
    let kind = match request {
        NexusInbound::StartOperation(_) => "RunStartNexusOperationHandler",
        NexusInbound::CancelOperation(_) => "RunCancelNexusOperationHandler",
    };
    let token = match request {
        NexusInbound::CancelOperation(c) => Some(c.operation_token.as_str()),
        NexusInbound::StartOperation(_) => None,
    };
    let span = tracing::info_span!(
        target: "trellis_tracing",
        "RunNexusOperationHandler",
        otel.name = %format_args!("{kind}:{}/{}", request.service(), request.operation()),
        otel.kind = "server",
        nexus_endpoint = %request.task().endpoint,
        nexus_service = %request.service(),
        nexus_operation = %request.operation(),
        nexus_operation_token = Empty,
        trace_id = %ctx.trace_id_hex(),
        span_id = %ctx.span_id_hex(),
        parent_span_id = Empty,
        error = Empty,
    );
    if let Some(token) = token {
        span.record("nexus_operation_token", token);
    }
    if let Some(parent) = parent {
        span.record("parent_span_id", display(parent.span_id_hex()));
    }
    (span, ctx)
}
