//! The client side: a `temporal.client` span around every client call, and the trace context
//! written into the headers of the calls that carry headers (start, signal-with-start, signal,
//! query).

use std::fmt;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tower::{Layer, Service};
use tracing::Instrument;
use tracing::field::{Empty, display};
use trellis_client::interceptors::{ClientCall, ClientCallResponse};

use crate::context::TraceContext;

/// A [`Layer`] that traces client calls; from [`TracingInterceptor::client_layer`].
///
/// [`TracingInterceptor::client_layer`]: crate::TracingInterceptor::client_layer
#[derive(Clone, Debug, Default)]
pub struct ClientTracingLayer {
    _private: (),
}

impl ClientTracingLayer {
    pub(crate) fn new() -> Self {
        Self { _private: () }
    }
}

impl<S> Layer<S> for ClientTracingLayer {
    type Service = ClientTracing<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientTracing { inner }
    }
}

/// The service made by [`ClientTracingLayer`]: opens a `temporal.client` span for each call, a
/// child of [`TraceContext::current`] (or a new trace), and writes its context into the call's
/// headers when it has some (start, signal-with-start, signal, query).
#[derive(Clone)]
pub struct ClientTracing<S> {
    inner: S,
}

impl<S> fmt::Debug for ClientTracing<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTracing").finish_non_exhaustive()
    }
}

/// The span name an OpenTelemetry exporter shows for a call (`otel.name`), after the names of
/// the other SDKs' interceptors.
fn otel_name(call: &ClientCall) -> String {
    match call {
        ClientCall::StartWorkflow(c) => format!("StartWorkflow:{}", c.workflow_type),
        ClientCall::Signal(c) => format!("SignalWorkflow:{}", c.name),
        ClientCall::Query(c) => format!("QueryWorkflow:{}", c.name),
        ClientCall::Cancel(_) => "CancelWorkflow".to_owned(),
        ClientCall::Terminate(_) => "TerminateWorkflow".to_owned(),
        ClientCall::Describe(_) => "DescribeWorkflow".to_owned(),
        ClientCall::FetchHistory(_) => "FetchWorkflowHistory".to_owned(),
        ClientCall::List(_) => "ListWorkflows".to_owned(),
        ClientCall::Count(_) => "CountWorkflows".to_owned(),
        ClientCall::SignalWithStart(c) => format!("SignalWithStartWorkflow:{}", c.workflow_type),
        ClientCall::GetResult(_) => "GetWorkflowResult".to_owned(),
        ClientCall::HeartbeatActivity(_) => "HeartbeatActivity".to_owned(),
        ClientCall::CompleteActivity(_) => "CompleteActivity".to_owned(),
        ClientCall::FailActivity(_) => "FailActivity".to_owned(),
        ClientCall::ReportActivityCancellation(_) => "ReportActivityCancellation".to_owned(),
        ClientCall::Update(c) => format!("StartWorkflowUpdate:{}", c.name),
        ClientCall::PollUpdate(_) => "PollWorkflowUpdate".to_owned(),
        ClientCall::UpdateWithStart(c) => {
            format!("UpdateWithStartWorkflow:{}", c.start.workflow_type)
        }
        ClientCall::Schedule(c) => format!("{}:{}", call.name(), c.schedule_id),
        ClientCall::ListSchedules(_) => "ListSchedules".to_owned(),
    }
}

impl<S> Service<ClientCall> for ClientTracing<S>
where
    S: Service<ClientCall, Response = ClientCallResponse>,
    S::Error: fmt::Display,
    S::Future: Send + 'static,
{
    type Response = ClientCallResponse;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<ClientCallResponse, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut call: ClientCall) -> Self::Future {
        let parent = TraceContext::current();
        let ctx = TraceContext::child_or_root(parent.as_ref());
        let span = tracing::info_span!(
            target: "trellis_tracing",
            "temporal.client",
            otel.name = %otel_name(&call),
            otel.kind = "client",
            call = call.name(),
            workflow_id = %call.workflow_id(),
            run_id = Empty,
            trace_id = %ctx.trace_id_hex(),
            span_id = %ctx.span_id_hex(),
            parent_span_id = Empty,
            error = Empty,
        );
        if let Some(parent) = parent {
            span.record("parent_span_id", display(parent.span_id_hex()));
        }
        if let Some(run_id) = call.run_id() {
            span.record("run_id", run_id);
        }
        if let Some(headers) = call.headers_mut() {
            ctx.inject(headers);
        }
        let fut = span.in_scope(|| self.inner.call(call));
        let record = span.clone();
        Box::pin(
            async move {
                let result = fut.await;
                match &result {
                    Ok(
                        ClientCallResponse::Started { run_id, .. }
                        | ClientCallResponse::UpdateWithStart { run_id, .. }
                        | ClientCallResponse::WorkflowResult { run_id, .. },
                    ) => {
                        record.record("run_id", run_id.as_str());
                    }
                    Ok(_) => {}
                    Err(e) => {
                        record.record("error", display(e));
                    }
                }
                result
            }
            .instrument(span),
        )
    }
}
