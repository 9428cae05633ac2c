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
use trellis_core_proto::coresdk::activity_result::{ActivityResolution, activity_resolution};
use trellis_core_proto::coresdk::workflow_commands::{
    ScheduleActivity, SetPatchMarker, StartTimer, WorkflowCommand, workflow_command,
};
use trellis_core_proto::time::to_proto_duration;
use trellis_interceptor::LocalBoxService;

use crate::error::{ActivityFailed, ActivityFailedKind, WorkflowError};
use crate::interceptors::{
    StartTimerInput, WorkflowOutbound, WorkflowOutboundResponse, WorkflowOutboundService,
};

type OutboundFuture = LocalBoxFuture<'static, Result<WorkflowOutboundResponse, WorkflowError>>;

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
}

type QueryHandler = Rc<dyn Fn(&[Payload]) -> Result<Payload, String>>;

struct Slot<T> {
    result: Option<T>,
    waker: Option<Waker>,
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
    fn resolve(&mut self, value: T) {
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
}

pub(crate) struct RunState {
    /// Sequence numbers are counted per command kind, as in the other core-based SDKs, so
    /// timer and activity ids in histories match theirs (a Python-made history replays here).
    next_timer_seq: u32,
    next_activity_seq: u32,
    pub(crate) commands: Vec<WorkflowCommand>,
    timers: HashMap<u32, Slot<()>>,
    activities: HashMap<u32, Slot<ActivityResolution>>,
    signals: HashMap<String, SignalQueue>,
    queries: HashMap<String, QueryHandler>,
    now: SystemTime,
    replaying: bool,
    history_length: u32,
    continue_as_new_suggested: bool,
    rng: SmallRng,
    cancel_requested: Option<String>,
    cancel_wakers: Vec<Waker>,
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
                    commands: Vec::new(),
                    timers: HashMap::new(),
                    activities: HashMap::new(),
                    signals: HashMap::new(),
                    queries: HashMap::new(),
                    now: SystemTime::UNIX_EPOCH,
                    replaying: false,
                    history_length: 0,
                    continue_as_new_suggested: false,
                    rng: SmallRng::seed_from_u64(seed),
                    cancel_requested: None,
                    cancel_wakers: Vec::new(),
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

    fn next_activity_seq(&self) -> u32 {
        let mut st = self.shared.state.borrow_mut();
        let seq = st.next_activity_seq;
        st.next_activity_seq += 1;
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
            fut,
        }
    }

    /// Sends a request through the run's outbound stack.
    fn outbound(&self, req: WorkflowOutbound) -> OutboundFuture {
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
        }
    }

    /// The signals named `name`, in the order they arrived. Signals that arrived before the
    /// channel was asked for are kept and delivered first.
    pub fn signal_channel<T: DeserializeOwned + 'static>(&self, name: &str) -> SignalChannel<T> {
        self.shared
            .state
            .borrow_mut()
            .signals
            .entry(name.to_owned())
            .or_default();
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

    /// Whether cancellation of the workflow was requested; the reason when it was.
    pub fn cancel_requested(&self) -> Option<String> {
        self.shared.state.borrow().cancel_requested.clone()
    }

    /// Completes when cancellation of the workflow is requested, with the reason. Race it
    /// against other work (e.g. `futures::select`) and clean up, then return
    /// [`WorkflowError::cancelled`](crate::WorkflowError::cancelled).
    pub fn cancelled(&self) -> CancelRequested {
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
        if let Some(slot) = self.state.borrow_mut().activities.get_mut(&seq) {
            slot.resolve(result);
        }
    }

    pub(crate) fn reseed(&self, seed: u64) {
        self.state.borrow_mut().rng = SmallRng::seed_from_u64(seed);
    }

    pub(crate) fn signal(&self, name: &str, input: Vec<Payload>) {
        let mut st = self.state.borrow_mut();
        let q = st.signals.entry(name.to_owned()).or_default();
        q.pending.push_back(input);
        if let Some(w) = q.waker.take() {
            w.wake();
        }
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
    fut: OutboundFuture,
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

    /// Schedules the activity and returns a future of its result, decoded as `T`.
    pub fn run<T: DeserializeOwned + 'static>(self) -> ActivityFuture<T> {
        let ctx = self.ctx;
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
        let fut = match early {
            Some(e) => Err(e),
            None => Ok(ctx.outbound(WorkflowOutbound::ScheduleActivity(Box::new(
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
                    ..Default::default()
                },
            )))),
        };
        ActivityFuture {
            ctx,
            activity_type: self.activity_type,
            activity_id,
            fut: Some(fut),
            _t: PhantomData,
        }
    }
}

/// The result of an activity; await it. See [`ActivityCall::run`].
#[must_use = "an activity's result is lost unless awaited"]
pub struct ActivityFuture<T> {
    ctx: WorkflowContext,
    activity_type: String,
    activity_id: String,
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
        let issued = weak.upgrade().map(|shared| match req {
            WorkflowOutbound::ScheduleActivity(cmd) => {
                let seq = cmd.seq;
                shared
                    .state
                    .borrow_mut()
                    .activities
                    .insert(seq, Slot::default());
                shared.push_command(workflow_command::Variant::ScheduleActivity(*cmd));
                Wait::Activity(seq)
            }
            WorkflowOutbound::StartTimer(t) => {
                shared
                    .state
                    .borrow_mut()
                    .timers
                    .insert(t.seq, Slot::default());
                shared.push_command(workflow_command::Variant::StartTimer(StartTimer {
                    seq: t.seq,
                    start_to_fire_timeout: Some(to_proto_duration(t.duration)),
                }));
                Wait::Timer(t.seq)
            }
        });
        std::future::poll_fn(move |cx| {
            let (Some(wait), Some(shared)) = (issued, weak.upgrade()) else {
                return Poll::Ready(Err(WorkflowError::task("the workflow run is gone")));
            };
            let mut st = shared.state.borrow_mut();
            match wait {
                Wait::Activity(seq) => {
                    let slot = st.activities.entry(seq).or_default();
                    match slot.result.take() {
                        Some(r) => {
                            st.activities.remove(&seq);
                            Poll::Ready(Ok(WorkflowOutboundResponse::ActivityResolved(Box::new(r))))
                        }
                        None => {
                            slot.waker = Some(cx.waker().clone());
                            Poll::Pending
                        }
                    }
                }
                Wait::Timer(seq) => {
                    let slot = st.timers.entry(seq).or_default();
                    if slot.result.take().is_some() {
                        st.timers.remove(&seq);
                        Poll::Ready(Ok(WorkflowOutboundResponse::TimerFired))
                    } else {
                        slot.waker = Some(cx.waker().clone());
                        Poll::Pending
                    }
                }
            }
        })
    })
}

#[derive(Clone, Copy)]
enum Wait {
    Activity(u32),
    Timer(u32),
}
