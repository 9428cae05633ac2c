//! `SimplePlugin`: one value that adds workflows, activities, Nexus services, a data converter (or a codec on
//! top of the user's), interceptors, workflow failure types and code around each run to
//! clients, workers and replayers — the way a plugin crate lets its users add a feature in one
//! line.
//!
//! ```
//! use trellis_plugin_simple::SimplePlugin;
//! use trellis_worker::{ActivityContext, ActivityError};
//!
//! async fn shout(_ctx: ActivityContext, text: String) -> Result<String, ActivityError> {
//!     Ok(text.to_uppercase())
//! }
//!
//! /// What the `acme-shout` crate exports.
//! pub fn plugin() -> SimplePlugin {
//!     SimplePlugin::new("acme.shout").activity("shout", shout)
//! }
//!
//! // A user's one line: `ClientConfig::new(address).plugin(acme_shout::plugin())`.
//! # let _ = trellis_client::ClientConfig::new("127.0.0.1:7233").plugin(plugin());
//! ```
//!
//! # Values and functions of the existing value
//!
//! Every setting except interceptors and the run context is either a value or a function of
//! the existing value, as in the other Temporal SDKs:
//! - a single value (the data converter) **replaces**: [`SimplePlugin::data_converter`];
//! - a list value (workflows, activities, Nexus services) **appends**:
//!   [`SimplePlugin::workflow`], [`SimplePlugin::activities`], [`SimplePlugin::nexus_service`];
//! - a function **always replaces** with what it returns, given what is there now — an empty
//!   list clears: [`SimplePlugin::data_converter_with`], [`SimplePlugin::workflows_with`],
//!   [`SimplePlugin::activities_with`], [`SimplePlugin::nexus_services_with`]. [`SimplePlugin::codec`] adds a codec to the existing
//!   converter, keeping the user's own codecs.
//!
//! # Where each setting applies
//!
//! | setting | client | worker | replayer |
//! | --- | --- | --- | --- |
//! | data converter, codec | yes | (uses its client's) | yes |
//! | workflows | | yes | yes |
//! | activities | | yes | |
//! | Nexus services | | yes | |
//! | interceptors | client part | worker part | worker part |
//! | workflow failure types | | yes | yes |
//! | run context | | around the run | around each replay |
//!
//! Registered on a client, the plugin also reaches every worker built from it; the same
//! instance (or a clone of it) given to the worker again is applied once. Interceptors run
//! exactly once per call on each side, wherever the plugin is registered.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

#[cfg(feature = "testing")]
pub mod testing;

use std::any::Any;
use std::future::Future;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;
use trellis_client::{BoxFuture, ClientConfig, ClientPlugin};
use trellis_converter::{DataConverter, PayloadCodec};
use trellis_interceptor::BoxError;
use trellis_worker::nexus::NexusServiceHandler;
use trellis_worker::plugin::{ReplayNext, RunNext};
use trellis_worker::replay::{ReplayHistories, ReplayResult, ReplayerConfig};
use trellis_worker::{
    ActivityContext, ActivityDefinition, ActivityError, Interceptor, Worker, WorkerConfig,
    WorkerPlugin, WorkflowContext, WorkflowDefinition, WorkflowError,
};

/// The run a run context wraps: await it exactly once to run the worker or the replay.
pub type Run<'a> = BoxFuture<'a, Result<(), BoxError>>;

/// What a run context wraps.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunScope {
    /// A worker's whole run, from start-up to shutdown.
    Worker {
        /// The worker's namespace.
        namespace: String,
        /// The worker's task queue.
        task_queue: String,
    },
    /// One replay and the collection of its results.
    Replayer,
}

type RunContextFn =
    dyn for<'a> Fn(RunScope, Run<'a>) -> BoxFuture<'a, Result<(), BoxError>> + Send + Sync;

/// A list setting: values append, a function replaces.
enum ListStep<T> {
    Append(Vec<T>),
    Replace(Arc<dyn Fn(Vec<T>) -> Vec<T> + Send + Sync>),
}

impl<T: Clone> Clone for ListStep<T> {
    fn clone(&self) -> Self {
        match self {
            Self::Append(v) => Self::Append(v.clone()),
            Self::Replace(f) => Self::Replace(f.clone()),
        }
    }
}

impl<T: Clone> ListStep<T> {
    fn apply(&self, existing: Vec<T>) -> Vec<T> {
        match self {
            Self::Append(more) => {
                let mut all = existing;
                all.extend(more.iter().cloned());
                all
            }
            Self::Replace(f) => f(existing),
        }
    }
}

/// A converter setting: a value replaces, a function maps.
#[derive(Clone)]
enum ConverterStep {
    Replace(DataConverter),
    Map(Arc<dyn Fn(DataConverter) -> DataConverter + Send + Sync>),
}

#[derive(Clone, Default)]
struct Settings {
    name: String,
    converter: Vec<ConverterStep>,
    workflows: Vec<ListStep<WorkflowDefinition>>,
    activities: Vec<ListStep<ActivityDefinition>>,
    nexus_services: Vec<ListStep<NexusServiceHandler>>,
    interceptors: Vec<Arc<dyn Interceptor>>,
    failure_types: Vec<fn(WorkerConfig) -> WorkerConfig>,
    run_context: Option<Arc<RunContextFn>>,
}

/// A plugin built from values and functions; see the [crate docs](crate). Cheap to clone;
/// clones are the same plugin instance (applied once to a worker that gets it twice).
#[derive(Clone)]
pub struct SimplePlugin {
    settings: Arc<Settings>,
}

impl std::fmt::Debug for SimplePlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.settings;
        f.debug_struct("SimplePlugin")
            .field("name", &s.name)
            .field("converter_steps", &s.converter.len())
            .field("workflow_steps", &s.workflows.len())
            .field("activity_steps", &s.activities.len())
            .field("nexus_service_steps", &s.nexus_services.len())
            .field("interceptors", &s.interceptors.len())
            .field("failure_types", &s.failure_types.len())
            .field("run_context", &s.run_context.is_some())
            .finish()
    }
}

impl SimplePlugin {
    /// A plugin named `name` (e.g. `"acme.payments"`) that adds nothing yet.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            settings: Arc::new(Settings {
                name: name.into(),
                ..Settings::default()
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Settings)) -> Self {
        f(Arc::make_mut(&mut self.settings));
        self
    }

    /// Adds a workflow: `f(ctx, input)` runs each run of type `name`.
    pub fn workflow<I, O, F, Fut>(self, name: impl Into<String>, f: F) -> Self
    where
        I: DeserializeOwned + 'static,
        O: Serialize + 'static,
        F: Fn(WorkflowContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, WorkflowError>> + 'static,
    {
        self.workflows(vec![WorkflowDefinition::new(name, f)])
    }

    /// Appends workflow definitions to the worker's (and replayer's).
    pub fn workflows(self, definitions: Vec<WorkflowDefinition>) -> Self {
        self.edit(|s| s.workflows.push(ListStep::Append(definitions)))
    }

    /// Replaces the workflows with `f(existing)`; an empty list clears them.
    pub fn workflows_with(
        self,
        f: impl Fn(Vec<WorkflowDefinition>) -> Vec<WorkflowDefinition> + Send + Sync + 'static,
    ) -> Self {
        self.edit(|s| s.workflows.push(ListStep::Replace(Arc::new(f))))
    }

    /// Adds an activity: `f(ctx, input)` runs each attempt of type `name`.
    pub fn activity<I, O, F, Fut>(self, name: impl Into<String>, f: F) -> Self
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + 'static,
        F: Fn(ActivityContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, ActivityError>> + Send + 'static,
    {
        self.activities(vec![ActivityDefinition::new(name, f)])
    }

    /// Appends activity definitions to the worker's.
    pub fn activities(self, definitions: Vec<ActivityDefinition>) -> Self {
        self.edit(|s| s.activities.push(ListStep::Append(definitions)))
    }

    /// Replaces the activities with `f(existing)`; an empty list clears them.
    pub fn activities_with(
        self,
        f: impl Fn(Vec<ActivityDefinition>) -> Vec<ActivityDefinition> + Send + Sync + 'static,
    ) -> Self {
        self.edit(|s| s.activities.push(ListStep::Replace(Arc::new(f))))
    }

    /// Adds a Nexus service (its handlers) to the worker: served for requests reaching the
    /// worker's task queue through an endpoint.
    ///
    /// ```
    /// use trellis_plugin_simple::SimplePlugin;
    /// use trellis_worker::nexus::NexusServiceHandler;
    ///
    /// let plugin = SimplePlugin::new("acme.echo").nexus_service(
    ///     NexusServiceHandler::new("EchoService")
    ///         .sync_operation("echo", |_ctx, text: String| async move { Ok(text) }),
    /// );
    /// ```
    pub fn nexus_service(self, handler: NexusServiceHandler) -> Self {
        self.edit(|s| s.nexus_services.push(ListStep::Append(vec![handler])))
    }

    /// Replaces the worker's Nexus services with `f(existing)`; an empty list clears them.
    pub fn nexus_services_with(
        self,
        f: impl Fn(Vec<NexusServiceHandler>) -> Vec<NexusServiceHandler> + Send + Sync + 'static,
    ) -> Self {
        self.edit(|s| s.nexus_services.push(ListStep::Replace(Arc::new(f))))
    }

    /// Replaces the data converter of the client (and replayer). Prefer
    /// [`SimplePlugin::codec`] or [`SimplePlugin::data_converter_with`] to keep what the user
    /// configured.
    pub fn data_converter(self, converter: DataConverter) -> Self {
        self.edit(|s| s.converter.push(ConverterStep::Replace(converter)))
    }

    /// Replaces the data converter with `f(existing)`.
    pub fn data_converter_with(
        self,
        f: impl Fn(DataConverter) -> DataConverter + Send + Sync + 'static,
    ) -> Self {
        self.edit(|s| s.converter.push(ConverterStep::Map(Arc::new(f))))
    }

    /// Adds a payload codec (encryption, compression) to the existing data converter, after
    /// (so inside) the codecs it has: the user's own codecs stay.
    pub fn codec(self, codec: impl PayloadCodec + Clone) -> Self {
        self.data_converter_with(move |dc| dc.with_codec(codec.clone()))
    }

    /// Adds an interceptor: its client part goes to clients the plugin is registered on, its
    /// worker part to workers and replayers. An interceptor instance runs once per call on each
    /// side, however many times it reaches a worker.
    pub fn interceptor(self, interceptor: impl Interceptor) -> Self {
        let interceptor: Arc<dyn Interceptor> = Arc::new(interceptor);
        self.edit(|s| s.interceptors.push(interceptor))
    }

    /// Makes workflows that return an error of type `E` fail the workflow instead of the
    /// workflow task (see [`WorkerConfig::workflow_failure_type`]).
    pub fn workflow_failure_type<E: std::error::Error + 'static>(self) -> Self {
        fn add<E: std::error::Error + 'static>(config: WorkerConfig) -> WorkerConfig {
            config.workflow_failure_type::<E>()
        }
        self.edit(|s| s.failure_types.push(add::<E>))
    }

    /// Runs `f` around each worker run and each replay: `f(scope, run)` does its set-up,
    /// awaits `run` (the worker until it stops, or the replay until its results are collected),
    /// then cleans up. Called afresh for every run; the first plugin's context wraps the
    /// next's.
    ///
    /// ```
    /// # use trellis_plugin_simple::SimplePlugin;
    /// let plugin = SimplePlugin::new("acme.flush").run_context(|scope, run| {
    ///     Box::pin(async move {
    ///         println!("enter {scope:?}");
    ///         let result = run.await;
    ///         println!("exit {scope:?}");
    ///         result
    ///     })
    /// });
    /// ```
    pub fn run_context<F>(self, f: F) -> Self
    where
        F: for<'a> Fn(RunScope, Run<'a>) -> BoxFuture<'a, Result<(), BoxError>>
            + Send
            + Sync
            + 'static,
    {
        self.edit(|s| s.run_context = Some(Arc::new(f)))
    }

    fn convert(&self, existing: DataConverter) -> DataConverter {
        self.settings
            .converter
            .iter()
            .fold(existing, |dc, step| match step {
                ConverterStep::Replace(v) => v.clone(),
                ConverterStep::Map(f) => f(dc),
            })
    }

    /// What this plugin adds to a worker's configuration (also a replayer's: `worker` is false
    /// there, so activities and Nexus services are left out).
    fn configure(&self, config: WorkerConfig, worker: bool) -> WorkerConfig {
        let s = &self.settings;
        let mut config = config;
        if !s.workflows.is_empty() {
            config = config.map_workflows(|existing| {
                s.workflows
                    .iter()
                    .fold(existing, |list, step| step.apply(list))
            });
        }
        if worker && !s.activities.is_empty() {
            config = config.map_activities(|existing| {
                s.activities
                    .iter()
                    .fold(existing, |list, step| step.apply(list))
            });
        }
        if worker && !s.nexus_services.is_empty() {
            config = config.map_nexus_services(|existing| {
                s.nexus_services
                    .iter()
                    .fold(existing, |list, step| step.apply(list))
            });
        }
        for interceptor in &s.interceptors {
            config = config.interceptor(interceptor.clone());
        }
        s.failure_types.iter().fold(config, |c, add| add(c))
    }
}

impl ClientPlugin for SimplePlugin {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn instance_key(&self) -> usize {
        Arc::as_ptr(&self.settings) as usize
    }

    fn configure_client(&self, config: ClientConfig) -> Result<ClientConfig, BoxError> {
        let mut config = config;
        config.data_converter = self.convert(config.data_converter);
        Ok(self
            .settings
            .interceptors
            .iter()
            .fold(config, |c, i| i.intercept_client(c)))
    }

    fn worker_side(self: Arc<Self>) -> Option<Arc<dyn Any + Send + Sync>> {
        Some(trellis_worker::plugin::worker_side(self))
    }
}

impl WorkerPlugin for SimplePlugin {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn instance_key(&self) -> usize {
        Arc::as_ptr(&self.settings) as usize
    }

    fn configure_worker(&self, config: WorkerConfig) -> Result<WorkerConfig, BoxError> {
        Ok(self.configure(config, true))
    }

    fn run_worker<'a>(
        &'a self,
        worker: Worker,
        next: RunNext<'a>,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        match &self.settings.run_context {
            None => Box::pin(next.run(worker)),
            Some(context) => {
                let scope = RunScope::Worker {
                    namespace: worker.namespace().to_owned(),
                    task_queue: worker.task_queue().to_owned(),
                };
                context(scope, Box::pin(next.run(worker)))
            }
        }
    }

    fn configure_replayer(&self, config: ReplayerConfig) -> Result<ReplayerConfig, BoxError> {
        let mut config = config;
        config.data_converter = self.convert(config.data_converter);
        config.worker = self.configure(config.worker, false);
        Ok(config)
    }

    fn run_replayer<'a>(
        &'a self,
        histories: ReplayHistories,
        next: ReplayNext<'a>,
    ) -> BoxFuture<'a, Result<Vec<ReplayResult>, BoxError>> {
        let Some(context) = self.settings.run_context.clone() else {
            return Box::pin(next.run(histories));
        };
        Box::pin(async move {
            let results = Arc::new(Mutex::new(None));
            let slot = results.clone();
            let run: Run<'a> = Box::pin(async move {
                let r = next.run(histories).await?;
                *slot.lock().expect("results slot") = Some(r);
                Ok(())
            });
            context(RunScope::Replayer, run).await?;
            let taken = results.lock().expect("results slot").take();
            taken.ok_or_else(|| "the run context returned without running the replay".into())
        })
    }
}
