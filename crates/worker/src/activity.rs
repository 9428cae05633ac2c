//! The activity runner: polls activity tasks, runs each attempt on its own task, reports the
//! result, heartbeats and cancellation.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

use futures::FutureExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use temporalio_sdk_core::{PollError, Worker as CoreWorker};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use trellis_converter::{ApplicationFailure, DataConverter, PayloadConverterExt, VisitOptions};
use trellis_core_proto::Payload;
use trellis_core_proto::coresdk::activity_result::ActivityExecutionResult;
use trellis_core_proto::coresdk::activity_task::{ActivityTask, Start, activity_task};
use trellis_core_proto::coresdk::{ActivityHeartbeat, ActivityTaskCompletion};
use trellis_core_proto::time::{from_proto_duration, from_proto_timestamp};

use tower::ServiceExt;
use trellis_interceptor::BoxError;

use crate::error::{ActivityError, WorkerError, panic_message};
use crate::interceptors::{
    ActivityCancelled, ActivityOutbound, ActivityOutboundResponse, ActivityOutboundService,
    ActivityRequest, ActivityService, ActivityWillCompleteAsync, HeartbeatRequest,
};
use crate::registry::ActivityRegistry;

/// Facts about the running activity attempt.
#[derive(Debug, Clone, Default)]
pub struct ActivityInfo {
    /// The activity id (unique within its workflow run).
    pub activity_id: String,
    /// The activity type name.
    pub activity_type: String,
    /// The attempt number (1 for the first).
    pub attempt: u32,
    /// The namespace of the workflow that scheduled it.
    pub workflow_namespace: String,
    /// The type of the workflow that scheduled it.
    pub workflow_type: String,
    /// The id of the workflow that scheduled it.
    pub workflow_id: String,
    /// The run of the workflow that scheduled it.
    pub workflow_run_id: String,
    /// The task queue.
    pub task_queue: String,
    /// When this attempt was scheduled.
    pub scheduled_time: Option<SystemTime>,
    /// The heartbeat timeout, if any.
    pub heartbeat_timeout: Option<std::time::Duration>,
    /// The start-to-close timeout, if any.
    pub start_to_close_timeout: Option<std::time::Duration>,
    /// Headers sent with the activity, still encoded.
    pub headers: HashMap<String, Payload>,
}

/// What an activity attempt uses to talk to Temporal: its info, heartbeats and cancellation.
/// Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct ActivityContext {
    inner: Arc<ContextInner>,
}

struct ContextInner {
    info: Arc<ActivityInfo>,
    task_token: Vec<u8>,
    heartbeat_details: Vec<Payload>,
    cancel: CancellationToken,
    converter: DataConverter,
    outbound: ActivityOutboundService,
    /// The worker's runtime: heartbeats may come from threads outside it.
    runtime: tokio::runtime::Handle,
    /// Started by the first heartbeat: feeds heartbeats through the outbound stack in order.
    pump: Mutex<Option<HeartbeatPump>>,
}

/// The attempt's heartbeat queue and the task draining it through the outbound stack.
struct HeartbeatPump {
    queue: mpsc::UnboundedSender<PumpMessage>,
    task: tokio::task::JoinHandle<()>,
}

enum PumpMessage {
    Beat(Vec<Payload>),
    /// Answered once every heartbeat queued before it went through the stack.
    Flush(oneshot::Sender<()>),
}

impl std::fmt::Debug for ActivityContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivityContext")
            .field("info", &self.inner.info)
            .finish_non_exhaustive()
    }
}

impl ActivityContext {
    /// A context attached to no worker, to run an activity (or a worker's whole activity stack,
    /// see [`WorkerConfig::activity_service`](crate::WorkerConfig::activity_service))
    /// in-process: unit tests, benchmarks. Heartbeats go nowhere; it is never cancelled. Call
    /// it inside a Tokio runtime.
    pub fn detached(info: ActivityInfo, converter: DataConverter) -> Self {
        Self {
            inner: Arc::new(ContextInner {
                info: Arc::new(info),
                task_token: Vec::new(),
                heartbeat_details: Vec::new(),
                cancel: CancellationToken::new(),
                outbound: base_outbound_service(Weak::new(), converter.clone()),
                converter,
                runtime: tokio::runtime::Handle::current(),
                pump: Mutex::new(None),
            }),
        }
    }

    /// Facts about this attempt (as the activity outbound layers answered
    /// [`ActivityOutbound::Info`]).
    pub fn info(&self) -> &ActivityInfo {
        &self.inner.info
    }

    /// The data converter.
    pub fn data_converter(&self) -> &DataConverter {
        &self.inner.converter
    }

    /// The attempt's task token: what a client's
    /// [`async_activity_handle`](trellis_client::Client::async_activity_handle) takes to
    /// heartbeat or complete the activity after it returned
    /// [`ActivityError::WillCompleteAsync`].
    pub fn task_token(&self) -> &[u8] {
        &self.inner.task_token
    }

    /// Records a heartbeat with progress details. Heartbeats tell the server the attempt is
    /// alive (see the heartbeat timeout) and carry cancellation back; core batches and throttles
    /// them, so calling often is cheap. Each heartbeat passes through the worker's activity
    /// outbound layers ([`ActivityOutbound::Heartbeat`]) in order, and every heartbeat is
    /// recorded before the attempt's result is reported.
    pub fn heartbeat<T: Serialize + ?Sized>(&self, details: &T) {
        let details = match self.inner.converter.payloads().encode(details) {
            Ok(p) => vec![p],
            Err(e) => {
                tracing::warn!(activity = %self.inner.info.activity_type, "heartbeat details not sent: {e}");
                Vec::new()
            }
        };
        let mut pump = self.inner.pump.lock().expect("heartbeat pump poisoned");
        let pump = pump.get_or_insert_with(|| {
            let (queue, rx) = mpsc::unbounded_channel();
            let task = self.inner.runtime.spawn(pump_heartbeats(
                rx,
                self.inner.outbound.clone(),
                self.inner.info.clone(),
                self.inner.task_token.clone(),
            ));
            HeartbeatPump { queue, task }
        });
        let _ = pump.queue.send(PumpMessage::Beat(details));
    }

    /// Waits until every heartbeat sent so far went through the outbound stack, then stops the
    /// pump (heartbeats after the attempt's result are pointless).
    async fn finish_heartbeats(&self) {
        let pump = self
            .inner
            .pump
            .lock()
            .expect("heartbeat pump poisoned")
            .take();
        if let Some(pump) = pump {
            let (ack, done) = oneshot::channel();
            if pump.queue.send(PumpMessage::Flush(ack)).is_ok() {
                let _ = done.await;
            }
            pump.task.abort();
        }
    }

    /// The details of the last heartbeat of an earlier attempt, to resume from.
    pub fn last_heartbeat_details<T: DeserializeOwned + 'static>(&self) -> Option<T> {
        let p = self.inner.heartbeat_details.first()?;
        self.inner.converter.payloads().decode(p).ok()
    }

    /// Whether cancellation was requested (by the workflow, a timeout, or worker shutdown).
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }

    /// Completes when cancellation is requested. Cancellation reaches an activity only through
    /// heartbeats: heartbeat while waiting for it.
    pub async fn cancelled(&self) {
        self.inner.cancel.cancelled().await
    }
}

async fn pump_heartbeats(
    mut queue: mpsc::UnboundedReceiver<PumpMessage>,
    outbound: ActivityOutboundService,
    info: Arc<ActivityInfo>,
    task_token: Vec<u8>,
) {
    while let Some(message) = queue.recv().await {
        match message {
            PumpMessage::Beat(details) => {
                let request = ActivityOutbound::Heartbeat(HeartbeatRequest {
                    info: info.clone(),
                    task_token: task_token.clone(),
                    details,
                });
                if let Err(e) = outbound.clone().oneshot(request).await {
                    tracing::warn!(activity = %info.activity_type, "heartbeat not recorded: {e}");
                }
            }
            PumpMessage::Flush(ack) => {
                let _ = ack.send(());
            }
        }
    }
}

/// The innermost activity outbound service: heartbeats go through the codecs to core; info is
/// answered as it is.
pub(crate) fn base_outbound_service(
    core: Weak<CoreWorker>,
    converter: DataConverter,
) -> ActivityOutboundService {
    ActivityOutboundService::new(tower::service_fn(move |req: ActivityOutbound| {
        let core = core.clone();
        let converter = converter.clone();
        async move {
            match req {
                ActivityOutbound::Heartbeat(h) => {
                    let details = if converter.codecs().is_empty() {
                        h.details
                    } else {
                        converter.encode_payloads(h.details).await?
                    };
                    if let Some(core) = core.upgrade() {
                        core.record_activity_heartbeat(ActivityHeartbeat {
                            task_token: h.task_token,
                            details,
                        });
                    }
                    Ok(ActivityOutboundResponse::HeartbeatRecorded)
                }
                ActivityOutbound::Info(info) => Ok(ActivityOutboundResponse::Info(info)),
            }
        }
    }))
}

type Cancels = Arc<Mutex<HashMap<Vec<u8>, CancellationToken>>>;

/// The activity poll loop. Returns when core reports shutdown (after every attempt it started
/// has been reported).
pub(crate) async fn run_activities(
    core: Arc<CoreWorker>,
    service: ActivityService,
    outbound: ActivityOutboundService,
    converter: DataConverter,
    task_queue: String,
) -> Result<(), WorkerError> {
    let cancels: Cancels = Arc::default();
    let mut running = JoinSet::new();
    let result = loop {
        while running.try_join_next().is_some() {}
        let task: ActivityTask = match core.poll_activity_task().await {
            Ok(t) => t,
            Err(PollError::ShutDown) => break Ok(()),
            Err(e) => {
                break Err(WorkerError::Poll {
                    what: "activity tasks",
                    cause: e.to_string(),
                });
            }
        };
        match task.variant {
            Some(activity_task::Variant::Start(start)) => {
                let token = CancellationToken::new();
                cancels
                    .lock()
                    .expect("cancel map poisoned")
                    .insert(task.task_token.clone(), token.clone());
                running.spawn(run_one(
                    core.clone(),
                    service.clone(),
                    outbound.clone(),
                    converter.clone(),
                    task_queue.clone(),
                    cancels.clone(),
                    task.task_token,
                    start,
                    token,
                ));
            }
            Some(activity_task::Variant::Cancel(cancel)) => {
                tracing::debug!(reason = ?cancel.reason(), "activity cancellation requested");
                if let Some(token) = cancels
                    .lock()
                    .expect("cancel map poisoned")
                    .get(&task.task_token)
                {
                    token.cancel();
                }
            }
            None => {}
        }
    };
    // Graceful shutdown: attempts in flight finish and are reported.
    while running.join_next().await.is_some() {}
    result
}

/// A side effect's function, waiting for the local activity runner.
pub(crate) type SideEffectFn = Box<dyn FnOnce() -> Result<Payload, BoxError> + Send>;

/// Side effects by (run id, activity seq). Run ids are unique, so one map serves every worker
/// of the process.
static SIDE_EFFECTS: std::sync::LazyLock<Mutex<HashMap<(String, u32), SideEffectFn>>> =
    std::sync::LazyLock::new(Default::default);

pub(crate) fn register_side_effect(run_id: &str, seq: u32, f: SideEffectFn) {
    SIDE_EFFECTS
        .lock()
        .expect("side effect map poisoned")
        .insert((run_id.to_owned(), seq), f);
}

/// Forgets side effects of a run that will not run (resolved from history, or evicted).
pub(crate) fn forget_side_effects(run_id: &str, seqs: &[u32]) {
    let mut map = SIDE_EFFECTS.lock().expect("side effect map poisoned");
    for seq in seqs {
        map.remove(&(run_id.to_owned(), *seq));
    }
}

fn run_side_effect(info: &ActivityInfo) -> Result<Payload, BoxError> {
    let key = (
        info.workflow_run_id.clone(),
        info.activity_id.parse::<u32>().unwrap_or_default(),
    );
    let f = SIDE_EFFECTS
        .lock()
        .expect("side effect map poisoned")
        .remove(&key);
    match f {
        Some(f) => f(),
        None => Err(BoxError::from(ApplicationFailure::new(
            "SideEffectLost",
            format!(
                "the side effect (run {}, seq {}) is no longer held by this worker",
                key.0, key.1
            ),
        ))),
    }
}

/// The innermost activity service: finds the registered function and runs it.
pub(crate) fn base_activity_service(registry: Arc<ActivityRegistry>) -> ActivityService {
    ActivityService::new(tower::service_fn(move |req: ActivityRequest| {
        let registry = registry.clone();
        async move {
            let info = req.context.info();
            if info.activity_type == crate::workflow::ops::SIDE_EFFECT_TYPE {
                return run_side_effect(info);
            }
            let Some(f) = registry.get(&info.activity_type) else {
                return Err(BoxError::from(ApplicationFailure::new(
                    "NotFoundError",
                    format!(
                        "activity type {:?} is not registered on this worker (task queue {:?}); \
                         registered types: [{}]",
                        info.activity_type,
                        info.task_queue,
                        registry.names().join(", ")
                    ),
                )));
            };
            match f(req.context, req.args).await {
                Ok(p) => Ok(p),
                Err(ActivityError::Cancelled) => Err(BoxError::from(ActivityCancelled)),
                Err(ActivityError::WillCompleteAsync) => {
                    Err(BoxError::from(ActivityWillCompleteAsync))
                }
                Err(ActivityError::Failed(e)) => Err(e),
            }
        }
    }))
}

#[allow(clippy::too_many_arguments)]
async fn run_one(
    core: Arc<CoreWorker>,
    service: ActivityService,
    outbound: ActivityOutboundService,
    converter: DataConverter,
    task_queue: String,
    cancels: Cancels,
    task_token: Vec<u8>,
    start: Start,
    cancel: CancellationToken,
) {
    let mut start = start;
    let codecs = !converter.codecs().is_empty();
    let decoded = if codecs {
        let mut payloads = std::mem::take(&mut start.input);
        let n = payloads.len();
        payloads.append(&mut start.heartbeat_details);
        converter.decode_payloads(payloads).await.map(|mut all| {
            start.heartbeat_details = all.split_off(n);
            start.input = all;
        })
    } else {
        Ok(())
    };
    let execution = start.workflow_execution.clone().unwrap_or_default();
    let headers = start.header_fields;
    let info = ActivityInfo {
        activity_id: start.activity_id.clone(),
        activity_type: start.activity_type.clone(),
        attempt: start.attempt,
        workflow_namespace: start.workflow_namespace.clone(),
        workflow_type: start.workflow_type.clone(),
        workflow_id: execution.workflow_id,
        workflow_run_id: execution.run_id,
        task_queue,
        scheduled_time: start.scheduled_time.as_ref().map(from_proto_timestamp),
        heartbeat_timeout: start.heartbeat_timeout.as_ref().map(from_proto_duration),
        start_to_close_timeout: start
            .start_to_close_timeout
            .as_ref()
            .map(from_proto_duration),
        headers: headers.clone(),
    };
    let failures = converter.failures().clone();
    let failures_converter = converter.clone();
    let activity_type = info.activity_type.clone();
    // The attempt's info goes through the outbound stack once; its answer is `ctx.info()`.
    let prepared = match decoded {
        Ok(()) => match AssertUnwindSafe(
            outbound
                .clone()
                .oneshot(ActivityOutbound::Info(Box::new(info))),
        )
        .catch_unwind()
        .await
        {
            Ok(Ok(ActivityOutboundResponse::Info(info))) => Ok(*info),
            Ok(Ok(other)) => Err(BoxError::from(ApplicationFailure::new(
                "InterceptorError",
                format!("an activity outbound layer answered info with {other:?}"),
            ))),
            Ok(Err(e)) => Err(e),
            Err(panic) => Err(BoxError::from(ApplicationFailure::new(
                "Panic",
                format!(
                    "an activity outbound layer panicked on info: {}",
                    panic_message(&*panic)
                ),
            ))),
        },
        Err(e) => Err(BoxError::from(ApplicationFailure::new(
            "PayloadCodecError",
            format!("cannot decode the activity's input: {e}"),
        ))),
    };
    let mut context = None;
    let outcome = match prepared {
        Ok(info) => {
            let ctx = ActivityContext {
                inner: Arc::new(ContextInner {
                    info: Arc::new(info),
                    task_token: task_token.clone(),
                    heartbeat_details: start.heartbeat_details,
                    cancel: cancel.clone(),
                    converter,
                    outbound,
                    runtime: tokio::runtime::Handle::current(),
                    pump: Mutex::new(None),
                }),
            };
            context = Some(ctx.clone());
            let request = ActivityRequest {
                context: ctx,
                args: start.input,
                headers,
            };
            AssertUnwindSafe(service.oneshot(request))
                .catch_unwind()
                .await
        }
        Err(e) => Ok(Err(e)),
    };
    if let Some(ctx) = context {
        ctx.finish_heartbeats().await;
    }
    let mut result = match outcome {
        Ok(Ok(payload)) => ActivityExecutionResult::ok(payload),
        Ok(Err(e)) if e.is::<ActivityCancelled>() => {
            ActivityExecutionResult::cancel_from_details(None)
        }
        Ok(Err(e)) if e.is::<ActivityWillCompleteAsync>() => {
            ActivityExecutionResult::will_complete_async()
        }
        Ok(Err(e)) => ActivityExecutionResult::fail(failures.error_to_failure(&*e)),
        Err(panic) => {
            let msg = format!(
                "activity {activity_type} panicked: {}",
                panic_message(&*panic)
            );
            tracing::warn!("{msg}");
            ActivityExecutionResult::fail(
                failures.application_to_failure(&ApplicationFailure::new("Panic", msg)),
            )
        }
    };
    cancels
        .lock()
        .expect("cancel map poisoned")
        .remove(&task_token);
    if codecs
        && let Err(e) = failures_converter
            .encode_message(&mut result, &VisitOptions::default())
            .await
    {
        result = ActivityExecutionResult::fail(failures.application_to_failure(
            &ApplicationFailure::new(
                "PayloadCodecError",
                format!("cannot encode the activity's result: {e}"),
            ),
        ));
    }
    if let Err(e) = core
        .complete_activity_task(ActivityTaskCompletion {
            task_token,
            result: Some(result),
        })
        .await
    {
        tracing::warn!("completing an activity task failed: {e}");
    }
}

#[cfg(test)]
impl ActivityContext {
    /// A context for unit tests of layers: no engine behind it; heartbeats go to `outbound`.
    pub(crate) fn for_test(info: ActivityInfo, outbound: ActivityOutboundService) -> Self {
        Self {
            inner: Arc::new(ContextInner {
                info: Arc::new(info),
                task_token: b"test-token".to_vec(),
                heartbeat_details: Vec::new(),
                cancel: CancellationToken::new(),
                converter: DataConverter::default(),
                outbound,
                runtime: tokio::runtime::Handle::current(),
                pump: Mutex::new(None),
            }),
        }
    }

    /// Waits until the heartbeats sent so far went through the outbound stack.
    pub(crate) async fn flush_heartbeats_for_test(&self) {
        self.finish_heartbeats().await
    }
}
