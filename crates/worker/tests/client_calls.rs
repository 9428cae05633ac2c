//! The client calls added to the client-call stack, against a real dev server: signal-with-start,
//! waiting for a result, and completing activities asynchronously (by task token and by ids);
//! and the activity outbound point. A call layer sees each call with its decoded arguments, can
//! change arguments and results, and bad input gets an error naming the RPC.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use trellis_client::interceptors::{AsyncActivityId, ClientCall, ClientCallResponse};
use trellis_client::{ClientConfig, ClientError, Code, WorkflowOptions};
use trellis_converter::{ApplicationFailure, DataConverter};
use trellis_interceptor::{BoxError, LocalNext, Next, from_fn, local_from_fn};
use trellis_testing::{client, client_with, unique};
use trellis_worker::interceptors::{
    ActivityOutbound, ActivityOutboundResponse, WorkflowInbound, WorkflowInboundResponse,
};
use trellis_worker::{
    ActivityContext, ActivityError, ActivityFailedKind, ActivityInfo, Worker, WorkerConfig,
    WorkflowContext, WorkflowError,
};

type Log = Arc<Mutex<Vec<String>>>;

fn dc() -> DataConverter {
    DataConverter::default()
}

async fn run_worker(
    client: &trellis_client::Client,
    config: WorkerConfig,
) -> (
    trellis_worker::ShutdownHandle,
    tokio::task::JoinHandle<Result<(), trellis_worker::WorkerError>>,
) {
    let worker = Worker::new(client, config).await.unwrap();
    let h = worker.shutdown_handle();
    (h, tokio::spawn(worker.run()))
}

/// A call layer that logs each call's name with its decoded arguments, adds a `tenant` header
/// where the call has headers, and marks workflow results and async activity results.
fn logging_call_layer(
    log: Log,
    mark_results: bool,
) -> impl tower::Layer<
    trellis_client::interceptors::ClientCallService,
    Service: tower::Service<
        ClientCall,
        Response = ClientCallResponse,
        Error = BoxError,
        Future: Send + 'static,
    > + Clone
                 + Send
                 + Sync
                 + 'static,
> + Send
+ Sync
+ 'static {
    from_fn(
        move |mut call: ClientCall, next: Next<ClientCall, ClientCallResponse, BoxError>| {
            let log = log.clone();
            async move {
                let mut entry = call.name().to_owned();
                match &mut call {
                    ClientCall::SignalWithStart(c) => {
                        let args: String = dc().decode_args(&c.args)?;
                        let sig: String = dc().decode_args(&c.signal_args)?;
                        entry.push_str(&format!(" start={args} signal={sig}"));
                    }
                    ClientCall::HeartbeatActivity(c) => {
                        let d: String = dc().decode_args(&c.details)?;
                        entry.push_str(&format!(" details={d}"));
                    }
                    ClientCall::CompleteActivity(c) => {
                        // The layer changes the result the workflow gets.
                        let r: String = dc().decode_args(&c.details)?;
                        entry.push_str(&format!(" result={r}"));
                        c.details = vec![dc().encode(&format!("{r}+layer"))?];
                    }
                    ClientCall::FailActivity(c) => {
                        let d: String = dc().decode_args(&c.last_heartbeat_details)?;
                        entry.push_str(&format!(
                            " failure={} last_heartbeat={d}",
                            c.failure.message
                        ));
                    }
                    _ => {}
                }
                if let Some(h) = call.headers_mut() {
                    h.insert("tenant".into(), dc().encode("acme")?);
                }
                if call.name() != "describe" {
                    log.lock().unwrap().push(entry);
                }
                let is_result = mark_results && matches!(call, ClientCall::GetResult(_));
                let response = next.run(call).await?;
                Ok(match response {
                    ClientCallResponse::WorkflowResult { run_id, result } if is_result => {
                        let r: String = dc().decode_args(&result)?;
                        ClientCallResponse::WorkflowResult {
                            run_id,
                            result: vec![dc().encode(&format!("{r} (result seen by layer)"))?],
                        }
                    }
                    other => other,
                })
            }
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_with_start_and_result_go_through_the_call_stack() {
    async fn cart(ctx: WorkflowContext, owner: String) -> Result<String, WorkflowError> {
        let mut items = ctx.signal_channel::<String>("add");
        let mut got = Vec::new();
        loop {
            let item = items.recv().await?;
            if item == "checkout" {
                return Ok(format!("{owner}: {}", got.join(",")));
            }
            got.push(item);
        }
    }
    let log: Log = Arc::default();
    // Two call layers: the first registered is outermost, so it sees the result the inner
    // one changed.
    let outer_saw: Log = Arc::default();
    let saw = outer_saw.clone();
    let client = client_with(
        ClientConfig::new("unused")
            .call_layer(from_fn(
                move |call: ClientCall, next: Next<ClientCall, ClientCallResponse, BoxError>| {
                    let saw = saw.clone();
                    async move {
                        let response = next.run(call).await?;
                        if let ClientCallResponse::WorkflowResult { result, .. } = &response {
                            let r: String = dc().decode_args(result)?;
                            saw.lock().unwrap().push(r);
                        }
                        Ok(response)
                    }
                },
            ))
            .call_layer(logging_call_layer(log.clone(), true)),
    )
    .await;
    log.lock().unwrap().clear();
    let tq = unique("icpt-sws");
    // A workflow inbound layer records the header on execute and on each signal.
    let wf_log: Log = Arc::default();
    let seen = wf_log.clone();
    let config = WorkerConfig::new(&tq)
        .workflow("Cart", cart)
        .workflow_inbound_layer(move |ctx, inner| {
            let seen = seen.clone();
            let replaying = ctx.is_replaying();
            tower::Layer::layer(
                &local_from_fn(
                    move |req: WorkflowInbound,
                          next: LocalNext<
                        WorkflowInbound,
                        WorkflowInboundResponse,
                        WorkflowError,
                    >| {
                        let tenant = req
                            .headers()
                            .get("tenant")
                            .map(|p| dc().decode::<String>(p).unwrap());
                        let what = match &req {
                            WorkflowInbound::Execute(_) => "execute".to_owned(),
                            WorkflowInbound::Signal(s) => format!("signal {}", s.name),
                            WorkflowInbound::Query(q) => format!("query {}", q.name),
                            WorkflowInbound::ValidateUpdate(u) => format!("validate {}", u.name),
                            WorkflowInbound::Update(u) => format!("update {}", u.name),
                        };
                        if !replaying {
                            seen.lock()
                                .unwrap()
                                .push(format!("{what} tenant={tenant:?}"));
                        }
                        next.run(req)
                    },
                ),
                inner,
            )
        });
    let id = unique("cart");
    let first = client
        .signal_with_start_workflow(
            "Cart",
            ("alice",),
            "add",
            ("book",),
            WorkflowOptions::new(&id, &tq),
        )
        .await
        .unwrap();
    // The second call finds the run open: it only signals, and names the same run.
    let second = client
        .signal_with_start_workflow(
            "Cart",
            ("bob",),
            "add",
            ("pen",),
            WorkflowOptions::new(&id, &tq),
        )
        .await
        .unwrap();
    assert_eq!(first.run_id(), second.run_id());
    client
        .signal_with_start_workflow(
            "Cart",
            ("carol",),
            "add",
            ("checkout",),
            WorkflowOptions::new(&id, &tq),
        )
        .await
        .unwrap();
    // The worker starts after the three calls, so the run's first activation holds the start
    // and all three signals: they must reach the code in the order they were sent.
    let w = run_worker(&client, config).await;
    let r: String = first.result().await.unwrap();
    assert_eq!(r, "alice: book,pen (result seen by layer)");
    assert_eq!(*outer_saw.lock().unwrap(), [r.as_str()]);
    assert_eq!(
        *log.lock().unwrap(),
        [
            "signal_with_start_workflow start=alice signal=book",
            "signal_with_start_workflow start=bob signal=pen",
            "signal_with_start_workflow start=carol signal=checkout",
            "get_result",
        ]
    );
    let wf_log = wf_log.lock().unwrap().clone();
    // Signals that arrive with the start are buffered; the run sees each with the header.
    assert!(
        wf_log.contains(&"execute tenant=Some(\"acme\")".to_owned()),
        "{wf_log:?}"
    );
    assert_eq!(
        wf_log
            .iter()
            .filter(|l| *l == "signal add tenant=Some(\"acme\")")
            .count(),
        3,
        "{wf_log:?}"
    );
    w.0.shutdown();
    w.1.await.unwrap().unwrap();
}

/// What an async activity hands the test: its token and info.
type Started = mpsc::UnboundedSender<(Vec<u8>, ActivityInfo, Option<String>)>;

fn async_activity(
    started: Started,
) -> impl Fn(
    ActivityContext,
    String,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<String, ActivityError>> + Send>,
> + Send
+ Sync
+ 'static {
    move |ctx: ActivityContext, _how: String| {
        let started = started.clone();
        Box::pin(async move {
            let last = ctx.last_heartbeat_details::<String>();
            started
                .send((ctx.task_token().to_vec(), ctx.info().clone(), last))
                .unwrap();
            Err(ActivityError::WillCompleteAsync)
        })
    }
}

async fn three_async_activities(ctx: WorkflowContext, _: ()) -> Result<Vec<String>, WorkflowError> {
    let mut out = Vec::new();
    for how in ["token", "ids", "cancel"] {
        let r = ctx
            .activity("async_op")
            .arg(how)
            .start_to_close_timeout(Duration::from_secs(60))
            .retry_policy(trellis_client::RetryPolicy {
                initial_interval: Some(trellis_core_proto::time::to_proto_duration(
                    Duration::from_millis(100),
                )),
                maximum_attempts: 3,
                ..Default::default()
            })
            .run::<String>()
            .await;
        out.push(match r {
            Ok(v) => format!("{how}: ok {v}"),
            Err(e) if matches!(e.kind, ActivityFailedKind::Cancelled) => {
                format!("{how}: cancelled")
            }
            Err(e) => format!("{how}: err {}", e.cause_message()),
        });
    }
    Ok(out)
}

async fn next_started(
    rx: &mut mpsc::UnboundedReceiver<(Vec<u8>, ActivityInfo, Option<String>)>,
) -> (Vec<u8>, ActivityInfo, Option<String>) {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("the activity did not start within 30 s")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activities_complete_asynchronously_by_token_and_by_ids() {
    let log: Log = Arc::default();
    let client =
        client_with(ClientConfig::new("unused").call_layer(logging_call_layer(log.clone(), false)))
            .await;
    let tq = unique("icpt-async");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let config = WorkerConfig::new(&tq)
        .workflow("ThreeAsync", three_async_activities)
        .activity("async_op", async_activity(tx));
    let w = run_worker(&client, config).await;
    let h = client
        .start_workflow(
            "ThreeAsync",
            &(),
            WorkflowOptions::new(unique("async"), &tq),
        )
        .await
        .unwrap();
    log.lock().unwrap().clear();

    // 1. By task token: heartbeat, then complete.
    let (token, info, _) = next_started(&mut rx).await;
    assert!(!token.is_empty());
    let by_token = client.async_activity_handle(AsyncActivityId::task_token(token));
    let beat = by_token.heartbeat(("working",)).await.unwrap();
    assert!(!beat.cancel_requested);
    by_token.complete(&"done-by-token").await.unwrap();
    // Completing again: the server no longer knows the attempt.
    let again = by_token.complete(&"twice").await.unwrap_err();
    assert_eq!(
        again.status().map(|s| s.code()),
        Some(Code::NotFound),
        "{again}"
    );
    assert!(
        again.to_string().contains("RespondActivityTaskCompleted"),
        "{again}"
    );

    // 2. By ids: fail the first attempt (with heartbeat details the retry reads), then complete
    // the retry.
    let (_, info2, last) = next_started(&mut rx).await;
    assert_eq!(info2.attempt, 1);
    assert_eq!(last, None);
    assert_eq!(info2.workflow_id, info.workflow_id);
    let by_ids = client.async_activity_handle(AsyncActivityId::ids(
        info2.workflow_id.clone(),
        Some(info2.workflow_run_id.clone()),
        info2.activity_id.clone(),
    ));
    by_ids.heartbeat(("half way",)).await.unwrap();
    by_ids
        .fail(
            &ApplicationFailure::new("Flaky", "try again"),
            ("resume here",),
        )
        .await
        .unwrap();
    let (_, retry, last) = next_started(&mut rx).await;
    assert_eq!(retry.attempt, 2);
    assert_eq!(last.as_deref(), Some("resume here"));
    by_ids.complete(&"done-by-ids").await.unwrap();

    // 3. Report cancellation by token. No cancellation was requested (workflow code cannot
    // cancel an activity yet), so the server refuses, and the error names the RPC; then
    // complete it.
    let (token3, _, _) = next_started(&mut rx).await;
    let third = client.async_activity_handle(AsyncActivityId::task_token(token3));
    let refused = third.report_cancellation(("gave up",)).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .starts_with("report_activity_cancellation (RespondActivityTaskCanceled) failed"),
        "{refused}"
    );
    assert_eq!(
        refused.status().unwrap().code(),
        Code::InvalidArgument,
        "{refused}"
    );
    third.complete(&"done-after-refused-cancel").await.unwrap();

    let r: Vec<String> = h.result().await.unwrap();
    assert_eq!(
        r,
        [
            "token: ok done-by-token+layer",
            "ids: ok done-by-ids+layer",
            "cancel: ok done-after-refused-cancel+layer",
        ]
    );
    assert_eq!(
        *log.lock().unwrap(),
        [
            "heartbeat_activity details=working",
            "complete_activity result=done-by-token",
            "complete_activity result=twice",
            "heartbeat_activity details=half way",
            "fail_activity failure=try again last_heartbeat=resume here",
            "complete_activity result=done-by-ids",
            "report_activity_cancellation",
            "complete_activity result=done-after-refused-cancel",
            "get_result",
        ]
    );
    w.0.shutdown();
    w.1.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_an_unknown_activity_names_the_rpc_and_status() {
    let client = client().await;
    let err = client
        .async_activity_handle(AsyncActivityId::task_token(b"not a task token".to_vec()))
        .complete(&"x")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Rpc { .. }), "{err:?}");
    assert_eq!(err.status().unwrap().code(), Code::InvalidArgument, "{err}");
    assert!(
        err.to_string()
            .starts_with("complete_activity (RespondActivityTaskCompleted) failed"),
        "{err}"
    );
    let err = client
        .async_activity_handle(AsyncActivityId::ids(unique("no-such-wf"), None, "1"))
        .heartbeat(())
        .await
        .unwrap_err();
    assert_eq!(err.status().unwrap().code(), Code::NotFound, "{err}");
    assert!(
        err.to_string()
            .contains("heartbeat_activity (RecordActivityTaskHeartbeatById)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_outbound_layers_see_and_change_heartbeats_and_info() {
    async fn resumable(ctx: ActivityContext, _: ()) -> Result<String, ActivityError> {
        if let Some(last) = ctx.last_heartbeat_details::<String>() {
            return Ok(format!(
                "attempt {} resumed from {last}",
                ctx.info().attempt
            ));
        }
        ctx.heartbeat(&format!("progress of attempt {}", ctx.info().attempt));
        // Fail right after heartbeating: the heartbeat still reaches the server first.
        Err(ActivityError::application("Flaky", "first attempt fails"))
    }
    async fn calls_resumable(ctx: WorkflowContext, _: ()) -> Result<String, WorkflowError> {
        Ok(ctx
            .activity("resumable")
            .start_to_close_timeout(Duration::from_secs(30))
            .retry_policy(trellis_client::RetryPolicy {
                initial_interval: Some(trellis_core_proto::time::to_proto_duration(
                    Duration::from_millis(100),
                )),
                maximum_attempts: 2,
                ..Default::default()
            })
            .run()
            .await?)
    }
    let client = client().await;
    let tq = unique("icpt-outbound");
    let log: Log = Arc::default();
    let mut config = WorkerConfig::new(&tq)
        .workflow("CallsResumable", calls_resumable)
        .activity("resumable", resumable);
    // Two outbound layers: the first registered is outermost.
    for name in ["outer", "inner"] {
        let log = log.clone();
        config = config.activity_outbound_layer(from_fn(
            move |mut req: ActivityOutbound,
                  next: Next<ActivityOutbound, ActivityOutboundResponse, BoxError>| {
                let log = log.clone();
                async move {
                    match &mut req {
                        ActivityOutbound::Heartbeat(h) => {
                            let d: String = dc().decode_args(&h.details)?;
                            log.lock().unwrap().push(format!(
                                "{name} heartbeat {} attempt {}: {d}",
                                h.info.activity_type, h.info.attempt
                            ));
                            if name == "inner" {
                                h.details = vec![dc().encode(&format!("{d} (via layer)"))?];
                            }
                        }
                        ActivityOutbound::Info(i) => {
                            log.lock()
                                .unwrap()
                                .push(format!("{name} info attempt {}", i.attempt));
                        }
                    }
                    next.run(req).await
                }
            },
        ));
    }
    let w = run_worker(&client, config).await;
    let h = client
        .start_workflow(
            "CallsResumable",
            &(),
            WorkflowOptions::new(unique("outbound"), &tq),
        )
        .await
        .unwrap();
    let r: String = h.result().await.unwrap();
    assert_eq!(
        r,
        "attempt 2 resumed from progress of attempt 1 (via layer)"
    );
    assert_eq!(
        *log.lock().unwrap(),
        [
            "outer info attempt 1",
            "inner info attempt 1",
            "outer heartbeat resumable attempt 1: progress of attempt 1",
            "inner heartbeat resumable attempt 1: progress of attempt 1",
            "outer info attempt 2",
            "inner info attempt 2",
        ]
    );
    w.0.shutdown();
    w.1.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_outbound_layer_can_refuse_an_attempt() {
    async fn never_runs(_ctx: ActivityContext, _: ()) -> Result<String, ActivityError> {
        panic!("the outbound layer refused the attempt before it ran");
    }
    async fn calls_it(ctx: WorkflowContext, _: ()) -> Result<String, WorkflowError> {
        let r = ctx
            .activity("never_runs")
            .start_to_close_timeout(Duration::from_secs(30))
            .retry_policy(trellis_client::RetryPolicy {
                maximum_attempts: 1,
                ..Default::default()
            })
            .run::<String>()
            .await;
        Ok(match r {
            Ok(v) => format!("ok {v}"),
            Err(e) => format!("err {}", e.cause_message()),
        })
    }
    let client = client().await;
    let tq = unique("icpt-refuse");
    let config = WorkerConfig::new(&tq)
        .workflow("CallsIt", calls_it)
        .activity("never_runs", never_runs)
        .activity_outbound_layer(from_fn(
            |req: ActivityOutbound,
             next: Next<ActivityOutbound, ActivityOutboundResponse, BoxError>| async move {
                if let ActivityOutbound::Info(i) = &req
                    && i.activity_type == "never_runs"
                {
                    return Err(BoxError::from(format!(
                        "{} is switched off on this worker",
                        i.activity_type
                    )));
                }
                next.run(req).await
            },
        ));
    let w = run_worker(&client, config).await;
    let r: String = client
        .start_workflow("CallsIt", &(), WorkflowOptions::new(unique("refuse"), &tq))
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert_eq!(r, "err never_runs is switched off on this worker");
    w.0.shutdown();
    w.1.await.unwrap().unwrap();
}
