//! A Trellis workflow calling a Trellis activity on a real Temporal dev server, and the ways it
//! can go wrong: panics, unknown types, failures, cancellation, shutdown.

mod common;
use common::{spawn_worker, stop};

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use trellis_client::{ClientError, WorkflowExecutionStatus, WorkflowOptions};
use trellis_core_proto::api::enums::v1::EventType;
use trellis_testing::{client, unique, workflow_task_failure};
use trellis_worker::{
    ActivityContext, ActivityError, ApplicationFailure, Pollers, Worker, WorkerConfig, WorkerError,
    WorkflowContext, WorkflowError,
};

async fn compose_greeting(
    _ctx: ActivityContext,
    (greeting, name): (String, String),
) -> Result<String, ActivityError> {
    Ok(format!("{greeting}, {name}!"))
}

async fn greet(ctx: WorkflowContext, name: String) -> Result<String, WorkflowError> {
    let greeting: String = ctx
        .activity("compose_greeting")
        .args(("Hello", &name))
        .start_to_close_timeout(Duration::from_secs(10))
        .run()
        .await?;
    ctx.timer(Duration::from_millis(50)).await;
    Ok(greeting)
}

fn event_types(history: &trellis_core_proto::History) -> Vec<EventType> {
    history.events.iter().map(|e| e.event_type()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_calls_activity_and_timer() {
    let client = client().await;
    let tq = unique("greet");
    let w = spawn_worker(
        &client,
        WorkerConfig::new(&tq)
            .workflow("Greet", greet)
            .activity("compose_greeting", compose_greeting),
    )
    .await;
    let handle = client
        .start_workflow(
            "Greet",
            "world",
            WorkflowOptions::new(unique("greet-wf"), &tq),
        )
        .await
        .unwrap();
    let result: String = handle.result().await.unwrap();
    assert_eq!(result, "Hello, world!");

    let history = handle.fetch_history().await.unwrap();
    let types = event_types(&history);
    assert!(
        types.contains(&EventType::ActivityTaskCompleted),
        "{types:?}"
    );
    assert!(types.contains(&EventType::TimerFired), "{types:?}");
    assert_eq!(types.last(), Some(&EventType::WorkflowExecutionCompleted));
    let desc = handle.describe().await.unwrap();
    assert_eq!(desc.status, WorkflowExecutionStatus::Completed);
    assert_eq!(desc.workflow_type, "Greet");
    stop(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_and_queries_reach_the_workflow() {
    async fn collect(ctx: WorkflowContext, expected: u32) -> Result<Vec<String>, WorkflowError> {
        let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::<String>::new()));
        let for_query = seen.clone();
        ctx.set_query_handler("seen", move |(): ()| for_query.borrow().clone());
        let mut items = ctx.signal_channel::<String>("item");
        while seen.borrow().len() < expected as usize {
            let item = items.recv().await?;
            seen.borrow_mut().push(item);
        }
        let out = seen.borrow().clone();
        Ok(out)
    }
    let client = client().await;
    let tq = unique("signals");
    let w = spawn_worker(&client, WorkerConfig::new(&tq).workflow("Collect", collect)).await;
    let handle = client
        .start_workflow(
            "Collect",
            &2u32,
            WorkflowOptions::new(unique("collect"), &tq),
        )
        .await
        .unwrap();
    handle.signal("item", "apple").await.unwrap();
    // The query is answered from the workflow's state while it waits for the second signal.
    let mut seen: Vec<String> = Vec::new();
    for _ in 0..50 {
        seen = handle.query("seen", ()).await.unwrap();
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, vec!["apple".to_string()]);
    let unknown = handle.query::<String>("nope", ()).await.unwrap_err();
    assert!(
        unknown
            .to_string()
            .contains("no handler for query \"nope\""),
        "{unknown}"
    );
    handle.signal("item", "pear").await.unwrap();
    let result: Vec<String> = handle.result().await.unwrap();
    assert_eq!(result, vec!["apple", "pear"]);
    stop(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_failure_fails_the_workflow() {
    async fn fail(_ctx: WorkflowContext, msg: String) -> Result<(), WorkflowError> {
        Err(ApplicationFailure::new("OrderRejected", msg)
            .non_retryable()
            .into())
    }
    let client = client().await;
    let tq = unique("fail");
    let w = spawn_worker(&client, WorkerConfig::new(&tq).workflow("Fail", fail)).await;
    let handle = client
        .start_workflow(
            "Fail",
            "out of stock",
            WorkflowOptions::new(unique("fail"), &tq),
        )
        .await
        .unwrap();
    let err = handle.result::<()>().await.unwrap_err();
    let ClientError::Workflow(failure) = &err else {
        panic!("expected a workflow failure, got {err}");
    };
    assert_eq!(failure.status, WorkflowExecutionStatus::Failed);
    let app = failure.application_failure().unwrap();
    assert_eq!(app.error_type, "OrderRejected");
    assert_eq!(app.message, "out of stock");
    assert!(app.non_retryable);
    stop(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_failure_reaches_the_workflow_with_its_cause() {
    async fn flaky(ctx: ActivityContext, _: ()) -> Result<String, ActivityError> {
        if ctx.info().attempt < 2 {
            return Err(std::io::Error::other("disk on fire").into());
        }
        Err(ApplicationFailure::new("Fatal", "gave up")
            .non_retryable()
            .into())
    }
    async fn calls_flaky(ctx: WorkflowContext, _: ()) -> Result<String, WorkflowError> {
        let r = ctx
            .activity("flaky")
            .start_to_close_timeout(Duration::from_secs(5))
            .retry_policy(trellis_client::RetryPolicy {
                initial_interval: Some(trellis_core_proto::time::to_proto_duration(
                    Duration::from_millis(100),
                )),
                maximum_attempts: 5,
                ..Default::default()
            })
            .run::<String>()
            .await;
        match r {
            Ok(s) => Ok(s),
            Err(e) => Ok(format!(
                "{} / {}",
                e.application_failure()
                    .map(|a| a.error_type)
                    .unwrap_or_default(),
                e.cause_message()
            )),
        }
    }
    let client = client().await;
    let tq = unique("flaky");
    let w = spawn_worker(
        &client,
        WorkerConfig::new(&tq)
            .workflow("CallsFlaky", calls_flaky)
            .activity("flaky", flaky),
    )
    .await;
    let handle = client
        .start_workflow(
            "CallsFlaky",
            &(),
            WorkflowOptions::new(unique("flaky"), &tq),
        )
        .await
        .unwrap();
    let r: String = handle.result().await.unwrap();
    assert_eq!(r, "Fatal / gave up");
    stop(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_panic_fails_the_task_and_the_worker_stays_up() {
    static ATTEMPTS: AtomicU32 = AtomicU32::new(0);
    async fn panics_once(_ctx: WorkflowContext, _: ()) -> Result<String, WorkflowError> {
        if ATTEMPTS.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("boom in workflow code");
        }
        Ok("recovered".into())
    }
    let client = client().await;
    let tq = unique("wf-panic");
    let w = spawn_worker(
        &client,
        WorkerConfig::new(&tq)
            .workflow("PanicsOnce", panics_once)
            .workflow("Greet", greet)
            .activity("compose_greeting", compose_greeting),
    )
    .await;
    let handle = client
        .start_workflow(
            "PanicsOnce",
            &(),
            WorkflowOptions::new(unique("panic"), &tq),
        )
        .await
        .unwrap();
    // The server retries the failed task; the second attempt completes.
    let r: String = handle.result().await.unwrap();
    assert_eq!(r, "recovered");
    let failed = workflow_task_failure(&handle).await;
    assert!(
        failed
            .message
            .contains("workflow PanicsOnce panicked: boom in workflow code"),
        "{}",
        failed.message
    );
    // The same worker still serves other workflows.
    let g = client
        .start_workflow(
            "Greet",
            "again",
            WorkflowOptions::new(unique("after-panic"), &tq),
        )
        .await
        .unwrap();
    assert_eq!(g.result::<String>().await.unwrap(), "Hello, again!");
    stop(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_panic_fails_the_attempt_and_the_worker_stays_up() {
    async fn panicky(_ctx: ActivityContext, _: ()) -> Result<(), ActivityError> {
        panic!("boom in activity code");
    }
    async fn calls_panicky(ctx: WorkflowContext, _: ()) -> Result<(), WorkflowError> {
        ctx.activity("panicky")
            .start_to_close_timeout(Duration::from_secs(5))
            .retry_policy(trellis_client::RetryPolicy {
                maximum_attempts: 1,
                ..Default::default()
            })
            .run::<()>()
            .await?;
        Ok(())
    }
    let client = client().await;
    let tq = unique("act-panic");
    let w = spawn_worker(
        &client,
        WorkerConfig::new(&tq)
            .workflow("CallsPanicky", calls_panicky)
            .activity("panicky", panicky)
            .workflow("Greet", greet)
            .activity("compose_greeting", compose_greeting),
    )
    .await;
    let handle = client
        .start_workflow(
            "CallsPanicky",
            &(),
            WorkflowOptions::new(unique("act-panic"), &tq),
        )
        .await
        .unwrap();
    let err = handle.result::<()>().await.unwrap_err();
    let ClientError::Workflow(failure) = &err else {
        panic!("expected a workflow failure, got {err}");
    };
    assert!(
        failure
            .message()
            .contains("activity panicky panicked: boom in activity code"),
        "{}",
        failure.message()
    );
    let g = client
        .start_workflow(
            "Greet",
            "still here",
            WorkflowOptions::new(unique("after"), &tq),
        )
        .await
        .unwrap();
    assert_eq!(g.result::<String>().await.unwrap(), "Hello, still here!");
    stop(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_workflow_type_fails_the_task_with_its_name() {
    let client = client().await;
    let tq = unique("unknown");
    let w = spawn_worker(
        &client,
        WorkerConfig::new(&tq)
            .workflow("Greet", greet)
            .activity("compose_greeting", compose_greeting),
    )
    .await;
    let handle = client
        .start_workflow(
            "NoSuchWorkflow",
            &(),
            WorkflowOptions::new(unique("unknown"), &tq),
        )
        .await
        .unwrap();
    let message = workflow_task_failure(&handle).await.message;
    assert!(
        message.contains("\"NoSuchWorkflow\" is not registered"),
        "{message}"
    );
    assert!(message.contains("registered types: [Greet]"), "{message}");
    handle.terminate("test over").await.unwrap();
    let g = client
        .start_workflow(
            "Greet",
            "x",
            WorkflowOptions::new(unique("after-unknown"), &tq),
        )
        .await
        .unwrap();
    assert_eq!(g.result::<String>().await.unwrap(), "Hello, x!");
    stop(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_terminate_are_reported() {
    async fn waits(ctx: WorkflowContext, _: ()) -> Result<(), WorkflowError> {
        ctx.cancelled().await;
        Err(WorkflowError::cancelled())
    }
    let client = client().await;
    let tq = unique("cancel");
    let w = spawn_worker(&client, WorkerConfig::new(&tq).workflow("Waits", waits)).await;
    let a = client
        .start_workflow("Waits", &(), WorkflowOptions::new(unique("cancel"), &tq))
        .await
        .unwrap();
    a.cancel("no longer needed").await.unwrap();
    let err = a.result::<()>().await.unwrap_err();
    let ClientError::Workflow(f) = err else {
        panic!("expected workflow failure")
    };
    assert_eq!(f.status, WorkflowExecutionStatus::Canceled);

    let b = client
        .start_workflow("Waits", &(), WorkflowOptions::new(unique("terminate"), &tq))
        .await
        .unwrap();
    b.terminate("operator said so").await.unwrap();
    let err = b.result::<()>().await.unwrap_err();
    assert!(
        err.to_string().contains("was terminated: operator said so"),
        "{err}"
    );
    stop(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeating_activity_learns_of_cancellation() {
    // The workflow stops waiting for the activity and completes; the activity's next heartbeat
    // tells core the attempt is gone, and core cancels it.
    static CANCELLED: AtomicU32 = AtomicU32::new(0);
    static STARTED: AtomicU32 = AtomicU32::new(0);
    async fn long_running(ctx: ActivityContext, _: ()) -> Result<(), ActivityError> {
        STARTED.fetch_add(1, Ordering::SeqCst);
        loop {
            ctx.heartbeat(&"working");
            tokio::select! {
                () = ctx.cancelled() => {
                    CANCELLED.fetch_add(1, Ordering::SeqCst);
                    return Err(ActivityError::Cancelled);
                }
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }
    async fn abandons_activity(ctx: WorkflowContext, _: ()) -> Result<String, WorkflowError> {
        use futures::FutureExt;
        let act = ctx
            .activity("long_running")
            .start_to_close_timeout(Duration::from_secs(60))
            .heartbeat_timeout(Duration::from_secs(1))
            .run::<()>()
            .fuse();
        let timer = ctx.timer(Duration::from_secs(1)).fuse();
        futures::pin_mut!(act, timer);
        futures::select! {
            _ = act => Ok("activity ended on its own".into()),
            () = timer => Ok("timer won".into()),
        }
    }
    let client = client().await;
    let tq = unique("heartbeat");
    let w = spawn_worker(
        &client,
        WorkerConfig::new(&tq)
            .workflow("AbandonsActivity", abandons_activity)
            .activity("long_running", long_running),
    )
    .await;
    let handle = client
        .start_workflow(
            "AbandonsActivity",
            &(),
            WorkflowOptions::new(unique("hb"), &tq),
        )
        .await
        .unwrap();
    assert_eq!(handle.result::<String>().await.unwrap(), "timer won");
    assert_eq!(STARTED.load(Ordering::SeqCst), 1);
    for _ in 0..300 {
        if CANCELLED.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        CANCELLED.load(Ordering::SeqCst),
        1,
        "the activity saw the cancellation"
    );
    stop(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_empty_registrations_are_clear_errors() {
    let client = client().await;
    let err = Worker::new(
        &client,
        WorkerConfig::new(unique("dup"))
            .workflow("Greet", greet)
            .workflow("Greet", greet),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("duplicate workflow name \"Greet\""),
        "{err}"
    );
    let err = Worker::new(&client, WorkerConfig::new(unique("empty")))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("at least one workflow, activity or Nexus service"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_activities() {
    let finished = Arc::new(AtomicU32::new(0));
    let f2 = finished.clone();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let started_tx = Arc::new(std::sync::Mutex::new(Some(started_tx)));
    let slow = move |_ctx: ActivityContext, _: ()| {
        let finished = f2.clone();
        let started_tx = started_tx.clone();
        async move {
            if let Some(tx) = started_tx.lock().unwrap().take() {
                let _ = tx.send(());
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            finished.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ActivityError>("slow done".to_string())
        }
    };
    async fn calls_slow(ctx: WorkflowContext, _: ()) -> Result<String, WorkflowError> {
        Ok(ctx
            .activity("slow")
            .start_to_close_timeout(Duration::from_secs(30))
            .run()
            .await?)
    }
    let client = client().await;
    let tq = unique("graceful");
    let running = spawn_worker(
        &client,
        WorkerConfig::new(&tq)
            .workflow("CallsSlow", calls_slow)
            .activity("slow", slow),
    )
    .await;
    let handle = client
        .start_workflow(
            "CallsSlow",
            &(),
            WorkflowOptions::new(unique("graceful"), &tq),
        )
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), started_rx)
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), running.stop())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        finished.load(Ordering::SeqCst),
        1,
        "the in-flight activity ran to the end"
    );
    // Its result was reported: a new worker only has to finish the workflow.
    let w2 = spawn_worker(
        &client,
        WorkerConfig::new(&tq).workflow("CallsSlow", calls_slow),
    )
    .await;
    assert_eq!(handle.result::<String>().await.unwrap(), "slow done");
    assert_eq!(
        finished.load(Ordering::SeqCst),
        1,
        "the activity was not run again"
    );
    stop(w2).await;
}

async fn fan_out(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
    let calls = (0..n).map(|i| {
        ctx.activity("compose_greeting")
            .args(("Hi", i.to_string()))
            .start_to_close_timeout(Duration::from_secs(30))
            .run::<String>()
    });
    let results = futures::future::join_all(calls).await;
    let mut ok = 0;
    for r in results {
        r?;
        ok += 1;
    }
    Ok(ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poller_settings_and_activity_rate_limit_apply() {
    let client = client().await;
    let tq = unique("pollers");
    let mut config = WorkerConfig::new(&tq)
        .workflow("FanOut", fan_out)
        .activity("compose_greeting", compose_greeting);
    config.workflow_task_pollers = Some(Pollers::Maximum(2));
    config.activity_task_pollers = Some(Pollers::Autoscaling {
        minimum: 1,
        maximum: 4,
        initial: 2,
    });
    config.max_activities_per_second = Some(2.0);
    config.max_task_queue_activities_per_second = Some(100.0);
    let w = spawn_worker(&client, config).await;
    let handle = client
        .start_workflow(
            "FanOut",
            &6u32,
            WorkflowOptions::new(unique("fan-out"), &tq),
        )
        .await
        .unwrap();
    assert_eq!(handle.result::<u32>().await.unwrap(), 6);
    // Six activities scheduled at once, but at most two start per second on this worker: their
    // starts in the history spread over at least a second and a half.
    let history = handle.fetch_history().await.unwrap();
    let starts: Vec<std::time::SystemTime> = history
        .events
        .iter()
        .filter(|e| e.event_type() == EventType::ActivityTaskStarted)
        .map(|e| {
            let t = e.event_time.as_ref().unwrap();
            std::time::UNIX_EPOCH + Duration::new(t.seconds as u64, t.nanos as u32)
        })
        .collect();
    assert_eq!(starts.len(), 6);
    let first = starts.iter().min().unwrap();
    let last = starts.iter().max().unwrap();
    let spread = last.duration_since(*first).unwrap();
    assert!(
        spread >= Duration::from_millis(1500),
        "6 activity starts at 2/s spread over {spread:?}"
    );
    stop(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_poller_and_rate_settings_are_named() {
    let client = client().await;
    let base =
        || WorkerConfig::new(unique("bad-pollers")).activity("compose_greeting", compose_greeting);
    let cases: Vec<(WorkerConfig, &str)> = vec![
        (
            {
                let mut c = base().workflow("Greet", greet);
                c.workflow_task_pollers = Some(Pollers::Maximum(1));
                c
            },
            "workflow_task_pollers: Pollers::Maximum(1) is too few (at least 2)",
        ),
        (
            {
                let mut c = base();
                c.activity_task_pollers = Some(Pollers::Autoscaling {
                    minimum: 2,
                    maximum: 4,
                    initial: 8,
                });
                c
            },
            "activity_task_pollers: the autoscaling initial count (8) is outside 2..=4",
        ),
        (
            {
                let mut c = base();
                c.nexus_task_pollers = Some(Pollers::Autoscaling {
                    minimum: 0,
                    maximum: 4,
                    initial: 1,
                });
                c
            },
            "nexus_task_pollers: the autoscaling minimum must be at least 1",
        ),
        (
            {
                let mut c = base();
                c.max_activities_per_second = Some(0.0);
                c
            },
            "max_activities_per_second must be a positive number (it is 0)",
        ),
        (
            {
                let mut c = base();
                c.max_task_queue_activities_per_second = Some(f64::NAN);
                c
            },
            "max_task_queue_activities_per_second must be a positive number",
        ),
    ];
    for (config, expected) in cases {
        let err = Worker::new(&client, config).await.unwrap_err();
        assert!(matches!(err, WorkerError::Config(_)), "{err:?}");
        assert!(err.to_string().contains(expected), "{err}");
    }
    // Without a workflow cache, one workflow poller is enough.
    let mut config = base().workflow("Greet", greet);
    config.max_cached_workflows = 0;
    config.workflow_task_pollers = Some(Pollers::Maximum(1));
    Worker::new(&client, config)
        .await
        .expect("one poller without a cache");
}
