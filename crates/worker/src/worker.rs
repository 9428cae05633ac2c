//! The worker: configuration, start-up on core, the poll loops, and graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use temporalio_common::worker::WorkerTaskTypes;
use temporalio_sdk_core::{
    CoreRuntime, PollError, RuntimeOptions, Worker as CoreWorker, WorkerConfig as CoreWorkerConfig,
    WorkerVersioningStrategy, init_worker,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use trellis_client::Client;
use trellis_converter::{DataConverter, VisitOptions};
use trellis_core_proto::coresdk::workflow_completion::WorkflowActivationCompletion;

use tower::ServiceExt;
use trellis_core_proto::Payload;
use trellis_interceptor::BoxError;

use crate::activity::{
    ActivityContext, base_activity_service, base_outbound_service, run_activities,
};
use crate::error::{ActivityError, WorkerError, WorkflowError};
use crate::interceptors::{
    ActivityLayer, ActivityOutbound, ActivityOutboundLayer, ActivityOutboundResponse,
    ActivityOutboundService, ActivityRequest, ActivityService, WorkflowInboundService,
    WorkflowLayers, WorkflowOutboundService,
};
use crate::registry::{
    ActivityDefinition, ActivityRegistry, WorkflowDefinition, WorkflowRegistry, build_registries,
};
use crate::workflow::context::WorkflowContext;
use crate::workflow::thread::{ThreadSetup, WorkflowThread};

/// What a worker serves and how hard it works.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The task queue to poll.
    pub task_queue: String,
    /// The build id reported to the server (defaults to `trellis-<version>`).
    pub build_id: Option<String>,
    /// How many workflow runs stay cached between tasks (0 replays every run on every task).
    pub max_cached_workflows: usize,
    /// How many workflow tasks may be in progress at once.
    pub max_concurrent_workflow_tasks: usize,
    /// How many activity attempts may run at once.
    pub max_concurrent_activities: usize,
    /// After shutdown starts, how long running activities may take before they are asked to
    /// cancel. `None` waits for them however long they take.
    pub graceful_shutdown_timeout: Option<Duration>,
    workflows: Vec<(String, WorkflowDefinition)>,
    activities: Vec<(String, ActivityDefinition)>,
    activity_layers: Vec<ActivityLayer>,
    activity_outbound_layers: Vec<ActivityOutboundLayer>,
    workflow_layers: WorkflowLayers,
}

const CONFIG_SOURCE: &str = "the worker's configuration";

impl WorkerConfig {
    /// A worker for `task_queue` with nothing registered yet.
    pub fn new(task_queue: impl Into<String>) -> Self {
        Self {
            task_queue: task_queue.into(),
            build_id: None,
            max_cached_workflows: 1000,
            max_concurrent_workflow_tasks: 100,
            max_concurrent_activities: 100,
            graceful_shutdown_timeout: None,
            workflows: Vec::new(),
            activities: Vec::new(),
            activity_layers: Vec::new(),
            activity_outbound_layers: Vec::new(),
            workflow_layers: WorkflowLayers::default(),
        }
    }

    /// Adds a tower layer around every activity attempt (after those already added, so inside
    /// them: the first added is the outermost). Any layer whose service keeps the request and
    /// response types fits, e.g. `tower::timeout::TimeoutLayer` or
    /// `tower::limit::ConcurrencyLimitLayer`, or a hook made with
    /// [`from_fn`](trellis_interceptor::from_fn).
    pub fn activity_layer<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<ActivityService> + Send + Sync + 'static,
        L::Service:
            tower::Service<ActivityRequest, Response = Payload> + Clone + Send + Sync + 'static,
        <L::Service as tower::Service<ActivityRequest>>::Error: Into<BoxError> + 'static,
        <L::Service as tower::Service<ActivityRequest>>::Future: Send + 'static,
    {
        self.activity_layers
            .push(ActivityLayer::new(tower::layer::layer_fn(
                move |inner: ActivityService| {
                    ActivityService::new(layer.layer(inner).map_err(Into::into))
                },
            )));
        self
    }

    /// Adds a tower layer around the activity outbound service: what activity attempts ask of
    /// Temporal ([`ActivityOutbound`](crate::interceptors::ActivityOutbound): heartbeats, and
    /// the attempt's info once before it runs). The first added is the outermost. Any layer
    /// whose service keeps the request and response types fits, e.g. a hook made with
    /// [`from_fn`](trellis_interceptor::from_fn):
    ///
    /// ```
    /// use trellis_interceptor::{BoxError, Next, from_fn};
    /// use trellis_worker::WorkerConfig;
    /// use trellis_worker::interceptors::{ActivityOutbound, ActivityOutboundResponse};
    ///
    /// let config = WorkerConfig::new("orders").activity_outbound_layer(from_fn(
    ///     |req: ActivityOutbound, next: Next<ActivityOutbound, ActivityOutboundResponse, BoxError>| async move {
    ///         if let ActivityOutbound::Heartbeat(h) = &req {
    ///             tracing::debug!(activity = %h.info.activity_type, details = h.details.len(), "heartbeat");
    ///         }
    ///         next.run(req).await
    ///     },
    /// ));
    /// ```
    pub fn activity_outbound_layer<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<ActivityOutboundService> + Send + Sync + 'static,
        L::Service: tower::Service<ActivityOutbound, Response = ActivityOutboundResponse>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<ActivityOutbound>>::Error: Into<BoxError> + 'static,
        <L::Service as tower::Service<ActivityOutbound>>::Future: Send + 'static,
    {
        self.activity_outbound_layers
            .push(ActivityOutboundLayer::new(tower::layer::layer_fn(
                move |inner: ActivityOutboundService| {
                    ActivityOutboundService::new(layer.layer(inner).map_err(Into::into))
                },
            )));
        self
    }

    /// Adds a layer around every workflow run's inbound service (execute, signal, query):
    /// `make(ctx, inner)` wraps `inner` for the run whose context is `ctx`. The first added is
    /// the outermost. Usually `make` applies a
    /// [`local_from_fn`](trellis_interceptor::local_from_fn) layer.
    pub fn workflow_inbound_layer<F>(mut self, make: F) -> Self
    where
        F: Fn(&WorkflowContext, WorkflowInboundService) -> WorkflowInboundService
            + Send
            + Sync
            + 'static,
    {
        self.workflow_layers.inbound.push(Arc::new(make));
        self
    }

    /// Adds a layer around every workflow run's outbound service (schedule activity, start
    /// timer), built per run like [`WorkerConfig::workflow_inbound_layer`].
    pub fn workflow_outbound_layer<F>(mut self, make: F) -> Self
    where
        F: Fn(&WorkflowContext, WorkflowOutboundService) -> WorkflowOutboundService
            + Send
            + Sync
            + 'static,
    {
        self.workflow_layers.outbound.push(Arc::new(make));
        self
    }

    /// Registers a workflow: `f(ctx, input)` runs each run of type `name`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use trellis_worker::{WorkerConfig, WorkflowContext, WorkflowError};
    ///
    /// async fn greet(ctx: WorkflowContext, name: String) -> Result<String, WorkflowError> {
    ///     let greeting: String = ctx
    ///         .activity("compose_greeting")
    ///         .args(("Hello", &name))
    ///         .start_to_close_timeout(Duration::from_secs(10))
    ///         .run()
    ///         .await?;
    ///     Ok(greeting)
    /// }
    ///
    /// let config = WorkerConfig::new("greetings").workflow("Greet", greet);
    /// ```
    pub fn workflow<I, O, F, Fut>(self, name: impl Into<String>, f: F) -> Self
    where
        I: serde::de::DeserializeOwned + 'static,
        O: serde::Serialize + 'static,
        F: Fn(WorkflowContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, WorkflowError>> + 'static,
    {
        self.register_workflow(WorkflowDefinition::new(name, f))
    }

    /// Registers an activity: `f(ctx, input)` runs each attempt of type `name`.
    pub fn activity<I, O, F, Fut>(self, name: impl Into<String>, f: F) -> Self
    where
        I: serde::de::DeserializeOwned + Send + 'static,
        O: serde::Serialize + 'static,
        F: Fn(ActivityContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, ActivityError>> + Send + 'static,
    {
        self.register_activity(ActivityDefinition::new(name, f))
    }

    /// Registers a workflow definition.
    pub fn register_workflow(mut self, definition: WorkflowDefinition) -> Self {
        self.workflows.push((CONFIG_SOURCE.to_owned(), definition));
        self
    }

    /// Registers an activity definition.
    pub fn register_activity(mut self, definition: ActivityDefinition) -> Self {
        self.activities.push((CONFIG_SOURCE.to_owned(), definition));
        self
    }

    pub(crate) fn workflow_definitions(&self) -> &[(String, WorkflowDefinition)] {
        &self.workflows
    }

    pub(crate) fn workflow_layers(&self) -> &WorkflowLayers {
        &self.workflow_layers
    }

    /// The registered workflow type names, in registration order.
    pub fn workflow_names(&self) -> Vec<&str> {
        self.workflows.iter().map(|(_, d)| d.name()).collect()
    }

    /// The registered activity type names, in registration order.
    pub fn activity_names(&self) -> Vec<&str> {
        self.activities.iter().map(|(_, d)| d.name()).collect()
    }
}

/// Stops a running worker gracefully: polling stops, running activities finish and are
/// reported, then [`Worker::run`] returns.
#[derive(Clone, Debug, Default)]
pub struct ShutdownHandle(CancellationToken);

impl ShutdownHandle {
    /// Starts graceful shutdown.
    pub fn shutdown(&self) {
        self.0.cancel();
    }

    /// Whether shutdown has started.
    pub fn is_shutdown(&self) -> bool {
        self.0.is_cancelled()
    }
}

/// A worker: polls one task queue and runs the workflows and activities registered on it.
pub struct Worker {
    core: Arc<CoreWorker>,
    // Kept alive for as long as the core worker runs.
    _runtime: CoreRuntime,
    workflows: Arc<WorkflowRegistry>,
    activities: Arc<ActivityRegistry>,
    activity_layers: Vec<ActivityLayer>,
    activity_outbound_layers: Vec<ActivityOutboundLayer>,
    workflow_layers: WorkflowLayers,
    converter: DataConverter,
    namespace: String,
    task_queue: String,
    shutdown: ShutdownHandle,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("namespace", &self.namespace)
            .field("task_queue", &self.task_queue)
            .field("workflows", &self.workflows.names())
            .field("activities", &self.activities.names())
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// Builds a worker on the client's connection (and so through its gRPC stack), namespace,
    /// identity and data converter, and checks the namespace exists. Fails with a clear error
    /// when nothing is registered or two registrations share a name.
    pub async fn new(client: &Client, config: WorkerConfig) -> Result<Self, WorkerError> {
        if config.task_queue.is_empty() {
            return Err(WorkerError::Config("the task queue is empty".into()));
        }
        if config.workflows.is_empty() && config.activities.is_empty() {
            return Err(WorkerError::Config(format!(
                "at least one workflow or activity must be registered (task queue {:?})",
                config.task_queue
            )));
        }
        let (workflows, activities) = build_registries(&config.workflows, &config.activities)?;
        let init_err = |cause: String| WorkerError::Init {
            task_queue: config.task_queue.clone(),
            cause,
        };
        let runtime = CoreRuntime::new_assume_tokio(
            RuntimeOptions::builder()
                .heartbeat_interval(None)
                .build()
                .map_err(init_err)?,
        )
        .map_err(|e| init_err(format!("{e:#}")))?;
        let build_id = config
            .build_id
            .clone()
            .unwrap_or_else(|| format!("trellis-{}", env!("CARGO_PKG_VERSION")));
        let max_tasks = config.max_concurrent_workflow_tasks.max(2);
        let core_config = CoreWorkerConfig::builder()
            .namespace(client.namespace())
            .task_queue(config.task_queue.clone())
            .client_identity_override(client.identity().to_owned())
            .task_types(WorkerTaskTypes {
                enable_workflows: !config.workflows.is_empty(),
                enable_local_activities: false,
                enable_remote_activities: !config.activities.is_empty(),
                enable_nexus: false,
            })
            .versioning_strategy(WorkerVersioningStrategy::None { build_id })
            .max_cached_workflows(config.max_cached_workflows)
            .max_outstanding_workflow_tasks(max_tasks)
            .max_outstanding_activities(config.max_concurrent_activities.max(1))
            .maybe_graceful_shutdown_period(config.graceful_shutdown_timeout)
            .build()
            .map_err(init_err)?;
        let core = init_worker(&runtime, core_config, client.core_connection().clone())
            .map_err(|e| init_err(format!("{e:#}")))?;
        core.validate().await.map_err(|e| init_err(e.to_string()))?;
        Ok(Self {
            core: Arc::new(core),
            _runtime: runtime,
            workflows: Arc::new(workflows),
            activities: Arc::new(activities),
            activity_layers: config.activity_layers,
            activity_outbound_layers: config.activity_outbound_layers,
            workflow_layers: config.workflow_layers,
            converter: client.data_converter().clone(),
            namespace: client.namespace().to_owned(),
            task_queue: config.task_queue,
            shutdown: ShutdownHandle::default(),
        })
    }

    /// The task queue this worker polls.
    pub fn task_queue(&self) -> &str {
        &self.task_queue
    }

    /// A handle that stops [`Worker::run`] gracefully; get it before running.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Runs until `signal` completes, then shuts down gracefully.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> Result<(), WorkerError> {
        let handle = self.shutdown_handle();
        let run = self.run();
        tokio::pin!(run);
        tokio::select! {
            res = &mut run => res,
            () = signal => {
                handle.shutdown();
                run.await
            }
        }
    }

    /// Polls and runs tasks until [`ShutdownHandle::shutdown`] is called (or polling fails
    /// fatally), then shuts down gracefully: in-flight activities finish and are reported, cached
    /// workflows are evicted, and the engine is finalized.
    pub async fn run(self) -> Result<(), WorkerError> {
        let Self {
            core,
            _runtime,
            workflows,
            activities,
            activity_layers,
            activity_outbound_layers,
            workflow_layers,
            converter,
            namespace,
            task_queue,
            shutdown,
        } = self;
        let mut loops = JoinSet::new();
        if !workflows.is_empty() {
            let thread = WorkflowThread::spawn(ThreadSetup {
                registry: workflows.clone(),
                converter: converter.clone(),
                namespace,
                task_queue: task_queue.clone(),
                layers: workflow_layers,
            })
            .map_err(|e| WorkerError::Init {
                task_queue: task_queue.clone(),
                cause: format!("cannot start the workflow thread: {e}"),
            })?;
            loops.spawn(run_workflows(core.clone(), thread, converter.clone()));
        }
        if !activities.is_empty() {
            let mut service = base_activity_service(activities.clone());
            for layer in activity_layers.iter().rev() {
                service = tower::Layer::layer(layer, service);
            }
            let mut outbound = base_outbound_service(Arc::downgrade(&core), converter.clone());
            for layer in activity_outbound_layers.iter().rev() {
                outbound = tower::Layer::layer(layer, outbound);
            }
            loops.spawn(run_activities(
                core.clone(),
                service,
                outbound,
                converter.clone(),
                task_queue.clone(),
            ));
        }
        tracing::info!(task_queue = %task_queue, workflows = ?workflows.names(), activities = ?activities.names(), "worker running");

        let mut first_error = None;
        tokio::select! {
            () = shutdown.0.cancelled() => {}
            Some(res) = loops.join_next() => {
                first_error = loop_error(res);
            }
        }
        core.initiate_shutdown();
        while let Some(res) = loops.join_next().await {
            if first_error.is_none() {
                first_error = loop_error(res);
            }
        }
        match Arc::try_unwrap(core) {
            Ok(core) => core.finalize_shutdown().await,
            Err(core) => core.shutdown().await,
        }
        tracing::info!(task_queue = %task_queue, "worker stopped");
        first_error.map_or(Ok(()), Err)
    }
}

fn loop_error(res: Result<Result<(), WorkerError>, tokio::task::JoinError>) -> Option<WorkerError> {
    match res {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(e) => Some(WorkerError::Poll {
            what: "tasks",
            cause: format!("a poll loop panicked: {e}"),
        }),
    }
}

/// The workflow activation loop: every activation goes to the workflow thread; completions are
/// sent concurrently so one slow run does not hold back others.
async fn run_workflows(
    core: Arc<CoreWorker>,
    thread: WorkflowThread,
    converter: DataConverter,
) -> Result<(), WorkerError> {
    let mut in_flight = JoinSet::new();
    let result = loop {
        while in_flight.try_join_next().is_some() {}
        let act = match core.poll_workflow_activation().await {
            Ok(a) => a,
            Err(PollError::ShutDown) => break Ok(()),
            Err(e) => {
                break Err(WorkerError::Poll {
                    what: "workflow activations",
                    cause: e.to_string(),
                });
            }
        };
        let core = core.clone();
        let thread = thread.clone();
        let converter = converter.clone();
        in_flight.spawn(async move {
            let completion = activate_with_codecs(&thread, &converter, act).await;
            if let Err(e) = core.complete_workflow_activation(completion).await {
                tracing::warn!("completing a workflow activation failed: {e}");
            }
        });
    };
    while in_flight.join_next().await.is_some() {}
    result
}

/// Decodes the activation's payloads with the codec stack, runs it on the workflow thread, and
/// encodes the completion's payloads. A codec error fails the workflow task with a message
/// naming the cause (e.g. an unknown encryption key id); the worker keeps running.
pub(crate) async fn activate_with_codecs(
    thread: &WorkflowThread,
    converter: &DataConverter,
    mut act: trellis_core_proto::coresdk::workflow_activation::WorkflowActivation,
) -> WorkflowActivationCompletion {
    let run_id = act.run_id.clone();
    let fail = |message: String| {
        tracing::warn!(run_id = %run_id, "{message}");
        WorkflowActivationCompletion::fail(
            run_id.clone(),
            converter.failures().application_to_failure(
                &trellis_converter::ApplicationFailure::new("PayloadCodecError", message),
            ),
            None,
        )
    };
    let codecs = !converter.codecs().is_empty();
    if codecs
        && let Err(e) = converter
            .decode_message(&mut act, &VisitOptions::default())
            .await
    {
        return fail(format!("cannot decode the workflow task's payloads: {e}"));
    }
    let Some(mut completion) = thread.activate(act).await else {
        return fail("the workflow thread stopped".to_owned());
    };
    if codecs
        && let Err(e) = converter
            .encode_message(&mut completion, &VisitOptions::default())
            .await
    {
        return fail(format!("cannot encode the workflow task's commands: {e}"));
    }
    completion
}
