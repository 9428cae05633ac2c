//! Worker plugins: one value that configures workers and replayers and wraps their runs.
//!
//! A plugin given to a [`Client`](trellis_client::Client) that is also a worker plugin (it
//! returns [`worker_side`] from [`ClientPlugin::worker_side`](trellis_client::ClientPlugin::worker_side))
//! reaches every worker built from that client, ahead of the worker's own plugins. Nothing
//! propagates to a replayer.
//!
//! # Order
//!
//! - [`Worker::new`](crate::Worker::new): the client's plugins, then the worker's own; a plugin
//!   instance met twice is applied once (with a warning). `configure_worker` runs in that
//!   order, then the configuration is validated, so a worker whose workflows and activities
//!   all come from plugins starts.
//! - [`Worker::run`](crate::Worker::run): the `run_worker` chain, the first plugin outermost.
//! - A replayer: `configure_replayer` in order when it is built; the `run_replayer` chain, the
//!   first plugin outermost, around every replay.
//!
//! Errors a hook returns surface as [`WorkerError::Plugin`], naming the plugin and the hook;
//! errors from inside (`next`) pass through unchanged.

use std::any::Any;
use std::collections::HashSet;
use std::sync::Arc;

use trellis_client::BoxFuture;
use trellis_client::ClientConfig;
use trellis_client::plugin::PropagatedPlugin;
use trellis_interceptor::BoxError;

use crate::error::WorkerError;
use crate::replay::{ReplayHistories, ReplayResult, ReplayerConfig};
use crate::worker::{Worker, WorkerConfig};

/// A plugin for workers and replayers. Every hook has a default that passes through, so a
/// plugin implements only what it changes.
pub trait WorkerPlugin: Send + Sync + 'static {
    /// The plugin's name, used in errors, logs and the worker's reported plugin list (defaults
    /// to the type's path).
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }

    /// Identifies the plugin instance (see
    /// [`ClientPlugin::instance_key`](trellis_client::ClientPlugin::instance_key)); the two
    /// must agree for a plugin that implements both.
    fn instance_key(&self) -> usize {
        self as *const Self as *const () as usize
    }

    /// Changes the worker's configuration: workflows, activities, interceptors, limits.
    /// Registrations made here are reported as coming from this plugin.
    fn configure_worker(&self, config: WorkerConfig) -> Result<WorkerConfig, BoxError> {
        Ok(config)
    }

    /// Wraps the worker's whole run, from start-up to shutdown: work before calling `next`
    /// (which returns when the worker has stopped), clean up after. The worker's own errors
    /// pass through.
    fn run_worker<'a>(
        &'a self,
        worker: Worker,
        next: RunNext<'a>,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(next.run(worker))
    }

    /// Changes a replayer's configuration (its workflows, workflow interceptors, converter).
    fn configure_replayer(&self, config: ReplayerConfig) -> Result<ReplayerConfig, BoxError> {
        Ok(config)
    }

    /// Wraps one replay of `histories` and the collection of its results. The histories are a
    /// stream, taken one at a time as the replay goes (see [`ReplayHistories`]).
    fn run_replayer<'a>(
        &'a self,
        histories: ReplayHistories,
        next: ReplayNext<'a>,
    ) -> BoxFuture<'a, Result<Vec<ReplayResult>, BoxError>> {
        Box::pin(next.run(histories))
    }
}

impl<P: WorkerPlugin + ?Sized> WorkerPlugin for Arc<P> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn instance_key(&self) -> usize {
        (**self).instance_key()
    }

    fn configure_worker(&self, config: WorkerConfig) -> Result<WorkerConfig, BoxError> {
        (**self).configure_worker(config)
    }

    fn run_worker<'a>(
        &'a self,
        worker: Worker,
        next: RunNext<'a>,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        (**self).run_worker(worker, next)
    }

    fn configure_replayer(&self, config: ReplayerConfig) -> Result<ReplayerConfig, BoxError> {
        (**self).configure_replayer(config)
    }

    fn run_replayer<'a>(
        &'a self,
        histories: ReplayHistories,
        next: ReplayNext<'a>,
    ) -> BoxFuture<'a, Result<Vec<ReplayResult>, BoxError>> {
        (**self).run_replayer(histories, next)
    }
}

/// The worker side of a plugin that implements both [`WorkerPlugin`] and
/// [`ClientPlugin`](trellis_client::ClientPlugin): what its
/// [`worker_side`](trellis_client::ClientPlugin::worker_side) returns, so the plugin
/// propagates from a client to its workers.
pub fn worker_side<P: WorkerPlugin>(plugin: Arc<P>) -> Arc<dyn Any + Send + Sync> {
    Arc::new(WorkerSide(plugin))
}

struct WorkerSide(Arc<dyn WorkerPlugin>);

/// A plugin as a worker holds it.
pub(crate) type SharedPlugin = Arc<dyn WorkerPlugin>;

/// The plugins of a worker: the client's (those with a worker side) then the worker's own,
/// each instance once.
pub(crate) fn worker_plugins(
    propagated: &[PropagatedPlugin],
    own: &[SharedPlugin],
) -> Vec<SharedPlugin> {
    let mut seen: HashSet<usize> = HashSet::new();
    let mut names: HashSet<String> = HashSet::new();
    let mut out: Vec<SharedPlugin> = Vec::new();
    let from_client = propagated.iter().filter_map(|p| {
        let side = p.worker_side.clone().downcast::<WorkerSide>().ok()?;
        Some((p.instance_key, side.0.clone()))
    });
    let own = own.iter().map(|p| (p.instance_key(), p.clone()));
    for (key, plugin) in from_client.chain(own) {
        if !seen.insert(key) {
            tracing::warn!(
                plugin = plugin.name(),
                "the same plugin instance reached this worker twice (from its client and again on the worker); it is applied once"
            );
            continue;
        }
        if !names.insert(plugin.name().to_owned()) {
            tracing::warn!(
                plugin = plugin.name(),
                "two instances of the same plugin are applied to this worker; what they add may run twice"
            );
        }
        out.push(plugin);
    }
    out
}

/// Wraps a hook's error so it names the plugin and the hook, unless it already is a worker
/// error (from inside the chain, or built by the plugin on purpose).
pub(crate) fn named(plugin: &str, hook: &'static str, err: BoxError) -> WorkerError {
    match err.downcast::<WorkerError>() {
        Ok(e) => *e,
        Err(cause) => WorkerError::Plugin {
            plugin: plugin.to_owned(),
            hook,
            cause,
        },
    }
}

/// The worker error that crossed a hook chain (every level names its errors, so the outermost
/// one always is a worker error).
pub(crate) fn unbox(err: BoxError) -> WorkerError {
    match err.downcast::<WorkerError>() {
        Ok(e) => *e,
        Err(cause) => WorkerError::Plugin {
            plugin: "unknown".to_owned(),
            hook: "a hook chain",
            cause,
        },
    }
}

/// The rest of the `run_worker` chain: the plugins inside this one, then the worker's run.
pub struct RunNext<'a> {
    plugins: &'a [SharedPlugin],
}

impl std::fmt::Debug for RunNext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunNext")
            .field("plugins_left", &self.plugins.len())
            .finish()
    }
}

impl<'a> RunNext<'a> {
    pub(crate) fn new(plugins: &'a [SharedPlugin]) -> Self {
        Self { plugins }
    }

    /// Runs the rest of the chain: returns when the worker has stopped.
    pub async fn run(self, worker: Worker) -> Result<(), BoxError> {
        let result = match self.plugins.split_first() {
            None => worker.run_unwrapped().await,
            Some((plugin, rest)) => plugin
                .run_worker(worker, RunNext::new(rest))
                .await
                .map_err(|e| named(plugin.name(), "run_worker", e)),
        };
        result.map_err(Into::into)
    }
}

/// The rest of the `run_replayer` chain: the plugins inside this one, then the replay.
pub struct ReplayNext<'a> {
    plugins: &'a [SharedPlugin],
    config: &'a ReplayerConfig,
}

impl std::fmt::Debug for ReplayNext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayNext")
            .field("plugins_left", &self.plugins.len())
            .finish()
    }
}

impl<'a> ReplayNext<'a> {
    pub(crate) fn new(plugins: &'a [SharedPlugin], config: &'a ReplayerConfig) -> Self {
        Self { plugins, config }
    }

    /// The replayer's configuration (after every plugin's `configure_replayer`).
    pub fn config(&self) -> &ReplayerConfig {
        self.config
    }

    /// Runs the rest of the chain: replays `histories` and returns their results.
    pub async fn run(
        self,
        histories: impl Into<ReplayHistories>,
    ) -> Result<Vec<ReplayResult>, BoxError> {
        let histories = histories.into();
        let result = match self.plugins.split_first() {
            None => crate::replay::replay_histories(self.config, histories).await,
            Some((plugin, rest)) => plugin
                .run_replayer(histories, ReplayNext::new(rest, self.config))
                .await
                .map_err(|e| named(plugin.name(), "run_replayer", e)),
        };
        result.map_err(Into::into)
    }
}

/// An interceptor that may serve clients, workers, or both — e.g. a tracing interceptor. Given
/// to a plugin, it is applied to the client by the client's `configure_client` and to a worker
/// by its `configure_worker`, so it runs exactly once per call on each side, wherever the plugin
/// is registered.
pub trait Interceptor: Send + Sync + 'static {
    /// Adds the interceptor's client layers (call layers, gRPC layers).
    fn intercept_client(&self, config: ClientConfig) -> ClientConfig {
        config
    }

    /// Adds the interceptor's worker layers (activity, workflow inbound/outbound). Also used
    /// for replayers, which run the workflow layers.
    fn intercept_worker(&self, config: WorkerConfig) -> WorkerConfig {
        config
    }
}

impl<I: Interceptor + ?Sized> Interceptor for Arc<I> {
    fn intercept_client(&self, config: ClientConfig) -> ClientConfig {
        (**self).intercept_client(config)
    }

    fn intercept_worker(&self, config: WorkerConfig) -> WorkerConfig {
        (**self).intercept_worker(config)
    }
}
