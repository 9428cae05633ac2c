//! Interception points against a real dev server: each layer sees the call and its decoded
//! arguments, can change arguments and results, can short-circuit with an error, runs in the
//! documented order (first registered is outermost), and headers flow from client to workflow
//! to activity.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use trellis_client::interceptors::{ClientCall, ClientCallResponse};
use trellis_client::{ClientConfig, ClientError, WorkflowOptions};
use trellis_converter::DataConverter;
use trellis_interceptor::{BoxError, LocalNext, Next, from_fn, local_from_fn};
use trellis_testing::{client, client_with, unique};
use trellis_worker::interceptors::{
    ActivityRequest, WorkflowInbound, WorkflowInboundResponse, WorkflowOutbound,
    WorkflowOutboundResponse,
};
use trellis_worker::{
    ActivityContext, ActivityError, Worker, WorkerConfig, WorkflowContext, WorkflowError,
};

type Log = Arc<Mutex<Vec<String>>>;

fn dc() -> DataConverter {
    DataConverter::default()
}

async fn echo_activity(ctx: ActivityContext, s: String) -> Result<String, ActivityError> {
    let tenant = ctx
        .info()
        .headers
        .get("tenant")
        .map(|p| dc().decode::<String>(p).unwrap())
        .unwrap_or_default();
    Ok(format!("{s}|activity-saw-tenant={tenant}"))
}

async fn calls_echo(ctx: WorkflowContext, s: String) -> Result<String, WorkflowError> {
    let tenant = ctx
        .info()
        .headers
        .get("tenant")
        .map(|p| dc().decode::<String>(p).unwrap())
        .unwrap_or_default();
    let r: String = ctx
        .activity("echo")
        .arg(&s)
        .start_to_close_timeout(Duration::from_secs(10))
        .run()
        .await?;
    Ok(format!("{r}|workflow-saw-tenant={tenant}"))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_flow_client_to_workflow_to_activity_and_layers_run_in_order() {
    let log: Log = Arc::default();
    // Client: add a header on start.
    let client_log = log.clone();
    let client = client_with(ClientConfig::new("unused").call_layer(from_fn(
        move |mut call: ClientCall, next: Next<ClientCall, ClientCallResponse, BoxError>| {
            let log = client_log.clone();
            async move {
                log.lock().unwrap().push(format!("client {}", call.name()));
                if let Some(h) = call.headers_mut() {
                    h.insert("tenant".into(), dc().encode("acme").unwrap());
                }
                next.run(call).await
            }
        },
    )))
    .await;

    // The test harness's readiness probe went through the layer too; start from here.
    log.lock().unwrap().clear();
    let tq = unique("icpt-headers");
    let mut config = WorkerConfig::new(&tq)
        .workflow("CallsEcho", calls_echo)
        .activity("echo", echo_activity);
    // Two workflow inbound layers: the first registered is outermost. The outer one reads the
    // header and changes the argument; the inner one changes the result.
    for name in ["outer", "inner"] {
        let log = log.clone();
        config = config.workflow_inbound_layer(move |_ctx, inner| {
            let log = log.clone();
            tower::Layer::layer(
                &local_from_fn(
                    move |mut req: WorkflowInbound,
                          next: LocalNext<
                        WorkflowInbound,
                        WorkflowInboundResponse,
                        WorkflowError,
                    >| {
                        let log = log.clone();
                        async move {
                            if let WorkflowInbound::Execute(e) = &mut req {
                                let arg: String = dc().decode_args(&e.args).unwrap();
                                let tenant: String =
                                    dc().decode(req.headers().get("tenant").unwrap()).unwrap();
                                log.lock()
                                    .unwrap()
                                    .push(format!("wf-{name} execute arg={arg} tenant={tenant}"));
                                if name == "outer" {
                                    *req.args_mut() =
                                        vec![dc().encode(&format!("{arg}!")).unwrap()];
                                }
                            }
                            let res = next.run(req).await?;
                            Ok(match res {
                                WorkflowInboundResponse::Completed(p) if name == "inner" => {
                                    let s: String = dc().decode(&p).unwrap();
                                    WorkflowInboundResponse::Completed(
                                        dc().encode(&format!("{s}|inner-done")).unwrap(),
                                    )
                                }
                                other => other,
                            })
                        }
                    },
                ),
                inner,
            )
        });
    }
    // Workflow outbound: forward the tenant header to every activity.
    config = config.workflow_outbound_layer(|ctx, inner| {
        let tenant = ctx.info().headers.get("tenant").cloned();
        tower::Layer::layer(
            &local_from_fn(
                move |mut req: WorkflowOutbound,
                      next: LocalNext<
                    WorkflowOutbound,
                    WorkflowOutboundResponse,
                    WorkflowError,
                >| {
                    if let (Some(h), Some(t)) = (req.headers_mut(), tenant.clone()) {
                        h.insert("tenant".into(), t);
                    }
                    next.run(req)
                },
            ),
            inner,
        )
    });
    // Activity inbound: two layers, logging order and seeing the header.
    for name in ["a1", "a2"] {
        let log = log.clone();
        config = config.activity_layer(from_fn(
            move |req: ActivityRequest,
                  next: Next<ActivityRequest, trellis_core_proto::Payload, BoxError>| {
                let log = log.clone();
                async move {
                    let tenant: String = dc().decode(req.headers.get("tenant").unwrap()).unwrap();
                    log.lock()
                        .unwrap()
                        .push(format!("{name} before tenant={tenant}"));
                    let r = next.run(req).await;
                    log.lock().unwrap().push(format!("{name} after"));
                    r
                }
            },
        ));
    }
    let w = run_worker(&client, config).await;
    let h = client
        .start_workflow("CallsEcho", "hi", WorkflowOptions::new(unique("icpt"), &tq))
        .await
        .unwrap();
    let r: String = h.result().await.unwrap();
    assert_eq!(
        r,
        "hi!|activity-saw-tenant=acme|workflow-saw-tenant=acme|inner-done"
    );
    let mut log = log.lock().unwrap().clone();
    // Waiting for the result is a client call too; it runs alongside the workflow.
    let at = log.iter().position(|l| l == "client get_result");
    assert!(at.is_some(), "{log:?}");
    log.remove(at.unwrap());
    assert_eq!(
        log,
        [
            "client start_workflow",
            "wf-outer execute arg=hi tenant=acme",
            "wf-inner execute arg=hi! tenant=acme",
            "a1 before tenant=acme",
            "a2 before tenant=acme",
            "a2 after",
            "a1 after",
        ]
    );
    w.0.shutdown();
    w.1.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_layer_can_short_circuit_with_an_error() {
    let client = client_with(ClientConfig::new("unused").call_layer(from_fn(
        |call: ClientCall, next: Next<ClientCall, ClientCallResponse, BoxError>| async move {
            if matches!(call, ClientCall::Terminate(_)) {
                return Err(BoxError::from("terminate is not allowed here"));
            }
            next.run(call).await
        },
    )))
    .await;
    let err = client
        .workflow_handle(unique("nope"), None)
        .terminate("x")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Interceptor { .. }), "{err:?}");
    assert!(
        err.to_string().contains("terminate is not allowed here"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tower_timeout_and_concurrency_limit_work_around_activities() {
    static RUNNING: AtomicUsize = AtomicUsize::new(0);
    static MAX_SEEN: AtomicUsize = AtomicUsize::new(0);
    async fn slow(_ctx: ActivityContext, millis: u64) -> Result<u64, ActivityError> {
        let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        MAX_SEEN.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(millis)).await;
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        Ok(millis)
    }
    async fn fan_out(ctx: WorkflowContext, millis: Vec<u64>) -> Result<Vec<String>, WorkflowError> {
        let calls = millis.into_iter().map(|m| {
            ctx.activity("slow")
                .arg(&m)
                .start_to_close_timeout(Duration::from_secs(30))
                .retry_policy(trellis_client::RetryPolicy {
                    maximum_attempts: 1,
                    ..Default::default()
                })
                .run::<u64>()
        });
        let results = futures::future::join_all(calls).await;
        Ok(results
            .into_iter()
            .map(|r| match r {
                Ok(v) => format!("ok {v}"),
                Err(e) => format!("err {}", e.cause_message()),
            })
            .collect())
    }
    let client = client().await;
    let tq = unique("icpt-tower");
    let config = WorkerConfig::new(&tq)
        .workflow("FanOut", fan_out)
        .activity("slow", slow)
        // The limit is outermost, so an attempt waiting for its turn is not timed: with the
        // timeout outside, the 200 ms attempts queued behind the 5 s one timed out too whenever
        // the 5 s one got the permit first.
        .activity_layer(tower::limit::ConcurrencyLimitLayer::new(1))
        .activity_layer(tower::timeout::TimeoutLayer::new(Duration::from_millis(
            1500,
        )));
    let w = run_worker(&client, config).await;
    let h = client
        .start_workflow(
            "FanOut",
            &vec![200u64, 200, 200, 5000],
            WorkflowOptions::new(unique("fan"), &tq),
        )
        .await
        .unwrap();
    let r: Vec<String> = h.result().await.unwrap();
    assert_eq!(&r[..3], ["ok 200", "ok 200", "ok 200"]);
    assert_eq!(r[3], "err request timed out");
    assert_eq!(
        MAX_SEEN.load(Ordering::SeqCst),
        1,
        "the concurrency limit held"
    );
    w.0.shutdown();
    w.1.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_inbound_sees_signals_and_queries_and_can_refuse_them() {
    async fn waits(ctx: WorkflowContext, _: ()) -> Result<String, WorkflowError> {
        let last = Rc::new(RefCell::new(String::new()));
        let q = last.clone();
        ctx.set_query_handler("last", move |(): ()| q.borrow().clone());
        let mut ch = ctx.signal_channel::<String>("say");
        loop {
            let s = ch.recv().await?;
            *last.borrow_mut() = s.clone();
            if s == "stop!" {
                return Ok(s);
            }
        }
    }
    let client = client().await;
    let tq = unique("icpt-signal");
    let config = WorkerConfig::new(&tq)
        .workflow("Waits", waits)
        .workflow_inbound_layer(|_ctx, inner| {
            tower::Layer::layer(
                    &local_from_fn(
                        |mut req: WorkflowInbound,
                         next: LocalNext<
                            WorkflowInbound,
                            WorkflowInboundResponse,
                            WorkflowError,
                        >| async move {
                            match &mut req {
                                // Signals are shouted: the layer changes the argument.
                                WorkflowInbound::Signal(s) => {
                                    let v: String = dc().decode_args(&s.args).unwrap();
                                    s.args = vec![dc().encode(&format!("{v}!")).unwrap()];
                                }
                                WorkflowInbound::Query(q) if q.name == "secret" => {
                                    return Err(WorkflowError::task("query secret is not allowed"));
                                }
                                _ => {}
                            }
                            next.run(req).await
                        },
                    ),
                    inner,
                )
        });
    let w = run_worker(&client, config).await;
    let h = client
        .start_workflow("Waits", &(), WorkflowOptions::new(unique("sig"), &tq))
        .await
        .unwrap();
    h.signal("say", "hello").await.unwrap();
    let mut last = String::new();
    for _ in 0..50 {
        last = h.query("last", ()).await.unwrap();
        if !last.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last, "hello!");
    let refused = h.query::<String>("secret", ()).await.unwrap_err();
    assert!(
        refused.to_string().contains("query secret is not allowed"),
        "{refused}"
    );
    h.signal("say", "stop").await.unwrap();
    assert_eq!(h.result::<String>().await.unwrap(), "stop!");
    w.0.shutdown();
    w.1.await.unwrap().unwrap();
}
