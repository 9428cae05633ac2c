//! The activity side: a `RunActivity:<type>` span around every attempt, a child of the
//! workflow's `StartActivity` span read from the activity's headers.

use std::fmt;
use std::future::Future;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tower::{Layer, Service};
use tracing::field::{Empty, display};
use tracing::{Instrument, Span};
use trellis_core_proto::Payload;
use trellis_worker::ActivityInfo;
use trellis_worker::interceptors::{ActivityRequest, Headers};

use crate::context::TraceContext;

/// A [`Layer`] that traces activity attempts; from [`TracingInterceptor::activity_layer`].
///
/// [`TracingInterceptor::activity_layer`]: crate::TracingInterceptor::activity_layer
#[derive(Clone, Debug, Default)]
pub struct ActivityTracingLayer {
    _private: (),
}

impl ActivityTracingLayer {
    pub(crate) fn new() -> Self {
        Self { _private: () }
    }
}

impl<S> Layer<S> for ActivityTracingLayer {
    type Service = ActivityTracing<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ActivityTracing { inner }
    }
}

/// The service made by [`ActivityTracingLayer`]: opens a `RunActivity` span for each attempt,
/// a child of the trace context in the activity's headers (or a new trace), and runs the
/// attempt with that span's context as [`TraceContext::current`], so client calls the activity
/// makes join the trace.
#[derive(Clone)]
pub struct ActivityTracing<S> {
    inner: S,
}

impl<S> fmt::Debug for ActivityTracing<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActivityTracing").finish_non_exhaustive()
    }
}

impl<S> Service<ActivityRequest> for ActivityTracing<S>
where
    S: Service<ActivityRequest, Response = Payload>,
    S::Error: fmt::Display,
    S::Future: Send + 'static,
{
    type Response = Payload;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Payload, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: ActivityRequest) -> Self::Future {
        let (span, ctx) = attempt_span(request.context.info(), &request.headers);
        let fut = span.in_scope(|| ctx.sync_scope(|| self.inner.call(request)));
        traced(span, ctx, fut)
    }
}

/// The span of one attempt and its context: a child of the context in the headers, or the
/// root of a new trace.
pub(crate) fn attempt_span(info: &ActivityInfo, headers: &Headers) -> (Span, TraceContext) {
    let parent = TraceContext::from_headers(headers);
    let ctx = TraceContext::child_or_root(parent.as_ref());
    let span = tracing::info_span!(
        target: "trellis_tracing",
        "RunActivity",
        otel.name = %format_args!("RunActivity:{}", info.activity_type),
        otel.kind = "server",
        activity_type = %info.activity_type,
        activity_id = %info.activity_id,
        attempt = info.attempt,
        workflow_id = %info.workflow_id,
        run_id = %info.workflow_run_id,
        trace_id = %ctx.trace_id_hex(),
        span_id = %ctx.span_id_hex(),
        parent_span_id = Empty,
        error = Empty,
    );
    if let Some(parent) = parent {
        span.record("parent_span_id", display(parent.span_id_hex()));
    }
    (span, ctx)
}

/// Runs a request's future (an activity attempt, a Nexus request) in its span with its context
/// as [`TraceContext::current`], and records a failure on the span.
pub(crate) fn traced<F, T, E>(
    span: Span,
    ctx: TraceContext,
    fut: F,
) -> BoxFuture<'static, F::Output>
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    E: fmt::Display,
{
    let record = span.clone();
    Box::pin(
        ctx.scoped(async move {
            let result = fut.await;
            if let Err(e) = &result {
                record.record("error", display(e));
            }
            result
        })
        .instrument(span),
    )
}
