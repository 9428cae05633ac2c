//! Replaying recorded histories against the current workflow code, on core's replay worker.
//!
//! This is the machinery under `trellis-replayer`'s `Replayer` (and the types a worker plugin's
//! replayer hooks see). A history replays clean when the current code issues the same commands
//! the history recorded; otherwise the result says what differed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use futures::stream::{BoxStream, Stream, StreamExt};
use temporalio_common::worker::WorkerTaskTypes;
use temporalio_sdk_core::replay::{HistoryForReplay, ReplayWorkerInput};
use temporalio_sdk_core::{
    CoreRuntime, PollError, RuntimeOptions, WorkerConfig as CoreWorkerConfig,
    WorkerVersioningStrategy, init_replay_worker,
};
use tokio_util::sync::CancellationToken;
use trellis_converter::DataConverter;
use trellis_core_proto::History;
use trellis_core_proto::api::enums::v1::EventType;
use trellis_core_proto::api::history::v1::history_event::Attributes;
use trellis_core_proto::coresdk::workflow_activation::{
    remove_from_cache::EvictionReason, workflow_activation_job,
};
use trellis_core_proto::coresdk::workflow_completion::{
    WorkflowActivationCompletion, workflow_activation_completion,
};

use crate::error::WorkerError;
use crate::plugin::{ReplayNext, SharedPlugin, WorkerPlugin, named, unbox};
use crate::worker::{WorkerConfig, activate_with_codecs};
use crate::workflow::thread::{ThreadSetup, WorkflowRuns};

/// What to replay with: the workflows (and workflow interceptors) of a [`WorkerConfig`], a data
/// converter (to decode payloads of histories written through codecs), plugins, and how to run.
#[derive(Clone)]
pub struct ReplayerConfig {
    /// The workflows and workflow layers to replay with (activities are not used).
    pub worker: WorkerConfig,
    /// The data converter; it must decode what the histories' writers encoded.
    pub data_converter: DataConverter,
    /// The namespace reported to workflow code.
    pub namespace: String,
    /// Stop at the first history that does not replay clean.
    pub fail_fast: bool,
    /// How many histories replay at once.
    pub concurrency: usize,
    plugins: Vec<SharedPlugin>,
    configured: bool,
}

impl std::fmt::Debug for ReplayerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayerConfig")
            .field("worker", &self.worker)
            .field("data_converter", &self.data_converter)
            .field("namespace", &self.namespace)
            .field("fail_fast", &self.fail_fast)
            .field("concurrency", &self.concurrency)
            .field("plugins", &self.plugin_names())
            .finish()
    }
}

impl ReplayerConfig {
    /// Replays with the workflows registered on `worker`.
    pub fn new(worker: WorkerConfig) -> Self {
        Self {
            worker,
            data_converter: DataConverter::default(),
            namespace: "default".to_owned(),
            fail_fast: false,
            concurrency: 1,
            plugins: Vec::new(),
            configured: false,
        }
    }

    /// Adds a worker plugin (after those already added: the first configures first and wraps
    /// outermost). Nothing propagates to a replayer from a client: give it its plugins here.
    pub fn plugin(mut self, plugin: impl WorkerPlugin) -> Self {
        self.plugins.push(Arc::new(plugin));
        self
    }

    /// The plugins, in order, by name.
    pub fn plugin_names(&self) -> Vec<&str> {
        self.plugins.iter().map(|p| p.name()).collect()
    }

    /// Runs every plugin's `configure_replayer` in order (once: a configuration that went
    /// through it already is not configured again), then checks there is a workflow to
    /// replay. Registrations a plugin makes are reported as coming from it.
    pub fn configure(self) -> Result<Self, WorkerError> {
        let plugins = self.plugins.clone();
        let todo = if self.configured {
            &[][..]
        } else {
            &plugins[..]
        };
        let mut config = self;
        for plugin in todo {
            config.worker.source = Some(format!("plugin {:?}", plugin.name()));
            config = plugin
                .configure_replayer(config)
                .map_err(|e| named(plugin.name(), "configure_replayer", e))?;
        }
        config.worker.source = None;
        config.plugins = plugins;
        config.configured = true;
        let (workflows, _) = config.worker.registries()?;
        if workflows.is_empty() {
            return Err(WorkerError::Config(
                "a replayer needs at least one workflow, from its configuration or its plugins"
                    .into(),
            ));
        }
        Ok(config)
    }

    /// Replays `histories` inside the plugins' `run_replayer` chain (the first plugin
    /// outermost), one result per history in input order, taking the histories one at a time
    /// (see [`ReplayHistories`]). Call on a configuration that went through
    /// [`ReplayerConfig::configure`].
    pub async fn replay(
        &self,
        histories: impl Into<ReplayHistories>,
    ) -> Result<Vec<ReplayResult>, WorkerError> {
        ReplayNext::new(&self.plugins, self)
            .run(histories.into())
            .await
            .map_err(unbox)
    }

    /// Sets the data converter.
    pub fn data_converter(mut self, data_converter: DataConverter) -> Self {
        self.data_converter = data_converter;
        self
    }

    /// Stops at the first history that does not replay clean.
    pub fn fail_fast(mut self, fail_fast: bool) -> Self {
        self.fail_fast = fail_fast;
        self
    }

    /// Replays up to `n` histories at once (at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }
}

/// One history to replay.
#[derive(Clone, Debug)]
pub struct ReplayHistory {
    /// Where it came from (a file name, "server", …), for results and errors.
    pub source: String,
    /// The workflow id it belongs to.
    pub workflow_id: String,
    /// The events.
    pub history: History,
    /// Why the history could not be loaded, when it could not (it then replays as an invalid
    /// history with this message).
    pub load_error: Option<String>,
}

impl ReplayHistory {
    /// A history with its source and workflow id.
    pub fn new(
        source: impl Into<String>,
        workflow_id: impl Into<String>,
        history: History,
    ) -> Self {
        Self {
            source: source.into(),
            workflow_id: workflow_id.into(),
            history,
            load_error: None,
        }
    }

    /// A history that could not be loaded from `source`, for the reason given.
    pub fn unreadable(
        source: impl Into<String>,
        workflow_id: impl Into<String>,
        error: impl Into<String>,
    ) -> Self {
        Self {
            load_error: Some(error.into()),
            ..Self::new(source, workflow_id, History::default())
        }
    }

    /// The workflow type recorded in the first event, if any.
    pub fn workflow_type(&self) -> Option<String> {
        self.history
            .events
            .first()
            .and_then(|e| match &e.attributes {
                Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) => {
                    a.workflow_type.as_ref().map(|t| t.name.clone())
                }
                _ => None,
            })
    }
}

/// The histories of one replay, taken one at a time.
///
/// A replay takes the next history only when the engine is ready for it (one at a time per
/// lane of [`ReplayerConfig::concurrency`]), so a source that reads, decodes or fetches each
/// history when its turn comes keeps only the histories being replayed in memory, however many
/// there are: build one with [`ReplayHistories::lazy`] over an iterator (e.g. file paths mapped
/// to histories) or [`ReplayHistories::new`] over any stream. A `Vec<ReplayHistory>` or a single
/// [`ReplayHistory`] converts with `into()`.
///
/// It is a [`Stream`] of [`ReplayHistory`], so a plugin's `run_replayer` hook can look at or
/// change each history on its way: `ReplayHistories::new(histories.map(|h| ...))`.
///
/// ```
/// use trellis_worker::replay::{ReplayHistories, ReplayHistory};
/// # fn load(path: &str) -> ReplayHistory { ReplayHistory::unreadable(path, path, "demo") }
///
/// let paths = vec!["a.pb", "b.pb"];
/// // Nothing is read yet: each history is loaded when the replay gets to it.
/// let histories = ReplayHistories::lazy(paths.into_iter().map(load));
/// ```
pub struct ReplayHistories {
    stream: BoxStream<'static, ReplayHistory>,
}

impl ReplayHistories {
    /// Histories from a stream, polled for the next one when the replay is ready for it.
    pub fn new(stream: impl Stream<Item = ReplayHistory> + Send + 'static) -> Self {
        Self {
            stream: stream.boxed(),
        }
    }

    /// Histories from an iterator, advanced for the next one when the replay is ready for it
    /// (on a replay thread: reading a file there is fine).
    pub fn lazy<I>(histories: I) -> Self
    where
        I: IntoIterator<Item = ReplayHistory>,
        I::IntoIter: Send + 'static,
    {
        Self::new(futures::stream::iter(histories))
    }

    /// No histories.
    pub fn empty() -> Self {
        Self::new(futures::stream::empty())
    }
}

impl Stream for ReplayHistories {
    type Item = ReplayHistory;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<ReplayHistory>> {
        self.stream.poll_next_unpin(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

impl std::fmt::Debug for ReplayHistories {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayHistories")
            .field("size_hint", &self.stream.size_hint())
            .finish()
    }
}

impl From<Vec<ReplayHistory>> for ReplayHistories {
    fn from(histories: Vec<ReplayHistory>) -> Self {
        Self::lazy(histories)
    }
}

impl From<ReplayHistory> for ReplayHistories {
    fn from(history: ReplayHistory) -> Self {
        Self::lazy(std::iter::once(history))
    }
}

impl FromIterator<ReplayHistory> for ReplayHistories {
    /// Collects the histories first; use [`ReplayHistories::lazy`] to take them one at a time.
    fn from_iter<I: IntoIterator<Item = ReplayHistory>>(iter: I) -> Self {
        Self::from(iter.into_iter().collect::<Vec<_>>())
    }
}

/// How one history replayed.
#[derive(Clone, Debug, PartialEq)]
pub enum ReplayOutcome {
    /// The code issued exactly the recorded commands.
    Ok,
    /// The code issued different commands than the history recorded.
    Nondeterminism {
        /// The history event at which the difference showed, when the engine names one.
        event_id: Option<i64>,
        /// The engine's description: the expected event and the command the code issued.
        message: String,
    },
    /// The workflow code failed the task (panic or error) while replaying.
    WorkflowTaskFailed {
        /// The failure message.
        message: String,
    },
    /// The history could not be replayed at all (empty, truncated, corrupt).
    InvalidHistory {
        /// What is wrong with it.
        message: String,
    },
}

/// The result of replaying one history.
#[derive(Clone, Debug)]
pub struct ReplayResult {
    /// Where the history came from.
    pub source: String,
    /// The workflow id.
    pub workflow_id: String,
    /// The workflow type, when the history names it.
    pub workflow_type: String,
    /// How it went.
    pub outcome: ReplayOutcome,
}

impl ReplayResult {
    /// Whether the history replayed clean.
    pub fn is_ok(&self) -> bool {
        self.outcome == ReplayOutcome::Ok
    }
}

impl std::fmt::Display for ReplayResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = format!(
            "{} (workflow {} of type {})",
            self.source, self.workflow_id, self.workflow_type
        );
        match &self.outcome {
            ReplayOutcome::Ok => write!(f, "{what}: replayed clean"),
            ReplayOutcome::Nondeterminism { event_id, message } => {
                write!(f, "{what}: non-determinism")?;
                if let Some(id) = event_id {
                    write!(f, " at event {id}")?;
                }
                write!(f, ": {message}")
            }
            ReplayOutcome::WorkflowTaskFailed { message } => {
                write!(f, "{what}: workflow task failed: {message}")
            }
            ReplayOutcome::InvalidHistory { message } => {
                write!(f, "{what}: invalid history: {message}")
            }
        }
    }
}

/// Checks a history can be replayed at all, before it reaches the engine: the shape the
/// engine requires (it does not report a malformed history, it stops), checked without copying
/// the events.
pub fn validate_history(history: &History) -> Result<(), String> {
    let first = history.events.first().ok_or("the history has no events")?;
    let Some(Attributes::WorkflowExecutionStartedEventAttributes(started)) = &first.attributes
    else {
        return Err(format!(
            "the first event is {:?}, not WorkflowExecutionStarted",
            first.event_type()
        ));
    };
    if started.workflow_type.is_none() {
        return Err("the WorkflowExecutionStarted event names no workflow type".into());
    }
    for (i, e) in history.events.iter().enumerate() {
        if e.event_id != i as i64 + 1 {
            return Err(format!(
                "event ids are not consecutive: event #{} has id {}",
                i + 1,
                e.event_id
            ));
        }
        if e.attributes.is_none() {
            return Err(format!("event {} has no attributes", e.event_id));
        }
    }
    // A workflow task that started ends the history, or is followed by its completion, its
    // failure or timeout, or the end of the execution.
    for pair in history.events.windows(2) {
        if pair[0].event_type() == EventType::WorkflowTaskStarted
            && !matches!(
                pair[1].event_type(),
                EventType::WorkflowTaskCompleted
                    | EventType::WorkflowTaskFailed
                    | EventType::WorkflowTaskTimedOut
                    | EventType::WorkflowExecutionTerminated
                    | EventType::WorkflowExecutionTimedOut
            )
        {
            return Err(format!(
                "the workflow task started at event {} is followed by {:?} (event {}), not by \
                 its completion, failure or timeout",
                pair[0].event_id,
                pair[1].event_type(),
                pair[1].event_id
            ));
        }
    }
    Ok(())
}

/// Replays `histories` with `config`, returning one result per history, in the order the
/// histories came. Histories are taken from the source one at a time, as the engine gets ready
/// for them (see [`ReplayHistories`]); with `fail_fast`, none is taken after the first failure.
pub async fn replay_histories(
    config: &ReplayerConfig,
    histories: impl Into<ReplayHistories>,
) -> Result<Vec<ReplayResult>, WorkerError> {
    let (workflows, _) = config.worker.registries()?;
    if workflows.is_empty() {
        return Err(WorkerError::Config(
            "a replayer needs at least one workflow".into(),
        ));
    }
    let workflows = Arc::new(workflows);
    let stop = CancellationToken::new();
    // Dropping the replay (e.g. a timeout around it) stops the lanes taking more histories.
    let _stop_on_drop = stop.clone().drop_guard();
    let source = Arc::new(Source {
        feed: futures::lock::Mutex::new(Feed {
            histories: histories.into(),
            next_index: 0,
            seen_runs: HashMap::new(),
        }),
        invalid: Mutex::new(Vec::new()),
        stop: stop.clone(),
        fail_fast: config.fail_fast,
    });
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    let span = tracing::Span::current();
    let mut lanes = Vec::new();
    for n in 0..config.concurrency.max(1) {
        let lane = Lane {
            setup: ThreadSetup {
                registry: workflows.clone(),
                converter: config.data_converter.clone(),
                namespace: config.namespace.clone(),
                task_queue: config.worker.task_queue.clone(),
                layers: config.worker.workflow_layers().clone(),
            },
            source: source.clone(),
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (dispatch, span) = (dispatch.clone(), span.clone());
        let task_queue = config.worker.task_queue.clone();
        // Each lane owns a thread: the engine's replay worker and the workflow runs share its
        // single-threaded runtime, so an activation is handled where it is polled, with no
        // hand-off to another thread.
        std::thread::Builder::new()
            .name(format!("trellis-replay-{n}"))
            .spawn(move || {
                let _dispatch = tracing::dispatcher::set_default(&dispatch);
                let _span = span.enter();
                // Timers only: nothing in a replay does I/O, and without an I/O driver a
                // wake-up from the engine's thread is a futex wake, not an eventfd write.
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .map_err(|e| WorkerError::Init {
                        task_queue,
                        cause: format!("cannot start the replay runtime: {e}"),
                    })
                    .and_then(|rt| rt.block_on(replay_lane(lane)));
                let _ = tx.send(result);
            })
            .map_err(|e| WorkerError::Init {
                task_queue: config.worker.task_queue.clone(),
                cause: format!("cannot start a replay thread: {e}"),
            })?;
        lanes.push(rx);
    }
    let mut results = Vec::new();
    let mut error = None;
    for outcome in futures::future::join_all(lanes).await {
        match outcome {
            Ok(Ok(done)) => results.extend(done),
            Ok(Err(e)) => {
                error.get_or_insert(e);
            }
            Err(_) => {
                error.get_or_insert(WorkerError::Init {
                    task_queue: config.worker.task_queue.clone(),
                    cause: "a replay thread stopped without a result".into(),
                });
            }
        }
    }
    if let Some(e) = error {
        return Err(e);
    }
    results.append(&mut source.invalid.lock().expect("replay results poisoned"));
    results.sort_by_key(|(index, _)| *index);
    Ok(results.into_iter().map(|(_, r)| r).collect())
}

/// What the lanes of one replay share: the histories still to take, and the results of those
/// that never reached the engine.
struct Source {
    feed: futures::lock::Mutex<Feed>,
    invalid: Mutex<Vec<(usize, ReplayResult)>>,
    stop: CancellationToken,
    fail_fast: bool,
}

struct Feed {
    histories: ReplayHistories,
    next_index: usize,
    /// How often each original run id was handed out.
    seen_runs: HashMap<String, usize>,
}

impl Source {
    /// The next history that can go to the engine, with its position in the source. Histories
    /// that cannot be replayed get their result here.
    async fn next_valid(&self) -> Option<(usize, ReplayHistory)> {
        let mut feed = self.feed.lock().await;
        loop {
            if self.stop.is_cancelled() {
                return None;
            }
            let mut h = feed.histories.next().await?;
            let index = feed.next_index;
            feed.next_index += 1;
            let checked = match &h.load_error {
                Some(e) => Err(e.clone()),
                None => validate_history(&h.history),
            };
            if let Err(message) = checked {
                self.invalid.lock().expect("replay results poisoned").push((
                    index,
                    ReplayResult {
                        workflow_type: h.workflow_type().unwrap_or_default(),
                        source: h.source,
                        workflow_id: h.workflow_id,
                        outcome: ReplayOutcome::InvalidHistory { message },
                    },
                ));
                if self.fail_fast {
                    self.stop.cancel();
                }
                continue;
            }
            // The engine identifies a replayed run by its original run id and would merge two
            // histories that share one (the same history twice, or copies): give repeats a
            // distinct id. Workflow code never matches commands on the run id.
            if let Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) = h
                .history
                .events
                .first_mut()
                .and_then(|e| e.attributes.as_mut())
            {
                let n = match feed.seen_runs.get_mut(&a.original_execution_run_id) {
                    Some(n) => n,
                    None => feed
                        .seen_runs
                        .entry(a.original_execution_run_id.clone())
                        .or_insert(0),
                };
                if *n > 0 {
                    a.original_execution_run_id =
                        format!("{}-replay-{n}", a.original_execution_run_id);
                }
                *n += 1;
            }
            return Some((index, h));
        }
    }
}

struct Lane {
    setup: ThreadSetup,
    source: Arc<Source>,
}

struct Fed {
    index: usize,
    source: String,
    workflow_id: String,
    workflow_type: String,
}

impl Fed {
    /// This history's result, with its position in the source.
    fn result(self, outcome: ReplayOutcome) -> (usize, ReplayResult) {
        (
            self.index,
            ReplayResult {
                source: self.source,
                workflow_id: self.workflow_id,
                workflow_type: self.workflow_type,
                outcome,
            },
        )
    }
}

async fn replay_lane(lane: Lane) -> Result<Vec<(usize, ReplayResult)>, WorkerError> {
    let Lane { setup, source } = lane;
    let namespace = setup.namespace.clone();
    let task_queue = setup.task_queue.clone();
    let converter = setup.converter.clone();
    let init_err = |cause: String| WorkerError::Init {
        task_queue: task_queue.clone(),
        cause,
    };
    // The lane's runs live here and are activated in place. Each lane has its own: histories of
    // different lanes may share run ids.
    let mut runs = WorkflowRuns::new(setup);
    let _runtime = CoreRuntime::new_assume_tokio(
        RuntimeOptions::builder()
            .heartbeat_interval(None)
            .build()
            .map_err(init_err)?,
    )
    .map_err(|e| init_err(format!("{e:#}")))?;
    let core_config = CoreWorkerConfig::builder()
        .namespace(namespace)
        .task_queue(task_queue.clone())
        .task_types(WorkerTaskTypes::workflow_only())
        .versioning_strategy(WorkerVersioningStrategy::None {
            build_id: "trellis-replay".to_owned(),
        })
        .build()
        .map_err(init_err)?;
    let fed: Arc<Mutex<VecDeque<Fed>>> = Arc::default();
    // With fail-fast, the next history is taken only once the previous one has a result, so
    // nothing after the first failure is replayed.
    let (done_tx, done_rx) = tokio::sync::watch::channel(0usize);
    let fail_fast = source.fail_fast;
    let stop = source.stop.clone();
    let feeder = LaneFeeder {
        source,
        fed: fed.clone(),
        taken: 0,
        done_rx,
    };
    // The engine pulls from this stream only when it is ready for the next history.
    let stream = futures::stream::unfold(feeder, |mut f| async move {
        if f.source.fail_fast {
            let taken = f.taken;
            let _ = f.done_rx.wait_for(|done| *done >= taken).await;
        }
        let Some((index, h)) = f.source.next_valid().await else {
            // The engine shuts down as soon as the stream ends, and may do so before the last
            // run's eviction reaches this lane (its result would be lost): end the stream only
            // once every history this lane took has its result.
            let taken = f.taken;
            let _ = f.done_rx.wait_for(|done| *done >= taken).await;
            return None;
        };
        f.taken += 1;
        f.fed.lock().expect("replay feed poisoned").push_back(Fed {
            index,
            workflow_type: h.workflow_type().unwrap_or_default(),
            source: h.source,
            workflow_id: h.workflow_id.clone(),
        });
        Some((HistoryForReplay::new(h.history, h.workflow_id), f))
    });
    let core = init_replay_worker(ReplayWorkerInput::new(core_config, stream))
        .map_err(|e| init_err(format!("{e:#}")))?;

    let mut active: HashMap<String, (Fed, Option<ReplayOutcome>)> = HashMap::new();
    // Runs that have their result (an engine may evict a run more than once).
    let mut finished: HashSet<String> = HashSet::new();
    let mut done = Vec::new();
    loop {
        let act = match core.poll_workflow_activation().await {
            Ok(a) => a,
            Err(PollError::ShutDown) => break,
            Err(e) => {
                return Err(WorkerError::Poll {
                    what: "replay activations",
                    cause: e.to_string(),
                });
            }
        };
        let eviction = act.jobs.iter().find_map(|j| match &j.variant {
            Some(workflow_activation_job::Variant::RemoveFromCache(r)) => Some(r),
            _ => None,
        });
        if let Some(ev) = eviction {
            let evicted = match active.remove(&act.run_id) {
                Some(run) => Some(run),
                // A run that never started here: the engine refused the history it was handed
                // (the oldest one still waiting, as a lane replays one at a time). A second
                // eviction of a finished run is only acknowledged.
                None if finished.insert(act.run_id.clone()) => {
                    let message = format!("the engine refused it: {}", engine_message(&ev.message));
                    fed.lock()
                        .expect("replay feed poisoned")
                        .pop_front()
                        .map(|f| (f, Some(ReplayOutcome::InvalidHistory { message })))
                }
                None => None,
            };
            if let Some((fed, mut outcome)) = evicted {
                finished.insert(act.run_id.clone());
                if ev.reason() == EvictionReason::Nondeterminism && outcome.is_none() {
                    let message = engine_message(&ev.message);
                    outcome = Some(ReplayOutcome::Nondeterminism {
                        event_id: event_id_in(&message),
                        message,
                    });
                }
                let outcome = outcome.unwrap_or(ReplayOutcome::Ok);
                if fail_fast && outcome != ReplayOutcome::Ok {
                    stop.cancel();
                }
                done_tx.send_modify(|n| *n += 1);
                done.push(fed.result(outcome));
            }
            // Drops the run and acknowledges.
            let completion = runs.activate(act);
            let _ = core.complete_workflow_activation(completion).await;
            continue;
        }
        let is_init = act.jobs.iter().any(|j| {
            matches!(
                j.variant,
                Some(workflow_activation_job::Variant::InitializeWorkflow(_))
            )
        });
        let run_id = act.run_id.clone();
        if is_init && !active.contains_key(&run_id) {
            let next = fed.lock().expect("replay feed poisoned").pop_front();
            if let Some(f) = next {
                active.insert(run_id.clone(), (f, None));
            }
        }
        let mut completion = activate_with_codecs(&converter, act, |a| {
            std::future::ready(Some(runs.activate(a)))
        })
        .await;
        // A failed task would make the engine hand the same history over again; record the
        // failure and answer with no commands instead (the first problem is the one reported).
        if let Some(workflow_activation_completion::Status::Failed(f)) = &completion.status {
            let message = f
                .failure
                .as_ref()
                .map(|f| f.message.clone())
                .unwrap_or_default();
            if let Some((_, outcome)) = active.get_mut(&run_id)
                && outcome.is_none()
            {
                *outcome = Some(ReplayOutcome::WorkflowTaskFailed { message });
            }
            completion = WorkflowActivationCompletion::empty(run_id);
        }
        let _ = core.complete_workflow_activation(completion).await;
    }
    core.finalize_shutdown().await;
    // Nothing is dropped without a result, even if the engine stops early.
    let never_started: Vec<Fed> = fed
        .lock()
        .expect("replay feed poisoned")
        .drain(..)
        .collect();
    let unfinished = active
        .into_values()
        .chain(never_started.into_iter().map(|f| (f, None)));
    for (f, outcome) in unfinished {
        done.push(f.result(
            outcome.unwrap_or_else(|| ReplayOutcome::WorkflowTaskFailed {
                message: "the replay engine stopped before this history finished replaying".into(),
            }),
        ));
    }
    Ok(done)
}

/// A lane's end of the shared source, as the engine's history stream.
struct LaneFeeder {
    source: Arc<Source>,
    fed: Arc<Mutex<VecDeque<Fed>>>,
    /// Histories this lane has handed to the engine.
    taken: usize,
    done_rx: tokio::sync::watch::Receiver<usize>,
}

/// The engine's own sentence out of an eviction message that wraps it in a debug dump
/// (`… Failure { message: "[TMPRL1100] …", … }`).
fn engine_message(raw: &str) -> String {
    match raw.find("[TMPRL") {
        Some(start) => {
            let rest = &raw[start..];
            let end = rest
                .find("\", ")
                .or_else(|| rest.find('"'))
                .unwrap_or(rest.len());
            rest[..end].replace("\\\"", "\"")
        }
        None => raw.to_owned(),
    }
}

/// The event id in an engine non-determinism message, when it names one.
fn event_id_in(message: &str) -> Option<i64> {
    let lower = message.to_ascii_lowercase();
    for key in ["event id ", "eventid ", "event_id ", "id: ", "with id "] {
        if let Some(pos) = lower.find(key) {
            let digits: String = lower[pos + key.len()..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if let Ok(n) = digits.parse() {
                return Some(n);
            }
        }
    }
    None
}
