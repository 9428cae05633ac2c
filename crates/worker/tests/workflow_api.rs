//! The workflow authoring API against a real dev server: child workflows, updates,
//! continue-as-new, conditions, side effects, external workflows, activity cancellation, local
//! activities, dynamic registrations, cancellation scopes, memo/search attribute upserts, and
//! replay after eviction.

mod common;
use common::{spawn_worker, stop};

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use futures::future::{Either, select};
use trellis_client::{
    ClientError, WorkflowExecutionStatus, WorkflowHandle, WorkflowIdConflictPolicy, WorkflowOptions,
};
use trellis_core_proto::api::enums::v1::EventType;
use trellis_core_proto::api::history::v1::history_event::Attributes;
use trellis_testing::{client, unique};
use trellis_worker::replay::{ReplayHistory, ReplayerConfig, replay_histories};
use trellis_worker::{
    ActivityCancellationType, ActivityContext, ActivityError, ActivityFailedKind,
    ApplicationFailure, ChildWorkflowFailedKind, ParentClosePolicy, Worker, WorkerConfig,
    WorkflowContext, WorkflowError,
};

fn event_types(history: &trellis_core_proto::History) -> Vec<EventType> {
    history.events.iter().map(|e| e.event_type()).collect()
}

async fn history_types(handle: &WorkflowHandle) -> Vec<EventType> {
    event_types(&handle.fetch_history().await.unwrap())
}

/// Polls `f` until it gives `Some`, failing after 20 s.
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------- child workflows

async fn child(ctx: WorkflowContext, name: String) -> Result<String, WorkflowError> {
    if ctx.info().parent_workflow_id.is_none() {
        return Err(
            ApplicationFailure::new("BadInfo", "a child workflow must know its parent").into(),
        );
    }
    let mut go = ctx.signal_channel::<String>("go");
    let greeting = go.recv().await?;
    Ok(format!("{greeting}, {name}!"))
}

async fn waits_forever(ctx: WorkflowContext, _: ()) -> Result<(), WorkflowError> {
    ctx.cancelled().await;
    Err(WorkflowError::cancelled())
}

async fn parent(ctx: WorkflowContext, _: ()) -> Result<Vec<String>, WorkflowError> {
    let handle = ctx
        .child_workflow("Child")
        .arg("child")
        .id(format!("{}-child", ctx.info().workflow_id))
        .execution_timeout(Duration::from_secs(60))
        .start()
        .await?;
    handle.signal("go", "Hello").await?;
    let greeting: String = handle.result().await?;

    let doomed = ctx.child_workflow("WaitsForever").arg(&()).start().await?;
    // A second child with the id of a running one cannot start.
    let clash = ctx
        .child_workflow("WaitsForever")
        .arg(&())
        .id(doomed.id())
        .start()
        .await
        .unwrap_err();
    let clash = match clash.kind {
        ChildWorkflowFailedKind::StartFailed(cause) => cause,
        other => format!("{other:?}"),
    };
    ctx.timer(Duration::from_millis(200)).await;
    doomed.cancel("no longer needed");
    let cancelled = match doomed.result::<()>().await {
        Ok(()) => "completed".to_owned(),
        Err(e) => match e.kind {
            ChildWorkflowFailedKind::Cancelled => "cancelled".to_owned(),
            other => format!("{other:?}"),
        },
    };

    let failed = ctx
        .child_workflow("NotRegisteredAnywhere")
        .task_queue(format!("{}-nobody", ctx.info().task_queue))
        .execution_timeout(Duration::from_secs(1))
        .run::<()>()
        .await
        .unwrap_err();
    Ok(vec![
        greeting,
        cancelled,
        format!("{:?}", failed.kind),
        clash,
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_workflows_start_signal_result_and_cancel() {
    let client = client().await;
    let tq = unique("children");
    let w = spawn_worker(
        &client,
        WorkerConfig::new(&tq)
            .workflow("Parent", parent)
            .workflow("Child", child)
            .workflow("WaitsForever", waits_forever),
    )
    .await;
    let handle = client
        .start_workflow("Parent", &(), WorkflowOptions::new(unique("parent"), &tq))
        .await
        .unwrap();
    let result: Vec<String> = handle.result().await.unwrap();
    assert_eq!(
        result,
        vec![
            "Hello, child!",
            "cancelled",
            "Failed",
            "WorkflowAlreadyExists"
        ]
    );
    let types = history_types(&handle).await;
    assert!(
        types.contains(&EventType::ChildWorkflowExecutionCompleted),
        "{types:?}"
    );
    assert!(
        types.contains(&EventType::ChildWorkflowExecutionCanceled),
        "{types:?}"
    );
    assert!(
        types.contains(&EventType::ChildWorkflowExecutionTimedOut),
        "{types:?}"
    );
    stop(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_outlives_parent_with_abandon_policy() {
    async fn abandoning_parent(
        ctx: WorkflowContext,
        child_id: String,
    ) -> Result<String, WorkflowError> {
        let handle = ctx
            .child_workflow("Child")
            .arg("orphan")
            .id(child_id)
            .memo("owner", "abandoning-parent")
            .search_attribute("TrellisStage", "orphaned")
            .parent_close_policy(ParentClosePolicy::Abandon)
            .start()
            .await?;
        Ok(handle.run_id().to_owned())
    }
    let client = client().await;
    register_keyword_search_attribute("TrellisStage");
    let tq = unique("abandon");
    let w = spawn_worker(
        &client,
        WorkerConfig::new(&tq)
            .workflow("AbandoningParent", abandoning_parent)
            .workflow("Child", child),
    )
    .await;
    let child_id = unique("orphan");
    let parent = client
        .start_workflow(
            "AbandoningParent",
            &child_id,
            WorkflowOptions::new(unique("abandoning-parent"), &tq),
        )
        .await
        .unwrap();
    let child_run: String = parent.result().await.unwrap();
    assert!(!child_run.is_empty());
    // The parent is closed; the child still runs, and finishes when told to.
    let child = client.workflow_handle(&child_id, None);
    let desc = child.describe().await.unwrap();
    assert_eq!(desc.status, WorkflowExecutionStatus::Running);
    assert_eq!(desc.run_id, child_run);
    // The child carries the memo and search attribute its parent gave it.
    let info = desc.raw.workflow_execution_info.clone().unwrap();
    let dc = client.data_converter();
    let memo: String = dc.decode(&info.memo.unwrap().fields["owner"]).unwrap();
    assert_eq!(memo, "abandoning-parent");
    let stage: String = dc
        .decode(&info.search_attributes.unwrap().indexed_fields["TrellisStage"])
        .unwrap();
    assert_eq!(stage, "orphaned");
    child.signal("go", "Bye").await.unwrap();
    let out: String = child.result().await.unwrap();
    assert_eq!(out, "Bye, orphan!");
    stop(w).await;
}

// ---------------------------------------------------------------- updates and conditions

async fn counter(ctx: WorkflowContext, _: ()) -> Result<i64, WorkflowError> {
    let total = Rc::new(Cell::new(0i64));
    let done = Rc::new(Cell::new(false));
    let t = total.clone();
    let c = ctx.clone();
    ctx.set_update_handler("add", move |n: i64| {
        let t = t.clone();
        let c = c.clone();
        async move {
            // The handler may wait; the update result comes when it returns.
            c.timer(Duration::from_millis(10)).await;
            t.set(t.get() + n);
            Ok(t.get())
        }
    });
    ctx.set_update_validator("add", |n: &i64| {
        if *n < 0 {
            Err(ApplicationFailure::new("Negative", format!("cannot add {n}")).into())
        } else {
            Ok(())
        }
    });
    let d = done.clone();
    ctx.set_update_handler("finish", move |(): ()| {
        let d = d.clone();
        async move {
            d.set(true);
            Ok("finishing")
        }
    });
    let t = total.clone();
    ctx.set_query_handler("total", move |(): ()| t.get());
    // A condition that times out, then one that an update releases.
    let timed_out = !ctx
        .wait_condition_timeout(|| total.get() >= 1_000_000, Duration::from_millis(100))
        .await;
    assert!(timed_out);
    ctx.wait_condition(|| done.get()).await;
    ctx.all_handlers_finished().await;
    Ok(total.get())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_with_start_starts_or_joins_the_workflow_in_one_call() {
    use trellis_client::ClientConfig;
    use trellis_client::interceptors::{ClientCall, ClientCallResponse};
    use trellis_interceptor::{BoxError, Next, from_fn};
    // A client interceptor's header goes with the start and with the update.
    let client = trellis_testing::client_with(ClientConfig::new("unused").call_layer(from_fn(
        |mut call: ClientCall, next: Next<ClientCall, ClientCallResponse, BoxError>| {
            if let Some(h) = call.headers_mut() {
                h.insert(
                    "tenant".into(),
                    trellis_client::DataConverter::default()
                        .encode("acme")
                        .unwrap(),
                );
            }
            next.run(call)
        },
    )))
    .await;
    let tq = unique("update-with-start");
    let w = spawn_worker(&client, WorkerConfig::new(&tq).workflow("Counter", counter)).await;
    let id = unique("counter-uws");
    let options = |policy| WorkflowOptions {
        id_conflict_policy: policy,
        ..WorkflowOptions::new(&id, &tq)
    };

    // No such workflow yet: the call starts it and the update runs on the new run.
    let (workflow, five): (_, i64) = client
        .execute_update_with_start_workflow(
            "Counter",
            (),
            options(WorkflowIdConflictPolicy::UseExisting),
            "add",
            (5i64,),
        )
        .await
        .unwrap();
    assert_eq!(five, 5);
    let run_id = workflow.run_id().unwrap().to_owned();
    assert_eq!(workflow.describe().await.unwrap().run_id, run_id);

    // Running: `UseExisting` sends the update to that run; the start form waits for acceptance.
    let (same, update) = client
        .start_update_with_start_workflow(
            "Counter",
            (),
            options(WorkflowIdConflictPolicy::UseExisting),
            "add",
            (7i64,),
        )
        .await
        .unwrap();
    assert_eq!(same.run_id(), Some(run_id.as_str()));
    assert_eq!(update.result::<i64>().await.unwrap(), 12);

    // `Fail` on a running workflow: the start's error, not the multi-operation wrapper.
    let err = client
        .execute_update_with_start_workflow::<i64>(
            "Counter",
            (),
            options(WorkflowIdConflictPolicy::Fail),
            "add",
            (1i64,),
        )
        .await
        .unwrap_err();
    let ClientError::Rpc { operation, status } = &err else {
        panic!("expected an RPC error, got {err}");
    };
    assert_eq!(*operation, "update_with_start_workflow");
    assert_eq!(status.code(), trellis_client::Code::AlreadyExists, "{err}");

    // The validator's rejection is the update's error; nothing changed.
    let rejected = client
        .execute_update_with_start_workflow::<i64>(
            "Counter",
            (),
            options(WorkflowIdConflictPolicy::UseExisting),
            "add",
            (-3i64,),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(rejected, ClientError::Update { .. })
            && rejected.to_string().contains("cannot add -3"),
        "{rejected}"
    );

    // Without a conflict policy, a new id starts as with `Fail`.
    let (other, one): (_, i64) = client
        .execute_update_with_start_workflow(
            "Counter",
            (),
            WorkflowOptions::new(unique("counter-uws-default"), &tq),
            "add",
            (1i64,),
        )
        .await
        .unwrap();
    assert_eq!(one, 1);
    let _: String = other.update("finish", ()).await.unwrap();

    let _: String = workflow.update("finish", ()).await.unwrap();
    assert_eq!(workflow.result::<i64>().await.unwrap(), 12);

    // The history: the start and the first update carry the interceptor's header.
    let history = workflow.fetch_history().await.unwrap();
    let started_header = match &history.events[0].attributes {
        Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) => a.header.clone(),
        other => panic!("{other:?}"),
    };
    let update_header = history.events.iter().find_map(|e| match &e.attributes {
        Some(Attributes::WorkflowExecutionUpdateAcceptedEventAttributes(a)) => a
            .accepted_request
            .as_ref()
            .and_then(|r| r.input.as_ref())
            .and_then(|i| i.header.clone()),
        _ => None,
    });
    for header in [started_header, update_header] {
        assert!(
            header.is_some_and(|h| h.fields.contains_key("tenant")),
            "{history:#?}"
        );
    }
    stop(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_validators_and_wait_condition() {
    let client = client().await;
    let tq = unique("updates");
    let w = spawn_worker(&client, WorkerConfig::new(&tq).workflow("Counter", counter)).await;
    let handle = client
        .start_workflow("Counter", &(), WorkflowOptions::new(unique("counter"), &tq))
        .await
        .unwrap();
    let a: i64 = handle.update("add", (5i64,)).await.unwrap();
    assert_eq!(a, 5);
    let started = handle.start_update("add", (7i64,)).await.unwrap();
    let b: i64 = started.result().await.unwrap();
    assert_eq!(b, 12);

    let rejected = handle.update::<i64>("add", (-3i64,)).await.unwrap_err();
    let ClientError::Update { failure, .. } = &rejected else {
        panic!("expected an update error, got {rejected}");
    };
    assert!(rejected.to_string().contains("cannot add -3"), "{rejected}");
    assert!(failure.message.contains("cannot add -3") || rejected.to_string().contains("Negative"));

    let unknown = handle.update::<i64>("multiply", (2i64,)).await.unwrap_err();
    assert!(
        unknown
            .to_string()
            .contains("no handler for update \"multiply\""),
        "{unknown}"
    );
    let bad_input = handle.update::<i64>("add", ("seven",)).await.unwrap_err();
    assert!(
        bad_input.to_string().contains("do not decode"),
        "{bad_input}"
    );

    let total: i64 = handle.query("total", ()).await.unwrap();
    assert_eq!(total, 12);
    let finishing: String = handle.update("finish", ()).await.unwrap();
    assert_eq!(finishing, "finishing");
    let result: i64 = handle.result().await.unwrap();
    assert_eq!(result, 12);

    // Rejected updates never reach the history: only the accepted ones are there.
    let history = handle.fetch_history().await.unwrap();
    let types = event_types(&history);
    let accepted = types
        .iter()
        .filter(|t| **t == EventType::WorkflowExecutionUpdateAccepted)
        .count();
    // "add 5", "add 7" and "finish"; the negative, unknown and undecodable ones were rejected.
    assert_eq!(accepted, 3, "{types:?}");
    let text = format!("{history:?}");
    assert!(
        !text.contains("cannot add -3"),
        "a rejected update is in the history"
    );
    assert!(
        !text.contains("multiply"),
        "an unknown update is in the history"
    );
    stop(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_id_makes_the_update_idempotent_and_can_be_looked_up() {
    let client = client().await;
    let tq = unique("update-ids");
    let w = spawn_worker(&client, WorkerConfig::new(&tq).workflow("Counter", counter)).await;
    let handle = client
        .start_workflow("Counter", &(), WorkflowOptions::new(unique("counter"), &tq))
        .await
        .unwrap();
    let first = handle
        .start_update_with_id("add", "order-42", (5i64,))
        .await
        .unwrap();
    assert_eq!(first.id(), "order-42");
    // The same id again (a retry after a timeout, say): the handler does not run again.
    let again = handle
        .start_update_with_id("add", "order-42", (5i64,))
        .await
        .unwrap();
    assert_eq!(first.result::<i64>().await.unwrap(), 5);
    assert_eq!(again.result::<i64>().await.unwrap(), 5);
    // Looked up by id from a fresh handle, as another process would.
    let other = client.workflow_handle(handle.id(), None);
    assert_eq!(
        other
            .update_handle("order-42")
            .result::<i64>()
            .await
            .unwrap(),
        5
    );
    let total: i64 = handle.query("total", ()).await.unwrap();
    assert_eq!(total, 5, "the update ran once");
    let missing = other
        .update_handle("never-sent")
        .result::<i64>()
        .await
        .unwrap_err();
    assert_eq!(
        missing.status().map(|s| s.code()),
        Some(trellis_client::Code::NotFound),
        "{missing}"
    );
    let _: String = handle.update("finish", ()).await.unwrap();
    assert_eq!(handle.result::<i64>().await.unwrap(), 5);
    stop(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_answered_while_waiting_on_a_timer() {
    async fn sleeper(ctx: WorkflowContext, _: ()) -> Result<String, WorkflowError> {
        let phase = Rc::new(RefCell::new("sleeping".to_owned()));
        let p = phase.clone();
        ctx.set_query_handler("phase", move |(): ()| p.borrow().clone());
        ctx.set_dynamic_query_handler(|name, _args| {
            trellis_converter::DataConverter::default()
                .encode(&format!("dynamic:{name}"))
                .map_err(|e| e.to_string())
        });
        // A long timer; a "wake" signal ends the wait early (the timer is then cancelled).
        let mut wake = ctx.signal_channel::<()>("wake");
        let timer = ctx.timer(Duration::from_secs(3600));
        let woken = std::pin::pin!(wake.recv());
        let _ = select(timer, woken).await;
        *phase.borrow_mut() = "awake".to_owned();
        Ok(phase.borrow().clone())
    }
    let client = client().await;
    let tq = unique("sleeper");
    let w = spawn_worker(&client, WorkerConfig::new(&tq).workflow("Sleeper", sleeper)).await;
    let handle = client
        .start_workflow("Sleeper", &(), WorkflowOptions::new(unique("sleeper"), &tq))
        .await
        .unwrap();
    let phase: String = eventually("a query answer", || async {
        handle.query::<String>("phase", ()).await.ok()
    })
    .await;
    assert_eq!(phase, "sleeping");
    let dynamic: String = handle.query("whatever", ()).await.unwrap();
    assert_eq!(dynamic, "dynamic:whatever");
    // Still on the timer: no timer fired, the workflow is running.
    let types = history_types(&handle).await;
    assert!(types.contains(&EventType::TimerStarted), "{types:?}");
    assert!(!types.contains(&EventType::TimerFired), "{types:?}");
    handle.signal("wake", &()).await.unwrap();
    let out: String = handle.result().await.unwrap();
    assert_eq!(out, "awake");
    stop(w).await;
}

// ---------------------------------------------------------------- continue-as-new

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_as_new_carries_state() {
    async fn count_up(
        ctx: WorkflowContext,
        (n, seen): (u32, Vec<String>),
    ) -> Result<Vec<String>, WorkflowError> {
        let mut seen = seen;
        let info = ctx.info();
        // Every run after the first knows the run it continued from.
        if info.continued_from_run_id.is_some() != (n > 0) || info.first_execution_run_id.is_empty()
        {
            return Err(ApplicationFailure::new("BadInfo", format!("{info:?}")).into());
        }
        seen.push(format!("{n}:{}", info.run_id.len()));
        if n < 3 {
            return Err(ctx.continue_as_new(&(n + 1, seen)).into());
        }
        Ok(seen)
    }
    let client = client().await;
    let tq = unique("can");
    let w = spawn_worker(
        &client,
        WorkerConfig::new(&tq).workflow("CountUp", count_up),
    )
    .await;
    let handle = client
        .start_workflow_with_args(
            "CountUp",
            (0u32, Vec::<String>::new()),
            WorkflowOptions::new(unique("count-up"), &tq),
        )
        .await
        .unwrap();
    let out: Vec<String> = handle.result().await.unwrap();
    assert_eq!(out, vec!["0:36", "1:36", "2:36", "3:36"]);
    let first = handle.fetch_history().await.unwrap();
    assert_eq!(
        event_types(&first).last(),
        Some(&EventType::WorkflowExecutionContinuedAsNew)
    );
    stop(w).await;
}

// ---------------------------------------------------------------- cancellation

static CLEANED: AtomicU32 = AtomicU32::new(0);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_cancellation_cleans_up_with_an_activity() {
    async fn cleanup(_ctx: ActivityContext, what: String) -> Result<String, ActivityError> {
        CLEANED.fetch_add(1, Ordering::SeqCst);
        Ok(format!("cleaned {what}"))
    }
    async fn cancellable(ctx: WorkflowContext, _: ()) -> Result<(), WorkflowError> {
        let reason = ctx.cancelled().await;
        let _: String = ctx
            .activity("cleanup")
            .arg(&reason)
            .start_to_close_timeout(Duration::from_secs(10))
            .run()
            .await?;
        Err(WorkflowError::cancelled())
    }
    let client = client().await;
    let tq = unique("cancel");
    let w = spawn_worker(
        &client,
        WorkerConfig::new(&tq)
            .workflow("Cancellable", cancellable)
            .activity("cleanup", cleanup),
    )
    .await;
    let handle = client
        .start_workflow(
            "Cancellable",
            &(),
            WorkflowOptions::new(unique("cancellable"), &tq),
        )
        .await
        .unwrap();
    handle.cancel("shutting down").await.unwrap();
    let err = handle.result::<()>().await.unwrap_err();
    let ClientError::Workflow(f) = &err else {
        panic!("expected a workflow failure, got {err}");
    };
    assert_eq!(f.status, WorkflowExecutionStatus::Canceled);
    let types = history_types(&handle).await;
    assert!(
        types.contains(&EventType::ActivityTaskCompleted),
        "{types:?}"
    );
    assert!(CLEANED.load(Ordering::SeqCst) >= 1);
    stop(w).await;
}

static HANG_STARTED: AtomicBool = AtomicBool::new(false);
static HANG_CANCELLED: AtomicBool = AtomicBool::new(false);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_that_ignores_cancellation_is_cancelled_with_what_it_waited_on() {
    async fn hang(ctx: ActivityContext, _: ()) -> Result<(), ActivityError> {
        // Heartbeats until the cancellation reaches it.
        HANG_STARTED.store(true, Ordering::SeqCst);
        for _ in 0..600 {
            ctx.heartbeat(&());
            if ctx.is_cancelled() {
                HANG_CANCELLED.store(true, Ordering::SeqCst);
                return Err(ActivityError::Cancelled);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }
    // Never asks about cancellation: waits on an activity and a long timer.
    async fn oblivious(ctx: WorkflowContext, _: ()) -> Result<String, WorkflowError> {
        let activity = ctx
            .activity("hang")
            .start_to_close_timeout(Duration::from_secs(120))
            .heartbeat_timeout(Duration::from_secs(2))
            .run::<()>();
        let timer = ctx.timer(Duration::from_secs(3600));
        let (r, ()) = futures::join!(activity, timer);
        r?;
        Ok("finished".into())
    }
    let client = client().await;
    let tq = unique("cancel-oblivious");
    let mut config = WorkerConfig::new(&tq)
        .workflow("Oblivious", oblivious)
        .activity("hang", hang);
    // Every task replays the run from history: the cancellation must replay too.
    config.max_cached_workflows = 0;
    let w = spawn_worker(&client, config).await;
    let handle = client
        .start_workflow(
            "Oblivious",
            &(),
            WorkflowOptions::new(unique("oblivious"), &tq),
        )
        .await
        .unwrap();
    // Cancel once the activity runs.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !HANG_STARTED.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the activity never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    handle.cancel("stop").await.unwrap();
    let err = handle.result::<String>().await.unwrap_err();
    let ClientError::Workflow(f) = &err else {
        panic!("expected a workflow failure, got {err}");
    };
    assert_eq!(f.status, WorkflowExecutionStatus::Canceled);
    let types = history_types(&handle).await;
    for expected in [
        EventType::ActivityTaskCancelRequested,
        EventType::TimerCanceled,
        EventType::WorkflowExecutionCanceled,
    ] {
        assert!(types.contains(&expected), "{expected:?} in {types:?}");
    }
    // The activity heard of it through its heartbeat.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !HANG_CANCELLED.load(Ordering::SeqCst) {
        assert!(
            Instant::now() < deadline,
            "the activity never saw the cancellation"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The history replays clean.
    let history = handle.fetch_history().await.unwrap();
    let replayed = replay_histories(
        &ReplayerConfig::new(WorkerConfig::new("replay").workflow("Oblivious", oblivious)),
        vec![ReplayHistory::new("server", handle.id(), history)],
    )
    .await
    .unwrap();
    assert!(replayed[0].is_ok(), "{replayed:?}");
    stop(w).await;
}

static SAW_CANCEL: AtomicBool = AtomicBool::new(false);

async fn sleepy(ctx: ActivityContext, _: ()) -> Result<(), ActivityError> {
    loop {
        ctx.heartbeat(&());
        tokio::select! {
            () = ctx.cancelled() => {
                SAW_CANCEL.store(true, Ordering::SeqCst);
                return Err(ActivityError::Cancelled);
            }
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activities_are_cancelled_explicitly_or_by_dropping() {
    async fn cancels(ctx: WorkflowContext, _: ()) -> Result<Vec<String>, WorkflowError> {
        let mut out = Vec::new();
        // Explicit cancel, waiting for the activity to acknowledge.
        let mut act = ctx
            .activity("sleepy")
            .start_to_close_timeout(Duration::from_secs(30))
            .heartbeat_timeout(Duration::from_secs(2))
            .cancellation_type(ActivityCancellationType::WaitCancellationCompleted)
            .summary("sleeps until cancelled")
            .run::<()>();
        if let Either::Left(_) = select(&mut act, ctx.timer(Duration::from_millis(800))).await {
            return Err(WorkflowError::task("the activity finished on its own"));
        }
        act.cancel();
        match act.await {
            Err(e) if matches!(e.kind, ActivityFailedKind::Cancelled) => {
                out.push("cancelled".into())
            }
            other => out.push(format!("{other:?}")),
        }
        // Dropped: cancelled with the default TryCancel.
        let act = ctx
            .activity("sleepy")
            .start_to_close_timeout(Duration::from_secs(30))
            .heartbeat_timeout(Duration::from_secs(2))
            .run::<()>();
        match select(act, ctx.timer(Duration::from_millis(500))).await {
            Either::Left(_) => out.push("finished".into()),
            Either::Right(_) => out.push("dropped".into()),
        }
        // A timer dropped before it fires is cancelled.
        let t = ctx.timer(Duration::from_secs(3600));
        let _ = select(t, ctx.timer(Duration::from_millis(10))).await;
        Ok(out)
    }
    let client = client().await;
    let tq = unique("act-cancel");
    let w = spawn_worker(
        &client,
        WorkerConfig::new(&tq)
            .workflow("Cancels", cancels)
            .activity("sleepy", sleepy),
    )
    .await;
    let handle = client
        .start_workflow("Cancels", &(), WorkflowOptions::new(unique("cancels"), &tq))
        .await
        .unwrap();
    let out: Vec<String> = handle.result().await.unwrap();
    assert_eq!(out, vec!["cancelled", "dropped"]);
    assert!(SAW_CANCEL.load(Ordering::SeqCst));
    let types = history_types(&handle).await;
    let requested = types
        .iter()
        .filter(|t| **t == EventType::ActivityTaskCancelRequested)
        .count();
    assert_eq!(requested, 2, "{types:?}");
    assert!(
        types.contains(&EventType::ActivityTaskCanceled),
        "{types:?}"
    );
    assert!(types.contains(&EventType::TimerCanceled), "{types:?}");
    let history = handle.fetch_history().await.unwrap();
    let summary = history
        .events
        .iter()
        .filter(|e| e.event_type() == EventType::ActivityTaskScheduled)
        .find_map(|e| e.user_metadata.as_ref()?.summary.clone())
        .expect("the first activity's summary is in the history");
    let summary: String = client.data_converter().decode(&summary).unwrap();
    assert_eq!(summary, "sleeps until cancelled");
    stop(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_scope_cancels_its_operations() {
    async fn scoped(ctx: WorkflowContext, _: ()) -> Result<String, WorkflowError> {
        let scope = ctx.cancellation_scope();
        let inner = ctx.clone();
        let work = scope.run(async move {
            let a = inner
                .activity("sleepy")
                .start_to_close_timeout(Duration::from_secs(30))
                .heartbeat_timeout(Duration::from_secs(2))
                .run::<()>();
            let t = inner.timer(Duration::from_secs(3600));
            futures::future::join(a, t).await
        });
        let s2 = scope.clone();
        let c = ctx.clone();
        let canceller = async move {
            c.timer(Duration::from_millis(500)).await;
            s2.cancel();
        };
        let (r, ()) = futures::future::join(work, canceller).await;
        Ok(match r {
            Ok(_) => "finished".into(),
            Err(e) => e.to_string(),
        })
    }
    let client = client().await;
    let tq = unique("scope");
    let w = spawn_worker(
        &client,
        WorkerConfig::new(&tq)
            .workflow("Scoped", scoped)
            .activity("sleepy", sleepy),
    )
    .await;
    let handle = client
        .start_workflow("Scoped", &(), WorkflowOptions::new(unique("scoped"), &tq))
        .await
        .unwrap();
    let out: String = handle.result().await.unwrap();
    assert_eq!(out, "the cancellation scope was cancelled");
    let types = history_types(&handle).await;
    assert!(types.contains(&EventType::TimerCanceled), "{types:?}");
    assert!(
        types.contains(&EventType::ActivityTaskCancelRequested),
        "{types:?}"
    );
    stop(w).await;
}

// ---------------------------------------------------------------- external workflows

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_and_cancel_an_external_workflow() {
    async fn target(ctx: WorkflowContext, _: ()) -> Result<String, WorkflowError> {
        let mut pings = ctx.signal_channel::<String>("ping");
        let ping = pings.recv().await?;
        let reason = ctx.cancelled().await;
        let _ = reason;
        Err(ApplicationFailure::new("Stopped", format!("got {ping} then cancel")).into())
    }
    async fn sender(ctx: WorkflowContext, target_id: String) -> Result<String, WorkflowError> {
        let other = ctx.external_workflow(&target_id, None);
        other.signal("ping", "hello").await?;
        other.cancel("enough").await?;
        let missing = ctx
            .external_workflow(format!("{target_id}-does-not-exist"), None)
            .signal("ping", "x")
            .await
            .unwrap_err();
        Ok(missing.to_string())
    }
    let client = client().await;
    let tq = unique("external");
    let w = spawn_worker(
        &client,
        WorkerConfig::new(&tq)
            .workflow("Target", target)
            .workflow("Sender", sender),
    )
    .await;
    let target_id = unique("target");
    let target = client
        .start_workflow("Target", &(), WorkflowOptions::new(&target_id, &tq))
        .await
        .unwrap();
    let sender = client
        .start_workflow(
            "Sender",
            &target_id,
            WorkflowOptions::new(unique("sender"), &tq),
        )
        .await
        .unwrap();
    let missing: String = sender.result().await.unwrap();
    assert!(missing.contains("signal of workflow"), "{missing}");
    let err = target.result::<String>().await.unwrap_err();
    assert!(err.to_string().contains("got hello then cancel"), "{err}");
    stop(w).await;
}

// ---------------------------------------------------------------- side effects, local activities

static SIDE_EFFECT_RUNS: AtomicU32 = AtomicU32::new(0);
static LOCAL_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

async fn flaky_local(ctx: ActivityContext, name: String) -> Result<String, ActivityError> {
    LOCAL_ATTEMPTS.fetch_add(1, Ordering::SeqCst);
    if ctx.info().attempt < 2 {
        return Err(std::io::Error::other("first attempt fails").into());
    }
    Ok(format!("local {name} (attempt {})", ctx.info().attempt))
}

async fn effects(ctx: WorkflowContext, _: ()) -> Result<Vec<String>, WorkflowError> {
    let token: u32 = ctx
        .side_effect(|| 1000 + SIDE_EFFECT_RUNS.fetch_add(1, Ordering::SeqCst))
        .await?;
    ctx.timer(Duration::from_millis(100)).await;
    let local: String = ctx
        .local_activity("flaky_local")
        .arg("hi")
        .summary("a local activity with a summary")
        .start_to_close_timeout(Duration::from_secs(5))
        .retry_policy(trellis_client::RetryPolicy {
            initial_interval: Some(trellis_core_proto::time::to_proto_duration(
                Duration::from_millis(50),
            )),
            maximum_attempts: 3,
            ..Default::default()
        })
        .run()
        .await?;
    ctx.timer(Duration::from_millis(100)).await;
    // After replays, the side effect still gives the recorded value.
    Ok(vec![token.to_string(), local])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn side_effects_and_local_activities_are_recorded() {
    let client = client().await;
    let tq = unique("effects");
    let mut config = WorkerConfig::new(&tq)
        .workflow("Effects", effects)
        .activity("flaky_local", flaky_local);
    // Every task replays the run from history: recorded values must come back unchanged.
    config.max_cached_workflows = 0;
    let w = spawn_worker(&client, config).await;
    let before = SIDE_EFFECT_RUNS.load(Ordering::SeqCst);
    let handle = client
        .start_workflow("Effects", &(), WorkflowOptions::new(unique("effects"), &tq))
        .await
        .unwrap();
    let out: Vec<String> = handle.result().await.unwrap();
    assert_eq!(out[0], (1000 + before).to_string());
    assert_eq!(out[1], "local hi (attempt 2)");
    assert_eq!(SIDE_EFFECT_RUNS.load(Ordering::SeqCst), before + 1);
    let types = history_types(&handle).await;
    let markers = types
        .iter()
        .filter(|t| **t == EventType::MarkerRecorded)
        .count();
    assert_eq!(markers, 2, "{types:?}");
    assert!(
        !types.contains(&EventType::ActivityTaskScheduled),
        "{types:?}"
    );
    let history = handle.fetch_history().await.unwrap();
    let summarised = history.events.iter().any(|e| {
        e.event_type() == EventType::MarkerRecorded
            && e.user_metadata
                .as_ref()
                .and_then(|m| m.summary.as_ref())
                .is_some()
    });
    assert!(
        summarised,
        "the local activity's summary is not in the history"
    );
    stop(w).await;

    // The finished history replays cleanly, reading the recorded values back.
    let history = handle.fetch_history().await.unwrap();
    let results = replay_histories(
        &ReplayerConfig::new(WorkerConfig::new("replay").workflow("Effects", effects)),
        vec![ReplayHistory::new("server", handle.id(), history)],
    )
    .await
    .unwrap();
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert_eq!(SIDE_EFFECT_RUNS.load(Ordering::SeqCst), before + 1);
}

static BACKOFF_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_activity_backoff_beyond_the_threshold_uses_a_timer() {
    async fn fails_once(ctx: ActivityContext, _: ()) -> Result<u32, ActivityError> {
        BACKOFF_ATTEMPTS.fetch_add(1, Ordering::SeqCst);
        if ctx.info().attempt < 2 {
            return Err(std::io::Error::other("not yet").into());
        }
        Ok(ctx.info().attempt)
    }
    async fn backs_off(ctx: WorkflowContext, _: ()) -> Result<u32, WorkflowError> {
        Ok(ctx
            .local_activity("fails_once")
            .start_to_close_timeout(Duration::from_secs(5))
            .local_retry_threshold(Duration::from_millis(500))
            .retry_policy(trellis_client::RetryPolicy {
                initial_interval: Some(trellis_core_proto::time::to_proto_duration(
                    Duration::from_secs(1),
                )),
                maximum_attempts: 3,
                ..Default::default()
            })
            .run()
            .await?)
    }
    let client = client().await;
    let tq = unique("la-backoff");
    let w = spawn_worker(
        &client,
        WorkerConfig::new(&tq)
            .workflow("BacksOff", backs_off)
            .activity("fails_once", fails_once),
    )
    .await;
    let handle = client
        .start_workflow(
            "BacksOff",
            &(),
            WorkflowOptions::new(unique("backs-off"), &tq),
        )
        .await
        .unwrap();
    let attempt: u32 = handle.result().await.unwrap();
    assert_eq!(attempt, 2);
    let types = history_types(&handle).await;
    assert!(types.contains(&EventType::TimerFired), "{types:?}");
    assert!(types.contains(&EventType::MarkerRecorded), "{types:?}");
    stop(w).await;
}

// ---------------------------------------------------------------- typed references

const SHOUT: trellis_worker::ActivityRef<(String, u32), String> =
    trellis_worker::ActivityRef::new("shout");
const SHOUTER: trellis_worker::WorkflowRef<(String,), String> =
    trellis_worker::WorkflowRef::new("Shouter");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_references_call_activities_and_children() {
    async fn shout(_ctx: ActivityContext, (s, n): (String, u32)) -> Result<String, ActivityError> {
        Ok(format!("{}{}", s.to_uppercase(), "!".repeat(n as usize)))
    }
    async fn shouter(ctx: WorkflowContext, s: String) -> Result<String, WorkflowError> {
        let remote = SHOUT
            .call(&ctx, (s.clone(), 1))
            .options(|c| c.start_to_close_timeout(Duration::from_secs(10)))
            .run()
            .await?;
        let local = SHOUT
            .call_local(&ctx, (s, 2))
            .options(|c| c.start_to_close_timeout(Duration::from_secs(10)))
            .run()
            .await?;
        Ok(format!("{remote} {local}"))
    }
    async fn outer(ctx: WorkflowContext, s: String) -> Result<String, WorkflowError> {
        Ok(SHOUTER
            .child(&ctx, (s,))
            .options(|c| c.execution_timeout(Duration::from_secs(30)))
            .run()
            .await?)
    }
    let client = client().await;
    let tq = unique("typed");
    let w = spawn_worker(
        &client,
        WorkerConfig::new(&tq)
            .workflow("Outer", outer)
            .workflow(SHOUTER.name(), shouter)
            .activity(SHOUT.name(), shout),
    )
    .await;
    let handle = client
        .start_workflow("Outer", "hey", WorkflowOptions::new(unique("typed"), &tq))
        .await
        .unwrap();
    let out: String = handle.result().await.unwrap();
    assert_eq!(out, "HEY! HEY!!");
    stop(w).await;
}

// ---------------------------------------------------------------- dynamic registrations

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_workflow_and_activity_serve_unknown_types() {
    let client = client().await;
    let tq = unique("dynamic");
    let config = WorkerConfig::new(&tq)
        .dynamic_workflow(|ctx: WorkflowContext, args| async move {
            let input: String = ctx.data_converter().decode_args(&args)?;
            let wf_type = ctx.info().workflow_type.clone();
            let out: String = ctx
                .activity(format!("act-for-{wf_type}"))
                .arg(&input)
                .start_to_close_timeout(Duration::from_secs(10))
                .run()
                .await?;
            Ok(out)
        })
        .dynamic_activity(|ctx: ActivityContext, args| async move {
            let input: String = ctx.data_converter().decode_args(&args)?;
            Ok(format!("{} got {input}", ctx.info().activity_type))
        });
    let w = spawn_worker(&client, config).await;
    let handle = client
        .start_workflow("AnyName", "x", WorkflowOptions::new(unique("dyn"), &tq))
        .await
        .unwrap();
    let out: String = handle.result().await.unwrap();
    assert_eq!(out, "act-for-AnyName got x");
    stop(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dynamic_workflows_are_refused() {
    let client = client().await;
    let config = WorkerConfig::new(unique("dyn2"))
        .dynamic_workflow(|_ctx: WorkflowContext, _args| async move { Ok(()) })
        .dynamic_workflow(|_ctx: WorkflowContext, _args| async move { Ok(()) });
    let err = Worker::new(&client, config).await.unwrap_err();
    assert!(err.to_string().contains("dynamic"), "{err}");
}

// ---------------------------------------------------------------- memo and search attributes

/// Registers a Keyword search attribute on the dev server's default namespace (the CLI's dev
/// server starts with none), waiting until the server lists it.
fn register_keyword_search_attribute(name: &str) {
    let cli = trellis_testing::temporal_cli().expect("the Temporal CLI");
    let address = trellis_testing::server_address();
    let listed = || {
        let out = std::process::Command::new(&cli)
            .args(["operator", "search-attribute", "list", "--address", address])
            .output()
            .expect("running temporal operator search-attribute list");
        String::from_utf8_lossy(&out.stdout).contains(name)
    };
    if listed() {
        return;
    }
    // Fails harmlessly when a concurrent test registered it first.
    let _ = std::process::Command::new(&cli)
        .args([
            "operator",
            "search-attribute",
            "create",
            "--name",
            name,
            "--type",
            "Keyword",
            "--address",
            address,
        ])
        .output();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !listed() {
        assert!(
            Instant::now() < deadline,
            "search attribute {name} never registered"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memo_and_search_attributes_are_upserted() {
    async fn upserts(ctx: WorkflowContext, _: ()) -> Result<(), WorkflowError> {
        ctx.upsert_memo_field("stage", "shipped")?;
        ctx.upsert_search_attribute("TrellisStage", "shipped")?;
        let mut go = ctx.signal_channel::<()>("done");
        go.recv().await?;
        Ok(())
    }
    let client = client().await;
    register_keyword_search_attribute("TrellisStage");
    let tq = unique("upserts");
    let w = spawn_worker(&client, WorkerConfig::new(&tq).workflow("Upserts", upserts)).await;
    let handle = client
        .start_workflow("Upserts", &(), WorkflowOptions::new(unique("upserts"), &tq))
        .await
        .unwrap();
    let dc = client.data_converter().clone();
    let (memo, sa) = eventually("the upserted memo", || {
        let handle = handle.clone();
        let dc = dc.clone();
        async move {
            let desc = handle.describe().await.ok()?;
            let info = desc.raw.workflow_execution_info?;
            let memo = info.memo?.fields.get("stage").cloned()?;
            let sa = info
                .search_attributes?
                .indexed_fields
                .get("TrellisStage")
                .cloned()?;
            Some((
                dc.decode_args::<String>(&[memo]).ok()?,
                dc.decode_args::<String>(&[sa]).ok()?,
            ))
        }
    })
    .await;
    assert_eq!(memo, "shipped");
    assert_eq!(sa, "shipped");
    handle.signal("done", &()).await.unwrap();
    handle.result::<()>().await.unwrap();
    stop(w).await;
}

// ---------------------------------------------------------------- replay after eviction

static REPLAY_ACTIVITY_RUNS: AtomicU32 = AtomicU32::new(0);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evicted_workflow_resumes_by_replay_with_the_same_result() {
    async fn double(_ctx: ActivityContext, n: u64) -> Result<u64, ActivityError> {
        REPLAY_ACTIVITY_RUNS.fetch_add(1, Ordering::SeqCst);
        Ok(n * 2)
    }
    async fn long_run(ctx: WorkflowContext, n: u64) -> Result<String, WorkflowError> {
        let total = Rc::new(Cell::new(n));
        let t = total.clone();
        ctx.set_update_handler("bump", move |k: u64| {
            let t = t.clone();
            async move {
                t.set(t.get() + k);
                Ok(t.get())
            }
        });
        let doubled: u64 = ctx
            .activity("double")
            .arg(&total.get())
            .start_to_close_timeout(Duration::from_secs(10))
            .run()
            .await?;
        total.set(doubled);
        ctx.timer(Duration::from_millis(200)).await;
        let child: String = ctx
            .child_workflow("Child")
            .arg("replayed")
            .run_timeout(Duration::from_secs(30))
            .start()
            .await?
            .result::<String>()
            .await
            .or_else(|e| Ok::<_, WorkflowError>(e.to_string()))?;
        let id = ctx.uuid4();
        let mut go = ctx.signal_channel::<u64>("more");
        let more = go.recv().await?;
        total.set(total.get() + more);
        Ok(format!(
            "{} {} {}",
            total.get(),
            child.len(),
            id.get_version_num()
        ))
    }
    let client = client().await;
    let tq = unique("evict");
    let mut config = WorkerConfig::new(&tq)
        .workflow("LongRun", long_run)
        .workflow("Child", child)
        .activity("double", double);
    config.max_cached_workflows = 0;
    let w = spawn_worker(&client, config).await;
    let handle = client
        .start_workflow(
            "LongRun",
            &10u64,
            WorkflowOptions::new(unique("long-run"), &tq),
        )
        .await
        .unwrap();
    // The child waits for "go"; find it through the parent's history and release it.
    let child_id = eventually("the child to start", || {
        let handle = handle.clone();
        async move {
            let h = handle.fetch_history().await.ok()?;
            h.events.iter().find_map(|e| match &e.attributes {
                Some(Attributes::ChildWorkflowExecutionStartedEventAttributes(a)) => {
                    a.workflow_execution.as_ref().map(|x| x.workflow_id.clone())
                }
                _ => None,
            })
        }
    })
    .await;
    client
        .workflow_handle(&child_id, None)
        .signal("go", "Hi")
        .await
        .unwrap();
    let bumped: u64 = eventually("the update", || async {
        handle.update::<u64>("bump", (1u64,)).await.ok()
    })
    .await;
    // The activity resolved before the child started: 10 doubled, plus 1.
    assert_eq!(bumped, 21);
    handle.signal("more", &5u64).await.unwrap();
    let out: String = handle.result().await.unwrap();
    // 21 + 5; "Hi, replayed!" has 13 characters; a version-4 UUID.
    assert_eq!(out, "26 13 4");
    assert_eq!(REPLAY_ACTIVITY_RUNS.load(Ordering::SeqCst), 1);
    stop(w).await;
}

// ---------------------------------------------------------------- bad input

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_update_handler_fails_the_task_and_the_worker_keeps_running() {
    async fn fragile(ctx: WorkflowContext, _: ()) -> Result<(), WorkflowError> {
        ctx.set_update_handler("explode", |(): ()| async move {
            if true {
                panic!("the update handler exploded");
            }
            Ok(())
        });
        ctx.signal_channel::<()>("never").recv().await?;
        Ok(())
    }
    async fn fine(_ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
        Ok(n + 1)
    }
    let client = client().await;
    let tq = unique("fragile");
    let w = spawn_worker(
        &client,
        WorkerConfig::new(&tq)
            .workflow("Fragile", fragile)
            .workflow("Fine", fine),
    )
    .await;
    let handle = client
        .start_workflow("Fragile", &(), WorkflowOptions::new(unique("fragile"), &tq))
        .await
        .unwrap();
    // The caller waits (the task is retried); the failure shows in the history.
    let pending = {
        let handle = handle.clone();
        tokio::spawn(async move { handle.update::<()>("explode", ()).await })
    };
    let failure = trellis_testing::workflow_task_failure(&handle).await;
    assert!(
        failure.message.contains("the update handler exploded"),
        "{failure:?}"
    );
    pending.abort();
    // The worker is still serving.
    let other = client
        .start_workflow("Fine", &41u32, WorkflowOptions::new(unique("fine"), &tq))
        .await
        .unwrap();
    assert_eq!(other.result::<u32>().await.unwrap(), 42);
    handle.terminate("test over").await.unwrap();
    stop(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_signals_and_updates_reach_catch_all_handlers() {
    async fn catch_all(ctx: WorkflowContext, _: ()) -> Result<Vec<String>, WorkflowError> {
        let seen = Rc::new(RefCell::new(Vec::<String>::new()));
        let s = seen.clone();
        let dc = ctx.data_converter().clone();
        ctx.set_dynamic_update_handler(
            Some(|name: &str, _args: &[trellis_core_proto::Payload]| {
                if name.starts_with("bad") {
                    Err(ApplicationFailure::new("Refused", format!("{name} refused")).into())
                } else {
                    Ok(())
                }
            }),
            move |name, args| {
                let s = s.clone();
                let dc = dc.clone();
                async move {
                    let v: String = dc.decode_args(&args)?;
                    s.borrow_mut().push(format!("update {name}={v}"));
                    Ok(dc.encode(&format!("{name} done"))?)
                }
            },
        );
        let mut known = ctx.signal_channel::<String>("known");
        let mut rest = ctx.dynamic_signal_channel();
        let k = known.recv().await?;
        seen.borrow_mut().push(format!("known={k}"));
        let (name, args) = rest.recv().await;
        let v: String = ctx.data_converter().decode_args(&args)?;
        seen.borrow_mut().push(format!("signal {name}={v}"));
        ctx.wait_condition(|| seen.borrow().len() >= 3).await;
        let out = seen.borrow().clone();
        Ok(out)
    }
    let client = client().await;
    let tq = unique("catch-all");
    let w = spawn_worker(
        &client,
        WorkerConfig::new(&tq).workflow("CatchAll", catch_all),
    )
    .await;
    let handle = client
        .start_workflow(
            "CatchAll",
            &(),
            WorkflowOptions::new(unique("catch-all"), &tq),
        )
        .await
        .unwrap();
    handle.signal("whatever", "w").await.unwrap();
    handle.signal("known", "k").await.unwrap();
    let refused = handle
        .update::<String>("bad-one", ("x",))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("bad-one refused"), "{refused}");
    let done: String = handle.update("anything", ("a",)).await.unwrap();
    assert_eq!(done, "anything done");
    let out: Vec<String> = handle.result().await.unwrap();
    assert_eq!(out.len(), 3, "{out:?}");
    assert!(out.contains(&"known=k".to_owned()), "{out:?}");
    assert!(out.contains(&"signal whatever=w".to_owned()), "{out:?}");
    assert!(out.contains(&"update anything=a".to_owned()), "{out:?}");
    stop(w).await;
}

// ---------------------------------------------------------------- interceptors see the new calls

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_children_and_continue_as_new_pass_through_interceptors() {
    use std::sync::{Arc, Mutex};
    use trellis_client::ClientConfig;
    use trellis_client::interceptors::{ClientCall, ClientCallResponse};
    use trellis_interceptor::{BoxError, LocalNext, Next, from_fn, local_from_fn};
    use trellis_worker::interceptors::{
        WorkflowInbound, WorkflowInboundResponse, WorkflowOutbound, WorkflowOutboundResponse,
    };

    type Log = Arc<Mutex<Vec<String>>>;
    let dc = trellis_converter::DataConverter::default;

    async fn hub(ctx: WorkflowContext, n: u32) -> Result<String, WorkflowError> {
        ctx.set_update_handler("ping", |(): ()| async { Ok("pong") });
        if n == 0 {
            let mut go = ctx.signal_channel::<()>("go");
            go.recv().await?;
            ctx.all_handlers_finished().await;
            return Err(ctx.continue_as_new(&1u32).into());
        }
        let tenant: String = ctx.child_workflow("EchoTenant").arg(&()).run().await?;
        Ok(tenant)
    }
    async fn echo_tenant(ctx: WorkflowContext, _: ()) -> Result<String, WorkflowError> {
        let h = ctx.info().headers.get("tenant").cloned();
        Ok(match h {
            Some(p) => ctx.data_converter().decode(&p)?,
            None => "none".to_owned(),
        })
    }

    let log: Log = Arc::default();
    let client_log = log.clone();
    let client = trellis_testing::client_with(ClientConfig::new("unused").call_layer(from_fn(
        move |mut call: ClientCall, next: Next<ClientCall, ClientCallResponse, BoxError>| {
            let log = client_log.clone();
            async move {
                if matches!(call, ClientCall::Update(_) | ClientCall::PollUpdate(_)) {
                    log.lock().unwrap().push(format!("client {}", call.name()));
                }
                if let Some(h) = call.headers_mut() {
                    h.insert("tenant".into(), dc().encode("acme").unwrap());
                }
                next.run(call).await
            }
        },
    )))
    .await;
    let tq = unique("icpt-new");
    let inbound_log = log.clone();
    let outbound_log = log.clone();
    let config = WorkerConfig::new(&tq)
        .workflow("Hub", hub)
        .workflow("EchoTenant", echo_tenant)
        .workflow_inbound_layer(move |_ctx, inner| {
            let log = inbound_log.clone();
            tower::Layer::layer(
                &local_from_fn(
                    move |req: WorkflowInbound,
                          next: LocalNext<
                        WorkflowInbound,
                        WorkflowInboundResponse,
                        WorkflowError,
                    >| {
                        let log = log.clone();
                        async move {
                            match &req {
                                WorkflowInbound::ValidateUpdate(u) | WorkflowInbound::Update(u) => {
                                    let tenant: String =
                                        dc().decode(u.headers.get("tenant").unwrap()).unwrap();
                                    let kind = if matches!(req, WorkflowInbound::Update(_)) {
                                        "update"
                                    } else {
                                        "validate"
                                    };
                                    log.lock()
                                        .unwrap()
                                        .push(format!("{kind} {} tenant={tenant}", u.name));
                                }
                                _ => {}
                            }
                            next.run(req).await
                        }
                    },
                ),
                inner,
            )
        })
        .workflow_outbound_layer(move |ctx, inner| {
            let log = outbound_log.clone();
            let tenant = ctx.info().headers.get("tenant").cloned();
            tower::Layer::layer(
                &local_from_fn(
                    move |mut req: WorkflowOutbound,
                          next: LocalNext<
                        WorkflowOutbound,
                        WorkflowOutboundResponse,
                        WorkflowError,
                    >| {
                        log.lock().unwrap().push(format!("outbound {}", req.name()));
                        // Forward the tenant to children and the next run.
                        if let (Some(h), Some(t)) = (req.headers_mut(), tenant.clone()) {
                            h.insert("tenant".into(), t);
                        }
                        next.run(req)
                    },
                ),
                inner,
            )
        });
    let w = spawn_worker(&client, config).await;
    let handle = client
        .start_workflow("Hub", &0u32, WorkflowOptions::new(unique("hub"), &tq))
        .await
        .unwrap();
    let pong: String = handle.update("ping", ()).await.unwrap();
    assert_eq!(pong, "pong");
    handle.signal("go", &()).await.unwrap();
    let tenant: String = handle.result().await.unwrap();
    assert_eq!(tenant, "acme");
    let log = log.lock().unwrap().clone();
    for needed in [
        "client update",
        "validate ping tenant=acme",
        "update ping tenant=acme",
        "outbound continue_as_new",
        "outbound start_child_workflow",
    ] {
        assert!(
            log.iter().any(|l| l == needed),
            "{needed} missing from {log:?}"
        );
    }
    stop(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_as_new_onto_another_task_queue() {
    async fn mover(
        ctx: WorkflowContext,
        (target, moved): (String, bool),
    ) -> Result<String, WorkflowError> {
        if !moved {
            return Err(ctx
                .continue_as_new(&(target.clone(), true))
                .task_queue(target)
                .into());
        }
        Ok(format!("now on {}", ctx.info().task_queue))
    }
    let client = client().await;
    let first = unique("can-from");
    let second = unique("can-to");
    let a = spawn_worker(&client, WorkerConfig::new(&first).workflow("Mover", mover)).await;
    let b = spawn_worker(&client, WorkerConfig::new(&second).workflow("Mover", mover)).await;
    let handle = client
        .start_workflow_with_args(
            "Mover",
            (second.clone(), false),
            WorkflowOptions::new(unique("mover"), &first),
        )
        .await
        .unwrap();
    let out: String = handle.result().await.unwrap();
    assert_eq!(out, format!("now on {second}"));
    stop(a).await;
    stop(b).await;
}
