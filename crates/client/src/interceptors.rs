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
use trellis_core_proto::Payload;
use trellis_core_proto::api::common::v1::{
    Header, Memo, Payloads, WorkflowExecution, WorkflowType,
};
use trellis_core_proto::api::enums::v1::TaskQueueKind;
use trellis_core_proto::api::enums::v1::UpdateWorkflowExecutionLifecycleStage;
use trellis_core_proto::api::history::v1::History;
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
    RequestCancelWorkflowExecutionRequest, SignalWorkflowExecutionRequest,
    StartWorkflowExecutionRequest, TerminateWorkflowExecutionRequest,
    UpdateWorkflowExecutionRequest,
};
use trellis_core_proto::time::to_proto_duration;
use trellis_interceptor::BoxError;

use crate::client::{Shared, WorkflowOptions};
use crate::error::ClientError;

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
            Self::Update(_) => "update",
            Self::PollUpdate(_) => "poll_update",
        }
    }

    /// The headers of calls that carry headers (start, signal, query).
    pub fn headers_mut(&mut self) -> Option<&mut Headers> {
        match self {
            Self::StartWorkflow(c) => Some(&mut c.options.headers),
            Self::Signal(c) => Some(&mut c.headers),
            Self::Query(c) => Some(&mut c.headers),
            Self::Update(c) => Some(&mut c.headers),
            _ => None,
        }
    }

    /// The arguments of calls that carry arguments (start, signal, query).
    pub fn args_mut(&mut self) -> Option<&mut Vec<Payload>> {
        match self {
            Self::StartWorkflow(c) => Some(&mut c.args),
            Self::Signal(c) => Some(&mut c.args),
            Self::Query(c) => Some(&mut c.args),
            Self::Update(c) => Some(&mut c.args),
            _ => None,
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
            Self::Update(c) => &c.workflow_id,
            Self::PollUpdate(c) => &c.workflow_id,
            Self::List(_) | Self::Count(_) => "",
        }
    }
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
        /// The new run's id.
        run_id: String,
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
                request_id: uuid::Uuid::new_v4().to_string(),
                workflow_id_reuse_policy: o.id_reuse_policy as i32,
                workflow_id_conflict_policy: o.id_conflict_policy as i32,
                retry_policy: o.retry_policy,
                memo: (!o.memo.is_empty()).then_some(Memo { fields: o.memo }),
                header: header(o.headers),
                ..Default::default()
            };
            let r = svc
                .start_workflow_execution(tonic::Request::new(request))
                .await
                .map_err(rpc)?
                .into_inner();
            ClientCallResponse::Started { run_id: r.run_id }
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
    })
}
