//! The worker's interception points, each a tower [`Service`](tower::Service) that a layer
//! wraps:
//!
//! | point | request | response | service |
//! | --- | --- | --- | --- |
//! | activity inbound | [`ActivityRequest`] | the result [`Payload`] | [`ActivityService`] (`Send`) |
//! | activity outbound | [`ActivityOutbound`]: heartbeat, info | [`ActivityOutboundResponse`] | [`ActivityOutboundService`] (`Send`) |
//! | workflow inbound | [`WorkflowInbound`]: execute, signal, query, validate update, update | [`WorkflowInboundResponse`] | [`WorkflowInboundService`] (per run, `!Send`) |
//! | workflow outbound | [`WorkflowOutbound`]: schedule activity / local activity, start timer, start child, signal / cancel external, start Nexus operation, continue-as-new | [`WorkflowOutboundResponse`] | [`WorkflowOutboundService`] (per run, `!Send`) |
//! | Nexus inbound | [`NexusInbound`]: start, cancel operation | [`NexusInboundResponse`] | [`NexusService`] (`Send`) |
//!
//! Register layers on [`WorkerConfig`](crate::WorkerConfig); the first registered is the
//! outermost. Activity layers are any tower `Layer` (e.g. `tower::timeout::TimeoutLayer`,
//! `tower::limit::ConcurrencyLimitLayer`) or [`from_fn`](trellis_interceptor::from_fn) hooks.
//! Workflow layers are built once per run by a function of the run's
//! [`WorkflowContext`], usually
//! with [`local_from_fn`](trellis_interceptor::local_from_fn); they run inside the workflow's
//! deterministic executor, so they must be deterministic themselves (no clocks, no I/O) — they
//! run again on every replay.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tower::util::{BoxCloneSyncService, BoxCloneSyncServiceLayer};
use trellis_core_proto::Payload;
use trellis_core_proto::api::failure::v1::Failure;
use trellis_core_proto::coresdk::activity_result::ActivityResolution;
use trellis_core_proto::coresdk::workflow_activation::{
    ResolveChildWorkflowExecutionStart, ResolveNexusOperationStart,
};
use trellis_core_proto::coresdk::workflow_commands::{
    ContinueAsNewWorkflowExecution, RequestCancelExternalWorkflowExecution, ScheduleActivity,
    ScheduleLocalActivity, ScheduleNexusOperation, SignalExternalWorkflowExecution,
    StartChildWorkflowExecution,
};
use trellis_interceptor::{BoxError, LocalBoxService};

use crate::activity::{ActivityContext, ActivityInfo};
use crate::error::WorkflowError;
use crate::workflow::context::WorkflowContext;

/// Temporal headers: names to (encoded) payloads, carried with starts, signals, queries and
/// activity schedules; interceptors use them to propagate context (auth, tracing).
pub type Headers = HashMap<String, Payload>;

/// One activity attempt reaching the activity function.
#[derive(Debug)]
pub struct ActivityRequest {
    /// The attempt's context (info, heartbeats, cancellation).
    pub context: ActivityContext,
    /// The arguments, still encoded.
    pub args: Vec<Payload>,
    /// The headers the scheduling workflow sent.
    pub headers: Headers,
}

/// The activity inbound service: runs one attempt. Errors are boxed so any tower layer fits;
/// [`ActivityCancelled`] marks an attempt that acknowledged cancellation.
pub type ActivityService = BoxCloneSyncService<ActivityRequest, Payload, BoxError>;

/// A type-erased layer around the [`ActivityService`].
pub type ActivityLayer =
    BoxCloneSyncServiceLayer<ActivityService, ActivityRequest, Payload, BoxError>;

/// The error an attempt ends with when it acknowledges cancellation.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the activity acknowledged cancellation")]
pub struct ActivityCancelled;

/// The error an attempt ends with when its function returned
/// [`ActivityError::WillCompleteAsync`](crate::ActivityError::WillCompleteAsync): the worker
/// reports the attempt as completing asynchronously.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the activity will complete asynchronously")]
pub struct ActivityWillCompleteAsync;

/// What an activity attempt asks of Temporal, through the activity outbound service.
///
/// Layers registered with
/// [`WorkerConfig::activity_outbound_layer`](crate::WorkerConfig::activity_outbound_layer) see
/// every request of every attempt; the request says which attempt ([`ActivityOutbound::info`]).
#[derive(Debug)]
pub enum ActivityOutbound {
    /// Record a heartbeat ([`ActivityContext::heartbeat`]). Heartbeats of one attempt pass
    /// through the stack one at a time, in the order the activity sent them, and all of them
    /// before the attempt's result is reported. A layer can change the details, drop the
    /// heartbeat (answer without calling the next service) or fail it (the error is logged;
    /// `heartbeat` itself never fails). The attempt's result waits for its heartbeats, so a
    /// layer that never answers holds the attempt open.
    Heartbeat(HeartbeatRequest),
    /// Ask for the attempt's info, once per attempt before the activity runs: the answer is
    /// what [`ActivityContext::info`] returns. An error fails the attempt without running the
    /// activity (the retry policy applies).
    Info(Box<ActivityInfo>),
}

impl ActivityOutbound {
    /// The info of the attempt making the request.
    pub fn info(&self) -> &ActivityInfo {
        match self {
            Self::Heartbeat(h) => &h.info,
            Self::Info(i) => i,
        }
    }

    /// The request's name: `heartbeat` or `info`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Heartbeat(_) => "heartbeat",
            Self::Info(_) => "info",
        }
    }
}

/// One heartbeat of an activity attempt.
#[derive(Debug, Clone)]
pub struct HeartbeatRequest {
    /// The attempt's info.
    pub info: Arc<ActivityInfo>,
    /// The attempt's task token.
    pub task_token: Vec<u8>,
    /// The details, encoded by the payload converter (codecs run below every layer).
    pub details: Vec<Payload>,
}

/// The answer to an [`ActivityOutbound`] request.
#[derive(Debug, Clone)]
pub enum ActivityOutboundResponse {
    /// The heartbeat was handed to the engine (which batches and throttles heartbeats).
    HeartbeatRecorded,
    /// The attempt's info.
    Info(Box<ActivityInfo>),
}

/// The activity outbound service: what activities ask of Temporal. Errors are boxed so any
/// tower layer fits.
pub type ActivityOutboundService =
    BoxCloneSyncService<ActivityOutbound, ActivityOutboundResponse, BoxError>;

/// A type-erased layer around the [`ActivityOutboundService`].
pub type ActivityOutboundLayer = BoxCloneSyncServiceLayer<
    ActivityOutboundService,
    ActivityOutbound,
    ActivityOutboundResponse,
    BoxError,
>;

/// Nexus headers: names to string values (Nexus headers are not payloads).
pub type NexusHeaders = HashMap<String, String>;

/// What reaches a Nexus operation handler: the Nexus inbound interception point.
///
/// Register layers with
/// [`WorkerConfig::nexus_inbound_layer`](crate::WorkerConfig::nexus_inbound_layer): any tower
/// `Layer` or a [`from_fn`](trellis_interceptor::from_fn) hook. A layer can read or change the
/// request (headers, input), answer it without calling the handler, or fail it: a
/// [`HandlerError`](crate::nexus::HandlerError) keeps its type (e.g. `UNAUTHORIZED`), an
/// [`OperationError`](crate::nexus::OperationError) fails (or cancels) the operation, and any
/// other error becomes an `INTERNAL` handler error.
#[derive(Debug, Clone)]
pub enum NexusInbound {
    /// Start an operation.
    StartOperation(NexusStartOperation),
    /// Cancel an operation started asynchronously.
    CancelOperation(NexusCancelOperation),
}

impl NexusInbound {
    /// The Nexus headers of any request.
    pub fn headers(&self) -> &NexusHeaders {
        match self {
            Self::StartOperation(x) => &x.headers,
            Self::CancelOperation(x) => &x.headers,
        }
    }

    /// The Nexus headers of any request, to change.
    pub fn headers_mut(&mut self) -> &mut NexusHeaders {
        match self {
            Self::StartOperation(x) => &mut x.headers,
            Self::CancelOperation(x) => &mut x.headers,
        }
    }

    /// The Nexus service name.
    pub fn service(&self) -> &str {
        match self {
            Self::StartOperation(x) => &x.service,
            Self::CancelOperation(x) => &x.service,
        }
    }

    /// The operation name.
    pub fn operation(&self) -> &str {
        match self {
            Self::StartOperation(x) => &x.operation,
            Self::CancelOperation(x) => &x.operation,
        }
    }

    /// The task carrying the request.
    pub fn task(&self) -> &NexusTaskInfo {
        match self {
            Self::StartOperation(x) => &x.task,
            Self::CancelOperation(x) => &x.task,
        }
    }

    /// The request's name: `start_operation` or `cancel_operation`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::StartOperation(_) => "start_operation",
            Self::CancelOperation(_) => "cancel_operation",
        }
    }
}

/// Starting a Nexus operation.
#[derive(Debug, Clone, Default)]
pub struct NexusStartOperation {
    /// The Nexus service name.
    pub service: String,
    /// The operation name.
    pub operation: String,
    /// The caller's request id (the same on retries of the same start).
    pub request_id: String,
    /// Where to deliver the result of an operation that completes asynchronously.
    pub callback_url: String,
    /// Headers to send with that callback.
    pub callback_headers: NexusHeaders,
    /// Links from the caller (e.g. to the workflow event that started the operation).
    pub links: Vec<NexusLink>,
    /// The input, encoded by the payload converter (codecs have already run; `None` when
    /// the caller sent none).
    pub input: Option<Payload>,
    /// The request's Nexus headers.
    pub headers: NexusHeaders,
    /// The task: endpoint, deadline, cancellation.
    pub task: NexusTaskInfo,
}

/// Cancelling a Nexus operation.
#[derive(Debug, Clone, Default)]
pub struct NexusCancelOperation {
    /// The Nexus service name.
    pub service: String,
    /// The operation name.
    pub operation: String,
    /// The token the operation's start returned.
    pub operation_token: String,
    /// The request's Nexus headers.
    pub headers: NexusHeaders,
    /// The task: endpoint, deadline, cancellation.
    pub task: NexusTaskInfo,
}

/// Facts about the Nexus task carrying a request.
#[derive(Debug, Clone, Default)]
pub struct NexusTaskInfo {
    /// The endpoint the caller addressed.
    pub endpoint: String,
    /// When the caller stops waiting for this request (from its `Request-Timeout`), if known.
    pub request_deadline: Option<std::time::SystemTime>,
    /// Cancelled when the engine gives up on the task (its deadline passed, or the worker is
    /// shutting down): the handler's future is dropped then, and this token lets work it
    /// spawned elsewhere stop too.
    pub cancellation: tokio_util::sync::CancellationToken,
}

/// A Nexus link, as the Temporal API defines it (`url`, `type`).
pub use trellis_core_proto::api::nexus::v1::Link as NexusLink;

/// The answer to a [`NexusInbound`] request.
#[derive(Debug, Clone)]
pub enum NexusInboundResponse {
    /// The operation completed at once with this (encoded) result.
    Completed(Payload),
    /// The operation started and completes later; the token names it for cancellation.
    Started {
        /// The operation token.
        operation_token: String,
        /// Links to what the operation started (e.g. the started event of the workflow
        /// backing it), recorded in the caller's history.
        links: Vec<NexusLink>,
    },
    /// The cancellation request was accepted.
    CancelAccepted,
}

/// The Nexus inbound service (the operation handlers). Errors are boxed so any tower layer
/// fits.
pub type NexusService = BoxCloneSyncService<NexusInbound, NexusInboundResponse, BoxError>;

/// A type-erased layer around the [`NexusService`].
pub type NexusLayer =
    BoxCloneSyncServiceLayer<NexusService, NexusInbound, NexusInboundResponse, BoxError>;

/// What reaches a workflow run from outside.
#[derive(Debug)]
pub enum WorkflowInbound {
    /// Run the workflow's main function.
    Execute(ExecuteWorkflow),
    /// Deliver a signal.
    Signal(SignalInput),
    /// Answer a query (handlers must answer without waiting).
    Query(QueryInput),
    /// Run an update's validator (it must answer without waiting). An error rejects the
    /// update: it never reaches the history.
    ValidateUpdate(UpdateInput),
    /// Run an accepted update's handler.
    Update(UpdateInput),
}

impl WorkflowInbound {
    /// The headers of any request.
    pub fn headers(&self) -> &Headers {
        match self {
            Self::Execute(x) => &x.headers,
            Self::Signal(x) => &x.headers,
            Self::Query(x) => &x.headers,
            Self::ValidateUpdate(x) | Self::Update(x) => &x.headers,
        }
    }

    /// The headers of any request, to change.
    pub fn headers_mut(&mut self) -> &mut Headers {
        match self {
            Self::Execute(x) => &mut x.headers,
            Self::Signal(x) => &mut x.headers,
            Self::Query(x) => &mut x.headers,
            Self::ValidateUpdate(x) | Self::Update(x) => &mut x.headers,
        }
    }

    /// The arguments of any request, to read or change.
    pub fn args_mut(&mut self) -> &mut Vec<Payload> {
        match self {
            Self::Execute(x) => &mut x.args,
            Self::Signal(x) => &mut x.args,
            Self::Query(x) => &mut x.args,
            Self::ValidateUpdate(x) | Self::Update(x) => &mut x.args,
        }
    }
}

/// Starting the workflow's main function.
#[derive(Debug, Clone)]
pub struct ExecuteWorkflow {
    /// The start arguments, still encoded.
    pub args: Vec<Payload>,
    /// The headers of the start request.
    pub headers: Headers,
}

/// A signal.
#[derive(Debug, Clone)]
pub struct SignalInput {
    /// The signal name.
    pub name: String,
    /// The arguments, still encoded.
    pub args: Vec<Payload>,
    /// The headers the sender attached.
    pub headers: Headers,
}

/// A query.
#[derive(Debug, Clone)]
pub struct QueryInput {
    /// The query name.
    pub name: String,
    /// The arguments, still encoded.
    pub args: Vec<Payload>,
    /// The headers the caller attached.
    pub headers: Headers,
}

/// An update (validation or execution).
#[derive(Debug, Clone)]
pub struct UpdateInput {
    /// The update id (unique within the workflow).
    pub id: String,
    /// The update name.
    pub name: String,
    /// The arguments, still encoded.
    pub args: Vec<Payload>,
    /// The headers the caller attached.
    pub headers: Headers,
}

/// The answer to a [`WorkflowInbound`] request.
#[derive(Debug, Clone)]
pub enum WorkflowInboundResponse {
    /// The main function returned this (encoded) result.
    Completed(Payload),
    /// The signal was delivered.
    SignalAccepted,
    /// The query's (encoded) answer.
    QueryAnswer(Payload),
    /// The update's validator accepted it.
    UpdateValid,
    /// The update's handler returned this (encoded) result.
    UpdateCompleted(Payload),
}

/// The workflow inbound service of one run.
pub type WorkflowInboundService =
    LocalBoxService<WorkflowInbound, WorkflowInboundResponse, WorkflowError>;

/// What a workflow run asks of Temporal.
#[derive(Debug)]
pub enum WorkflowOutbound {
    /// Schedule an activity (the full core command: type, arguments, headers, options).
    ScheduleActivity(Box<ScheduleActivity>),
    /// Start a durable timer.
    StartTimer(StartTimerInput),
    /// Schedule a local activity (run by this worker, recorded as a marker).
    ScheduleLocalActivity(Box<ScheduleLocalActivity>),
    /// Start a child workflow; answered when the child has started (or failed to).
    StartChildWorkflow(Box<StartChildWorkflowExecution>),
    /// Signal another workflow (or a child).
    SignalExternal(Box<SignalExternalWorkflowExecution>),
    /// Ask another workflow to cancel.
    CancelExternal(Box<RequestCancelExternalWorkflowExecution>),
    /// Start a Nexus operation (the full core command: endpoint, service, operation, the
    /// input encoded by the payload converter, the schedule-to-close timeout, the cancellation
    /// type and the Nexus headers); answered when the operation has started (or failed to).
    /// Its result arrives later, on the operation's handle. Nexus headers are strings, not
    /// payloads: reach them with [`nexus_headers_mut`](Self::nexus_headers_mut), not
    /// [`headers_mut`](Self::headers_mut). A layer that refuses the start gives the workflow a
    /// [`NexusOperationFailed`](crate::NexusOperationFailed) of kind `Rejected` (or the
    /// layer's own `NexusOperationFailed` error, returned as is).
    StartNexusOperation(Box<ScheduleNexusOperation>),
    /// Close this run and start a new one of the same workflow id. Never answered: the run
    /// ends with it.
    ContinueAsNew(Box<ContinueAsNewWorkflowExecution>),
}

impl WorkflowOutbound {
    /// The Temporal headers (payloads) of the request, for requests that carry them. A Nexus
    /// start has none (`None`): its headers are Nexus headers, strings that go to the handler
    /// as they are; see [`nexus_headers_mut`](Self::nexus_headers_mut).
    pub fn headers_mut(&mut self) -> Option<&mut Headers> {
        match self {
            Self::ScheduleActivity(x) => Some(&mut x.headers),
            Self::ScheduleLocalActivity(x) => Some(&mut x.headers),
            Self::StartChildWorkflow(x) => Some(&mut x.headers),
            Self::SignalExternal(x) => Some(&mut x.headers),
            Self::ContinueAsNew(x) => Some(&mut x.headers),
            Self::StartTimer(_) | Self::CancelExternal(_) | Self::StartNexusOperation(_) => None,
        }
    }

    /// The Nexus headers (names to strings) of a Nexus start, `None` for other requests. A
    /// layer that adds one here (e.g. a `traceparent`) is seen by the handler's Nexus inbound
    /// layers ([`NexusInbound::headers`]). They are stored in the workflow's history as they
    /// are: do not put secrets in them.
    pub fn nexus_headers(&self) -> Option<&NexusHeaders> {
        match self {
            Self::StartNexusOperation(x) => Some(&x.nexus_header),
            _ => None,
        }
    }

    /// The Nexus headers of a Nexus start, to change; `None` for other requests.
    pub fn nexus_headers_mut(&mut self) -> Option<&mut NexusHeaders> {
        match self {
            Self::StartNexusOperation(x) => Some(&mut x.nexus_header),
            _ => None,
        }
    }

    /// The request's name, e.g. `schedule_activity`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ScheduleActivity(_) => "schedule_activity",
            Self::StartTimer(_) => "start_timer",
            Self::ScheduleLocalActivity(_) => "schedule_local_activity",
            Self::StartChildWorkflow(_) => "start_child_workflow",
            Self::SignalExternal(_) => "signal_external",
            Self::CancelExternal(_) => "cancel_external",
            Self::StartNexusOperation(_) => "start_nexus_operation",
            Self::ContinueAsNew(_) => "continue_as_new",
        }
    }
}

/// Starting a timer.
#[derive(Debug, Clone)]
pub struct StartTimerInput {
    /// The timer's sequence number within the run.
    pub seq: u32,
    /// How long until it fires.
    pub duration: Duration,
}

/// The outcome of a [`WorkflowOutbound`] request.
#[derive(Debug, Clone)]
pub enum WorkflowOutboundResponse {
    /// How the activity ended.
    ActivityResolved(Box<ActivityResolution>),
    /// The timer fired.
    TimerFired,
    /// How starting the child workflow went (its result arrives later, on the child handle).
    ChildStarted(Box<ResolveChildWorkflowExecutionStart>),
    /// The signal or cancellation request reached the other workflow (`None`), or could
    /// not (the failure).
    ExternalResolved(Option<Box<Failure>>),
    /// How starting the Nexus operation went: started asynchronously (with its token),
    /// completed synchronously (its result arrives on the handle), or failed.
    NexusStarted(Box<ResolveNexusOperationStart>),
}

/// The workflow outbound service of one run.
pub type WorkflowOutboundService =
    LocalBoxService<WorkflowOutbound, WorkflowOutboundResponse, WorkflowError>;

/// Builds a run's inbound layer: wraps the service below it, knowing the run's info.
pub type WorkflowInboundLayerFn =
    Arc<dyn Fn(&WorkflowContext, WorkflowInboundService) -> WorkflowInboundService + Send + Sync>;

/// Builds a run's outbound layer: wraps the service below it, knowing the run's info.
pub type WorkflowOutboundLayerFn =
    Arc<dyn Fn(&WorkflowContext, WorkflowOutboundService) -> WorkflowOutboundService + Send + Sync>;

/// The workflow layers of a worker, applied to every run.
#[derive(Clone, Default)]
pub(crate) struct WorkflowLayers {
    pub(crate) inbound: Vec<WorkflowInboundLayerFn>,
    pub(crate) outbound: Vec<WorkflowOutboundLayerFn>,
}

impl WorkflowLayers {
    pub(crate) fn wrap_inbound(
        &self,
        ctx: &WorkflowContext,
        mut svc: WorkflowInboundService,
    ) -> WorkflowInboundService {
        for layer in self.inbound.iter().rev() {
            svc = layer(ctx, svc);
        }
        svc
    }

    pub(crate) fn wrap_outbound(
        &self,
        ctx: &WorkflowContext,
        mut svc: WorkflowOutboundService,
    ) -> WorkflowOutboundService {
        for layer in self.outbound.iter().rev() {
            svc = layer(ctx, svc);
        }
        svc
    }
}

impl std::fmt::Debug for WorkflowLayers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowLayers")
            .field("inbound", &self.inbound.len())
            .field("outbound", &self.outbound.len())
            .finish()
    }
}

#[cfg(test)]
#[path = "interceptors_tests.rs"]
mod tests;
