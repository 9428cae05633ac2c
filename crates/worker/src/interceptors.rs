//! The worker's interception points, each a tower [`Service`](tower::Service) that a layer
//! wraps:
//!
//! | point | request | response | service |
//! | --- | --- | --- | --- |
//! | activity inbound | [`ActivityRequest`] | the result [`Payload`] | [`ActivityService`] (`Send`) |
//! | workflow inbound | [`WorkflowInbound`]: execute, signal, query, validate update, update | [`WorkflowInboundResponse`] | [`WorkflowInboundService`] (per run, `!Send`) |
//! | workflow outbound | [`WorkflowOutbound`]: schedule activity / local activity, start timer, start child, signal / cancel external, continue-as-new | [`WorkflowOutboundResponse`] | [`WorkflowOutboundService`] (per run, `!Send`) |
//!
//! Register layers on [`WorkerConfig`](crate::WorkerConfig); the first registered is the
//! outermost. Activity layers are any tower `Layer` (e.g. `tower::timeout::TimeoutLayer`,
//! `tower::limit::ConcurrencyLimitLayer`) or [`from_fn`](trellis_interceptor::from_fn) hooks.
//! Workflow layers are built once per run by a function of the run's
//! [`WorkflowContext`](crate::WorkflowContext), usually
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
use trellis_core_proto::coresdk::workflow_activation::ResolveChildWorkflowExecutionStart;
use trellis_core_proto::coresdk::workflow_commands::{
    ContinueAsNewWorkflowExecution, RequestCancelExternalWorkflowExecution, ScheduleActivity,
    ScheduleLocalActivity, SignalExternalWorkflowExecution, StartChildWorkflowExecution,
};
use trellis_interceptor::{BoxError, LocalBoxService};

use crate::activity::ActivityContext;
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
    /// Close this run and start a new one of the same workflow id. Never answered: the run
    /// ends with it.
    ContinueAsNew(Box<ContinueAsNewWorkflowExecution>),
}

impl WorkflowOutbound {
    /// The headers of the request, for requests that carry headers.
    pub fn headers_mut(&mut self) -> Option<&mut Headers> {
        match self {
            Self::ScheduleActivity(x) => Some(&mut x.headers),
            Self::ScheduleLocalActivity(x) => Some(&mut x.headers),
            Self::StartChildWorkflow(x) => Some(&mut x.headers),
            Self::SignalExternal(x) => Some(&mut x.headers),
            Self::ContinueAsNew(x) => Some(&mut x.headers),
            Self::StartTimer(_) | Self::CancelExternal(_) => None,
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
