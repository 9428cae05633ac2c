//! The API workflow code uses: time, timers, activities, signals, queries, cancellation.
//!
//! Everything here is deterministic: it only reads state that core's activations replay
//! identically, so a workflow run can be rebuilt from its history on any worker.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use futures::future::LocalBoxFuture;
use rand::{Rng, SeedableRng, rngs::SmallRng};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower::ServiceExt;
use trellis_converter::{ConversionError, DataConverter, IntoPayloads};
use trellis_core_proto::Payload;
use trellis_core_proto::api::common::v1::RetryPolicy;
use trellis_core_proto::api::failure::v1::Failure;
use trellis_core_proto::api::sdk::v1::UserMetadata;
use trellis_core_proto::coresdk::activity_result::{ActivityResolution, activity_resolution};
use trellis_core_proto::coresdk::child_workflow::ChildWorkflowResult;
use trellis_core_proto::coresdk::nexus::NexusOperationResult;
use trellis_core_proto::coresdk::workflow_activation::{
    ResolveChildWorkflowExecutionStart, ResolveNexusOperationStart,
    resolve_child_workflow_execution_start, resolve_nexus_operation_start,
};
use trellis_core_proto::coresdk::workflow_commands::{
    ActivityCancellationType, CancelTimer, RequestCancelActivity, RequestCancelLocalActivity,
    ScheduleActivity, ScheduleLocalActivity, SetPatchMarker, StartTimer, WorkflowCommand,
    workflow_command,
};
use trellis_core_proto::time::to_proto_duration;
use trellis_interceptor::LocalBoxService;

use crate::error::{ActivityFailed, ActivityFailedKind, WorkflowError};
use crate::interceptors::{
    StartTimerInput, WorkflowOutbound, WorkflowOutboundResponse, WorkflowOutboundService,
};

pub(crate) type OutboundFuture =
    LocalBoxFuture<'static, Result<WorkflowOutboundResponse, WorkflowError>>;

/// Facts about the running workflow.
#[derive(Debug, Clone)]
pub struct WorkflowInfo {
    /// The namespace.
    pub namespace: String,
    /// The task queue.
    pub task_queue: String,
    /// The workflow type name.
    pub workflow_type: String,
    /// The workflow id.
    pub workflow_id: String,
    /// This run's id.
    pub run_id: String,
    /// The attempt number (1 for the first).
    pub attempt: i32,
    /// When this run's workflow started.
    pub start_time: Option<SystemTime>,
    /// Headers sent with the start request, still encoded.
    pub headers: HashMap<String, Payload>,
    /// The parent workflow's id, for a child workflow.
    pub parent_workflow_id: Option<String>,
    /// The parent workflow's run id, for a child workflow.
    pub parent_run_id: Option<String>,
    /// The run this one continued from (continue-as-new, retry or cron), if any.
    pub continued_from_run_id: Option<String>,
    /// The first run of this workflow execution chain.
    pub first_execution_run_id: String,
    /// The memo the run started with, still encoded.
    pub memo: HashMap<String, Payload>,
    /// The search attributes the run started with, still encoded.
    pub search_attributes: HashMap<String, Payload>,
}

type QueryHandler = Rc<dyn Fn(&[Payload]) -> Result<Payload, String>>;
type DynamicQueryHandler = Rc<dyn Fn(&str, &[Payload]) -> Result<Payload, String>>;

pub(crate) struct Slot<T> {
    pub(crate) result: Option<T>,
    pub(crate) waker: Option<Waker>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self {
            result: None,
            waker: None,
        }
    }
}

impl<T> Slot<T> {
    pub(crate) fn resolve(&mut self, value: T) {
        self.result = Some(value);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

#[derive(Default)]
struct SignalQueue {
    pending: VecDeque<Vec<Payload>>,
    waker: Option<Waker>,
    /// Whether workflow code asked for this name's channel (a dynamic channel takes the
    /// signals of names nobody asked for).
    opened: bool,
}

/// A signal for the dynamic channel: its name and its arguments, still encoded.
type DynamicSignal = (String, Vec<Payload>);

pub(crate) struct RunState {
    /// Sequence numbers are counted per command kind, as in the other core-based SDKs, so
    /// timer and activity ids in histories match theirs (a Python-made history replays here).
    next_timer_seq: u32,
    /// Shared by remote and local activities, as in the Python SDK.
    next_activity_seq: u32,
    next_child_seq: u32,
    next_signal_external_seq: u32,
    next_cancel_external_seq: u32,
    next_nexus_seq: u32,
    pub(crate) commands: Vec<WorkflowCommand>,
    timers: HashMap<u32, Slot<()>>,
    activities: HashMap<u32, Slot<ActivityResolution>>,
    pub(crate) child_starts: HashMap<u32, Slot<ResolveChildWorkflowExecutionStart>>,
    pub(crate) child_results: HashMap<u32, Slot<ChildWorkflowResult>>,
    signal_externals: HashMap<u32, Slot<Option<Failure>>>,
    cancel_externals: HashMap<u32, Slot<Option<Failure>>>,
    pub(crate) nexus_starts: HashMap<u32, Slot<ResolveNexusOperationStart>>,
    pub(crate) nexus_results: HashMap<u32, Slot<NexusOperationResult>>,
    /// Summaries of Nexus operations about to be started, by seq (sent as the command's user
    /// metadata).
    pub(crate) nexus_summaries: HashMap<u32, Payload>,
    signals: HashMap<String, SignalQueue>,
    dynamic_signals: Option<(VecDeque<DynamicSignal>, Option<Waker>)>,
    queries: HashMap<String, QueryHandler>,
    dynamic_query: Option<DynamicQueryHandler>,
    pub(crate) updates: HashMap<String, super::messages::UpdateHandler>,
    pub(crate) dynamic_update: Option<super::messages::DynamicUpdateHandler>,
    /// Update handlers accepted and still running.
    pub(crate) running_updates: usize,
    pub(crate) handlers_finished_wakers: Vec<Waker>,
    /// `wait_condition` futures whose condition was false when last checked.
    pub(crate) condition_waiters: Vec<Waker>,
    /// How many `wait_condition` futures have completed (the driver re-checks the others
    /// after one does, since the code it released may have changed what they wait on).
    pub(crate) conditions_met: u64,
    /// Set once the run is closing (its result is decided): dropped futures then send no
    /// cancellation commands.
    pub(crate) closing: bool,
    /// Side effects this run handed to the local activity runner, by activity seq.
    pub(crate) side_effects: Vec<u32>,
    /// Summaries of activities about to be scheduled, by seq (sent as the command's
    /// user metadata).
    pub(crate) activity_summaries: HashMap<u32, Payload>,
    now: SystemTime,
    replaying: bool,
    history_length: u32,
    continue_as_new_suggested: bool,
    rng: SmallRng,
    cancel_requested: Option<String>,
    cancel_wakers: Vec<Waker>,
    /// The workflow asked about cancellation (`cancelled()` / `cancel_requested()`), so it
    /// handles a cancellation request itself; otherwise the run is cancelled for it.
    cancel_handled: bool,
    /// Patches the history says were present when it was written.
    notified_patches: std::collections::HashSet<String>,
    /// Patches this run has already decided (each is decided once per run).
    decided_patches: HashMap<String, bool>,
    /// A failure raised outside the main future (e.g. an outbound interceptor refused a timer):
    /// it fails the current workflow task.
    fatal: Option<Failure>,
}

pub(crate) struct RunShared {
    pub(crate) state: RefCell<RunState>,
    pub(crate) converter: DataConverter,
    pub(crate) info: WorkflowInfo,
    pub(crate) outbound: RefCell<Option<WorkflowOutboundService>>,
}

/// The handle workflow code uses to talk to Temporal. Cheap to clone; it lives only on the
/// workflow's own thread (it is neither `Send` nor `Sync`).
#[derive(Clone)]
pub struct WorkflowContext {
    pub(crate) shared: Rc<RunShared>,
}

impl std::fmt::Debug for WorkflowContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowContext")
            .field("info", &self.shared.info)
            .finish_non_exhaustive()
    }
}

impl WorkflowContext {
    pub(crate) fn new(info: WorkflowInfo, converter: DataConverter, seed: u64) -> Self {
        Self {
            shared: Rc::new(RunShared {
                state: RefCell::new(RunState {
                    next_timer_seq: 1,
                    next_activity_seq: 1,
                    next_child_seq: 1,
                    next_signal_external_seq: 1,
                    next_cancel_external_seq: 1,
                    next_nexus_seq: 1,
                    commands: Vec::new(),
                    timers: HashMap::new(),
                    activities: HashMap::new(),
                    child_starts: HashMap::new(),
                    child_results: HashMap::new(),
                    signal_externals: HashMap::new(),
                    cancel_externals: HashMap::new(),
                    nexus_starts: HashMap::new(),
                    nexus_results: HashMap::new(),
                    nexus_summaries: HashMap::new(),
                    signals: HashMap::new(),
                    dynamic_signals: None,
                    queries: HashMap::new(),
                    dynamic_query: None,
                    updates: HashMap::new(),
                    dynamic_update: None,
                    running_updates: 0,
                    handlers_finished_wakers: Vec::new(),
                    condition_waiters: Vec::new(),
                    conditions_met: 0,
                    closing: false,
                    side_effects: Vec::new(),
                    activity_summaries: HashMap::new(),
                    now: SystemTime::UNIX_EPOCH,
                    replaying: false,
                    history_length: 0,
                    continue_as_new_suggested: false,
                    rng: SmallRng::seed_from_u64(seed),
                    cancel_requested: None,
                    cancel_wakers: Vec::new(),
                    cancel_handled: false,
                    notified_patches: Default::default(),
                    decided_patches: HashMap::new(),
                    fatal: None,
                }),
                converter,
                info,
                outbound: RefCell::new(None),
            }),
        }
    }

    /// Facts about this run.
    pub fn info(&self) -> &WorkflowInfo {
        &self.shared.info
    }

    /// The data converter.
    pub fn data_converter(&self) -> &DataConverter {
        &self.shared.converter
    }

    /// The workflow's current time: the time of the workflow task being processed. Use it
    /// instead of the system clock, which would differ on replay.
    pub fn now(&self) -> SystemTime {
        self.shared.state.borrow().now
    }

    /// Whether the code is being replayed from history (side effects such as logging can be
    /// skipped while replaying).
    pub fn is_replaying(&self) -> bool {
        self.shared.state.borrow().replaying
    }

    /// The number of events in the history so far.
    pub fn history_length(&self) -> u32 {
        self.shared.state.borrow().history_length
    }

    /// Whether the server suggests continuing as new (the history is getting large).
    pub fn continue_as_new_suggested(&self) -> bool {
        self.shared.state.borrow().continue_as_new_suggested
    }

    /// A deterministic random number: the same on every replay of this run.
    pub fn random_u64(&self) -> u64 {
        self.shared.state.borrow_mut().rng.random()
    }

    /// A deterministic version-4 UUID.
    pub fn uuid4(&self) -> uuid::Uuid {
        let mut bytes = [0u8; 16];
        self.shared.state.borrow_mut().rng.fill(&mut bytes);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    fn next_timer_seq(&self) -> u32 {
        let mut st = self.shared.state.borrow_mut();
        let seq = st.next_timer_seq;
        st.next_timer_seq += 1;
        seq
    }

    pub(crate) fn next_activity_seq(&self) -> u32 {
        let mut st = self.shared.state.borrow_mut();
        let seq = st.next_activity_seq;
        st.next_activity_seq += 1;
        seq
    }

    /// The seq the next activity will take.
    pub(crate) fn peek_activity_seq(&self) -> u32 {
        self.shared.state.borrow().next_activity_seq
    }

    pub(crate) fn next_child_seq(&self) -> u32 {
        let mut st = self.shared.state.borrow_mut();
        let seq = st.next_child_seq;
        st.next_child_seq += 1;
        seq
    }

    pub(crate) fn next_signal_external_seq(&self) -> u32 {
        let mut st = self.shared.state.borrow_mut();
        let seq = st.next_signal_external_seq;
        st.next_signal_external_seq += 1;
        seq
    }

    pub(crate) fn next_cancel_external_seq(&self) -> u32 {
        let mut st = self.shared.state.borrow_mut();
        let seq = st.next_cancel_external_seq;
        st.next_cancel_external_seq += 1;
        seq
    }

    pub(crate) fn next_nexus_seq(&self) -> u32 {
        let mut st = self.shared.state.borrow_mut();
        let seq = st.next_nexus_seq;
        st.next_nexus_seq += 1;
        seq
    }

    /// A durable timer: completes after `duration` of workflow time, even across worker
    /// restarts.
    pub fn timer(&self, duration: Duration) -> Timer {
        let seq = self.next_timer_seq();
        let fut = self.outbound(WorkflowOutbound::StartTimer(StartTimerInput {
            seq,
            duration,
        }));
        Timer {
            ctx: self.clone(),
            seq,
            fut,
        }
    }

    /// Sends a request through the run's outbound stack.
    pub(crate) fn outbound(&self, req: WorkflowOutbound) -> OutboundFuture {
        let svc = self.shared.outbound.borrow().clone();
        match svc {
            Some(svc) => Box::pin(svc.oneshot(req)),
            None => Box::pin(std::future::ready(Err(WorkflowError::task(
                "the workflow's outbound stack is not set up",
            )))),
        }
    }

    /// Prepares a call of the activity named `activity_type`; set its arguments and options,
    /// then `.run::<Output>()` and await it.
    pub fn activity(&self, activity_type: impl Into<String>) -> ActivityCall {
        ActivityCall {
            ctx: self.clone(),
            activity_type: activity_type.into(),
            args: Ok(Vec::new()),
            task_queue: None,
            schedule_to_close: None,
            schedule_to_start: None,
            start_to_close: None,
            heartbeat: None,
            retry_policy: None,
            cancellation_type: ActivityCancellationType::TryCancel,
            summary: None,
            local: false,
            local_retry_threshold: None,
        }
    }

    /// Prepares a call of the **local** activity named `activity_type`: it runs on this
    /// worker (registered like any activity), without a round trip through the server's task
    /// queue, and its result is recorded in history as a marker. Use it for short operations;
    /// `task_queue` and `heartbeat_timeout` do not apply.
    pub fn local_activity(&self, activity_type: impl Into<String>) -> ActivityCall {
        let mut call = self.activity(activity_type);
        call.local = true;
        call
    }

    /// The signals named `name`, in the order they arrived. Signals that arrived before the
    /// channel was asked for are kept and delivered first.
    pub fn signal_channel<T: DeserializeOwned + 'static>(&self, name: &str) -> SignalChannel<T> {
        self.shared
            .state
            .borrow_mut()
            .signals
            .entry(name.to_owned())
            .or_default()
            .opened = true;
        SignalChannel {
            ctx: self.clone(),
            name: name.to_owned(),
            _t: PhantomData,
        }
    }

    /// Answers the query `name` with `handler`, run on the workflow's current state. A handler
    /// must not change state (queries are not recorded in history).
    pub fn set_query_handler<A, R, F>(&self, name: &str, handler: F)
    where
        A: DeserializeOwned + 'static,
        R: Serialize,
        F: Fn(A) -> R + 'static,
    {
        let converter = self.shared.converter.clone();
        let h: QueryHandler = Rc::new(move |args: &[Payload]| {
            let a: A = converter.decode_args(args).map_err(|e| e.to_string())?;
            converter.encode(&handler(a)).map_err(|e| e.to_string())
        });
        self.shared
            .state
            .borrow_mut()
            .queries
            .insert(name.to_owned(), h);
    }

    /// Every signal whose name has no [`signal_channel`](Self::signal_channel) when it
    /// arrives, as `(name, encoded arguments)`: a catch-all for dynamic signal names. Signals
    /// already buffered for names nobody asked for are delivered first.
    pub fn dynamic_signal_channel(&self) -> DynamicSignalChannel {
        let mut st = self.shared.state.borrow_mut();
        if st.dynamic_signals.is_none() {
            let mut buffered = VecDeque::new();
            let mut names: Vec<String> = st
                .signals
                .iter()
                .filter(|(_, q)| !q.opened && !q.pending.is_empty())
                .map(|(n, _)| n.clone())
                .collect();
            names.sort();
            for name in names {
                if let Some(q) = st.signals.remove(&name) {
                    buffered.extend(q.pending.into_iter().map(|p| (name.clone(), p)));
                }
            }
            st.dynamic_signals = Some((buffered, None));
        }
        DynamicSignalChannel { ctx: self.clone() }
    }

    /// Answers every query that has no handler of its own: `handler(name, encoded args)`.
    pub fn set_dynamic_query_handler<F>(&self, handler: F)
    where
        F: Fn(&str, &[Payload]) -> Result<Payload, String> + 'static,
    {
        self.shared.state.borrow_mut().dynamic_query = Some(Rc::new(handler));
    }

    /// Whether to take the new code path of a change guarded by patch `id`.
    ///
    /// On first execution it is `true` (and a marker is recorded in history). On replay it is
    /// `true` only if the history was written by code that already had this patch, so runs
    /// started by the old code keep taking the old path. Once no run from before the patch is
    /// open, replace the check with [`WorkflowContext::deprecate_patch`], then remove it.
    pub fn patched(&self, id: &str) -> bool {
        self.patch(id, false)
    }

    /// Marks patch `id` as deprecated: the code now always takes the new path, while histories
    /// that recorded the patch marker still replay.
    pub fn deprecate_patch(&self, id: &str) {
        self.patch(id, true);
    }

    fn patch(&self, id: &str, deprecated: bool) -> bool {
        let decided = {
            let st = self.shared.state.borrow();
            st.decided_patches.get(id).copied()
        };
        if let Some(d) = decided {
            return d;
        }
        let use_new = {
            let st = self.shared.state.borrow();
            !st.replaying || st.notified_patches.contains(id)
        };
        self.shared
            .state
            .borrow_mut()
            .decided_patches
            .insert(id.to_owned(), use_new);
        if use_new {
            self.shared
                .push_command(workflow_command::Variant::SetPatchMarker(SetPatchMarker {
                    patch_id: id.to_owned(),
                    deprecated,
                }));
        }
        use_new
    }

    /// Whether cancellation of the workflow was requested; the reason when it was. Calling it
    /// means the workflow handles cancellation itself (see [`cancelled`](Self::cancelled)).
    pub fn cancel_requested(&self) -> Option<String> {
        let mut st = self.shared.state.borrow_mut();
        st.cancel_handled = true;
        st.cancel_requested.clone()
    }

    /// Completes when cancellation of the workflow is requested, with the reason. Race it
    /// against other work (e.g. `futures::select`) and clean up, then return
    /// [`WorkflowError::cancelled`](crate::WorkflowError::cancelled).
    ///
    /// Calling it (or [`cancel_requested`](Self::cancel_requested)) means the workflow handles
    /// cancellation itself. A workflow that has called neither by the time a cancellation
    /// request arrives and it waits again is cancelled for it: its main future is dropped,
    /// which cancels the activities, timers and Nexus operations it was waiting on, and the
    /// run closes as cancelled, as in the other SDKs.
    pub fn cancelled(&self) -> CancelRequested {
        self.shared.state.borrow_mut().cancel_handled = true;
        CancelRequested { ctx: self.clone() }
    }
}

// ---- applying jobs (called by the run driver, never by workflow code) ----

impl RunShared {
    pub(crate) fn set_activation_facts(
        &self,
        now: Option<SystemTime>,
        replaying: bool,
        history_length: u32,
        can_suggested: bool,
    ) {
        let mut st = self.state.borrow_mut();
        if let Some(now) = now {
            st.now = now;
        }
        st.replaying = replaying;
        st.history_length = history_length;
        st.continue_as_new_suggested = can_suggested;
    }

    pub(crate) fn fire_timer(&self, seq: u32) {
        if let Some(slot) = self.state.borrow_mut().timers.get_mut(&seq) {
            slot.resolve(());
        }
    }

    pub(crate) fn resolve_activity(&self, seq: u32, result: ActivityResolution) {
        let mut st = self.state.borrow_mut();
        if let Some(slot) = st.activities.get_mut(&seq) {
            slot.resolve(result);
        }
        if let Some(i) = st.side_effects.iter().position(|s| *s == seq) {
            // Resolved (run, or read back from history on replay): its function is not needed.
            st.side_effects.swap_remove(i);
            crate::activity::forget_side_effects(&self.info.run_id, &[seq]);
        }
    }

    pub(crate) fn reseed(&self, seed: u64) {
        self.state.borrow_mut().rng = SmallRng::seed_from_u64(seed);
    }

    pub(crate) fn signal(&self, name: &str, input: Vec<Payload>) {
        let mut st = self.state.borrow_mut();
        let opened = st.signals.get(name).is_some_and(|q| q.opened);
        if !opened && let Some((queue, waker)) = st.dynamic_signals.as_mut() {
            queue.push_back((name.to_owned(), input));
            if let Some(w) = waker.take() {
                w.wake();
            }
            return;
        }
        let q = st.signals.entry(name.to_owned()).or_default();
        q.pending.push_back(input);
        if let Some(w) = q.waker.take() {
            w.wake();
        }
    }

    pub(crate) fn dynamic_query_handler(&self) -> Option<DynamicQueryHandler> {
        self.state.borrow().dynamic_query.clone()
    }

    pub(crate) fn resolve_child_start(&self, seq: u32, r: ResolveChildWorkflowExecutionStart) {
        let mut st = self.state.borrow_mut();
        // A child that failed to start (or was cancelled before starting) also has no result.
        let start_failed = !matches!(
            r.status,
            Some(resolve_child_workflow_execution_start::Status::Succeeded(_))
        );
        if let Some(slot) = st.child_starts.get_mut(&seq) {
            slot.resolve(r);
        }
        if start_failed {
            st.child_results.remove(&seq);
        }
    }

    pub(crate) fn resolve_child(&self, seq: u32, r: ChildWorkflowResult) {
        let mut st = self.state.borrow_mut();
        if let Some(slot) = st.child_results.get_mut(&seq) {
            slot.resolve(r);
        }
    }

    pub(crate) fn resolve_signal_external(&self, seq: u32, failure: Option<Failure>) {
        if let Some(slot) = self.state.borrow_mut().signal_externals.get_mut(&seq) {
            slot.resolve(failure);
        }
    }

    pub(crate) fn resolve_cancel_external(&self, seq: u32, failure: Option<Failure>) {
        if let Some(slot) = self.state.borrow_mut().cancel_externals.get_mut(&seq) {
            slot.resolve(failure);
        }
    }

    pub(crate) fn resolve_nexus_start(&self, seq: u32, r: ResolveNexusOperationStart) {
        let mut st = self.state.borrow_mut();
        // An operation that failed to start has no result either.
        let failed = matches!(
            r.status,
            Some(resolve_nexus_operation_start::Status::Failed(_)) | None
        );
        if let Some(slot) = st.nexus_starts.get_mut(&seq) {
            slot.resolve(r);
        }
        if failed {
            st.nexus_results.remove(&seq);
        }
    }

    pub(crate) fn resolve_nexus(&self, seq: u32, r: NexusOperationResult) {
        let mut st = self.state.borrow_mut();
        if let Some(slot) = st.nexus_results.get_mut(&seq) {
            slot.resolve(r);
        }
    }

    /// Cancellation was requested and the workflow never asked about it (nor failed its task).
    pub(crate) fn cancel_unhandled(&self) -> bool {
        let st = self.state.borrow();
        st.cancel_requested.is_some() && !st.cancel_handled && st.fatal.is_none()
    }

    pub(crate) fn request_cancel(&self, reason: String) {
        let mut st = self.state.borrow_mut();
        st.cancel_requested = Some(reason);
        for w in st.cancel_wakers.drain(..) {
            w.wake();
        }
    }

    pub(crate) fn query_handler(&self, name: &str) -> Option<QueryHandler> {
        self.state.borrow().queries.get(name).cloned()
    }

    pub(crate) fn query_names(&self) -> Vec<String> {
        let mut v: Vec<_> = self.state.borrow().queries.keys().cloned().collect();
        v.sort();
        v
    }

    pub(crate) fn notify_patch(&self, id: String) {
        self.state.borrow_mut().notified_patches.insert(id);
    }

    pub(crate) fn take_fatal(&self) -> Option<Failure> {
        self.state.borrow_mut().fatal.take()
    }

    pub(crate) fn take_commands(&self) -> Vec<WorkflowCommand> {
        std::mem::take(&mut self.state.borrow_mut().commands)
    }

    pub(crate) fn push_command(&self, variant: workflow_command::Variant) {
        self.state.borrow_mut().commands.push(WorkflowCommand {
            variant: Some(variant),
            ..Default::default()
        });
    }
}

/// A durable timer; await it. See [`WorkflowContext::timer`].
#[must_use = "a timer does nothing unless awaited"]
pub struct Timer {
    ctx: WorkflowContext,
    seq: u32,
    fut: OutboundFuture,
}

impl Drop for Timer {
    /// A timer dropped before it fired is cancelled (a `CancelTimer` command).
    fn drop(&mut self) {
        let mut st = self.ctx.shared.state.borrow_mut();
        if st.closing {
            return;
        }
        let pending = st
            .timers
            .get(&self.seq)
            .is_some_and(|slot| slot.result.is_none());
        if pending {
            st.timers.remove(&self.seq);
            st.commands.push(WorkflowCommand {
                variant: Some(workflow_command::Variant::CancelTimer(CancelTimer {
                    seq: self.seq,
                })),
                ..Default::default()
            });
        }
    }
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer").finish_non_exhaustive()
    }
}

impl Future for Timer {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.fut.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(_)) => Poll::Ready(()),
            Poll::Ready(Err(e)) => {
                // A timer has no error path in workflow code: an interceptor that refuses one
                // fails the workflow task, and the timer never completes.
                let failure = self.ctx.shared.converter.failures().error_to_failure(&*e.0);
                self.ctx.shared.state.borrow_mut().fatal = Some(failure);
                Poll::Pending
            }
        }
    }
}

/// A prepared activity call. See [`WorkflowContext::activity`].
#[must_use = "an activity call does nothing until `.run()` is awaited"]
pub struct ActivityCall {
    ctx: WorkflowContext,
    activity_type: String,
    args: Result<Vec<Payload>, ConversionError>,
    task_queue: Option<String>,
    schedule_to_close: Option<Duration>,
    schedule_to_start: Option<Duration>,
    start_to_close: Option<Duration>,
    heartbeat: Option<Duration>,
    retry_policy: Option<RetryPolicy>,
    cancellation_type: ActivityCancellationType,
    summary: Option<String>,
    local: bool,
    local_retry_threshold: Option<Duration>,
}

impl std::fmt::Debug for ActivityCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivityCall")
            .field("activity_type", &self.activity_type)
            .finish_non_exhaustive()
    }
}

impl ActivityCall {
    /// Adds one argument.
    pub fn arg<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        if let Ok(args) = &mut self.args {
            match self.ctx.shared.converter.encode(value) {
                Ok(p) => args.push(p),
                Err(e) => self.args = Err(e),
            }
        }
        self
    }

    /// Adds every element of a tuple as an argument.
    pub fn args(mut self, values: impl IntoPayloads) -> Self {
        if let Ok(args) = &mut self.args {
            match values.into_payloads(&self.ctx.shared.converter) {
                Ok(ps) => args.extend(ps),
                Err(e) => self.args = Err(e),
            }
        }
        self
    }

    /// Runs the activity on another task queue (default: the workflow's).
    pub fn task_queue(mut self, task_queue: impl Into<String>) -> Self {
        self.task_queue = Some(task_queue.into());
        self
    }

    /// Limit on the whole activity, retries included.
    pub fn schedule_to_close_timeout(mut self, d: Duration) -> Self {
        self.schedule_to_close = Some(d);
        self
    }

    /// Limit on waiting in the task queue.
    pub fn schedule_to_start_timeout(mut self, d: Duration) -> Self {
        self.schedule_to_start = Some(d);
        self
    }

    /// Limit on one attempt.
    pub fn start_to_close_timeout(mut self, d: Duration) -> Self {
        self.start_to_close = Some(d);
        self
    }

    /// Longest allowed gap between heartbeats.
    pub fn heartbeat_timeout(mut self, d: Duration) -> Self {
        self.heartbeat = Some(d);
        self
    }

    /// The retry policy (the server's default retries forever with backoff).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry_policy = Some(policy);
        self
    }

    /// What cancelling the call (dropping its future or [`ActivityFuture::cancel`]) does:
    /// `TryCancel` (default) asks the activity to cancel and resolves at once;
    /// `WaitCancellationCompleted` resolves once the activity acknowledged;
    /// `Abandon` resolves at once without telling the activity.
    pub fn cancellation_type(mut self, cancellation_type: ActivityCancellationType) -> Self {
        self.cancellation_type = cancellation_type;
        self
    }

    /// A short human-readable summary shown in the Temporal UI for this activity.
    pub fn summary(mut self, summary: impl Into<String>) -> Self {
        self.summary = Some(summary.into());
        self
    }

    /// For a local activity: retries whose backoff is longer than this become a durable
    /// timer and a fresh local activity (default: core's, one minute).
    pub fn local_retry_threshold(mut self, d: Duration) -> Self {
        self.local_retry_threshold = Some(d);
        self
    }

    /// Schedules the activity and returns a future of its result, decoded as `T`.
    ///
    /// Dropping the future before it resolves cancels the activity (see
    /// [`ActivityCall::cancellation_type`]).
    pub fn run<T: DeserializeOwned + 'static>(self) -> ActivityFuture<T> {
        let ctx = self.ctx.clone();
        let seq = ctx.next_activity_seq();
        let activity_id = seq.to_string();
        let invalid = |msg: String| ActivityFailed {
            activity_type: self.activity_type.clone(),
            activity_id: activity_id.clone(),
            kind: ActivityFailedKind::InvalidOptions(msg),
            failure: Failure::default(),
        };
        let early = match (&self.args, self.start_to_close.or(self.schedule_to_close)) {
            (Err(e), _) => Some(invalid(format!("an argument cannot be encoded: {e}"))),
            (_, None) => Some(invalid(
                "set start_to_close_timeout or schedule_to_close_timeout".into(),
            )),
            _ => None,
        };
        let current_seq = Rc::new(std::cell::Cell::new(seq));
        let local = self.local;
        let activity_type = self.activity_type.clone();
        let fut = match early {
            Some(e) => Err(e),
            None if self.local => Ok(self.schedule_local(seq, current_seq.clone())),
            None => {
                if let Some(summary) = &self.summary
                    && let Ok(p) = ctx.shared.converter.encode(summary)
                {
                    ctx.shared
                        .state
                        .borrow_mut()
                        .activity_summaries
                        .insert(seq, p);
                }
                Ok(ctx.outbound(WorkflowOutbound::ScheduleActivity(Box::new(
                    ScheduleActivity {
                        seq,
                        activity_id: activity_id.clone(),
                        activity_type: self.activity_type.clone(),
                        task_queue: self
                            .task_queue
                            .unwrap_or_else(|| ctx.shared.info.task_queue.clone()),
                        arguments: self.args.unwrap_or_default(),
                        schedule_to_close_timeout: self.schedule_to_close.map(to_proto_duration),
                        schedule_to_start_timeout: self.schedule_to_start.map(to_proto_duration),
                        start_to_close_timeout: self.start_to_close.map(to_proto_duration),
                        heartbeat_timeout: self.heartbeat.map(to_proto_duration),
                        retry_policy: self.retry_policy,
                        cancellation_type: self.cancellation_type as i32,
                        ..Default::default()
                    },
                ))))
            }
        };
        ActivityFuture {
            ctx,
            activity_type,
            activity_id,
            local,
            seq: current_seq,
            cancel_sent: std::cell::Cell::new(false),
            fut: Some(fut),
            _t: PhantomData,
        }
    }

    /// A local activity: schedules it, and when core asks for a long backoff, waits on a
    /// durable timer and schedules the next attempt (as the other core-based SDKs do).
    fn schedule_local(self, first_seq: u32, current: Rc<std::cell::Cell<u32>>) -> OutboundFuture {
        let ctx = self.ctx.clone();
        let args = self.args.unwrap_or_default();
        let summary = self
            .summary
            .and_then(|s| ctx.shared.converter.encode(&s).ok());
        let template = ScheduleLocalActivity {
            seq: first_seq,
            activity_id: first_seq.to_string(),
            activity_type: self.activity_type,
            attempt: 1,
            original_schedule_time: None,
            headers: HashMap::new(),
            arguments: args,
            schedule_to_close_timeout: self.schedule_to_close.map(to_proto_duration),
            schedule_to_start_timeout: self.schedule_to_start.map(to_proto_duration),
            start_to_close_timeout: self.start_to_close.map(to_proto_duration),
            retry_policy: self.retry_policy,
            local_retry_threshold: self.local_retry_threshold.map(to_proto_duration),
            cancellation_type: self.cancellation_type as i32,
            include_arguments_in_marker: false,
        };
        Box::pin(async move {
            let mut cmd = template;
            loop {
                if let Some(p) = &summary {
                    ctx.shared
                        .state
                        .borrow_mut()
                        .activity_summaries
                        .insert(cmd.seq, p.clone());
                }
                current.set(cmd.seq);
                let answer = ctx
                    .outbound(WorkflowOutbound::ScheduleLocalActivity(Box::new(
                        cmd.clone(),
                    )))
                    .await?;
                let backoff = match &answer {
                    WorkflowOutboundResponse::ActivityResolved(r) => match &r.status {
                        Some(activity_resolution::Status::Backoff(b)) => *b,
                        _ => return Ok(answer),
                    },
                    _ => return Ok(answer),
                };
                let wait = backoff
                    .backoff_duration
                    .as_ref()
                    .map(trellis_core_proto::time::from_proto_duration)
                    .unwrap_or_default();
                ctx.timer(wait).await;
                cmd.seq = ctx.next_activity_seq();
                cmd.attempt = backoff.attempt;
                cmd.original_schedule_time = backoff.original_schedule_time;
            }
        })
    }
}

/// The result of an activity; await it. See [`ActivityCall::run`].
///
/// Dropping it before it resolves cancels the activity (per its cancellation type).
#[must_use = "an activity's result is lost unless awaited"]
pub struct ActivityFuture<T> {
    ctx: WorkflowContext,
    activity_type: String,
    activity_id: String,
    local: bool,
    /// The seq of the current attempt (a local activity gets a new one after a backoff).
    seq: Rc<std::cell::Cell<u32>>,
    cancel_sent: std::cell::Cell<bool>,
    fut: Option<Result<OutboundFuture, ActivityFailed>>,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for ActivityFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivityFuture")
            .field("activity_type", &self.activity_type)
            .field("activity_id", &self.activity_id)
            .finish()
    }
}

impl<T> Unpin for ActivityFuture<T> {}

impl<T> ActivityFuture<T> {
    /// Asks for the activity to be cancelled; keep awaiting the future for the outcome
    /// (an [`ActivityFailed`] of kind [`ActivityFailedKind::Cancelled`] unless the activity
    /// finished first). Does nothing if the activity was not scheduled yet (the future was
    /// never polled) or already resolved.
    pub fn cancel(&self) {
        self.request_cancel(false);
    }

    fn request_cancel(&self, forget: bool) {
        if self.cancel_sent.get() {
            if forget {
                self.ctx
                    .shared
                    .state
                    .borrow_mut()
                    .activities
                    .remove(&self.seq.get());
            }
            return;
        }
        let seq = self.seq.get();
        let mut st = self.ctx.shared.state.borrow_mut();
        if st.closing {
            return;
        }
        let pending = st
            .activities
            .get(&seq)
            .is_some_and(|slot| slot.result.is_none());
        if !pending {
            return;
        }
        if forget {
            st.activities.remove(&seq);
        }
        self.cancel_sent.set(true);
        let variant = if self.local {
            workflow_command::Variant::RequestCancelLocalActivity(RequestCancelLocalActivity {
                seq,
            })
        } else {
            workflow_command::Variant::RequestCancelActivity(RequestCancelActivity { seq })
        };
        st.commands.push(WorkflowCommand {
            variant: Some(variant),
            ..Default::default()
        });
    }
}

impl<T> Drop for ActivityFuture<T> {
    fn drop(&mut self) {
        if matches!(self.fut, Some(Ok(_))) {
            self.request_cancel(true);
        }
    }
}

impl<T: DeserializeOwned + 'static> Future for ActivityFuture<T> {
    type Output = Result<T, ActivityFailed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fail = |this: &Self, kind, failure: Option<Failure>| ActivityFailed {
            activity_type: this.activity_type.clone(),
            activity_id: this.activity_id.clone(),
            kind,
            failure: failure.unwrap_or_default(),
        };
        let outcome = match self.fut.as_mut() {
            None => panic!("ActivityFuture polled after it completed"),
            Some(Err(_)) => match self.fut.take() {
                Some(Err(e)) => return Poll::Ready(Err(e)),
                _ => unreachable!(),
            },
            Some(Ok(fut)) => match fut.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r,
            },
        };
        self.fut = None;
        let resolution = match outcome {
            Ok(WorkflowOutboundResponse::ActivityResolved(r)) => *r,
            Ok(other) => {
                return Poll::Ready(Err(fail(
                    &self,
                    ActivityFailedKind::Rejected(format!(
                        "an outbound interceptor answered with {other:?}"
                    )),
                    None,
                )));
            }
            Err(e) => {
                return Poll::Ready(Err(match e.0.downcast::<ActivityFailed>() {
                    Ok(a) => *a,
                    Err(other) => {
                        fail(&self, ActivityFailedKind::Rejected(other.to_string()), None)
                    }
                }));
            }
        };
        Poll::Ready(match resolution.status {
            Some(activity_resolution::Status::Completed(s)) => {
                let payloads: Vec<Payload> = s.result.into_iter().collect();
                self.ctx
                    .shared
                    .converter
                    .decode_args(&payloads)
                    .map_err(|e| fail(&self, ActivityFailedKind::Decode(e.to_string()), None))
            }
            Some(activity_resolution::Status::Failed(mut f)) => {
                f.failure
                    .as_mut()
                    .map(trellis_converter::decode_common_attributes);
                Err(fail(&self, ActivityFailedKind::Failed, f.failure))
            }
            Some(activity_resolution::Status::Cancelled(mut c)) => {
                c.failure
                    .as_mut()
                    .map(trellis_converter::decode_common_attributes);
                Err(fail(&self, ActivityFailedKind::Cancelled, c.failure))
            }
            Some(activity_resolution::Status::Backoff(_)) | None => Err(fail(
                &self,
                ActivityFailedKind::Decode(
                    "core sent an activity resolution without a result".into(),
                ),
                None,
            )),
        })
    }
}

/// Signals of one name. See [`WorkflowContext::signal_channel`].
pub struct SignalChannel<T> {
    ctx: WorkflowContext,
    name: String,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for SignalChannel<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalChannel")
            .field("name", &self.name)
            .finish()
    }
}

impl<T: DeserializeOwned + 'static> SignalChannel<T> {
    /// The next signal, waiting for one if none is buffered. A signal whose input does not
    /// decode as `T` gives an error (and is consumed).
    pub fn recv(&mut self) -> impl Future<Output = Result<T, ConversionError>> + '_ {
        std::future::poll_fn(move |cx| {
            let input = {
                let mut st = self.ctx.shared.state.borrow_mut();
                let q = st.signals.entry(self.name.clone()).or_default();
                match q.pending.pop_front() {
                    Some(input) => input,
                    None => {
                        q.waker = Some(cx.waker().clone());
                        return Poll::Pending;
                    }
                }
            };
            Poll::Ready(self.ctx.shared.converter.decode_args(&input))
        })
    }

    /// The next buffered signal, without waiting.
    pub fn try_recv(&mut self) -> Option<Result<T, ConversionError>> {
        let input = self
            .ctx
            .shared
            .state
            .borrow_mut()
            .signals
            .get_mut(&self.name)?
            .pending
            .pop_front()?;
        Some(self.ctx.shared.converter.decode_args(&input))
    }
}

/// Signals of any name nobody opened a channel for. See
/// [`WorkflowContext::dynamic_signal_channel`].
pub struct DynamicSignalChannel {
    ctx: WorkflowContext,
}

impl std::fmt::Debug for DynamicSignalChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamicSignalChannel").finish()
    }
}

impl DynamicSignalChannel {
    /// The next signal as `(name, encoded arguments)`, waiting for one if none is buffered.
    /// Decode the arguments with [`WorkflowContext::data_converter`].
    pub fn recv(&mut self) -> impl Future<Output = (String, Vec<Payload>)> + '_ {
        std::future::poll_fn(move |cx| {
            let mut st = self.ctx.shared.state.borrow_mut();
            let (queue, waker) = st.dynamic_signals.get_or_insert_with(Default::default);
            match queue.pop_front() {
                Some(s) => Poll::Ready(s),
                None => {
                    *waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
    }
}

/// Completes when the workflow is asked to cancel. See [`WorkflowContext::cancelled`].
pub struct CancelRequested {
    ctx: WorkflowContext,
}

impl std::fmt::Debug for CancelRequested {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelRequested").finish()
    }
}

impl Future for CancelRequested {
    type Output = String;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<String> {
        let mut st = self.ctx.shared.state.borrow_mut();
        match &st.cancel_requested {
            Some(reason) => Poll::Ready(reason.clone()),
            None => {
                st.cancel_wakers.push(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// The innermost outbound service of a run: issues the command and waits for core's answer.
/// Holds the run weakly, so the run's state and its stack do not keep each other alive.
pub(crate) fn base_outbound(shared: &Rc<RunShared>) -> WorkflowOutboundService {
    let weak = Rc::downgrade(shared);
    LocalBoxService::from_fn(move |req: WorkflowOutbound| {
        let weak = weak.clone();
        let issued = weak.upgrade().map(|shared| issue(&shared, req));
        std::future::poll_fn(move |cx| {
            let (Some(wait), Some(shared)) = (issued, weak.upgrade()) else {
                return Poll::Ready(Err(WorkflowError::task("the workflow run is gone")));
            };
            let mut st = shared.state.borrow_mut();
            fn take<T>(
                map: &mut HashMap<u32, Slot<T>>,
                seq: u32,
                cx: &mut Context<'_>,
            ) -> Option<T> {
                let slot = map.entry(seq).or_default();
                match slot.result.take() {
                    Some(r) => {
                        map.remove(&seq);
                        Some(r)
                    }
                    None => {
                        slot.waker = Some(cx.waker().clone());
                        None
                    }
                }
            }
            let answer = match wait {
                Wait::Activity(seq) => take(&mut st.activities, seq, cx)
                    .map(|r| WorkflowOutboundResponse::ActivityResolved(Box::new(r))),
                Wait::Timer(seq) => {
                    take(&mut st.timers, seq, cx).map(|()| WorkflowOutboundResponse::TimerFired)
                }
                Wait::ChildStart(seq) => take(&mut st.child_starts, seq, cx)
                    .map(|r| WorkflowOutboundResponse::ChildStarted(Box::new(r))),
                Wait::SignalExternal(seq) => take(&mut st.signal_externals, seq, cx)
                    .map(|f| WorkflowOutboundResponse::ExternalResolved(f.map(Box::new))),
                Wait::CancelExternal(seq) => take(&mut st.cancel_externals, seq, cx)
                    .map(|f| WorkflowOutboundResponse::ExternalResolved(f.map(Box::new))),
                Wait::NexusStart(seq) => take(&mut st.nexus_starts, seq, cx)
                    .map(|r| WorkflowOutboundResponse::NexusStarted(Box::new(r))),
                // The run ends with this command: nothing answers it.
                Wait::Never => None,
            };
            match answer {
                Some(a) => Poll::Ready(Ok(a)),
                None => Poll::Pending,
            }
        })
    })
}

/// Records the command for `req` and the slot its resolution will land in.
fn issue(shared: &RunShared, req: WorkflowOutbound) -> Wait {
    let mut st = shared.state.borrow_mut();
    let (wait, variant, metadata) = match req {
        WorkflowOutbound::ScheduleActivity(cmd) => {
            st.activities.insert(cmd.seq, Slot::default());
            let summary = st.activity_summaries.remove(&cmd.seq);
            (
                Wait::Activity(cmd.seq),
                workflow_command::Variant::ScheduleActivity(*cmd),
                summary.map(|s| UserMetadata {
                    summary: Some(s),
                    details: None,
                }),
            )
        }
        WorkflowOutbound::ScheduleLocalActivity(cmd) => {
            st.activities.insert(cmd.seq, Slot::default());
            let summary = st.activity_summaries.remove(&cmd.seq);
            (
                Wait::Activity(cmd.seq),
                workflow_command::Variant::ScheduleLocalActivity(*cmd),
                summary.map(|s| UserMetadata {
                    summary: Some(s),
                    details: None,
                }),
            )
        }
        WorkflowOutbound::StartTimer(t) => {
            st.timers.insert(t.seq, Slot::default());
            (
                Wait::Timer(t.seq),
                workflow_command::Variant::StartTimer(StartTimer {
                    seq: t.seq,
                    start_to_fire_timeout: Some(to_proto_duration(t.duration)),
                }),
                None,
            )
        }
        WorkflowOutbound::StartChildWorkflow(cmd) => {
            st.child_starts.insert(cmd.seq, Slot::default());
            st.child_results.insert(cmd.seq, Slot::default());
            (
                Wait::ChildStart(cmd.seq),
                workflow_command::Variant::StartChildWorkflowExecution(*cmd),
                None,
            )
        }
        WorkflowOutbound::SignalExternal(cmd) => {
            st.signal_externals.insert(cmd.seq, Slot::default());
            (
                Wait::SignalExternal(cmd.seq),
                workflow_command::Variant::SignalExternalWorkflowExecution(*cmd),
                None,
            )
        }
        WorkflowOutbound::CancelExternal(cmd) => {
            st.cancel_externals.insert(cmd.seq, Slot::default());
            (
                Wait::CancelExternal(cmd.seq),
                workflow_command::Variant::RequestCancelExternalWorkflowExecution(*cmd),
                None,
            )
        }
        WorkflowOutbound::StartNexusOperation(cmd) => {
            st.nexus_starts.insert(cmd.seq, Slot::default());
            st.nexus_results.insert(cmd.seq, Slot::default());
            let summary = st.nexus_summaries.remove(&cmd.seq);
            (
                Wait::NexusStart(cmd.seq),
                workflow_command::Variant::ScheduleNexusOperation(*cmd),
                summary.map(|s| UserMetadata {
                    summary: Some(s),
                    details: None,
                }),
            )
        }
        WorkflowOutbound::ContinueAsNew(cmd) => {
            st.closing = true;
            (
                Wait::Never,
                workflow_command::Variant::ContinueAsNewWorkflowExecution(*cmd),
                None,
            )
        }
    };
    st.commands.push(WorkflowCommand {
        variant: Some(variant),
        user_metadata: metadata,
        ..Default::default()
    });
    wait
}

#[derive(Clone, Copy)]
enum Wait {
    Activity(u32),
    Timer(u32),
    ChildStart(u32),
    SignalExternal(u32),
    CancelExternal(u32),
    NexusStart(u32),
    Never,
}
