//! Replaying recorded histories against the current workflow code, on core's replay worker.
//!
//! This is the machinery under `trellis-replayer`'s `Replayer` (and the types a worker plugin's
//! replayer hooks see). A history replays clean when the current code issues the same commands
//! the history recorded; otherwise the result says what differed.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use temporalio_common::worker::WorkerTaskTypes;
use temporalio_sdk_core::replay::{HistoryForReplay, HistoryInfo, ReplayWorkerInput};
use temporalio_sdk_core::{
    CoreRuntime, PollError, RuntimeOptions, WorkerConfig as CoreWorkerConfig,
    WorkerVersioningStrategy, init_replay_worker,
};
use trellis_converter::DataConverter;
use trellis_core_proto::History;
use trellis_core_proto::api::history::v1::history_event::Attributes;
use trellis_core_proto::coresdk::workflow_activation::{
    remove_from_cache::EvictionReason, workflow_activation_job,
};
use trellis_core_proto::coresdk::workflow_completion::{
    WorkflowActivationCompletion, workflow_activation_completion,
};

use crate::error::WorkerError;
use crate::plugin::{ReplayNext, SharedPlugin, WorkerPlugin, named, unbox};
use crate::registry::WorkflowRegistry;
use crate::worker::{WorkerConfig, activate_with_codecs};
use crate::workflow::thread::{ThreadSetup, WorkflowThread};

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
    /// outermost), one result per history in input order. Call on a configuration that went
    /// through [`ReplayerConfig::configure`].
    pub async fn replay(
        &self,
        histories: Vec<ReplayHistory>,
    ) -> Result<Vec<ReplayResult>, WorkerError> {
        ReplayNext::new(&self.plugins, self)
            .run(histories)
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

/// Checks a history can be replayed at all, before it reaches the engine.
pub fn validate_history(history: &History) -> Result<(), String> {
    let first = history.events.first().ok_or("the history has no events")?;
    if !matches!(
        first.attributes,
        Some(Attributes::WorkflowExecutionStartedEventAttributes(_))
    ) {
        return Err(format!(
            "the first event is {:?}, not WorkflowExecutionStarted",
            first.event_type()
        ));
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
    HistoryInfo::new_from_history(history, None)
        .map(|_| ())
        .map_err(|e| format!("{e:#}"))
}

/// Replays `histories` with `config`, returning one result per history in input order.
pub async fn replay_histories(
    config: &ReplayerConfig,
    histories: Vec<ReplayHistory>,
) -> Result<Vec<ReplayResult>, WorkerError> {
    let (workflows, _) = config.worker.registries()?;
    if workflows.is_empty() {
        return Err(WorkerError::Config(
            "a replayer needs at least one workflow".into(),
        ));
    }
    let workflows = Arc::new(workflows);
    let mut results: Vec<Option<ReplayResult>> = vec![None; histories.len()];
    let mut lanes: Vec<Vec<(usize, ReplayHistory)>> = vec![Vec::new(); config.concurrency.max(1)];
    let mut next_lane = 0;
    let mut seen_runs: HashMap<String, usize> = HashMap::new();
    for (i, h) in histories.into_iter().enumerate() {
        let workflow_type = h.workflow_type().unwrap_or_default();
        let invalid = match &h.load_error {
            Some(e) => Err(e.clone()),
            None => validate_history(&h.history),
        };
        if let Err(message) = invalid {
            results[i] = Some(ReplayResult {
                source: h.source,
                workflow_id: h.workflow_id,
                workflow_type,
                outcome: ReplayOutcome::InvalidHistory { message },
            });
            continue;
        }
        let mut h = h;
        // The engine identifies a replayed run by its original run id and would merge two
        // histories that share one (the same history twice, or copies): give repeats a
        // distinct id. Workflow code never matches commands on the run id.
        if let Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) = h
            .history
            .events
            .first_mut()
            .and_then(|e| e.attributes.as_mut())
        {
            let n = seen_runs
                .entry(a.original_execution_run_id.clone())
                .or_insert(0usize);
            if *n > 0 {
                a.original_execution_run_id = format!("{}-replay-{n}", a.original_execution_run_id);
            }
            *n += 1;
        }
        lanes[next_lane].push((i, h));
        next_lane = (next_lane + 1) % lanes.len();
    }
    let stop = tokio_util::sync::CancellationToken::new();
    if config.fail_fast && results.iter().flatten().any(|r| !r.is_ok()) {
        stop.cancel();
    }
    let runs = lanes
        .into_iter()
        .filter(|l| !l.is_empty())
        .map(|lane| replay_lane(config, workflows.clone(), lane, stop.clone()));
    for lane_results in futures::future::join_all(runs).await {
        for (i, r) in lane_results? {
            results[i] = Some(r);
        }
    }
    Ok(results.into_iter().flatten().collect())
}

struct Fed {
    index: usize,
    source: String,
    workflow_id: String,
    workflow_type: String,
}

async fn replay_lane(
    config: &ReplayerConfig,
    workflows: Arc<WorkflowRegistry>,
    lane: Vec<(usize, ReplayHistory)>,
    stop: tokio_util::sync::CancellationToken,
) -> Result<Vec<(usize, ReplayResult)>, WorkerError> {
    let init_err = |cause: String| WorkerError::Init {
        task_queue: config.worker.task_queue.clone(),
        cause,
    };
    // One workflow thread per lane: histories of different lanes may share run ids.
    let thread = WorkflowThread::spawn(ThreadSetup {
        registry: workflows,
        converter: config.data_converter.clone(),
        namespace: config.namespace.clone(),
        task_queue: config.worker.task_queue.clone(),
        layers: config.worker.workflow_layers().clone(),
    })
    .map_err(|e| init_err(format!("cannot start the workflow thread: {e}")))?;
    let _runtime = CoreRuntime::new_assume_tokio(
        RuntimeOptions::builder()
            .heartbeat_interval(None)
            .build()
            .map_err(init_err)?,
    )
    .map_err(|e| init_err(format!("{e:#}")))?;
    let core_config = CoreWorkerConfig::builder()
        .namespace(config.namespace.clone())
        .task_queue(config.worker.task_queue.clone())
        .task_types(WorkerTaskTypes::workflow_only())
        .versioning_strategy(WorkerVersioningStrategy::None {
            build_id: "trellis-replay".to_owned(),
        })
        .build()
        .map_err(init_err)?;
    let fed: Arc<Mutex<VecDeque<Fed>>> = Arc::default();
    let feed = fed.clone();
    let feed_stop = stop.clone();
    // With fail-fast, the next history is released only once the previous one has a result,
    // so nothing after the first failure is replayed.
    let (done_tx, done_rx) = tokio::sync::watch::channel(0usize);
    let gate = config.fail_fast;
    let stream = futures::stream::iter(lane.into_iter().enumerate())
        .then(move |(k, item)| {
            let mut done_rx = done_rx.clone();
            async move {
                if gate {
                    let _ = done_rx.wait_for(|done| *done >= k).await;
                }
                item
            }
        })
        .take_while(move |_| futures::future::ready(!feed_stop.is_cancelled()))
        .map(move |(index, h)| {
            feed.lock().expect("replay feed poisoned").push_back(Fed {
                index,
                workflow_type: h.workflow_type().unwrap_or_default(),
                source: h.source,
                workflow_id: h.workflow_id.clone(),
            });
            HistoryForReplay::new(h.history, h.workflow_id)
        });
    let core = init_replay_worker(ReplayWorkerInput::new(core_config, stream))
        .map_err(|e| init_err(format!("{e:#}")))?;

    let mut active: HashMap<String, (Fed, Option<ReplayOutcome>)> = HashMap::new();
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
        let run_id = act.run_id.clone();
        let eviction = act.jobs.iter().find_map(|j| match &j.variant {
            Some(workflow_activation_job::Variant::RemoveFromCache(r)) => Some(r.clone()),
            _ => None,
        });
        if let Some(ev) = eviction {
            if let Some((fed, mut outcome)) = active.remove(&run_id) {
                if ev.reason() == EvictionReason::Nondeterminism && outcome.is_none() {
                    let message = engine_message(&ev.message);
                    outcome = Some(ReplayOutcome::Nondeterminism {
                        event_id: event_id_in(&message),
                        message,
                    });
                }
                let outcome = outcome.unwrap_or(ReplayOutcome::Ok);
                if config.fail_fast && outcome != ReplayOutcome::Ok {
                    stop.cancel();
                }
                done_tx.send_modify(|n| *n += 1);
                done.push((
                    fed.index,
                    ReplayResult {
                        source: fed.source,
                        workflow_id: fed.workflow_id,
                        workflow_type: fed.workflow_type,
                        outcome,
                    },
                ));
            }
            // The workflow thread drops the run and acknowledges.
            let completion = thread
                .activate(act)
                .await
                .unwrap_or_else(|| WorkflowActivationCompletion::empty(run_id));
            let _ = core.complete_workflow_activation(completion).await;
            continue;
        }
        let is_init = act.jobs.iter().any(|j| {
            matches!(
                j.variant,
                Some(workflow_activation_job::Variant::InitializeWorkflow(_))
            )
        });
        if is_init && !active.contains_key(&run_id) {
            let next = fed.lock().expect("replay feed poisoned").pop_front();
            if let Some(f) = next {
                active.insert(run_id.clone(), (f, None));
            }
        }
        let mut completion = activate_with_codecs(&thread, &config.data_converter, act).await;
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
    Ok(done)
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
