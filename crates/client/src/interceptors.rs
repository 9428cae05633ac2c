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
use trellis_core_proto::api::history::v1::{History, history_event::Attributes};
use trellis_core_proto::api::query::v1::WorkflowQuery;
use trellis_core_proto::api::taskqueue::v1::TaskQueue;
use trellis_core_proto::api::update::v1::{
    self as update, UpdateRef as UpdateRefProto, WaitPolicy,
};
use trellis_core_proto::api::workflow::v1::WorkflowExecutionInfo;
use trellis_core_proto::api::workflowservice::v1::{
    CountWorkflowExecutionsRequest, DescribeWorkflowExecutionRequest,
    DescribeWorkflowExecutionResponse, GetWorkflowExecutionHistoryRequest,
    ListWorkflowExecutionsRequest, PollWorkflowExecutionUpdateRequest, QueryWorkflowRequest,
    RecordActivityTaskHeartbeatByIdRequest, RecordActivityTaskHeartbeatRequest,
    RequestCancelWorkflowExecutionRequest, RespondActivityTaskCanceledByIdRequest,
    RespondActivityTaskCanceledRequest, RespondActivityTaskCompletedByIdRequest,
    RespondActivityTaskCompletedRequest, RespondActivityTaskFailedByIdRequest,
    RespondActivityTaskFailedRequest, SignalWithStartWorkflowExecutionRequest,
    SignalWorkflowExecutionRequest, StartWorkflowExecutionRequest,
    TerminateWorkflowExecutionRequest, UpdateWorkflowExecutionRequest,
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
        }
    }

    /// The headers of calls whose RPC carries headers (start, signal, query,
    /// signal-with-start); `None` for the others.
    pub fn headers_mut(&mut self) -> Option<&mut Headers> {
        match self {
            Self::StartWorkflow(c) => Some(&mut c.options.headers),
            Self::Signal(c) => Some(&mut c.headers),
            Self::Query(c) => Some(&mut c.headers),
            Self::SignalWithStart(c) => Some(&mut c.options.headers),
            Self::Update(c) => Some(&mut c.headers),
            _ => None,
        }
    }

    /// The arguments of calls that carry arguments (start, signal, query; the start arguments
    /// of signal-with-start, whose signal arguments are
    /// [`SignalWithStartCall::signal_args`]).
    pub fn args_mut(&mut self) -> Option<&mut Vec<Payload>> {
        match self {
            Self::StartWorkflow(c) => Some(&mut c.args),
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
            Self::StartWorkflow(_) | Self::SignalWithStart(_) | Self::List(_) | Self::Count(_) => {
                None
            }
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
            Self::HeartbeatActivity(c)
            | Self::CompleteActivity(c)
            | Self::ReportActivityCancellation(c) => c.activity.workflow_id(),
            Self::FailActivity(c) => c.activity.workflow_id(),
            Self::Update(c) => &c.workflow_id,
            Self::PollUpdate(c) => &c.workflow_id,
            Self::List(_) | Self::Count(_) => "",
        }
    }
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
        ClientCall::StartWorkflow(mut c) => {
            c.args = dc.encode_payloads(c.args).await.map_err(codec)?;
            let mut o = c.options;
            if !o.memo.is_empty() && !dc.codecs().is_empty() {
                let (keys, values): (Vec<_>, Vec<_>) = o.memo.into_iter().unzip();
                let values = dc.encode_payloads(values).await.map_err(codec)?;
                o.memo = keys.into_iter().zip(values).collect();
            }
            let nexus = o.nexus.unwrap_or_default();
            let request = StartWorkflowExecutionRequest {
                namespace: ns,
                workflow_id: o.id,
                workflow_type: Some(WorkflowType {
                    name: c.workflow_type,
                }),
                task_queue: Some(TaskQueue {
                    name: o.task_queue,
                    kind: TaskQueueKind::Normal as i32,
                    normal_name: String::new(),
                }),
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
            };
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
            let stage = match c.wait_for {
                UpdateStage::Accepted => UpdateWorkflowExecutionLifecycleStage::Accepted,
                UpdateStage::Completed => UpdateWorkflowExecutionLifecycleStage::Completed,
            };
            let request = UpdateWorkflowExecutionRequest {
                namespace: ns.clone(),
                workflow_execution: execution(&c.workflow_id, &c.run_id),
                wait_policy: Some(WaitPolicy {
                    lifecycle_stage: stage as i32,
                }),
                request: Some(update::Request {
                    meta: Some(update::Meta {
                        update_id: c.update_id.clone(),
                        identity: identity.clone(),
                    }),
                    input: Some(update::Input {
                        header: header(c.headers),
                        name: c.name,
                        args: Some(Payloads { payloads: c.args }),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            // The server answers when the stage is reached or its long-poll times out; ask
            // again until the stage is reached.
            let response = loop {
                let r = svc
                    .update_workflow_execution(tonic::Request::new(request.clone()))
                    .await
                    .map_err(ClientError::rpc(op))?
                    .into_inner();
                if r.outcome.is_some() || r.stage >= stage as i32 {
                    break r;
                }
            };
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
            if !o.memo.is_empty() && !dc.codecs().is_empty() {
                let (keys, values): (Vec<_>, Vec<_>) = o.memo.into_iter().unzip();
                let values = dc.encode_payloads(values).await.map_err(codec)?;
                o.memo = keys.into_iter().zip(values).collect();
            }
            let request = SignalWithStartWorkflowExecutionRequest {
                namespace: ns,
                workflow_id: o.id,
                workflow_type: Some(WorkflowType {
                    name: c.workflow_type,
                }),
                task_queue: Some(TaskQueue {
                    name: o.task_queue,
                    kind: TaskQueueKind::Normal as i32,
                    normal_name: String::new(),
                }),
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
