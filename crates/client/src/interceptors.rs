//! The client-call interception point: every call a [`Client`](crate::Client) makes, as one
//! request enum through a tower service stack.
//!
//! Layers are added with [`ClientConfig::call_layer`](crate::ClientConfig::call_layer) (the
//! first added is the outermost). A layer sees each call with its arguments already encoded
//! (decode them with the client's data converter to read them), can change the call (e.g. add
//! a header that the workflow's inbound interceptors will read), change the response, or answer
//! with an error without calling the server.

use std::collections::HashMap;
use std::sync::Arc;

use tower::util::{BoxCloneSyncService, BoxCloneSyncServiceLayer};
use trellis_core_proto::api::common::v1::{
    Header, Link, Memo, Payloads, WorkflowExecution, WorkflowType,
};
use trellis_core_proto::api::enums::v1::UpdateWorkflowExecutionLifecycleStage;
use trellis_core_proto::api::enums::v1::{
    HistoryEventFilterType, TaskQueueKind, WorkflowExecutionStatus,
};
use trellis_core_proto::api::errordetails::v1::MultiOperationExecutionFailure;
use trellis_core_proto::api::history::v1::{History, history_event::Attributes};
use trellis_core_proto::api::query::v1::WorkflowQuery;
use trellis_core_proto::api::schedule::v1::{
    Schedule, ScheduleAction, ScheduleListEntry, SchedulePatch, ScheduleState,
    TriggerImmediatelyRequest, schedule_action,
};
use trellis_core_proto::api::taskqueue::v1::TaskQueue;
use trellis_core_proto::api::update::v1::{
    self as update, UpdateRef as UpdateRefProto, WaitPolicy,
};
use trellis_core_proto::api::workflow::v1::NewWorkflowExecutionInfo;
use trellis_core_proto::api::workflow::v1::WorkflowExecutionInfo;
use trellis_core_proto::api::workflowservice::v1::{
    CountWorkflowExecutionsRequest, DescribeWorkflowExecutionRequest,
    DescribeWorkflowExecutionResponse, ExecuteMultiOperationRequest,
    GetWorkflowExecutionHistoryRequest, ListWorkflowExecutionsRequest,
    PollWorkflowExecutionUpdateRequest, QueryWorkflowRequest,
    RecordActivityTaskHeartbeatByIdRequest, RecordActivityTaskHeartbeatRequest,
    RequestCancelWorkflowExecutionRequest, RespondActivityTaskCanceledByIdRequest,
    RespondActivityTaskCanceledRequest, RespondActivityTaskCompletedByIdRequest,
    RespondActivityTaskCompletedRequest, RespondActivityTaskFailedByIdRequest,
    RespondActivityTaskFailedRequest, SignalWithStartWorkflowExecutionRequest,
    SignalWorkflowExecutionRequest, StartWorkflowExecutionRequest,
    TerminateWorkflowExecutionRequest, UpdateWorkflowExecutionRequest,
    UpdateWorkflowExecutionResponse, execute_multi_operation_request as multi_operation_req,
    execute_multi_operation_response as multi_operation_resp,
};
use trellis_core_proto::api::workflowservice::v1::{
    CreateScheduleRequest, DeleteScheduleRequest, DescribeScheduleRequest,
    DescribeScheduleResponse, ListSchedulesRequest, PatchScheduleRequest,
};
use trellis_core_proto::time::to_proto_duration;
use trellis_core_proto::{Failure, Payload};
use trellis_interceptor::BoxError;

use crate::client::{Shared, WorkflowOptions};
use crate::error::{ClientError, WorkflowFailure};

/// Temporal headers: names to (encoded) payloads.
pub type Headers = HashMap<String, Payload>;

/// One call of the client.
#[derive(Debug, Clone)]
pub enum ClientCall {
    /// Start a workflow.
    StartWorkflow(StartWorkflowCall),
    /// Signal a workflow.
    Signal(SignalCall),
    /// Query a workflow.
    Query(QueryCall),
    /// Ask a workflow to cancel.
    Cancel(TargetCall),
    /// Terminate a workflow.
    Terminate(TargetCall),
    /// Describe a workflow.
    Describe(TargetCall),
    /// Fetch a workflow's history.
    FetchHistory(TargetCall),
    /// List workflows matching a visibility query (all pages).
    List(ListCall),
    /// Count workflows matching a visibility query.
    Count(ListCall),
    /// Start a workflow if it is not running, and signal it, in one RPC.
    SignalWithStart(SignalWithStartCall),
    /// Wait for a workflow to close and get its result: a long poll of its close event,
    /// following continue-as-new, retries and cron runs to the last run. A workflow that closed
    /// without a result comes back as the error [`ClientError::Workflow`].
    GetResult(TargetCall),
    /// Record a heartbeat of an activity that completes asynchronously.
    HeartbeatActivity(AsyncActivityCall),
    /// Complete an activity that completes asynchronously (`details` is its result).
    CompleteActivity(AsyncActivityCall),
    /// Fail an activity attempt that completes asynchronously.
    FailActivity(FailActivityCall),
    /// Report that an activity that completes asynchronously accepted cancellation.
    ReportActivityCancellation(AsyncActivityCall),
    /// Send an update and wait until it reaches a stage (accepted or completed).
    Update(Box<UpdateCall>),
    /// Wait for the outcome of an update sent earlier.
    PollUpdate(UpdateRef),
    /// Start a workflow (or, by its conflict policy, use the running one) and send it an
    /// update, in one RPC.
    UpdateWithStart(Box<UpdateWithStartCall>),
    /// Create, describe, trigger, pause, unpause or delete a schedule.
    Schedule(Box<ScheduleCall>),
    /// List the namespace's schedules (all pages).
    ListSchedules(ListCall),
}

impl ClientCall {
    /// The call's name, e.g. `start_workflow`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::StartWorkflow(_) => "start_workflow",
            Self::Signal(_) => "signal",
            Self::Query(_) => "query",
            Self::Cancel(_) => "cancel",
            Self::Terminate(_) => "terminate",
            Self::Describe(_) => "describe",
            Self::FetchHistory(_) => "fetch_history",
            Self::List(_) => "list_workflows",
            Self::Count(_) => "count_workflows",
            Self::SignalWithStart(_) => "signal_with_start_workflow",
            Self::GetResult(_) => "get_result",
            Self::HeartbeatActivity(_) => "heartbeat_activity",
            Self::CompleteActivity(_) => "complete_activity",
            Self::FailActivity(_) => "fail_activity",
            Self::ReportActivityCancellation(_) => "report_activity_cancellation",
            Self::Update(_) => "update",
            Self::PollUpdate(_) => "poll_update",
            Self::UpdateWithStart(_) => "update_with_start_workflow",
            Self::Schedule(c) => match c.op {
                ScheduleOp::Create { .. } => "create_schedule",
                ScheduleOp::Describe => "describe_schedule",
                ScheduleOp::Trigger => "trigger_schedule",
                ScheduleOp::Pause(_) => "pause_schedule",
                ScheduleOp::Unpause(_) => "unpause_schedule",
                ScheduleOp::Delete => "delete_schedule",
            },
            Self::ListSchedules(_) => "list_schedules",
        }
    }

    /// The headers of calls whose RPC carries headers (start, signal, query,
    /// signal-with-start, update; for update-with-start, the start's, which the update gets
    /// too); `None` for the others.
    pub fn headers_mut(&mut self) -> Option<&mut Headers> {
        match self {
            Self::StartWorkflow(c) => Some(&mut c.options.headers),
            Self::UpdateWithStart(c) => Some(&mut c.start.options.headers),
            Self::Schedule(c) => match &mut c.op {
                ScheduleOp::Create { workflow, .. } => Some(&mut workflow.options.headers),
                _ => None,
            },
            Self::Signal(c) => Some(&mut c.headers),
            Self::Query(c) => Some(&mut c.headers),
            Self::SignalWithStart(c) => Some(&mut c.options.headers),
            Self::Update(c) => Some(&mut c.headers),
            _ => None,
        }
    }

    /// The arguments of calls that carry arguments (start, signal, query, update; the start
    /// arguments of signal-with-start and update-with-start, whose other arguments are
    /// [`SignalWithStartCall::signal_args`] and the update's [`UpdateCall::args`]).
    pub fn args_mut(&mut self) -> Option<&mut Vec<Payload>> {
        match self {
            Self::StartWorkflow(c) => Some(&mut c.args),
            Self::UpdateWithStart(c) => Some(&mut c.start.args),
            Self::Schedule(c) => match &mut c.op {
                ScheduleOp::Create { workflow, .. } => Some(&mut workflow.args),
                _ => None,
            },
            Self::Signal(c) => Some(&mut c.args),
            Self::Query(c) => Some(&mut c.args),
            Self::SignalWithStart(c) => Some(&mut c.args),
            Self::Update(c) => Some(&mut c.args),
            _ => None,
        }
    }

    /// The run id the call targets, when it names one.
    pub fn run_id(&self) -> Option<&str> {
        match self {
            Self::Signal(c) => c.run_id.as_deref(),
            Self::Query(c) => c.run_id.as_deref(),
            Self::Cancel(c)
            | Self::Terminate(c)
            | Self::Describe(c)
            | Self::FetchHistory(c)
            | Self::GetResult(c) => c.run_id.as_deref(),
            Self::HeartbeatActivity(c)
            | Self::CompleteActivity(c)
            | Self::ReportActivityCancellation(c) => c.activity.run_id(),
            Self::FailActivity(c) => c.activity.run_id(),
            Self::Update(c) => c.run_id.as_deref(),
            Self::PollUpdate(c) => c.run_id.as_deref(),
            Self::StartWorkflow(_)
            | Self::SignalWithStart(_)
            | Self::UpdateWithStart(_)
            | Self::Schedule(_)
            | Self::ListSchedules(_)
            | Self::List(_)
            | Self::Count(_) => None,
        }
    }

    /// The workflow id the call is about.
    pub fn workflow_id(&self) -> &str {
        match self {
            Self::StartWorkflow(c) => &c.options.id,
            Self::Signal(c) => &c.workflow_id,
            Self::Query(c) => &c.workflow_id,
            Self::Cancel(c) | Self::Terminate(c) | Self::Describe(c) | Self::FetchHistory(c) => {
                &c.workflow_id
            }
            Self::GetResult(c) => &c.workflow_id,
            Self::SignalWithStart(c) => &c.options.id,
            Self::UpdateWithStart(c) => &c.start.options.id,
            Self::HeartbeatActivity(c)
            | Self::CompleteActivity(c)
            | Self::ReportActivityCancellation(c) => c.activity.workflow_id(),
            Self::FailActivity(c) => c.activity.workflow_id(),
            Self::Update(c) => &c.workflow_id,
            Self::PollUpdate(c) => &c.workflow_id,
            Self::Schedule(c) => match &c.op {
                ScheduleOp::Create { workflow, .. } => &workflow.options.id,
                _ => "",
            },
            Self::List(_) | Self::Count(_) | Self::ListSchedules(_) => "",
        }
    }
}

/// A call about one schedule.
#[derive(Debug, Clone)]
pub struct ScheduleCall {
    /// The schedule id.
    pub schedule_id: String,
    /// What to do.
    pub op: ScheduleOp,
}

/// What a [`ScheduleCall`] does.
#[derive(Debug, Clone)]
pub enum ScheduleOp {
    /// Create the schedule.
    Create {
        /// When it acts, its policies and state.
        options: Box<crate::schedule::ScheduleOptions>,
        /// The start of each workflow it runs: type, arguments (encoded; the codecs run below
        /// the layers) and options (id prefix, task queue, timeouts, headers, memo, …).
        workflow: Box<StartWorkflowCall>,
    },
    /// Describe it.
    Describe,
    /// Act once now.
    Trigger,
    /// Pause it, with a note.
    Pause(String),
    /// Unpause it, with a note.
    Unpause(String),
    /// Delete it.
    Delete,
}

/// Starting a workflow, or using the running one, and sending it an update, in one RPC
/// (`ExecuteMultiOperation`).
#[derive(Debug, Clone)]
pub struct UpdateWithStartCall {
    /// The start. Its `options.id_conflict_policy` says what happens when the workflow is
    /// already running (`UseExisting`: the update goes to it; `Fail`, the default: the call
    /// fails). Its headers go with the start and the update.
    pub start: StartWorkflowCall,
    /// The update; its workflow is the start's (its `workflow_id` and `run_id` are not used).
    pub update: UpdateCall,
}

/// Starting a workflow if it is not running, and signalling it, in one RPC.
#[derive(Debug, Clone)]
pub struct SignalWithStartCall {
    /// The workflow type name.
    pub workflow_type: String,
    /// The start arguments, encoded (used only when the workflow is started).
    pub args: Vec<Payload>,
    /// Id, task queue, timeouts, headers, … The headers go with the RPC, so the workflow's
    /// inbound interceptors see them on execute (when it starts) and on the signal.
    pub options: WorkflowOptions,
    /// The signal name.
    pub signal_name: String,
    /// The signal arguments, encoded.
    pub signal_args: Vec<Payload>,
}

/// Which activity an asynchronous completion is about: the task token the activity got
/// ([`ActivityContext::task_token`] in the worker), or its workflow and activity ids.
///
/// [`ActivityContext::task_token`]: https://docs.rs/trellis-worker
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsyncActivityId {
    /// The attempt's task token.
    TaskToken(Vec<u8>),
    /// The scheduling workflow and the activity's id.
    Ids {
        /// The workflow that scheduled the activity.
        workflow_id: String,
        /// Its run, or the latest when `None`.
        run_id: Option<String>,
        /// The activity id.
        activity_id: String,
    },
}

impl AsyncActivityId {
    /// An activity named by its task token.
    pub fn task_token(token: impl Into<Vec<u8>>) -> Self {
        Self::TaskToken(token.into())
    }

    /// An activity named by its workflow id, run id (the latest run when `None`) and activity
    /// id.
    pub fn ids(
        workflow_id: impl Into<String>,
        run_id: Option<String>,
        activity_id: impl Into<String>,
    ) -> Self {
        Self::Ids {
            workflow_id: workflow_id.into(),
            run_id,
            activity_id: activity_id.into(),
        }
    }

    /// The workflow id, when the activity is named by ids (empty for a task token).
    pub fn workflow_id(&self) -> &str {
        match self {
            Self::TaskToken(_) => "",
            Self::Ids { workflow_id, .. } => workflow_id,
        }
    }

    fn run_id(&self) -> Option<&str> {
        match self {
            Self::TaskToken(_) => None,
            Self::Ids { run_id, .. } => run_id.as_deref(),
        }
    }
}

/// Heartbeating, completing or cancelling an activity that completes asynchronously.
#[derive(Debug, Clone)]
pub struct AsyncActivityCall {
    /// The activity.
    pub activity: AsyncActivityId,
    /// Heartbeat details, the result (complete), or cancellation details; encoded.
    pub details: Vec<Payload>,
}

/// Failing an activity attempt that completes asynchronously.
#[derive(Debug, Clone)]
pub struct FailActivityCall {
    /// The activity.
    pub activity: AsyncActivityId,
    /// The failure, as the client's failure converter made it (payloads not yet through the
    /// codecs).
    pub failure: Box<Failure>,
    /// Heartbeat details to record with the failure (the next attempt reads them), encoded.
    pub last_heartbeat_details: Vec<Payload>,
}

/// The server's answer to an asynchronous activity heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActivityHeartbeatResponse {
    /// Cancellation of the activity was requested: stop and
    /// [report cancellation](crate::AsyncActivityHandle::report_cancellation).
    pub cancel_requested: bool,
    /// The activity was paused.
    pub paused: bool,
    /// The activity was reset.
    pub reset: bool,
}

/// Starting a workflow.
#[derive(Debug, Clone)]
pub struct StartWorkflowCall {
    /// The workflow type name.
    pub workflow_type: String,
    /// The arguments, encoded.
    pub args: Vec<Payload>,
    /// Id, task queue, timeouts, headers, …
    pub options: WorkflowOptions,
}

/// Signalling a workflow.
#[derive(Debug, Clone)]
pub struct SignalCall {
    /// The workflow id.
    pub workflow_id: String,
    /// The run, or the latest when `None`.
    pub run_id: Option<String>,
    /// The signal name.
    pub name: String,
    /// The arguments, encoded.
    pub args: Vec<Payload>,
    /// Headers the workflow's inbound interceptors receive.
    pub headers: Headers,
}

/// Querying a workflow.
#[derive(Debug, Clone)]
pub struct QueryCall {
    /// The workflow id.
    pub workflow_id: String,
    /// The run, or the latest when `None`.
    pub run_id: Option<String>,
    /// The query name.
    pub name: String,
    /// The arguments, encoded.
    pub args: Vec<Payload>,
    /// Headers the workflow's inbound interceptors receive.
    pub headers: Headers,
}

/// Until when an update call waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateStage {
    /// Until the workflow accepted (or rejected) the update.
    Accepted,
    /// Until the update handler finished (or the update was rejected).
    Completed,
}

/// Updating a workflow.
#[derive(Debug, Clone)]
pub struct UpdateCall {
    /// The workflow id.
    pub workflow_id: String,
    /// The run, or the latest when `None`.
    pub run_id: Option<String>,
    /// The update id (the same id twice is the same update).
    pub update_id: String,
    /// The update name.
    pub name: String,
    /// The arguments, encoded.
    pub args: Vec<Payload>,
    /// Headers the workflow's inbound interceptors receive.
    pub headers: Headers,
    /// Until when the call waits.
    pub wait_for: UpdateStage,
}

/// An update sent earlier.
#[derive(Debug, Clone)]
pub struct UpdateRef {
    /// The workflow id.
    pub workflow_id: String,
    /// The run, or the latest when `None`.
    pub run_id: Option<String>,
    /// The update id.
    pub update_id: String,
}

/// Where an update stands.
#[derive(Debug, Clone)]
pub enum UpdateOutcome {
    /// Accepted; the handler is running.
    Accepted,
    /// The handler's (encoded) result.
    Completed(Option<Payload>),
    /// Rejected by the validator, or failed by the handler.
    Failed(Box<trellis_core_proto::Failure>),
}

/// A call about one workflow run (cancel, terminate, describe, fetch history).
#[derive(Debug, Clone)]
pub struct TargetCall {
    /// The workflow id.
    pub workflow_id: String,
    /// The run, or the latest when `None`.
    pub run_id: Option<String>,
    /// The reason (cancel and terminate).
    pub reason: String,
}

/// Listing or counting workflows.
#[derive(Debug, Clone)]
pub struct ListCall {
    /// A visibility query, e.g. `WorkflowType = 'Greet' AND ExecutionStatus = 'Completed'`
    /// (empty: every workflow).
    pub query: String,
}

/// The answer to a [`ClientCall`].
#[derive(Debug, Clone)]
pub enum ClientCallResponse {
    /// The workflow started with this run id.
    Started {
        /// The new run's id (or the running one's, for a start that joined it).
        run_id: String,
        /// The server's link to the event the start produced, when it sent one.
        link: Option<Link>,
    },
    /// The call was accepted (signal, cancel, terminate).
    Accepted,
    /// The query's answer, encoded.
    QueryAnswer(Vec<Payload>),
    /// The server's description of the run.
    Described(Box<DescribeWorkflowExecutionResponse>),
    /// The run's history.
    History(History),
    /// The workflows a list matched.
    Workflows(Vec<WorkflowExecutionInfo>),
    /// How many workflows a count matched.
    Count(i64),
    /// The workflow completed with this result (encoded).
    WorkflowResult {
        /// The run that completed (the last one, after continue-as-new or retries).
        run_id: String,
        /// Its result payloads (usually one).
        result: Vec<Payload>,
    },
    /// An asynchronous activity heartbeat was recorded.
    ActivityHeartbeat(ActivityHeartbeatResponse),
    /// An update-with-start went through: the run that took the update, and where the update
    /// stands.
    UpdateWithStart {
        /// The run's id.
        run_id: String,
        /// Whether the call started it (`false`: it was already running).
        started: bool,
        /// The update's outcome so far.
        outcome: UpdateOutcome,
    },
    /// A schedule's description.
    ScheduleDescribed(Box<DescribeScheduleResponse>),
    /// The namespace's schedules.
    Schedules(Vec<ScheduleListEntry>),
    /// Where an update stands (with its run id, once known).
    Update {
        /// The outcome so far.
        outcome: UpdateOutcome,
        /// The run that took the update.
        run_id: Option<String>,
    },
}

/// The client-call service. Errors are boxed so any tower layer fits; a [`ClientError`] raised
/// below comes back out as itself.
pub type ClientCallService = BoxCloneSyncService<ClientCall, ClientCallResponse, BoxError>;

/// A type-erased layer around the [`ClientCallService`].
pub type ClientCallLayer =
    BoxCloneSyncServiceLayer<ClientCallService, ClientCall, ClientCallResponse, BoxError>;

fn execution(workflow_id: &str, run_id: &Option<String>) -> Option<WorkflowExecution> {
    Some(WorkflowExecution {
        workflow_id: workflow_id.to_owned(),
        run_id: run_id.clone().unwrap_or_default(),
    })
}

/// The `StartWorkflowExecution` request of a start (arguments and memo encoded by `dc`).
async fn start_request(
    dc: &trellis_converter::DataConverter,
    ns: String,
    identity: String,
    mut c: StartWorkflowCall,
) -> Result<StartWorkflowExecutionRequest, trellis_converter::CodecError> {
    c.args = dc.encode_payloads(c.args).await?;
    let mut o = c.options;
    o.memo = encode_memo(dc, o.memo).await?;
    let nexus = o.nexus.unwrap_or_default();
    Ok(StartWorkflowExecutionRequest {
        namespace: ns,
        workflow_id: o.id,
        workflow_type: Some(WorkflowType {
            name: c.workflow_type,
        }),
        task_queue: normal_task_queue(o.task_queue),
        input: Some(Payloads { payloads: c.args }),
        workflow_execution_timeout: o.execution_timeout.map(to_proto_duration),
        workflow_run_timeout: o.run_timeout.map(to_proto_duration),
        workflow_task_timeout: o.task_timeout.map(to_proto_duration),
        identity,
        request_id: if nexus.request_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            nexus.request_id
        },
        workflow_id_reuse_policy: o.id_reuse_policy as i32,
        workflow_id_conflict_policy: o.id_conflict_policy as i32,
        retry_policy: o.retry_policy,
        memo: (!o.memo.is_empty()).then_some(Memo { fields: o.memo }),
        header: header(o.headers),
        completion_callbacks: nexus.completion_callbacks,
        links: nexus.links,
        on_conflict_options: nexus.on_conflict_options,
        ..Default::default()
    })
}

/// Runs one schedule call.
async fn schedule_call(
    svc: &mut Box<dyn temporalio_client::grpc::WorkflowService>,
    dc: &trellis_converter::DataConverter,
    ns: String,
    identity: String,
    c: ScheduleCall,
    op: &'static str,
) -> Result<ClientCallResponse, ClientError> {
    let rpc = ClientError::rpc(op);
    let trigger_now = || SchedulePatch {
        trigger_immediately: Some(TriggerImmediatelyRequest::default()),
        ..Default::default()
    };
    Ok(match c.op {
        ScheduleOp::Create { options, workflow } => {
            // The action is the start a client would send, less what only a start carries.
            let start = start_request(dc, ns.clone(), identity.clone(), *workflow)
                .await
                .map_err(|e| ClientError::Codec {
                    operation: op,
                    cause: e,
                })?;
            let action = NewWorkflowExecutionInfo {
                workflow_id: start.workflow_id,
                workflow_type: start.workflow_type,
                task_queue: start.task_queue,
                input: start.input,
                workflow_execution_timeout: start.workflow_execution_timeout,
                workflow_run_timeout: start.workflow_run_timeout,
                workflow_task_timeout: start.workflow_task_timeout,
                workflow_id_reuse_policy: start.workflow_id_reuse_policy,
                retry_policy: start.retry_policy,
                memo: start.memo,
                header: start.header,
                ..Default::default()
            };
            let options = *options;
            let request = CreateScheduleRequest {
                namespace: ns,
                schedule_id: c.schedule_id,
                schedule: Some(Schedule {
                    spec: Some(options.spec),
                    action: Some(ScheduleAction {
                        action: Some(schedule_action::Action::StartWorkflow(action)),
                    }),
                    policies: Some(options.policies),
                    state: Some(ScheduleState {
                        notes: options.note,
                        paused: options.paused,
                        ..Default::default()
                    }),
                }),
                initial_patch: options.trigger_immediately.then(trigger_now),
                identity,
                request_id: uuid::Uuid::new_v4().to_string(),
                ..Default::default()
            };
            svc.create_schedule(tonic::Request::new(request))
                .await
                .map_err(rpc)?;
            ClientCallResponse::Accepted
        }
        ScheduleOp::Describe => {
            let request = DescribeScheduleRequest {
                namespace: ns,
                schedule_id: c.schedule_id,
            };
            let r = svc
                .describe_schedule(tonic::Request::new(request))
                .await
                .map_err(rpc)?
                .into_inner();
            ClientCallResponse::ScheduleDescribed(Box::new(r))
        }
        ScheduleOp::Pause(note) | ScheduleOp::Unpause(note) if note.is_empty() => {
            return Err(ClientError::Rpc {
                operation: op,
                status: tonic::Status::invalid_argument(
                    "pausing or unpausing a schedule needs a note saying why",
                ),
            });
        }
        change @ (ScheduleOp::Trigger | ScheduleOp::Pause(_) | ScheduleOp::Unpause(_)) => {
            let patch = match change {
                ScheduleOp::Pause(pause) => SchedulePatch {
                    pause,
                    ..Default::default()
                },
                ScheduleOp::Unpause(unpause) => SchedulePatch {
                    unpause,
                    ..Default::default()
                },
                _ => trigger_now(),
            };
            let request = PatchScheduleRequest {
                namespace: ns,
                schedule_id: c.schedule_id,
                patch: Some(patch),
                identity,
                request_id: uuid::Uuid::new_v4().to_string(),
            };
            svc.patch_schedule(tonic::Request::new(request))
                .await
                .map_err(rpc)?;
            ClientCallResponse::Accepted
        }
        ScheduleOp::Delete => {
            let request = DeleteScheduleRequest {
                namespace: ns,
                schedule_id: c.schedule_id,
                identity,
            };
            svc.delete_schedule(tonic::Request::new(request))
                .await
                .map_err(rpc)?;
            ClientCallResponse::Accepted
        }
    })
}

/// The `UpdateWorkflowExecution` request of an update (arguments already encoded), waiting
/// for the call's stage.
fn update_request(ns: String, identity: String, c: UpdateCall) -> UpdateWorkflowExecutionRequest {
    let stage = match c.wait_for {
        UpdateStage::Accepted => UpdateWorkflowExecutionLifecycleStage::Accepted,
        UpdateStage::Completed => UpdateWorkflowExecutionLifecycleStage::Completed,
    };
    UpdateWorkflowExecutionRequest {
        namespace: ns,
        workflow_execution: execution(&c.workflow_id, &c.run_id),
        wait_policy: Some(WaitPolicy {
            lifecycle_stage: stage as i32,
        }),
        request: Some(update::Request {
            meta: Some(update::Meta {
                update_id: c.update_id,
                identity,
            }),
            input: Some(update::Input {
                header: header(c.headers),
                name: c.name,
                args: Some(Payloads { payloads: c.args }),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The lifecycle stage an update request waits for.
fn wanted_stage(request: &UpdateWorkflowExecutionRequest) -> i32 {
    request
        .wait_policy
        .as_ref()
        .map_or(0, |w| w.lifecycle_stage)
}

/// Sends an update until it reaches its stage: the server answers when the stage is reached
/// or when its long poll times out, so ask again (the same update id is the same update).
async fn update_until_stage(
    svc: &mut Box<dyn temporalio_client::grpc::WorkflowService>,
    request: UpdateWorkflowExecutionRequest,
    op: &'static str,
) -> Result<UpdateWorkflowExecutionResponse, ClientError> {
    let stage = wanted_stage(&request);
    loop {
        let r = svc
            .update_workflow_execution(tonic::Request::new(request.clone()))
            .await
            .map_err(ClientError::rpc(op))?
            .into_inner();
        if r.outcome.is_some() || r.stage >= stage {
            return Ok(r);
        }
    }
}

/// The status of the operation that failed a multi-operation call (the server reports one
/// status per operation in a `MultiOperationExecutionFailure`; the others are `Aborted`), or
/// the call's own status when it carries none.
fn multi_operation_cause(status: tonic::Status) -> tonic::Status {
    #[derive(Clone, PartialEq, prost::Message)]
    struct RpcStatus {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
        #[prost(message, repeated, tag = "3")]
        details: Vec<AnyMessage>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct AnyMessage {
        #[prost(string, tag = "1")]
        type_url: String,
        #[prost(bytes = "vec", tag = "2")]
        value: Vec<u8>,
    }
    let Ok(rpc) = <RpcStatus as prost::Message>::decode(status.details()) else {
        return status;
    };
    let failure = rpc
        .details
        .iter()
        .find(|d| d.type_url.ends_with("MultiOperationExecutionFailure"))
        .and_then(|d| {
            <MultiOperationExecutionFailure as prost::Message>::decode(d.value.as_slice()).ok()
        });
    let Some(failure) = failure else {
        return status;
    };
    failure
        .statuses
        .into_iter()
        .find(|s| s.code != tonic::Code::Aborted as i32 && s.code != tonic::Code::Ok as i32)
        .map(|s| tonic::Status::new(tonic::Code::from(s.code), s.message))
        .unwrap_or(status)
}

/// The memo's values through the codecs (a memo is stored as the client wrote it).
async fn encode_memo(
    dc: &trellis_converter::DataConverter,
    memo: HashMap<String, Payload>,
) -> Result<HashMap<String, Payload>, trellis_converter::CodecError> {
    if memo.is_empty() || dc.codecs().is_empty() {
        return Ok(memo);
    }
    let (keys, values): (Vec<_>, Vec<_>) = memo.into_iter().unzip();
    let values = dc.encode_payloads(values).await?;
    Ok(keys.into_iter().zip(values).collect())
}

fn normal_task_queue(name: String) -> Option<TaskQueue> {
    Some(TaskQueue {
        name,
        kind: TaskQueueKind::Normal as i32,
        normal_name: String::new(),
    })
}

fn header(headers: Headers) -> Option<Header> {
    (!headers.is_empty()).then_some(Header { fields: headers })
}

async fn update_outcome(
    dc: &trellis_converter::DataConverter,
    outcome: Option<update::Outcome>,
    operation: &'static str,
) -> Result<UpdateOutcome, ClientError> {
    let codec = |e: trellis_converter::CodecError| ClientError::Codec {
        operation,
        cause: e,
    };
    Ok(match outcome.and_then(|o| o.value) {
        None => UpdateOutcome::Accepted,
        Some(update::outcome::Value::Success(p)) => {
            let payloads = dc.decode_payloads(p.payloads).await.map_err(codec)?;
            UpdateOutcome::Completed(payloads.into_iter().next())
        }
        Some(update::outcome::Value::Failure(mut f)) => {
            if !dc.codecs().is_empty() {
                dc.decode_message(&mut f, &trellis_converter::VisitOptions::default())
                    .await
                    .map_err(codec)?;
            }
            trellis_converter::decode_common_attributes(&mut f);
            UpdateOutcome::Failed(Box::new(f))
        }
    })
}

/// The innermost client-call service: performs the RPC.
pub(crate) fn base_call_service(shared: Arc<Shared>) -> ClientCallService {
    ClientCallService::new(tower::service_fn(move |call: ClientCall| {
        let shared = shared.clone();
        async move { perform(&shared, call).await.map_err(BoxError::from) }
    }))
}

async fn perform(shared: &Shared, call: ClientCall) -> Result<ClientCallResponse, ClientError> {
    let ns = shared.config.namespace.clone();
    let identity = shared.config.identity.clone();
    let mut svc = shared.connection.workflow_service();
    let op = call.name();
    let rpc = ClientError::rpc(op);
    let dc = &shared.config.data_converter;
    let codec = |e: trellis_converter::CodecError| ClientError::Codec {
        operation: op,
        cause: e,
    };
    Ok(match call {
        ClientCall::StartWorkflow(c) => {
            let request = start_request(dc, ns, identity, c).await.map_err(codec)?;
            let r = svc
                .start_workflow_execution(tonic::Request::new(request))
                .await
                .map_err(rpc)?
                .into_inner();
            ClientCallResponse::Started {
                run_id: r.run_id,
                link: r.link,
            }
        }
        ClientCall::Signal(mut c) => {
            c.args = dc.encode_payloads(c.args).await.map_err(codec)?;
            let request = SignalWorkflowExecutionRequest {
                namespace: ns,
                workflow_execution: execution(&c.workflow_id, &c.run_id),
                signal_name: c.name,
                input: Some(Payloads { payloads: c.args }),
                identity,
                request_id: uuid::Uuid::new_v4().to_string(),
                header: header(c.headers),
                ..Default::default()
            };
            svc.signal_workflow_execution(tonic::Request::new(request))
                .await
                .map_err(rpc)?;
            ClientCallResponse::Accepted
        }
        ClientCall::Query(mut c) => {
            c.args = dc.encode_payloads(c.args).await.map_err(codec)?;
            let name = c.name.clone();
            let request = QueryWorkflowRequest {
                namespace: ns,
                execution: execution(&c.workflow_id, &c.run_id),
                query: Some(WorkflowQuery {
                    query_type: c.name,
                    query_args: Some(Payloads { payloads: c.args }),
                    header: header(c.headers),
                }),
                query_reject_condition: 0,
            };
            let response = svc
                .query_workflow(tonic::Request::new(request))
                .await
                .map_err(|status| match status.code() {
                    tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition
                        if !status.message().is_empty() =>
                    {
                        ClientError::Query {
                            query: name.clone(),
                            message: status.message().to_owned(),
                        }
                    }
                    _ => ClientError::Rpc {
                        operation: "query",
                        status,
                    },
                })?
                .into_inner();
            if let Some(rejected) = response.query_rejected {
                return Err(ClientError::Query {
                    query: name,
                    message: format!("rejected: workflow status {:?}", rejected.status()),
                });
            }
            ClientCallResponse::QueryAnswer(
                response
                    .query_result
                    .map(|p| p.payloads)
                    .unwrap_or_default(),
            )
        }
        ClientCall::Cancel(c) => {
            let request = RequestCancelWorkflowExecutionRequest {
                namespace: ns,
                workflow_execution: execution(&c.workflow_id, &c.run_id),
                identity,
                request_id: uuid::Uuid::new_v4().to_string(),
                reason: c.reason,
                ..Default::default()
            };
            svc.request_cancel_workflow_execution(tonic::Request::new(request))
                .await
                .map_err(rpc)?;
            ClientCallResponse::Accepted
        }
        ClientCall::Terminate(c) => {
            let request = TerminateWorkflowExecutionRequest {
                namespace: ns,
                workflow_execution: execution(&c.workflow_id, &c.run_id),
                reason: c.reason,
                identity,
                ..Default::default()
            };
            svc.terminate_workflow_execution(tonic::Request::new(request))
                .await
                .map_err(rpc)?;
            ClientCallResponse::Accepted
        }
        ClientCall::Describe(c) => {
            let request = DescribeWorkflowExecutionRequest {
                namespace: ns,
                execution: execution(&c.workflow_id, &c.run_id),
            };
            let raw = svc
                .describe_workflow_execution(tonic::Request::new(request))
                .await
                .map_err(rpc)?
                .into_inner();
            ClientCallResponse::Described(Box::new(raw))
        }
        ClientCall::FetchHistory(c) => {
            let mut events = Vec::new();
            let mut page_token = Vec::new();
            loop {
                let request = GetWorkflowExecutionHistoryRequest {
                    namespace: ns.clone(),
                    execution: execution(&c.workflow_id, &c.run_id),
                    next_page_token: std::mem::take(&mut page_token),
                    ..Default::default()
                };
                let response = svc
                    .get_workflow_execution_history(tonic::Request::new(request))
                    .await
                    .map_err(ClientError::rpc("fetch_history"))?
                    .into_inner();
                events.extend(response.history.map(|h| h.events).unwrap_or_default());
                if response.next_page_token.is_empty() {
                    break ClientCallResponse::History(History { events });
                }
                page_token = response.next_page_token;
            }
        }
        ClientCall::List(c) => {
            let mut found = Vec::new();
            let mut page_token = Vec::new();
            loop {
                let request = ListWorkflowExecutionsRequest {
                    namespace: ns.clone(),
                    page_size: 1000,
                    next_page_token: std::mem::take(&mut page_token),
                    query: c.query.clone(),
                };
                let response = svc
                    .list_workflow_executions(tonic::Request::new(request))
                    .await
                    .map_err(ClientError::rpc("list_workflows"))?
                    .into_inner();
                found.extend(response.executions);
                if response.next_page_token.is_empty() {
                    break ClientCallResponse::Workflows(found);
                }
                page_token = response.next_page_token;
            }
        }
        ClientCall::Update(c) => {
            let mut c = *c;
            c.args = dc.encode_payloads(c.args).await.map_err(codec)?;
            let request = update_request(ns.clone(), identity.clone(), c);
            let response = update_until_stage(&mut svc, request, op).await?;
            let run_id = response
                .update_ref
                .and_then(|u| u.workflow_execution)
                .map(|e| e.run_id)
                .filter(|r| !r.is_empty());
            ClientCallResponse::Update {
                outcome: update_outcome(dc, response.outcome, op).await?,
                run_id,
            }
        }
        ClientCall::UpdateWithStart(c) => {
            let UpdateWithStartCall { start, mut update } = *c;
            // The start's headers go with the update too (the update's own win).
            for (k, v) in &start.options.headers {
                update.headers.entry(k.clone()).or_insert_with(|| v.clone());
            }
            let workflow_id = start.options.id.clone();
            update.workflow_id = workflow_id.clone();
            update.run_id = None;
            update.args = dc.encode_payloads(update.args).await.map_err(codec)?;
            let start = start_request(dc, ns.clone(), identity.clone(), start)
                .await
                .map_err(codec)?;
            let update = update_request(ns.clone(), identity, update);
            let request = ExecuteMultiOperationRequest {
                namespace: ns,
                operations: [
                    multi_operation_req::operation::Operation::StartWorkflow(start),
                    multi_operation_req::operation::Operation::UpdateWorkflow(update.clone()),
                ]
                .into_iter()
                .map(|o| multi_operation_req::Operation { operation: Some(o) })
                .collect(),
                ..Default::default()
            };
            let r = svc
                .execute_multi_operation(tonic::Request::new(request))
                .await
                .map_err(|status| ClientError::Rpc {
                    operation: op,
                    status: multi_operation_cause(status),
                })?
                .into_inner();
            let mut started = None;
            let mut updated = None;
            for response in r.responses {
                match response.response {
                    Some(multi_operation_resp::response::Response::StartWorkflow(s)) => {
                        started = Some(s)
                    }
                    Some(multi_operation_resp::response::Response::UpdateWorkflow(u)) => {
                        updated = Some(u)
                    }
                    None => {}
                }
            }
            let (Some(started), Some(mut updated)) = (started, updated) else {
                return Err(ClientError::Rpc {
                    operation: op,
                    status: tonic::Status::internal(
                        "the server's answer lacks the start or the update response",
                    ),
                });
            };
            if updated.outcome.is_none() && updated.stage < wanted_stage(&update) {
                // The update's long poll ended before its stage: follow it on the run.
                let mut again = update;
                again.workflow_execution = execution(&workflow_id, &Some(started.run_id.clone()));
                updated = update_until_stage(&mut svc, again, op).await?;
            }
            ClientCallResponse::UpdateWithStart {
                run_id: started.run_id,
                started: started.started,
                outcome: update_outcome(dc, updated.outcome, op).await?,
            }
        }
        ClientCall::Schedule(c) => schedule_call(&mut svc, dc, ns, identity, *c, op).await?,
        ClientCall::ListSchedules(c) => {
            let mut found = Vec::new();
            let mut page_token = Vec::new();
            loop {
                let request = ListSchedulesRequest {
                    namespace: ns.clone(),
                    maximum_page_size: 100,
                    next_page_token: page_token,
                    query: c.query.clone(),
                };
                let response = svc
                    .list_schedules(tonic::Request::new(request))
                    .await
                    .map_err(ClientError::rpc(op))?
                    .into_inner();
                found.extend(response.schedules);
                if response.next_page_token.is_empty() {
                    break ClientCallResponse::Schedules(found);
                }
                page_token = response.next_page_token;
            }
        }
        ClientCall::PollUpdate(c) => {
            let request = PollWorkflowExecutionUpdateRequest {
                namespace: ns.clone(),
                update_ref: Some(UpdateRefProto {
                    workflow_execution: execution(&c.workflow_id, &c.run_id),
                    update_id: c.update_id.clone(),
                }),
                identity: identity.clone(),
                wait_policy: Some(WaitPolicy {
                    lifecycle_stage: UpdateWorkflowExecutionLifecycleStage::Completed as i32,
                }),
            };
            let response = loop {
                let r = svc
                    .poll_workflow_execution_update(tonic::Request::new(request.clone()))
                    .await
                    .map_err(ClientError::rpc(op))?
                    .into_inner();
                if r.outcome.is_some() {
                    break r;
                }
            };
            ClientCallResponse::Update {
                outcome: update_outcome(dc, response.outcome, op).await?,
                run_id: c.run_id,
            }
        }
        ClientCall::Count(c) => {
            let request = CountWorkflowExecutionsRequest {
                namespace: ns,
                query: c.query,
            };
            let response = svc
                .count_workflow_executions(tonic::Request::new(request))
                .await
                .map_err(rpc)?
                .into_inner();
            ClientCallResponse::Count(response.count)
        }
        ClientCall::SignalWithStart(c) => {
            let mut payloads = c.args;
            let n = payloads.len();
            payloads.extend(c.signal_args);
            let mut payloads = dc.encode_payloads(payloads).await.map_err(codec)?;
            let signal_args = payloads.split_off(n);
            let mut o = c.options;
            o.memo = encode_memo(dc, o.memo).await.map_err(codec)?;
            let request = SignalWithStartWorkflowExecutionRequest {
                namespace: ns,
                workflow_id: o.id,
                workflow_type: Some(WorkflowType {
                    name: c.workflow_type,
                }),
                task_queue: normal_task_queue(o.task_queue),
                input: Some(Payloads { payloads }),
                workflow_execution_timeout: o.execution_timeout.map(to_proto_duration),
                workflow_run_timeout: o.run_timeout.map(to_proto_duration),
                workflow_task_timeout: o.task_timeout.map(to_proto_duration),
                identity,
                request_id: uuid::Uuid::new_v4().to_string(),
                workflow_id_reuse_policy: o.id_reuse_policy as i32,
                workflow_id_conflict_policy: o.id_conflict_policy as i32,
                signal_name: c.signal_name,
                signal_input: Some(Payloads {
                    payloads: signal_args,
                }),
                retry_policy: o.retry_policy,
                memo: (!o.memo.is_empty()).then_some(Memo { fields: o.memo }),
                header: header(o.headers),
                ..Default::default()
            };
            let r = svc
                .signal_with_start_workflow_execution(tonic::Request::new(request))
                .await
                .map_err(ClientError::rpc(
                    "signal_with_start_workflow (SignalWithStartWorkflowExecution)",
                ))?
                .into_inner();
            ClientCallResponse::Started {
                run_id: r.run_id,
                link: None,
            }
        }
        ClientCall::GetResult(c) => get_result(shared, c).await?,
        ClientCall::HeartbeatActivity(c) => {
            let details = Some(Payloads {
                payloads: dc.encode_payloads(c.details).await.map_err(codec)?,
            });
            let r = match c.activity {
                AsyncActivityId::TaskToken(task_token) => {
                    let r = svc
                        .record_activity_task_heartbeat(tonic::Request::new(
                            RecordActivityTaskHeartbeatRequest {
                                task_token,
                                details,
                                identity,
                                namespace: ns,
                                ..Default::default()
                            },
                        ))
                        .await
                        .map_err(ClientError::rpc(
                            "heartbeat_activity (RecordActivityTaskHeartbeat)",
                        ))?
                        .into_inner();
                    (r.cancel_requested, r.activity_paused, r.activity_reset)
                }
                AsyncActivityId::Ids {
                    workflow_id,
                    run_id,
                    activity_id,
                } => {
                    let r = svc
                        .record_activity_task_heartbeat_by_id(tonic::Request::new(
                            RecordActivityTaskHeartbeatByIdRequest {
                                namespace: ns,
                                workflow_id,
                                run_id: run_id.unwrap_or_default(),
                                activity_id,
                                details,
                                identity,
                                ..Default::default()
                            },
                        ))
                        .await
                        .map_err(ClientError::rpc(
                            "heartbeat_activity (RecordActivityTaskHeartbeatById)",
                        ))?
                        .into_inner();
                    (r.cancel_requested, r.activity_paused, r.activity_reset)
                }
            };
            ClientCallResponse::ActivityHeartbeat(ActivityHeartbeatResponse {
                cancel_requested: r.0,
                paused: r.1,
                reset: r.2,
            })
        }
        ClientCall::CompleteActivity(c) => {
            let result = Some(Payloads {
                payloads: dc.encode_payloads(c.details).await.map_err(codec)?,
            });
            match c.activity {
                AsyncActivityId::TaskToken(task_token) => {
                    svc.respond_activity_task_completed(tonic::Request::new(
                        RespondActivityTaskCompletedRequest {
                            task_token,
                            result,
                            identity,
                            namespace: ns,
                            ..Default::default()
                        },
                    ))
                    .await
                    .map_err(ClientError::rpc(
                        "complete_activity (RespondActivityTaskCompleted)",
                    ))?;
                }
                AsyncActivityId::Ids {
                    workflow_id,
                    run_id,
                    activity_id,
                } => {
                    svc.respond_activity_task_completed_by_id(tonic::Request::new(
                        RespondActivityTaskCompletedByIdRequest {
                            namespace: ns,
                            workflow_id,
                            run_id: run_id.unwrap_or_default(),
                            activity_id,
                            result,
                            identity,
                            ..Default::default()
                        },
                    ))
                    .await
                    .map_err(ClientError::rpc(
                        "complete_activity (RespondActivityTaskCompletedById)",
                    ))?;
                }
            }
            ClientCallResponse::Accepted
        }
        ClientCall::FailActivity(c) => {
            let mut failure = *c.failure;
            dc.encode_message(&mut failure, &trellis_converter::VisitOptions::default())
                .await
                .map_err(codec)?;
            let failure = Some(failure);
            let last_heartbeat_details = if c.last_heartbeat_details.is_empty() {
                None
            } else {
                Some(Payloads {
                    payloads: dc
                        .encode_payloads(c.last_heartbeat_details)
                        .await
                        .map_err(codec)?,
                })
            };
            match c.activity {
                AsyncActivityId::TaskToken(task_token) => {
                    svc.respond_activity_task_failed(tonic::Request::new(
                        RespondActivityTaskFailedRequest {
                            task_token,
                            failure,
                            identity,
                            namespace: ns,
                            last_heartbeat_details,
                            ..Default::default()
                        },
                    ))
                    .await
                    .map_err(ClientError::rpc(
                        "fail_activity (RespondActivityTaskFailed)",
                    ))?;
                }
                AsyncActivityId::Ids {
                    workflow_id,
                    run_id,
                    activity_id,
                } => {
                    svc.respond_activity_task_failed_by_id(tonic::Request::new(
                        RespondActivityTaskFailedByIdRequest {
                            namespace: ns,
                            workflow_id,
                            run_id: run_id.unwrap_or_default(),
                            activity_id,
                            failure,
                            identity,
                            last_heartbeat_details,
                            ..Default::default()
                        },
                    ))
                    .await
                    .map_err(ClientError::rpc(
                        "fail_activity (RespondActivityTaskFailedById)",
                    ))?;
                }
            }
            ClientCallResponse::Accepted
        }
        ClientCall::ReportActivityCancellation(c) => {
            let details = Some(Payloads {
                payloads: dc.encode_payloads(c.details).await.map_err(codec)?,
            });
            match c.activity {
                AsyncActivityId::TaskToken(task_token) => {
                    svc.respond_activity_task_canceled(tonic::Request::new(
                        RespondActivityTaskCanceledRequest {
                            task_token,
                            details,
                            identity,
                            namespace: ns,
                            ..Default::default()
                        },
                    ))
                    .await
                    .map_err(ClientError::rpc(
                        "report_activity_cancellation (RespondActivityTaskCanceled)",
                    ))?;
                }
                AsyncActivityId::Ids {
                    workflow_id,
                    run_id,
                    activity_id,
                } => {
                    svc.respond_activity_task_canceled_by_id(tonic::Request::new(
                        RespondActivityTaskCanceledByIdRequest {
                            namespace: ns,
                            workflow_id,
                            run_id: run_id.unwrap_or_default(),
                            activity_id,
                            details,
                            identity,
                            ..Default::default()
                        },
                    ))
                    .await
                    .map_err(ClientError::rpc(
                        "report_activity_cancellation (RespondActivityTaskCanceledById)",
                    ))?;
                }
            }
            ClientCallResponse::Accepted
        }
    })
}

/// Long-polls the close event of a run, following continue-as-new, retries and cron runs to
/// the last run; payloads come back decoded by the codecs (converter-level, as every layer
/// above sees them).
async fn get_result(shared: &Shared, c: TargetCall) -> Result<ClientCallResponse, ClientError> {
    const OP: &str = "get_result";
    let dc = &shared.config.data_converter;
    let mut svc = shared.connection.workflow_service();
    let mut run_id = c.run_id.unwrap_or_default();
    let mut page_token = Vec::new();
    loop {
        let request = GetWorkflowExecutionHistoryRequest {
            namespace: shared.config.namespace.clone(),
            execution: Some(WorkflowExecution {
                workflow_id: c.workflow_id.clone(),
                run_id: run_id.clone(),
            }),
            wait_new_event: true,
            history_event_filter_type: HistoryEventFilterType::CloseEvent as i32,
            skip_archival: true,
            next_page_token: std::mem::take(&mut page_token),
            ..Default::default()
        };
        let response = svc
            .get_workflow_execution_history(tonic::Request::new(request))
            .await
            .map_err(ClientError::rpc(OP))?
            .into_inner();
        let Some(event) = response.history.and_then(|h| h.events.into_iter().last()) else {
            page_token = response.next_page_token;
            continue;
        };
        let fail = |status, failure, reason: Option<String>, run_id: &str| {
            ClientError::from(WorkflowFailure {
                workflow_id: c.workflow_id.clone(),
                run_id: run_id.to_owned(),
                status,
                failure,
                reason,
            })
        };
        let follow = |next: &str| (!next.is_empty()).then(|| next.to_owned());
        let codec = |cause| ClientError::Codec {
            operation: OP,
            cause,
        };
        match event.attributes {
            Some(Attributes::WorkflowExecutionCompletedEventAttributes(a)) => {
                if let Some(next) = follow(&a.new_execution_run_id) {
                    run_id = next;
                    continue;
                }
                let payloads = a.result.map(|p| p.payloads).unwrap_or_default();
                let result = dc.decode_payloads(payloads).await.map_err(codec)?;
                return Ok(ClientCallResponse::WorkflowResult { run_id, result });
            }
            Some(Attributes::WorkflowExecutionFailedEventAttributes(a)) => {
                if let Some(next) = follow(&a.new_execution_run_id) {
                    run_id = next;
                    continue;
                }
                let mut failure = a.failure;
                if let Some(f) = failure.as_mut() {
                    dc.decode_message(f, &trellis_converter::VisitOptions::default())
                        .await
                        .map_err(codec)?;
                    trellis_converter::decode_common_attributes(f);
                }
                return Err(fail(
                    WorkflowExecutionStatus::Failed,
                    failure,
                    None,
                    &run_id,
                ));
            }
            Some(Attributes::WorkflowExecutionTimedOutEventAttributes(a)) => {
                if let Some(next) = follow(&a.new_execution_run_id) {
                    run_id = next;
                    continue;
                }
                return Err(fail(WorkflowExecutionStatus::TimedOut, None, None, &run_id));
            }
            Some(Attributes::WorkflowExecutionContinuedAsNewEventAttributes(a)) => {
                run_id = a.new_execution_run_id;
            }
            Some(Attributes::WorkflowExecutionCanceledEventAttributes(_)) => {
                return Err(fail(WorkflowExecutionStatus::Canceled, None, None, &run_id));
            }
            Some(Attributes::WorkflowExecutionTerminatedEventAttributes(a)) => {
                return Err(fail(
                    WorkflowExecutionStatus::Terminated,
                    None,
                    Some(a.reason),
                    &run_id,
                ));
            }
            other => {
                return Err(ClientError::Rpc {
                    operation: OP,
                    status: tonic::Status::internal(format!(
                        "the server returned a non-closing event as the close event: {:?}",
                        other.map(|_| event.event_type)
                    )),
                });
            }
        }
    }
}
