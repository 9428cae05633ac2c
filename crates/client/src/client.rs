use std::collections::HashMap;
use std::time::Duration;

use std::sync::Arc;
use temporalio_client::Connection;
use trellis_converter::{DataConverter, IntoPayloads};

use tower::ServiceExt;
use trellis_core_proto::api::common::v1::{Payload, RetryPolicy};
use trellis_core_proto::api::enums::v1::{WorkflowIdConflictPolicy, WorkflowIdReusePolicy};
use trellis_interceptor::grpc::GrpcService;

use crate::activity::AsyncActivityHandle;
use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::handle::{UpdateHandle, WorkflowHandle};
use crate::interceptors::{
    AsyncActivityId, ClientCall, ClientCallResponse, ClientCallService, ListCall,
    SignalWithStartCall, StartWorkflowCall, UpdateCall, UpdateStage, UpdateWithStartCall,
    base_call_service,
};
use crate::nexus::NexusStartOptions;
use crate::plugin::{ConnectNext, PropagatedPlugin, named};

/// A connection to a Temporal namespace. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    calls: ClientCallService,
}

/// What every clone of a client shares.
pub(crate) struct Shared {
    pub(crate) connection: Connection,
    pub(crate) grpc: GrpcService,
    pub(crate) config: ClientConfig,
    pub(crate) propagated: Vec<PropagatedPlugin>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.shared.config.connect.address)
            .field("namespace", &self.shared.config.namespace)
            .field("identity", &self.shared.config.identity)
            .finish_non_exhaustive()
    }
}

/// How to start a workflow: its id and task queue are required, the rest is optional.
#[derive(Clone, Debug, Default)]
pub struct WorkflowOptions {
    /// The workflow id (unique among open workflows of the namespace).
    pub id: String,
    /// The task queue its workers poll.
    pub task_queue: String,
    /// Limit on the whole execution, across retries and continue-as-new.
    pub execution_timeout: Option<Duration>,
    /// Limit on one run.
    pub run_timeout: Option<Duration>,
    /// Limit on one workflow task.
    pub task_timeout: Option<Duration>,
    /// Whether a closed workflow's id may be reused.
    pub id_reuse_policy: WorkflowIdReusePolicy,
    /// What to do when a workflow with the id is already running.
    pub id_conflict_policy: WorkflowIdConflictPolicy,
    /// Retries of the whole workflow (none by default).
    pub retry_policy: Option<RetryPolicy>,
    /// Memo fields, already encoded.
    pub memo: HashMap<String, Payload>,
    /// Headers, already encoded (interceptors usually set these).
    pub headers: HashMap<String, Payload>,
    /// Nexus plumbing, set by Nexus operation handlers when the workflow backs an
    /// asynchronous Nexus operation (`trellis_worker`'s workflow-run operations do this):
    /// the request id, completion callbacks and links attached to the start. Leave it `None`
    /// otherwise; signal-with-start ignores it.
    pub nexus: Option<NexusStartOptions>,
}

impl WorkflowOptions {
    /// Options with a workflow id and task queue.
    pub fn new(id: impl Into<String>, task_queue: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            task_queue: task_queue.into(),
            ..Self::default()
        }
    }

    /// Sets the execution timeout.
    pub fn execution_timeout(mut self, timeout: Duration) -> Self {
        self.execution_timeout = Some(timeout);
        self
    }

    /// Sets the id reuse policy.
    pub fn id_reuse_policy(mut self, policy: WorkflowIdReusePolicy) -> Self {
        self.id_reuse_policy = policy;
        self
    }
}

impl Client {
    /// Connects: runs the plugins' `configure_client` hooks (in list order), builds the gRPC
    /// stack and opens the connection inside their `connect_service_client` chain (the first
    /// plugin outermost), and checks the server answers.
    pub async fn connect(config: ClientConfig) -> Result<Self, ClientError> {
        // The list the user gave: plugins added by hooks neither run nor propagate.
        let plugins = config.plugins.clone();
        let propagated = plugins
            .iter()
            .filter_map(|p| {
                Arc::clone(p)
                    .worker_side()
                    .map(|worker_side| PropagatedPlugin {
                        name: p.name().to_owned(),
                        instance_key: p.instance_key(),
                        worker_side,
                    })
            })
            .collect();
        let mut config = config;
        for plugin in &plugins {
            config = plugin.configure_client(config).map_err(|e| {
                ClientError::from_boxed(named(plugin.name(), "configure_client", e))
            })?;
        }
        let service = ConnectNext::new(&plugins, &config.identity)
            .run(config.connect.clone())
            .await
            .map_err(ClientError::from_boxed)?;
        config.connect = service.connect;
        let layers = config.call_layers.clone();
        let shared = Arc::new(Shared {
            connection: service.connection,
            grpc: service.grpc,
            config,
            propagated,
        });
        let mut calls = base_call_service(shared.clone());
        for layer in layers.iter().rev() {
            calls = tower::Layer::layer(layer, calls);
        }
        Ok(Self { shared, calls })
    }

    /// The plugins that travel on to workers built from this client, in order.
    pub fn propagated_plugins(&self) -> &[PropagatedPlugin] {
        &self.shared.propagated
    }

    /// Runs one call through the client-call stack.
    pub async fn call(&self, call: ClientCall) -> Result<ClientCallResponse, ClientError> {
        self.calls
            .clone()
            .oneshot(call)
            .await
            .map_err(ClientError::from_boxed)
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.shared.config.namespace
    }

    /// The identity reported to the server.
    pub fn identity(&self) -> &str {
        &self.shared.config.identity
    }

    /// The data converter.
    pub fn data_converter(&self) -> &DataConverter {
        &self.shared.config.data_converter
    }

    /// The configuration the client was built from.
    pub fn config(&self) -> &ClientConfig {
        &self.shared.config
    }

    /// The gRPC service stack every RPC passes through.
    pub fn grpc_service(&self) -> &GrpcService {
        &self.shared.grpc
    }

    /// The engine connection (routed through [`Client::grpc_service`]); workers pass it to core.
    pub fn core_connection(&self) -> &Connection {
        &self.shared.connection
    }

    /// Starts a workflow with one input value.
    pub async fn start_workflow<I: serde::Serialize + ?Sized>(
        &self,
        workflow_type: &str,
        input: &I,
        options: WorkflowOptions,
    ) -> Result<WorkflowHandle, ClientError> {
        let input = vec![self.data_converter().encode(input)?];
        self.start_workflow_raw(workflow_type, input, options).await
    }

    /// Starts a workflow with one input value and waits for its result (following its
    /// continue-as-new chain): [`Client::start_workflow`] then [`WorkflowHandle::result`].
    pub async fn execute_workflow<I, O>(
        &self,
        workflow_type: &str,
        input: &I,
        options: WorkflowOptions,
    ) -> Result<O, ClientError>
    where
        I: serde::Serialize + ?Sized,
        O: serde::de::DeserializeOwned + 'static,
    {
        self.start_workflow(workflow_type, input, options)
            .await?
            .result()
            .await
    }

    /// Starts a workflow with a list of arguments (a tuple, or `()` for none).
    pub async fn start_workflow_with_args(
        &self,
        workflow_type: &str,
        args: impl IntoPayloads,
        options: WorkflowOptions,
    ) -> Result<WorkflowHandle, ClientError> {
        let input = self.data_converter().encode_args(args)?;
        self.start_workflow_raw(workflow_type, input, options).await
    }

    async fn start_workflow_raw(
        &self,
        workflow_type: &str,
        args: Vec<Payload>,
        options: WorkflowOptions,
    ) -> Result<WorkflowHandle, ClientError> {
        let id = options.id.clone();
        let call = ClientCall::StartWorkflow(StartWorkflowCall {
            workflow_type: workflow_type.to_owned(),
            args,
            options,
        });
        match self.call(call).await? {
            ClientCallResponse::Started { run_id, link } => {
                Ok(WorkflowHandle::new(self.clone(), id, Some(run_id)).with_start_link(link))
            }
            other => Err(ClientError::unexpected("start_workflow", &other)),
        }
    }

    /// Starts a workflow if none with the options' id is running, and sends it a signal, in
    /// one RPC ([`ClientCall::SignalWithStart`]). Arguments and signal arguments are lists (a
    /// tuple, or `()` for none). The handle targets the run that got the signal: the new one,
    /// or the one that was already running.
    ///
    /// ```no_run
    /// # async fn demo(client: trellis_client::Client) -> Result<(), trellis_client::ClientError> {
    /// use trellis_client::WorkflowOptions;
    ///
    /// let cart = client
    ///     .signal_with_start_workflow(
    ///         "ShoppingCart",
    ///         ("alice",),
    ///         "add_item",
    ///         ("book",),
    ///         WorkflowOptions::new("cart-alice", "shop"),
    ///     )
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn signal_with_start_workflow(
        &self,
        workflow_type: &str,
        args: impl IntoPayloads,
        signal_name: &str,
        signal_args: impl IntoPayloads,
        options: WorkflowOptions,
    ) -> Result<WorkflowHandle, ClientError> {
        let dc = self.data_converter();
        let id = options.id.clone();
        let call = ClientCall::SignalWithStart(SignalWithStartCall {
            workflow_type: workflow_type.to_owned(),
            args: dc.encode_args(args)?,
            options,
            signal_name: signal_name.to_owned(),
            signal_args: dc.encode_args(signal_args)?,
        });
        match self.call(call).await? {
            ClientCallResponse::Started { run_id, .. } => {
                Ok(WorkflowHandle::new(self.clone(), id, Some(run_id)))
            }
            other => Err(ClientError::unexpected(
                "signal_with_start_workflow",
                &other,
            )),
        }
    }

    /// Starts a workflow, or uses the one of that id already running, and sends it the update
    /// `update_name` with `update_args`, in one RPC ([`ClientCall::UpdateWithStart`]); waits
    /// until the workflow accepted the update. `options.id_conflict_policy` says what a
    /// running workflow of that id means: `UseExisting` sends the update to it; `Fail` (and
    /// the server's default) fails the call with an `AlreadyExists` [`ClientError::Rpc`].
    ///
    /// Returns the handle of the run that took the update and the update's handle
    /// ([`UpdateHandle::result`] waits for the handler's result). A validator's rejection is
    /// [`ClientError::Update`]; the workflow was started all the same.
    ///
    /// ```no_run
    /// # async fn demo(client: trellis_client::Client) -> Result<(), trellis_client::ClientError> {
    /// use trellis_client::{WorkflowIdConflictPolicy, WorkflowOptions};
    ///
    /// let options = WorkflowOptions {
    ///     id_conflict_policy: WorkflowIdConflictPolicy::UseExisting,
    ///     ..WorkflowOptions::new("cart-alice", "shop")
    /// };
    /// let (cart, added) = client
    ///     .start_update_with_start_workflow("ShoppingCart", ("alice",), options, "add_item", ("book",))
    ///     .await?;
    /// let items: u32 = added.result().await?;
    /// # Ok(()) }
    /// ```
    pub async fn start_update_with_start_workflow(
        &self,
        workflow_type: &str,
        args: impl IntoPayloads,
        options: WorkflowOptions,
        update_name: &str,
        update_args: impl IntoPayloads,
    ) -> Result<(WorkflowHandle, UpdateHandle), ClientError> {
        self.update_with_start(
            workflow_type,
            args,
            options,
            update_name,
            update_args,
            UpdateStage::Accepted,
        )
        .await
    }

    /// [`start_update_with_start_workflow`](Self::start_update_with_start_workflow), waiting
    /// for the update's result: the workflow's handle and the result.
    pub async fn execute_update_with_start_workflow<O>(
        &self,
        workflow_type: &str,
        args: impl IntoPayloads,
        options: WorkflowOptions,
        update_name: &str,
        update_args: impl IntoPayloads,
    ) -> Result<(WorkflowHandle, O), ClientError>
    where
        O: serde::de::DeserializeOwned + 'static,
    {
        let (workflow, update) = self
            .update_with_start(
                workflow_type,
                args,
                options,
                update_name,
                update_args,
                UpdateStage::Completed,
            )
            .await?;
        Ok((workflow, update.result().await?))
    }

    async fn update_with_start(
        &self,
        workflow_type: &str,
        args: impl IntoPayloads,
        options: WorkflowOptions,
        update_name: &str,
        update_args: impl IntoPayloads,
        wait_for: UpdateStage,
    ) -> Result<(WorkflowHandle, UpdateHandle), ClientError> {
        let dc = self.data_converter();
        let id = options.id.clone();
        let update_id = crate::handle::new_update_id();
        let call = ClientCall::UpdateWithStart(Box::new(UpdateWithStartCall {
            start: StartWorkflowCall {
                workflow_type: workflow_type.to_owned(),
                args: dc.encode_args(args)?,
                options,
            },
            update: UpdateCall {
                workflow_id: id.clone(),
                run_id: None,
                update_id: update_id.clone(),
                name: update_name.to_owned(),
                args: dc.encode_args(update_args)?,
                headers: Default::default(),
                wait_for,
            },
        }));
        match self.call(call).await? {
            ClientCallResponse::UpdateWithStart {
                run_id, outcome, ..
            } => {
                let update = UpdateHandle::sent(
                    self.clone(),
                    id.clone(),
                    Some(run_id.clone()),
                    update_id,
                    update_name,
                    outcome,
                )?;
                Ok((WorkflowHandle::new(self.clone(), id, Some(run_id)), update))
            }
            other => Err(ClientError::unexpected(
                "update_with_start_workflow",
                &other,
            )),
        }
    }

    /// A handle to an activity that completes asynchronously (its function returned
    /// `ActivityError::WillCompleteAsync`): heartbeat, complete, fail or report its
    /// cancellation from anywhere, by task token or by ids.
    ///
    /// ```no_run
    /// # async fn demo(client: trellis_client::Client, token: Vec<u8>) -> Result<(), trellis_client::ClientError> {
    /// use trellis_client::interceptors::AsyncActivityId;
    ///
    /// let activity = client.async_activity_handle(AsyncActivityId::task_token(token));
    /// activity.heartbeat(("half way",)).await?;
    /// activity.complete(&"done").await?;
    /// # Ok(()) }
    /// ```
    pub fn async_activity_handle(&self, activity: AsyncActivityId) -> AsyncActivityHandle {
        AsyncActivityHandle::new(self.clone(), activity)
    }

    /// Every workflow matching a visibility query (all pages), e.g.
    /// `WorkflowType = 'Greet'`; an empty query lists every workflow of the namespace.
    pub async fn list_workflows(
        &self,
        query: &str,
    ) -> Result<Vec<trellis_core_proto::api::workflow::v1::WorkflowExecutionInfo>, ClientError>
    {
        match self
            .call(ClientCall::List(ListCall {
                query: query.to_owned(),
            }))
            .await?
        {
            ClientCallResponse::Workflows(w) => Ok(w),
            other => Err(ClientError::unexpected("list_workflows", &other)),
        }
    }

    /// How many workflows match a visibility query.
    pub async fn count_workflows(&self, query: &str) -> Result<i64, ClientError> {
        match self
            .call(ClientCall::Count(ListCall {
                query: query.to_owned(),
            }))
            .await?
        {
            ClientCallResponse::Count(n) => Ok(n),
            other => Err(ClientError::unexpected("count_workflows", &other)),
        }
    }

    /// A handle to an existing workflow: the latest run when `run_id` is `None`.
    pub fn workflow_handle(
        &self,
        workflow_id: impl Into<String>,
        run_id: Option<String>,
    ) -> WorkflowHandle {
        WorkflowHandle::new(self.clone(), workflow_id.into(), run_id)
    }
}
