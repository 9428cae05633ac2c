use std::time::SystemTime;

use serde::de::DeserializeOwned;
use trellis_converter::IntoPayloads;
use trellis_core_proto::Payload;
use trellis_core_proto::api::common::v1::Link;
use trellis_core_proto::api::enums::v1::WorkflowExecutionStatus;
use trellis_core_proto::api::history::v1::History;
use trellis_core_proto::api::workflowservice::v1::DescribeWorkflowExecutionResponse;
use trellis_core_proto::time::from_proto_timestamp;

use crate::client::Client;
use crate::error::ClientError;
use crate::interceptors::{
    ClientCall, ClientCallResponse, QueryCall, SignalCall, TargetCall, UpdateCall, UpdateOutcome,
    UpdateRef, UpdateStage,
};

/// A handle to one workflow (a specific run, or the latest run when no run id is set).
#[derive(Clone, Debug)]
pub struct WorkflowHandle {
    client: Client,
    workflow_id: String,
    run_id: Option<String>,
    start_link: Option<Link>,
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
            start_link: None,
        }
    }

    pub(crate) fn with_start_link(mut self, link: Option<Link>) -> Self {
        self.start_link = link;
        self
    }

    /// The server's link to the event the start produced (the started event, or, when a
    /// start joined a running workflow, the event that recorded the join), for a handle
    /// returned by a start on servers that send one. Nexus workflow-run operations return it
    /// to their caller.
    pub fn start_link(&self) -> Option<&Link> {
        self.start_link.as_ref()
    }

    /// The workflow id.
    pub fn id(&self) -> &str {
        &self.workflow_id
    }

    /// The run id this handle targets, if any.
    pub fn run_id(&self) -> Option<&str> {
        self.run_id.as_deref()
    }

    /// Waits for the workflow to close and decodes its result. Follows continue-as-new, retries
    /// and cron runs to the last run, as the other SDKs do. A workflow that failed, was
    /// cancelled, terminated or timed out gives [`ClientError::Workflow`]. The wait is one
    /// [`ClientCall::GetResult`] through the client-call stack (so a timeout layer there bounds
    /// it too).
    pub async fn result<T: DeserializeOwned + 'static>(&self) -> Result<T, ClientError> {
        let call = ClientCall::GetResult(self.target(""));
        match self.client.call(call).await? {
            ClientCallResponse::WorkflowResult { result, .. } => {
                Ok(self.client.data_converter().decode_args(&result)?)
            }
            other => Err(ClientError::unexpected("get_result", &other)),
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

    async fn signal_raw(&self, name: &str, args: Vec<Payload>) -> Result<(), ClientError> {
        self.client
            .call(ClientCall::Signal(SignalCall {
                workflow_id: self.workflow_id.clone(),
                run_id: self.run_id.clone(),
                name: name.to_owned(),
                args,
                headers: Default::default(),
            }))
            .await?;
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
        let call = ClientCall::Query(QueryCall {
            workflow_id: self.workflow_id.clone(),
            run_id: self.run_id.clone(),
            name: name.to_owned(),
            args,
            headers: Default::default(),
        });
        match self.client.call(call).await? {
            ClientCallResponse::QueryAnswer(payloads) => {
                Ok(self.client.data_converter().decode_args(&payloads)?)
            }
            other => Err(ClientError::unexpected("query", &other)),
        }
    }

    /// Sends the update `name` with a list of arguments (a tuple, or `()` for none), waits
    /// for the handler to finish and decodes its result. A rejected (validator, unknown name)
    /// or failed update gives [`ClientError::Update`].
    pub async fn update<T: DeserializeOwned + 'static>(
        &self,
        name: &str,
        args: impl IntoPayloads,
    ) -> Result<T, ClientError> {
        self.start_update_with(name, new_update_id(), args, UpdateStage::Completed)
            .await?
            .result()
            .await
    }

    /// Sends the update `name` with an update id of your choosing and waits until the workflow
    /// accepted it. The id makes the update idempotent: sending the same id again (after a
    /// timeout, or from another process) does not run the handler again, and the handle gives
    /// the one result. Look it up later with [`WorkflowHandle::update_handle`].
    pub async fn start_update_with_id(
        &self,
        name: &str,
        update_id: &str,
        args: impl IntoPayloads,
    ) -> Result<UpdateHandle, ClientError> {
        self.start_update_with(name, update_id.to_owned(), args, UpdateStage::Accepted)
            .await
    }

    /// A handle to an update sent earlier to this workflow (by this client or another), by its
    /// id: [`UpdateHandle::result`] waits for its outcome. An id the workflow never received
    /// gives a `NotFound` [`ClientError::Rpc`] from `result`.
    pub fn update_handle(&self, update_id: impl Into<String>) -> UpdateHandle {
        let update_id = update_id.into();
        UpdateHandle {
            client: self.client.clone(),
            workflow_id: self.workflow_id.clone(),
            run_id: self.run_id.clone(),
            name: format!("update {update_id:?}"),
            update_id,
            outcome: None,
        }
    }

    /// Sends the update `name` and waits only until the workflow accepted it (its validator
    /// passed); [`UpdateHandle::result`] then waits for the handler's result.
    pub async fn start_update(
        &self,
        name: &str,
        args: impl IntoPayloads,
    ) -> Result<UpdateHandle, ClientError> {
        self.start_update_with(name, new_update_id(), args, UpdateStage::Accepted)
            .await
    }

    async fn start_update_with(
        &self,
        name: &str,
        update_id: String,
        args: impl IntoPayloads,
        wait_for: UpdateStage,
    ) -> Result<UpdateHandle, ClientError> {
        let args = self.client.data_converter().encode_args(args)?;
        let call = ClientCall::Update(Box::new(UpdateCall {
            workflow_id: self.workflow_id.clone(),
            run_id: self.run_id.clone(),
            update_id: update_id.clone(),
            name: name.to_owned(),
            args,
            headers: Default::default(),
            wait_for,
        }));
        match self.client.call(call).await? {
            ClientCallResponse::Update { outcome, run_id } => UpdateHandle::sent(
                self.client.clone(),
                self.workflow_id.clone(),
                run_id.or_else(|| self.run_id.clone()),
                update_id,
                name,
                outcome,
            ),
            other => Err(ClientError::unexpected("update", &other)),
        }
    }

    fn target(&self, reason: &str) -> TargetCall {
        TargetCall {
            workflow_id: self.workflow_id.clone(),
            run_id: self.run_id.clone(),
            reason: reason.to_owned(),
        }
    }

    /// Asks the workflow to cancel; the workflow decides how to react.
    pub async fn cancel(&self, reason: &str) -> Result<(), ClientError> {
        self.client
            .call(ClientCall::Cancel(self.target(reason)))
            .await?;
        Ok(())
    }

    /// Ends the workflow at once, without running any more of its code.
    pub async fn terminate(&self, reason: &str) -> Result<(), ClientError> {
        self.client
            .call(ClientCall::Terminate(self.target(reason)))
            .await?;
        Ok(())
    }

    /// Describes the workflow run.
    pub async fn describe(&self) -> Result<WorkflowDescription, ClientError> {
        let raw = match self
            .client
            .call(ClientCall::Describe(self.target("")))
            .await?
        {
            ClientCallResponse::Described(raw) => *raw,
            other => return Err(ClientError::unexpected("describe", &other)),
        };
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
        match self
            .client
            .call(ClientCall::FetchHistory(self.target("")))
            .await?
        {
            ClientCallResponse::History(h) => Ok(h),
            other => Err(ClientError::unexpected("fetch_history", &other)),
        }
    }
}

pub(crate) fn new_update_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An update the workflow accepted. See [`WorkflowHandle::start_update`].
#[derive(Clone, Debug)]
pub struct UpdateHandle {
    client: Client,
    workflow_id: String,
    run_id: Option<String>,
    update_id: String,
    name: String,
    outcome: Option<UpdateOutcome>,
}

impl UpdateHandle {
    /// The handle of an update that was sent, from where it stood: a rejected or failed update
    /// is its error.
    pub(crate) fn sent(
        client: Client,
        workflow_id: String,
        run_id: Option<String>,
        update_id: String,
        name: &str,
        outcome: UpdateOutcome,
    ) -> Result<Self, ClientError> {
        let outcome = match outcome {
            UpdateOutcome::Failed(failure) => {
                return Err(ClientError::Update {
                    update: name.to_owned(),
                    failure,
                });
            }
            UpdateOutcome::Accepted => None,
            done => Some(done),
        };
        Ok(Self {
            client,
            workflow_id,
            run_id,
            update_id,
            name: name.to_owned(),
            outcome,
        })
    }

    /// The update id.
    pub fn id(&self) -> &str {
        &self.update_id
    }

    /// Waits for the handler to finish and decodes its result; a failed handler gives
    /// [`ClientError::Update`].
    pub async fn result<T: DeserializeOwned + 'static>(&self) -> Result<T, ClientError> {
        let outcome = match &self.outcome {
            Some(o) => o.clone(),
            None => {
                let call = ClientCall::PollUpdate(UpdateRef {
                    workflow_id: self.workflow_id.clone(),
                    run_id: self.run_id.clone(),
                    update_id: self.update_id.clone(),
                });
                match self.client.call(call).await? {
                    ClientCallResponse::Update { outcome, .. } => outcome,
                    other => return Err(ClientError::unexpected("poll_update", &other)),
                }
            }
        };
        match outcome {
            UpdateOutcome::Completed(p) => {
                let payloads: Vec<Payload> = p.into_iter().collect();
                Ok(self.client.data_converter().decode_args(&payloads)?)
            }
            UpdateOutcome::Failed(failure) => Err(ClientError::Update {
                update: self.name.clone(),
                failure,
            }),
            UpdateOutcome::Accepted => Err(ClientError::unexpected(
                "poll_update",
                &ClientCallResponse::Update {
                    outcome: UpdateOutcome::Accepted,
                    run_id: None,
                },
            )),
        }
    }
}
