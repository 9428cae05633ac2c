use std::time::SystemTime;

use serde::de::DeserializeOwned;
use trellis_converter::IntoPayloads;
use trellis_core_proto::Payload;
use trellis_core_proto::api::common::v1::{Payloads, WorkflowExecution};
use trellis_core_proto::api::enums::v1::{
    HistoryEventFilterType, QueryRejectCondition, WorkflowExecutionStatus,
};
use trellis_core_proto::api::history::v1::{History, history_event::Attributes};
use trellis_core_proto::api::query::v1::WorkflowQuery;
use trellis_core_proto::api::workflowservice::v1::{
    DescribeWorkflowExecutionRequest, DescribeWorkflowExecutionResponse,
    GetWorkflowExecutionHistoryRequest, QueryWorkflowRequest,
    RequestCancelWorkflowExecutionRequest, SignalWorkflowExecutionRequest,
    TerminateWorkflowExecutionRequest,
};
use trellis_core_proto::time::from_proto_timestamp;

use crate::client::Client;
use crate::error::{ClientError, WorkflowFailure};

/// A handle to one workflow (a specific run, or the latest run when no run id is set).
#[derive(Clone, Debug)]
pub struct WorkflowHandle {
    client: Client,
    workflow_id: String,
    run_id: Option<String>,
}

/// What the server says about a workflow.
#[derive(Clone, Debug)]
pub struct WorkflowDescription {
    /// The workflow type name.
    pub workflow_type: String,
    /// The run described.
    pub run_id: String,
    /// Running, completed, failed, …
    pub status: WorkflowExecutionStatus,
    /// The task queue.
    pub task_queue: String,
    /// When the run started.
    pub start_time: Option<SystemTime>,
    /// When the run closed, if it has.
    pub close_time: Option<SystemTime>,
    /// Events in the run's history so far.
    pub history_length: i64,
    /// The whole response, for fields not lifted above.
    pub raw: DescribeWorkflowExecutionResponse,
}

impl WorkflowHandle {
    pub(crate) fn new(client: Client, workflow_id: String, run_id: Option<String>) -> Self {
        Self {
            client,
            workflow_id,
            run_id,
        }
    }

    /// The workflow id.
    pub fn id(&self) -> &str {
        &self.workflow_id
    }

    /// The run id this handle targets, if any.
    pub fn run_id(&self) -> Option<&str> {
        self.run_id.as_deref()
    }

    fn execution(&self) -> WorkflowExecution {
        WorkflowExecution {
            workflow_id: self.workflow_id.clone(),
            run_id: self.run_id.clone().unwrap_or_default(),
        }
    }

    /// Waits for the workflow to close and decodes its result. Follows continue-as-new, retries
    /// and cron runs to the last run, as the other SDKs do. A workflow that failed, was
    /// cancelled, terminated or timed out gives [`ClientError::Workflow`].
    pub async fn result<T: DeserializeOwned + 'static>(&self) -> Result<T, ClientError> {
        let mut run_id = self.run_id.clone().unwrap_or_default();
        let mut page_token = Vec::new();
        loop {
            let request = GetWorkflowExecutionHistoryRequest {
                namespace: self.client.namespace().to_owned(),
                execution: Some(WorkflowExecution {
                    workflow_id: self.workflow_id.clone(),
                    run_id: run_id.clone(),
                }),
                wait_new_event: true,
                history_event_filter_type: HistoryEventFilterType::CloseEvent as i32,
                skip_archival: true,
                next_page_token: std::mem::take(&mut page_token),
                ..Default::default()
            };
            let response = self
                .client
                .workflow_service()
                .get_workflow_execution_history(tonic::Request::new(request))
                .await
                .map_err(ClientError::rpc("result"))?
                .into_inner();
            let Some(event) = response.history.and_then(|h| h.events.into_iter().last()) else {
                page_token = response.next_page_token;
                continue;
            };
            let fail = |status, failure, reason: Option<String>, run_id: &str| {
                ClientError::from(WorkflowFailure {
                    workflow_id: self.workflow_id.clone(),
                    run_id: run_id.to_owned(),
                    status,
                    failure,
                    reason,
                })
            };
            let follow = |next: &str| (!next.is_empty()).then(|| next.to_owned());
            match event.attributes {
                Some(Attributes::WorkflowExecutionCompletedEventAttributes(a)) => {
                    if let Some(next) = follow(&a.new_execution_run_id) {
                        run_id = next;
                        continue;
                    }
                    let payloads = a.result.map(|p| p.payloads).unwrap_or_default();
                    return Ok(self.client.data_converter().decode_args(&payloads)?);
                }
                Some(Attributes::WorkflowExecutionFailedEventAttributes(a)) => {
                    if let Some(next) = follow(&a.new_execution_run_id) {
                        run_id = next;
                        continue;
                    }
                    return Err(fail(
                        WorkflowExecutionStatus::Failed,
                        a.failure,
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
                        operation: "result",
                        status: tonic::Status::internal(format!(
                            "the server returned a non-closing event as the close event: {:?}",
                            other.map(|_| event.event_type)
                        )),
                    });
                }
            }
        }
    }

    /// Sends a signal with one input value.
    pub async fn signal<I: serde::Serialize + ?Sized>(
        &self,
        name: &str,
        input: &I,
    ) -> Result<(), ClientError> {
        let input = vec![self.client.data_converter().encode(input)?];
        self.signal_raw(name, input).await
    }

    /// Sends a signal with a list of arguments (a tuple, or `()` for none).
    pub async fn signal_with_args(
        &self,
        name: &str,
        args: impl IntoPayloads,
    ) -> Result<(), ClientError> {
        let input = self.client.data_converter().encode_args(args)?;
        self.signal_raw(name, input).await
    }

    async fn signal_raw(&self, name: &str, input: Vec<Payload>) -> Result<(), ClientError> {
        let request = SignalWorkflowExecutionRequest {
            namespace: self.client.namespace().to_owned(),
            workflow_execution: Some(self.execution()),
            signal_name: name.to_owned(),
            input: Some(Payloads { payloads: input }),
            identity: self.client.identity().to_owned(),
            request_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        };
        self.client
            .workflow_service()
            .signal_workflow_execution(tonic::Request::new(request))
            .await
            .map_err(ClientError::rpc("signal"))?;
        Ok(())
    }

    /// Queries the workflow with a list of arguments (a tuple, or `()` for none) and decodes the
    /// answer.
    pub async fn query<T: DeserializeOwned + 'static>(
        &self,
        name: &str,
        args: impl IntoPayloads,
    ) -> Result<T, ClientError> {
        let args = self.client.data_converter().encode_args(args)?;
        let request = QueryWorkflowRequest {
            namespace: self.client.namespace().to_owned(),
            execution: Some(self.execution()),
            query: Some(WorkflowQuery {
                query_type: name.to_owned(),
                query_args: Some(Payloads { payloads: args }),
                header: None,
            }),
            query_reject_condition: QueryRejectCondition::None as i32,
        };
        let response = self
            .client
            .workflow_service()
            .query_workflow(tonic::Request::new(request))
            .await
            .map_err(|status| match status.code() {
                tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition
                    if !status.message().is_empty() =>
                {
                    ClientError::Query {
                        query: name.to_owned(),
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
                query: name.to_owned(),
                message: format!("rejected: workflow status {:?}", rejected.status()),
            });
        }
        let payloads = response
            .query_result
            .map(|p| p.payloads)
            .unwrap_or_default();
        Ok(self.client.data_converter().decode_args(&payloads)?)
    }

    /// Asks the workflow to cancel; the workflow decides how to react.
    pub async fn cancel(&self, reason: &str) -> Result<(), ClientError> {
        let request = RequestCancelWorkflowExecutionRequest {
            namespace: self.client.namespace().to_owned(),
            workflow_execution: Some(self.execution()),
            identity: self.client.identity().to_owned(),
            request_id: uuid::Uuid::new_v4().to_string(),
            reason: reason.to_owned(),
            ..Default::default()
        };
        self.client
            .workflow_service()
            .request_cancel_workflow_execution(tonic::Request::new(request))
            .await
            .map_err(ClientError::rpc("cancel"))?;
        Ok(())
    }

    /// Ends the workflow at once, without running any more of its code.
    pub async fn terminate(&self, reason: &str) -> Result<(), ClientError> {
        let request = TerminateWorkflowExecutionRequest {
            namespace: self.client.namespace().to_owned(),
            workflow_execution: Some(self.execution()),
            reason: reason.to_owned(),
            identity: self.client.identity().to_owned(),
            ..Default::default()
        };
        self.client
            .workflow_service()
            .terminate_workflow_execution(tonic::Request::new(request))
            .await
            .map_err(ClientError::rpc("terminate"))?;
        Ok(())
    }

    /// Describes the workflow run.
    pub async fn describe(&self) -> Result<WorkflowDescription, ClientError> {
        let request = DescribeWorkflowExecutionRequest {
            namespace: self.client.namespace().to_owned(),
            execution: Some(self.execution()),
        };
        let raw = self
            .client
            .workflow_service()
            .describe_workflow_execution(tonic::Request::new(request))
            .await
            .map_err(ClientError::rpc("describe"))?
            .into_inner();
        let info = raw.workflow_execution_info.clone().unwrap_or_default();
        Ok(WorkflowDescription {
            workflow_type: info.r#type.map(|t| t.name).unwrap_or_default(),
            run_id: info.execution.map(|e| e.run_id).unwrap_or_default(),
            status: WorkflowExecutionStatus::try_from(info.status)
                .unwrap_or(WorkflowExecutionStatus::Unspecified),
            task_queue: info.task_queue,
            start_time: info.start_time.as_ref().map(from_proto_timestamp),
            close_time: info.close_time.as_ref().map(from_proto_timestamp),
            history_length: info.history_length,
            raw,
        })
    }

    /// Fetches the run's whole history as it is now.
    pub async fn fetch_history(&self) -> Result<History, ClientError> {
        let mut events = Vec::new();
        let mut page_token = Vec::new();
        loop {
            let request = GetWorkflowExecutionHistoryRequest {
                namespace: self.client.namespace().to_owned(),
                execution: Some(self.execution()),
                next_page_token: std::mem::take(&mut page_token),
                ..Default::default()
            };
            let response = self
                .client
                .workflow_service()
                .get_workflow_execution_history(tonic::Request::new(request))
                .await
                .map_err(ClientError::rpc("fetch_history"))?
                .into_inner();
            events.extend(response.history.map(|h| h.events).unwrap_or_default());
            if response.next_page_token.is_empty() {
                return Ok(History { events });
            }
            page_token = response.next_page_token;
        }
    }
}
