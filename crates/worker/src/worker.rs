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
    ActivityOutboundService, ActivityRequest, ActivityService, NexusInbound, NexusInboundResponse,
    NexusLayer, NexusService, WorkflowInboundService, WorkflowLayers, WorkflowOutboundService,
};
use crate::nexus::runner::run_nexus;
use crate::nexus::{
    HandlerEnv, NexusRegistry, NexusServiceHandler, base_nexus_service, build_nexus_registry,
};
use crate::plugin::{
    Interceptor, RunNext, SharedPlugin, WorkerPlugin, named, unbox, worker_plugins,
};
use crate::registry::{
    ActivityDefinition, ActivityRegistry, WorkflowDefinition, WorkflowRegistry, build_registries,
};
use crate::workflow::context::WorkflowContext;
use crate::workflow::thread::{ThreadSetup, WorkflowThread};
use std::collections::HashSet;
use trellis_converter::ApplicationFailure;
use trellis_core_proto::api::worker::v1::PluginInfo;

/// What a worker serves and how hard it works.
#[derive(Clone)]
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
    /// How many Nexus requests may be handled at once.
    pub max_concurrent_nexus_tasks: usize,
    /// After shutdown starts, how long running activities may take before they are asked to
    /// cancel. `None` waits for them however long they take.
    pub graceful_shutdown_timeout: Option<Duration>,
    /// How many workflow task polls may be open at once. `None` (the default) lets the engine
    /// decide when the worker starts: autoscaling when the namespace advertises automatic
    /// enrolment, else a fixed maximum of 5. A fixed maximum must be at least 2 while workflows
    /// are cached (one poll for the worker's sticky queue, one for the shared queue).
    pub workflow_task_pollers: Option<Pollers>,
    /// How many activity task polls may be open at once (`None`: as for workflow tasks).
    pub activity_task_pollers: Option<Pollers>,
    /// How many Nexus task polls may be open at once (`None`: as for workflow tasks).
    pub nexus_task_pollers: Option<Pollers>,
    /// At most this many activity attempts start per second on this worker (`None`: no limit).
    pub max_activities_per_second: Option<f64>,
    /// At most this many activity attempts start per second on the whole task queue, across
    /// every worker polling it; the server enforces it (`None`: no limit).
    pub max_task_queue_activities_per_second: Option<f64>,
    workflows: Vec<(String, WorkflowDefinition)>,
    activities: Vec<(String, ActivityDefinition)>,
    nexus_services: Vec<(String, NexusServiceHandler)>,
    activity_layers: Vec<ActivityLayer>,
    activity_outbound_layers: Vec<ActivityOutboundLayer>,
    nexus_layers: Vec<NexusLayer>,
    workflow_layers: WorkflowLayers,
    plugins: Vec<SharedPlugin>,
    interceptors: Vec<Arc<dyn Interceptor>>,
    failure_types: Vec<FailureType>,
    /// Where registrations made now come from (a plugin while its hook runs).
    pub(crate) source: Option<String>,
}

/// A worker running in the background, from [`Worker::spawn`].
#[derive(Debug)]
pub struct RunningWorker {
    shutdown: ShutdownHandle,
    run: tokio::task::JoinHandle<Result<(), WorkerError>>,
}

impl RunningWorker {
    /// A handle that stops the worker gracefully.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Whether the run has ended (it ends on shutdown, or when polling fails fatally).
    pub fn is_finished(&self) -> bool {
        self.run.is_finished()
    }

    /// Shuts the worker down gracefully (in-flight activities and Nexus requests finish) and
    /// waits for the run to end: its result, or [`WorkerError::Poll`] naming a panic of the
    /// run itself.
    pub async fn stop(self) -> Result<(), WorkerError> {
        self.shutdown.shutdown();
        match self.run.await {
            Ok(result) => result,
            Err(e) => Err(WorkerError::Poll {
                what: "the worker's run",
                cause: format!("the run task ended abnormally: {e}"),
            }),
        }
    }
}

/// How many polls of one kind of task a worker keeps open at once.
///
/// Each open poll is a long-poll RPC waiting for the server to hand out a task; a poll only
/// starts when a slot for its task is free (see the `max_concurrent_*` settings).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pollers {
    /// Up to this many polls (at least 1; at least 2 for workflow tasks while workflows are
    /// cached).
    Maximum(usize),
    /// The number of polls follows the server's feedback: more while tasks keep coming, fewer
    /// when polls come back empty.
    Autoscaling {
        /// Always at least this many (at least 1).
        minimum: usize,
        /// Never more than this many (at least `minimum`).
        maximum: usize,
        /// How many to start with (between `minimum` and `maximum`).
        initial: usize,
    },
}

impl Pollers {
    fn to_core(self) -> temporalio_sdk_core::PollerBehavior {
        match self {
            Pollers::Maximum(n) => temporalio_sdk_core::PollerBehavior::SimpleMaximum(n),
            Pollers::Autoscaling {
                minimum,
                maximum,
                initial,
            } => temporalio_sdk_core::PollerBehavior::Autoscaling {
                minimum,
                maximum,
                initial,
            },
        }
    }

    /// Checks the numbers, naming the setting in the error.
    fn validate(self, setting: &str, minimum_maximum: usize) -> Result<(), WorkerError> {
        let bad = |why: String| Err(WorkerError::Config(format!("{setting}: {why}")));
        match self {
            Pollers::Maximum(n) if n < minimum_maximum => bad(format!(
                "Pollers::Maximum({n}) is too few (at least {minimum_maximum})"
            )),
            Pollers::Autoscaling { minimum: 0, .. } => {
                bad("the autoscaling minimum must be at least 1".into())
            }
            Pollers::Autoscaling {
                minimum, maximum, ..
            } if maximum < minimum => bad(format!(
                "the autoscaling maximum ({maximum}) is below the minimum ({minimum})"
            )),
            Pollers::Autoscaling {
                minimum,
                maximum,
                initial,
            } if initial < minimum || initial > maximum => bad(format!(
                "the autoscaling initial count ({initial}) is outside {minimum}..={maximum}"
            )),
            _ => Ok(()),
        }
    }
}

/// Checks the poller and rate settings before the engine sees them, naming the setting.
fn validate_limits(config: &WorkerConfig) -> Result<(), WorkerError> {
    let workflow_minimum = if config.max_cached_workflows > 0 {
        2
    } else {
        1
    };
    for (setting, pollers, minimum) in [
        (
            "workflow_task_pollers",
            config.workflow_task_pollers,
            workflow_minimum,
        ),
        ("activity_task_pollers", config.activity_task_pollers, 1),
        ("nexus_task_pollers", config.nexus_task_pollers, 1),
    ] {
        if let Some(pollers) = pollers {
            pollers.validate(setting, minimum)?;
        }
    }
    for (setting, rate) in [
        (
            "max_activities_per_second",
            config.max_activities_per_second,
        ),
        (
            "max_task_queue_activities_per_second",
            config.max_task_queue_activities_per_second,
        ),
    ] {
        if let Some(rate) = rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(WorkerError::Config(format!(
                "{setting} must be a positive number (it is {rate})"
            )));
        }
    }
    Ok(())
}

/// Recognises an error type that fails the workflow, and names it.
#[derive(Clone)]
struct FailureType {
    name: &'static str,
    matches: fn(&(dyn std::error::Error + 'static)) -> bool,
}

impl std::fmt::Debug for WorkerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerConfig")
            .field("task_queue", &self.task_queue)
            .field("build_id", &self.build_id)
            .field("max_cached_workflows", &self.max_cached_workflows)
            .field(
                "max_concurrent_workflow_tasks",
                &self.max_concurrent_workflow_tasks,
            )
            .field("max_concurrent_activities", &self.max_concurrent_activities)
            .field(
                "max_concurrent_nexus_tasks",
                &self.max_concurrent_nexus_tasks,
            )
            .field("graceful_shutdown_timeout", &self.graceful_shutdown_timeout)
            .field("workflow_task_pollers", &self.workflow_task_pollers)
            .field("activity_task_pollers", &self.activity_task_pollers)
            .field("nexus_task_pollers", &self.nexus_task_pollers)
            .field("max_activities_per_second", &self.max_activities_per_second)
            .field(
                "max_task_queue_activities_per_second",
                &self.max_task_queue_activities_per_second,
            )
            .field("workflows", &self.workflow_names())
            .field("activities", &self.activity_names())
            .field("nexus_services", &self.nexus_service_names())
            .field("activity_layers", &self.activity_layers.len())
            .field("nexus_layers", &self.nexus_layers.len())
            .field("plugins", &self.plugin_names())
            .field("interceptors", &self.interceptors.len())
            .field(
                "workflow_failure_types",
                &self.workflow_failure_type_names(),
            )
            .finish_non_exhaustive()
    }
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
            max_concurrent_nexus_tasks: 100,
            graceful_shutdown_timeout: None,
            workflow_task_pollers: None,
            activity_task_pollers: None,
            nexus_task_pollers: None,
            max_activities_per_second: None,
            max_task_queue_activities_per_second: None,
            workflows: Vec::new(),
            activities: Vec::new(),
            nexus_services: Vec::new(),
            activity_layers: Vec::new(),
            activity_outbound_layers: Vec::new(),
            nexus_layers: Vec::new(),
            workflow_layers: WorkflowLayers::default(),
            plugins: Vec::new(),
            interceptors: Vec::new(),
            failure_types: Vec::new(),
            source: None,
        }
    }

    /// Adds a plugin, after the client's and those already added (the first is outermost and
    /// configures first). Pass an `Arc` of a plugin also given to the client to have it
    /// applied once.
    pub fn plugin(mut self, plugin: impl WorkerPlugin) -> Self {
        self.plugins.push(Arc::new(plugin));
        self
    }

    /// The worker's own plugins, in order, by name (the client's come before them).
    pub fn plugin_names(&self) -> Vec<&str> {
        self.plugins.iter().map(|p| p.name()).collect()
    }

    /// Applies an interceptor's worker layers, once: an interceptor instance (the same `Arc`)
    /// given again, e.g. by two plugins, is skipped.
    pub fn interceptor(mut self, interceptor: Arc<dyn Interceptor>) -> Self {
        let key = Arc::as_ptr(&interceptor) as *const () as usize;
        if self
            .interceptors
            .iter()
            .any(|i| Arc::as_ptr(i) as *const () as usize == key)
        {
            return self;
        }
        self.interceptors.push(interceptor.clone());
        interceptor.intercept_worker(self)
    }

    /// Makes workflows that return an error of type `E` (directly or as the source of the
    /// error they return) **fail the workflow**, with a failure of type `E`'s name and the
    /// error's message, instead of failing the workflow task (which the server retries).
    pub fn workflow_failure_type<E: std::error::Error + 'static>(mut self) -> Self {
        fn matches<E: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
            e.is::<E>()
        }
        let full = std::any::type_name::<E>();
        let name = full.rsplit("::").next().unwrap_or(full);
        if !self.failure_types.iter().any(|t| t.name == name) {
            self.failure_types.push(FailureType {
                name,
                matches: matches::<E>,
            });
        }
        self
    }

    /// The names of the error types that fail the workflow (see
    /// [`WorkerConfig::workflow_failure_type`]).
    pub fn workflow_failure_type_names(&self) -> Vec<&str> {
        self.failure_types.iter().map(|t| t.name).collect()
    }

    /// Replaces the registered workflows with what `f` returns, given those registered now.
    /// Workflows kept keep their source; new ones come from the current source (a plugin
    /// during its hook).
    pub fn map_workflows(
        mut self,
        f: impl FnOnce(Vec<WorkflowDefinition>) -> Vec<WorkflowDefinition>,
    ) -> Self {
        self.workflows = remap(
            &self.source,
            std::mem::take(&mut self.workflows),
            WorkflowDefinition::name,
            f,
        );
        self
    }

    /// Replaces the registered activities with what `f` returns, given those registered now
    /// (sources as for [`WorkerConfig::map_workflows`]).
    pub fn map_activities(
        mut self,
        f: impl FnOnce(Vec<ActivityDefinition>) -> Vec<ActivityDefinition>,
    ) -> Self {
        self.activities = remap(
            &self.source,
            std::mem::take(&mut self.activities),
            ActivityDefinition::name,
            f,
        );
        self
    }

    /// Replaces the registered Nexus services with what `f` returns, given those registered
    /// now (sources as for [`WorkerConfig::map_workflows`]).
    pub fn map_nexus_services(
        mut self,
        f: impl FnOnce(Vec<NexusServiceHandler>) -> Vec<NexusServiceHandler>,
    ) -> Self {
        self.nexus_services = remap(
            &self.source,
            std::mem::take(&mut self.nexus_services),
            NexusServiceHandler::name,
            f,
        );
        self
    }

    /// Runs `configure_worker` of each of `plugins`, in order; registrations they make are
    /// reported as theirs.
    fn configure_with(mut self, plugins: &[SharedPlugin]) -> Result<Self, WorkerError> {
        for plugin in plugins {
            self.source = Some(format!("plugin {:?}", plugin.name()));
            self = plugin
                .configure_worker(self)
                .map_err(|e| named(plugin.name(), "configure_worker", e))?;
        }
        self.source = None;
        Ok(self)
    }

    /// Runs the `configure_worker` hooks of this configuration's own plugins, in order, as
    /// [`Worker::new`] does (it puts the client's plugins first): to check or unit-test what a
    /// plugin adds without a server. The result has no plugins left to apply.
    pub fn apply_plugins(mut self) -> Result<Self, WorkerError> {
        let plugins = std::mem::take(&mut self.plugins);
        self.configure_with(&plugins)
    }

    /// The activity inbound stack this configuration describes — every activity layer around
    /// the registered activities — as one tower service, to call in-process with an
    /// [`ActivityRequest`] built on [`ActivityContext::detached`]. Fails on duplicate names.
    pub fn activity_service(&self) -> Result<ActivityService, WorkerError> {
        let (_, activities) = build_registries(&[], &self.activities)?;
        Ok(layered_activity_service(
            Arc::new(activities),
            &self.activity_layers,
        ))
    }

    /// The Nexus inbound stack this configuration describes — every Nexus inbound layer
    /// around the registered services — as one tower service, to call in-process with a
    /// [`NexusInbound`](crate::interceptors::NexusInbound) request (unit tests of handlers and
    /// layers). Handlers see the default data converter and no client. Fails on duplicate
    /// names.
    pub fn nexus_inbound_service(&self) -> Result<NexusService, WorkerError> {
        let registry = build_nexus_registry(&self.nexus_services)?;
        let env = Arc::new(HandlerEnv {
            namespace: String::new(),
            task_queue: self.task_queue.clone(),
            converter: DataConverter::default(),
            client: None,
        });
        Ok(layered_nexus_service(
            Arc::new(registry),
            env,
            &self.nexus_layers,
        ))
    }

    fn current_source(&self) -> String {
        self.source
            .clone()
            .unwrap_or_else(|| CONFIG_SOURCE.to_owned())
    }

    /// The registries of workflows (with the failure types applied) and activities; fails on
    /// a duplicate name.
    pub(crate) fn registries(&self) -> Result<(WorkflowRegistry, ActivityRegistry), WorkerError> {
        if self.failure_types.is_empty() {
            return build_registries(&self.workflows, &self.activities);
        }
        let types: Arc<[FailureType]> = self.failure_types.clone().into();
        let workflows: Vec<_> = self
            .workflows
            .iter()
            .map(|(source, d)| {
                (
                    source.clone(),
                    d.clone().map_error(types.clone(), fail_workflow_for),
                )
            })
            .collect();
        build_registries(&workflows, &self.activities)
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

    /// Adds a tower layer around every Nexus request (start and cancel operation) this worker
    /// handles; the first added is the outermost. Any layer whose service keeps the request
    /// and response types fits, or a hook made with [`from_fn`](trellis_interceptor::from_fn):
    ///
    /// ```
    /// use trellis_interceptor::{BoxError, Next, from_fn};
    /// use trellis_worker::WorkerConfig;
    /// use trellis_worker::interceptors::{NexusInbound, NexusInboundResponse};
    /// use trellis_worker::nexus::{HandlerError, HandlerErrorType};
    ///
    /// let config = WorkerConfig::new("weather").nexus_inbound_layer(from_fn(
    ///     |req: NexusInbound, next: Next<NexusInbound, NexusInboundResponse, BoxError>| async move {
    ///         if req.headers().get("x-tenant").is_none() {
    ///             return Err(HandlerError::new(HandlerErrorType::Unauthorized, "no tenant").into());
    ///         }
    ///         next.run(req).await
    ///     },
    /// ));
    /// ```
    pub fn nexus_inbound_layer<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<NexusService> + Send + Sync + 'static,
        L::Service: tower::Service<NexusInbound, Response = NexusInboundResponse>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<NexusInbound>>::Error: Into<BoxError> + 'static,
        <L::Service as tower::Service<NexusInbound>>::Future: Send + 'static,
    {
        self.nexus_layers
            .push(NexusLayer::new(tower::layer::layer_fn(
                move |inner: NexusService| {
                    NexusService::new(layer.layer(inner).map_err(Into::into))
                },
            )));
        self
    }

    /// Adds a layer around every workflow run's inbound service (execute, signal, query,
    /// validate update, update):
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

    /// Adds a layer around every workflow run's outbound service (schedule activity or local
    /// activity, start timer, start child, signal/cancel external, continue-as-new), built per
    /// run like [`WorkerConfig::workflow_inbound_layer`].
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

    /// Registers the **dynamic** workflow: it serves every workflow type not registered by
    /// name, getting the start arguments still encoded (`ctx.info().workflow_type` names the
    /// type). At most one per worker.
    pub fn dynamic_workflow<O, F, Fut>(self, f: F) -> Self
    where
        O: serde::Serialize + 'static,
        F: Fn(WorkflowContext, Vec<Payload>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, WorkflowError>> + 'static,
    {
        self.register_workflow(WorkflowDefinition::dynamic(f))
    }

    /// Registers the **dynamic** activity: it serves every activity type not registered by
    /// name, getting the arguments still encoded (`ctx.info().activity_type` names the type).
    /// At most one per worker.
    pub fn dynamic_activity<O, F, Fut>(self, f: F) -> Self
    where
        O: serde::Serialize + 'static,
        F: Fn(ActivityContext, Vec<Payload>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, ActivityError>> + Send + 'static,
    {
        self.register_activity(ActivityDefinition::dynamic(f))
    }

    /// Serves a Nexus service: its operations run on this worker for requests reaching its
    /// task queue through an endpoint (see [`crate::nexus`]). Two services of one name are a
    /// [`WorkerError::Duplicate`] naming both sources.
    pub fn nexus_service(mut self, handler: NexusServiceHandler) -> Self {
        self.nexus_services.push((self.current_source(), handler));
        self
    }

    /// Registers a workflow definition.
    pub fn register_workflow(mut self, definition: WorkflowDefinition) -> Self {
        self.workflows.push((self.current_source(), definition));
        self
    }

    /// Registers an activity definition.
    pub fn register_activity(mut self, definition: ActivityDefinition) -> Self {
        self.activities.push((self.current_source(), definition));
        self
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

    /// The registered Nexus service names, in registration order.
    pub fn nexus_service_names(&self) -> Vec<&str> {
        self.nexus_services.iter().map(|(_, h)| h.name()).collect()
    }
}

/// Applies `f` to the definitions of `entries`. A returned definition takes the source of the
/// next unclaimed entry of its name (so definitions kept keep theirs); the rest get `source`
/// (or the worker's configuration).
fn remap<T>(
    source: &Option<String>,
    entries: Vec<(String, T)>,
    name: fn(&T) -> &str,
    f: impl FnOnce(Vec<T>) -> Vec<T>,
) -> Vec<(String, T)> {
    let mut sources: std::collections::HashMap<String, std::collections::VecDeque<String>> =
        std::collections::HashMap::new();
    let mut defs = Vec::with_capacity(entries.len());
    for (src, def) in entries {
        sources
            .entry(name(&def).to_owned())
            .or_default()
            .push_back(src);
        defs.push(def);
    }
    f(defs)
        .into_iter()
        .map(|def| {
            let src = sources
                .get_mut(name(&def))
                .and_then(|q| q.pop_front())
                .unwrap_or_else(|| source.clone().unwrap_or_else(|| CONFIG_SOURCE.to_owned()));
            (src, def)
        })
        .collect()
}

/// Turns an error of a registered failure type (the error itself or one of its sources) into
/// an application failure, which fails the workflow.
fn fail_workflow_for(types: &Arc<[FailureType]>, err: WorkflowError) -> WorkflowError {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err.get_ref());
    while let Some(e) = cur {
        if let Some(t) = types.iter().find(|t| (t.matches)(e)) {
            return WorkflowError::from(ApplicationFailure::new(t.name, e.to_string()));
        }
        cur = e.source();
    }
    err
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
    nexus: Arc<NexusRegistry>,
    activity_layers: Vec<ActivityLayer>,
    activity_outbound_layers: Vec<ActivityOutboundLayer>,
    nexus_layers: Vec<NexusLayer>,
    workflow_layers: WorkflowLayers,
    converter: DataConverter,
    client: Client,
    namespace: String,
    task_queue: String,
    shutdown: ShutdownHandle,
    plugins: Arc<[SharedPlugin]>,
    /// Set once the `run_worker` chain has started, so a hook that calls `worker.run()` instead
    /// of `next.run(worker)` runs the worker rather than the chain again.
    in_chain: bool,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("namespace", &self.namespace)
            .field("task_queue", &self.task_queue)
            .field("workflows", &self.workflows.names())
            .field("activities", &self.activities.names())
            .field("nexus_services", &self.nexus.names())
            .field("plugins", &self.plugin_names())
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// Builds a worker on the client's connection (and so through its gRPC stack), namespace,
    /// identity and data converter, and checks the namespace exists. Fails with a clear error
    /// when nothing is registered or two registrations share a name.
    pub async fn new(client: &Client, config: WorkerConfig) -> Result<Self, WorkerError> {
        let plugins = worker_plugins(client.propagated_plugins(), &config.plugins);
        let config = config.configure_with(&plugins)?;
        if config.task_queue.is_empty() {
            return Err(WorkerError::Config("the task queue is empty".into()));
        }
        if config.workflows.is_empty()
            && config.activities.is_empty()
            && config.nexus_services.is_empty()
        {
            let from = if plugins.is_empty() {
                String::new()
            } else {
                let names: Vec<&str> = plugins.iter().map(|p| p.name()).collect();
                format!(", neither by the worker nor by its plugins {names:?}")
            };
            return Err(WorkerError::Config(format!(
                "at least one workflow, activity or Nexus service must be registered (task queue {:?}{from})",
                config.task_queue
            )));
        }
        let (workflows, activities) = config.registries()?;
        let nexus = build_nexus_registry(&config.nexus_services)?;
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
        validate_limits(&config)?;
        let core_config = CoreWorkerConfig::builder()
            .namespace(client.namespace())
            .task_queue(config.task_queue.clone())
            .client_identity_override(client.identity().to_owned())
            .task_types(WorkerTaskTypes {
                enable_workflows: !config.workflows.is_empty(),
                // Local activities (and side effects) run for this worker's own workflows.
                enable_local_activities: !config.workflows.is_empty(),
                enable_remote_activities: !config.activities.is_empty(),
                enable_nexus: !nexus.is_empty(),
            })
            .versioning_strategy(WorkerVersioningStrategy::None { build_id })
            .max_cached_workflows(config.max_cached_workflows)
            .max_outstanding_workflow_tasks(max_tasks)
            .max_outstanding_activities(config.max_concurrent_activities.max(1))
            .max_outstanding_nexus_tasks(config.max_concurrent_nexus_tasks.max(1))
            .maybe_graceful_shutdown_period(config.graceful_shutdown_timeout)
            .maybe_workflow_task_poller_behavior(config.workflow_task_pollers.map(Pollers::to_core))
            .maybe_activity_task_poller_behavior(config.activity_task_pollers.map(Pollers::to_core))
            .maybe_nexus_task_poller_behavior(config.nexus_task_pollers.map(Pollers::to_core))
            .maybe_max_worker_activities_per_second(config.max_activities_per_second)
            .maybe_max_task_queue_activities_per_second(config.max_task_queue_activities_per_second)
            .plugins(
                plugins
                    .iter()
                    .map(|p| PluginInfo {
                        name: p.name().to_owned(),
                        version: String::new(),
                    })
                    .collect::<HashSet<_>>(),
            )
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
            nexus: Arc::new(nexus),
            activity_layers: config.activity_layers,
            activity_outbound_layers: config.activity_outbound_layers,
            nexus_layers: config.nexus_layers,
            workflow_layers: config.workflow_layers,
            converter: client.data_converter().clone(),
            client: client.clone(),
            namespace: client.namespace().to_owned(),
            task_queue: config.task_queue,
            shutdown: ShutdownHandle::default(),
            plugins: plugins.into(),
            in_chain: false,
        })
    }

    /// The plugins applied to this worker (the client's, then its own), by name.
    pub fn plugin_names(&self) -> Vec<&str> {
        self.plugins.iter().map(|p| p.name()).collect()
    }

    /// The workflow types this worker serves, sorted.
    pub fn workflow_names(&self) -> Vec<String> {
        self.workflows.names()
    }

    /// The activity types this worker serves, sorted.
    pub fn activity_names(&self) -> Vec<String> {
        self.activities.names()
    }

    /// The Nexus services this worker serves, sorted.
    pub fn nexus_service_names(&self) -> Vec<String> {
        self.nexus.names()
    }

    /// The namespace this worker polls.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The task queue this worker polls.
    pub fn task_queue(&self) -> &str {
        &self.task_queue
    }

    /// A handle that stops [`Worker::run`] gracefully; get it before running.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Runs the worker in the background on the current tokio runtime (as [`Worker::run`]),
    /// for code that goes on to start workflows or run tests while it polls:
    /// [`RunningWorker::stop`] shuts it down gracefully and returns how the run ended.
    pub fn spawn(self) -> RunningWorker {
        let shutdown = self.shutdown_handle();
        RunningWorker {
            shutdown,
            run: tokio::spawn(self.run()),
        }
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
    /// workflows are evicted, and the engine is finalized. The plugins' `run_worker` hooks wrap
    /// the whole run, the first plugin outermost.
    pub async fn run(mut self) -> Result<(), WorkerError> {
        if self.in_chain {
            return self.run_unwrapped().await;
        }
        self.in_chain = true;
        let plugins = self.plugins.clone();
        RunNext::new(&plugins).run(self).await.map_err(unbox)
    }

    /// The run itself, inside every plugin's `run_worker`.
    pub(crate) async fn run_unwrapped(self) -> Result<(), WorkerError> {
        let Self {
            core,
            _runtime,
            workflows,
            activities,
            nexus,
            activity_layers,
            activity_outbound_layers,
            nexus_layers,
            workflow_layers,
            converter,
            client,
            namespace,
            task_queue,
            shutdown,
            plugins: _,
            in_chain: _,
        } = self;
        let mut loops = JoinSet::new();
        if !nexus.is_empty() {
            let env = Arc::new(HandlerEnv {
                namespace: namespace.clone(),
                task_queue: task_queue.clone(),
                converter: converter.clone(),
                client: Some(client),
            });
            let service = layered_nexus_service(nexus.clone(), env, &nexus_layers);
            loops.spawn(run_nexus(core.clone(), service, converter.clone()));
        }
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
        // Local activities (and side effects) of this worker's workflows run here too.
        if !activities.is_empty() || !workflows.is_empty() {
            let service = layered_activity_service(activities.clone(), &activity_layers);
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
        tracing::info!(task_queue = %task_queue, workflows = ?workflows.names(), activities = ?activities.names(), nexus_services = ?nexus.names(), "worker running");

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

/// The registered activities inside `layers` (the first is outermost).
fn layered_activity_service(
    activities: Arc<ActivityRegistry>,
    layers: &[ActivityLayer],
) -> ActivityService {
    layers
        .iter()
        .rev()
        .fold(base_activity_service(activities), |service, layer| {
            tower::Layer::layer(layer, service)
        })
}

/// The registered Nexus services inside `layers` (the first is outermost).
fn layered_nexus_service(
    registry: Arc<NexusRegistry>,
    env: Arc<HandlerEnv>,
    layers: &[NexusLayer],
) -> NexusService {
    layers
        .iter()
        .rev()
        .fold(base_nexus_service(registry, env), |service, layer| {
            tower::Layer::layer(layer, service)
        })
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
            let completion = activate_with_codecs(&converter, act, |a| thread.activate(a)).await;
            if let Err(e) = core.complete_workflow_activation(completion).await {
                tracing::warn!("completing a workflow activation failed: {e}");
            }
        });
    };
    while in_flight.join_next().await.is_some() {}
    result
}

/// Decodes the activation's payloads with the codec stack, runs it with `run` (on the workflow
/// thread, or in place for a replay), and encodes the completion's payloads. A codec error fails
/// the workflow task with a message naming the cause (e.g. an unknown encryption key id); the
/// worker keeps running. `run` gives `None` when the workflow thread has stopped.
pub(crate) async fn activate_with_codecs<F, Fut>(
    converter: &DataConverter,
    mut act: trellis_core_proto::coresdk::workflow_activation::WorkflowActivation,
    run: F,
) -> WorkflowActivationCompletion
where
    F: FnOnce(trellis_core_proto::coresdk::workflow_activation::WorkflowActivation) -> Fut,
    Fut: std::future::Future<Output = Option<WorkflowActivationCompletion>>,
{
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
    let Some(mut completion) = run(act).await else {
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
