//! Trellis workflows calling Nexus operations on a real dev server: a typed result from a
//! Trellis handler, handler errors and operation failures as typed errors, an asynchronous
//! operation started and cancelled, a schedule-to-close timeout, replay with no cache, an
//! outbound interceptor's header reaching the handler's inbound layer, and a Python SDK
//! handler.

mod common;
use common::{spawn_worker, stop};

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::{Either, select};
use serde::{Deserialize, Serialize};
use trellis_client::{Client, ClientError, WorkflowOptions, nexus};
use trellis_core_proto::api::enums::v1::EventType;
use trellis_core_proto::api::failure::v1::failure::FailureInfo;
use trellis_interceptor::{BoxError, LocalNext, Next, from_fn, local_from_fn};
use trellis_testing::{client, unique};
use trellis_worker::interceptors::{
    NexusInbound, NexusInboundResponse, WorkflowOutbound, WorkflowOutboundResponse,
};
use trellis_worker::nexus::{
    HandlerErrorType, NexusError, NexusServiceHandler, Operation, Service,
};
use trellis_worker::replay::{ReplayHistory, ReplayerConfig, replay_histories};
use trellis_worker::{
    NexusOperationCancellationType, NexusOperationFailed, NexusOperationFailedKind, WorkerConfig,
    WorkflowContext, WorkflowError,
};

#[derive(Serialize, Deserialize, Clone, Debug)]
struct City {
    name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Forecast {
    city: String,
    celsius: i32,
}

struct WeatherService;
impl Service for WeatherService {
    const NAME: &'static str = "WeatherService";
}
impl WeatherService {
    const GET_WEATHER: Operation<City, Forecast> = Operation::new("get_weather");
    const SLOW: Operation<City, Forecast> = Operation::new("slow");
}

/// The handlers: a sync operation with error cases, a slow one, and an asynchronous one whose
/// cancel function records the tokens it was asked to cancel.
fn weather_service(cancelled: Arc<Mutex<Vec<String>>>) -> NexusServiceHandler {
    NexusServiceHandler::for_service::<WeatherService>()
        .sync(WeatherService::GET_WEATHER, |ctx, city: City| async move {
            match city.name.as_str() {
                "" => Err(NexusError::handler(
                    HandlerErrorType::BadRequest,
                    "the city has no name",
                )),
                "Atlantis" => Err(NexusError::operation_failed("Atlantis is under water")),
                _ => Ok(Forecast {
                    celsius: city.name.len() as i32
                        + ctx
                            .headers()
                            .get("x-bonus")
                            .map_or(0, |b| b.parse().unwrap_or(0)),
                    city: city.name,
                }),
            }
        })
        .sync(WeatherService::SLOW, |_ctx, city: City| async move {
            tokio::time::sleep(Duration::from_secs(8)).await;
            Ok(Forecast {
                city: city.name,
                celsius: 0,
            })
        })
        .async_operation(
            "watch",
            |_ctx, city: City| async move { Ok(format!("watch-{}", city.name)) },
            move |_ctx, token: String| {
                let cancelled = cancelled.clone();
                async move {
                    cancelled.lock().unwrap().push(token);
                    Ok(())
                }
            },
        )
}

#[derive(Serialize, Deserialize)]
struct Case {
    endpoint: String,
    case: String,
}

fn describe(e: &NexusOperationFailed) -> String {
    match &e.kind {
        NexusOperationFailedKind::HandlerError {
            error_type,
            retryable,
        } => format!(
            "handler-error {error_type} retryable={retryable}: {}",
            e.cause_message()
        ),
        NexusOperationFailedKind::Failed => format!(
            "failed: {}",
            e.application_failure()
                .map(|a| a.message)
                .unwrap_or_else(|| e.cause_message())
        ),
        NexusOperationFailedKind::Cancelled => "cancelled".to_owned(),
        NexusOperationFailedKind::TimedOut => format!(
            "timed out {}",
            e.timeout_type()
                .map(|t| t.as_str_name().trim_start_matches("TIMEOUT_TYPE_"))
                .unwrap_or("(no timeout type)")
        ),
        other => format!("{other:?}"),
    }
}

/// One workflow for every case: says what it saw.
async fn call_weather(ctx: WorkflowContext, input: Case) -> Result<String, WorkflowError> {
    let weather = ctx.nexus_service_client::<WeatherService>(&input.endpoint);
    let timeout = Duration::from_secs(30);
    let city = |name: &str| City { name: name.into() };
    Ok(match input.case.as_str() {
        "sync" => {
            let f = weather
                .operation(WeatherService::GET_WEATHER, &city("Paris"))
                .schedule_to_close_timeout(timeout)
                .summary("the weather in Paris")
                .run()
                .await?;
            // The same operation by name, untyped.
            let g: Forecast = ctx
                .nexus_client(&input.endpoint, "WeatherService")
                .operation_by_name("get_weather", &city("Rome"))
                .schedule_to_close_timeout(timeout)
                .run()
                .await?;
            format!("{} {} / {} {}", f.city, f.celsius, g.city, g.celsius)
        }
        "bad-request" | "operation-failed" => {
            let name = if input.case == "bad-request" {
                ""
            } else {
                "Atlantis"
            };
            match weather
                .operation(WeatherService::GET_WEATHER, &city(name))
                .schedule_to_close_timeout(timeout)
                .run()
                .await
            {
                Ok(f) => format!("unexpected result {f:?}"),
                Err(e) => describe(&e),
            }
        }
        "fail-workflow" => {
            // `?` on the typed error fails the workflow with the operation's failure.
            weather
                .operation(WeatherService::GET_WEATHER, &city("Atlantis"))
                .schedule_to_close_timeout(timeout)
                .run()
                .await?;
            "unreachable".to_owned()
        }
        "timeout" => match weather
            .operation(WeatherService::SLOW, &city("Lima"))
            .schedule_to_close_timeout(Duration::from_secs(2))
            .run()
            .await
        {
            Ok(f) => format!("unexpected result {f:?}"),
            Err(e) => describe(&e),
        },
        "start-to-close" => {
            // An asynchronous operation that never completes, given 2 s once started.
            let handle = weather
                .operation_by_name::<Forecast, _>("watch", &city("Nuuk"))
                .schedule_to_close_timeout(timeout)
                .start_to_close_timeout(Duration::from_secs(2))
                .start()
                .await?;
            let token = handle.operation_token().unwrap_or("<none>").to_owned();
            match handle.await {
                Ok(f) => format!("unexpected result {f:?}"),
                Err(e) => format!("token={token} {}", describe(&e)),
            }
        }
        "schedule-to-start" => match weather
            .operation(WeatherService::SLOW, &city("Cusco"))
            .schedule_to_close_timeout(timeout)
            .schedule_to_start_timeout(Duration::from_secs(1))
            .run()
            .await
        {
            Ok(f) => format!("unexpected result {f:?}"),
            Err(e) => describe(&e),
        },
        "async-cancel" => {
            let handle = weather
                .operation_by_name::<Forecast, _>("watch", &city("Oslo"))
                .schedule_to_close_timeout(timeout)
                .cancellation_type(NexusOperationCancellationType::WaitCancellationRequested)
                .start()
                .await?;
            let token = handle.operation_token().unwrap_or("<none>").to_owned();
            handle.cancel();
            let outcome = match handle.await {
                Ok(f) => format!("unexpected result {f:?}"),
                Err(e) => describe(&e),
            };
            format!("token={token} {outcome}")
        }
        "drop" => {
            let handle = weather
                .operation_by_name::<Forecast, _>("watch", &city("Bergen"))
                .schedule_to_close_timeout(timeout)
                .start()
                .await?;
            let token = handle.operation_token().unwrap_or("<none>").to_owned();
            drop(handle);
            ctx.timer(Duration::from_secs(2)).await;
            format!("token={token} dropped")
        }
        "drop-while-starting" => {
            // A slow synchronous operation is still starting when its future is dropped (a
            // cancellation request goes out); the run carries on with another operation.
            let slow = weather
                .operation(WeatherService::SLOW, &city("Quito"))
                .schedule_to_close_timeout(timeout)
                .run();
            let waited = match select(
                Box::pin(slow),
                Box::pin(ctx.timer(Duration::from_millis(500))),
            )
            .await
            {
                Either::Left((r, _)) => format!("finished first: {r:?}"),
                Either::Right(((), slow)) => {
                    drop(slow);
                    "dropped".to_owned()
                }
            };
            let f = weather
                .operation(WeatherService::GET_WEATHER, &city("Lima"))
                .schedule_to_close_timeout(timeout)
                .run()
                .await?;
            format!("{waited}, then {} {}", f.city, f.celsius)
        }
        other => format!("no case {other}"),
    })
}

struct Setup {
    client: Client,
    endpoint: nexus::Endpoint,
    endpoint_name: String,
    tq: String,
}

async fn setup(prefix: &str) -> Setup {
    let client = client().await;
    let tq = unique(prefix);
    let endpoint = nexus::create_endpoint(&client, &unique(&format!("{prefix}-ep")), &tq)
        .await
        .expect("endpoint created");
    let endpoint_name = endpoint.spec.as_ref().unwrap().name.clone();
    Setup {
        client,
        endpoint,
        endpoint_name,
        tq,
    }
}

async fn run_case(s: &Setup, workflow: &str, case: &str) -> (String, String) {
    let id = unique(&format!("nexus-{case}"));
    let handle = s
        .client
        .start_workflow(
            workflow,
            &Case {
                endpoint: s.endpoint_name.clone(),
                case: case.into(),
            },
            WorkflowOptions::new(&id, &s.tq),
        )
        .await
        .unwrap();
    let out: String = handle.result().await.unwrap();
    (id, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trellis_workflow_calls_trellis_nexus_operations() {
    let s = setup("nexus-caller").await;
    let cancelled = Arc::new(Mutex::new(Vec::new()));
    let mut config = WorkerConfig::new(&s.tq)
        .workflow("CallWeather", call_weather)
        .nexus_service(weather_service(cancelled.clone()));
    // Every workflow task replays the run from its history.
    config.max_cached_workflows = 0;
    let worker = spawn_worker(&s.client, config).await;

    // A typed result, typed and by name.
    let (sync_id, out) = run_case(&s, "CallWeather", "sync").await;
    assert_eq!(out, "Paris 5 / Rome 4");

    // A handler error: its type and message, not retryable.
    let (_, out) = run_case(&s, "CallWeather", "bad-request").await;
    assert_eq!(
        out,
        "handler-error BAD_REQUEST retryable=false: the city has no name"
    );

    // An operation failure: the handler's message as an application failure.
    let (_, out) = run_case(&s, "CallWeather", "operation-failed").await;
    assert_eq!(out, "failed: Atlantis is under water");

    // Schedule-to-close timeout.
    let (_, out) = run_case(&s, "CallWeather", "timeout").await;
    assert_eq!(out, "timed out SCHEDULE_TO_CLOSE");

    // Start-to-close: the started asynchronous operation times out; schedule-to-start: the
    // slow synchronous one never answers in time.
    let (_, out) = run_case(&s, "CallWeather", "start-to-close").await;
    assert_eq!(out, "token=watch-Nuuk timed out START_TO_CLOSE");
    let (_, out) = run_case(&s, "CallWeather", "schedule-to-start").await;
    assert_eq!(out, "timed out SCHEDULE_TO_START");

    // Asynchronous: started with a token, cancelled; the handler's cancel got the token.
    let (_, out) = run_case(&s, "CallWeather", "async-cancel").await;
    assert_eq!(out, "token=watch-Oslo cancelled");
    assert!(
        cancelled.lock().unwrap().contains(&"watch-Oslo".to_owned()),
        "{:?}",
        cancelled.lock().unwrap()
    );

    // Dropping an operation that is still starting; the run goes on, and replays.
    let (id, out) = run_case(&s, "CallWeather", "drop-while-starting").await;
    assert_eq!(out, "dropped, then Lima 4");
    let history = s
        .client
        .workflow_handle(id, None)
        .fetch_history()
        .await
        .unwrap();
    assert!(
        history
            .events
            .iter()
            .any(|e| e.event_type() == EventType::NexusOperationCancelRequested),
        "no cancel request in the history"
    );

    // Dropping the handle cancels the operation.
    let (_, out) = run_case(&s, "CallWeather", "drop").await;
    assert_eq!(out, "token=watch-Bergen dropped");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cancelled
        .lock()
        .unwrap()
        .contains(&"watch-Bergen".to_owned())
    {
        assert!(
            Instant::now() < deadline,
            "the dropped operation was never cancelled: {:?}",
            cancelled.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // `?` fails the workflow with the operation's failure chain.
    let id = unique("nexus-fail");
    let handle = s
        .client
        .start_workflow(
            "CallWeather",
            &Case {
                endpoint: s.endpoint_name.clone(),
                case: "fail-workflow".into(),
            },
            WorkflowOptions::new(&id, &s.tq),
        )
        .await
        .unwrap();
    let err = handle.result::<String>().await.unwrap_err();
    let ClientError::Workflow(failure) = err else {
        panic!("expected a workflow failure, got {err:?}");
    };
    let top = failure.failure.clone().expect("a failure");
    match &top.failure_info {
        Some(FailureInfo::NexusOperationExecutionFailureInfo(info)) => {
            assert_eq!(info.service, "WeatherService");
            assert_eq!(info.operation, "get_weather");
            assert_eq!(info.endpoint, s.endpoint_name);
        }
        other => panic!("expected a Nexus operation failure, got {other:?} in {top:#?}"),
    }
    let app = failure.application_failure().expect("an application cause");
    assert_eq!(app.message, "Atlantis is under water");

    stop(worker).await;

    // The finished history replays cleanly in the replayer too.
    let history = s
        .client
        .workflow_handle(sync_id.clone(), None)
        .fetch_history()
        .await
        .unwrap();
    // Two operations scheduled, the first with its summary.
    let scheduled: Vec<_> = history
        .events
        .iter()
        .filter(|e| e.event_type() == EventType::NexusOperationScheduled)
        .collect();
    assert_eq!(scheduled.len(), 2);
    let summary = scheduled[0]
        .user_metadata
        .as_ref()
        .and_then(|m| m.summary.as_ref())
        .expect("the operation's summary is in the history");
    let summary: String = trellis_converter::DataConverter::default()
        .decode(summary)
        .unwrap();
    assert_eq!(summary, "the weather in Paris");
    let results = replay_histories(
        &ReplayerConfig::new(WorkerConfig::new("replay").workflow("CallWeather", call_weather)),
        vec![ReplayHistory::new("server", &sync_id, history)],
    )
    .await
    .unwrap();
    assert!(results[0].is_ok(), "{:?}", results[0]);

    nexus::delete_endpoint(&s.client, &s.endpoint)
        .await
        .unwrap();
}

// ---------------------------------------------------------------- interceptors

async fn guarded(ctx: WorkflowContext, input: Case) -> Result<String, WorkflowError> {
    let weather = ctx.nexus_service_client::<WeatherService>(&input.endpoint);
    let f = weather
        .operation(
            WeatherService::GET_WEATHER,
            &City {
                name: "Kyiv".into(),
            },
        )
        .header("x-caller", "guarded")
        .schedule_to_close_timeout(Duration::from_secs(30))
        .run()
        .await?;
    let refused = weather
        .operation_by_name::<Forecast, _>("forbidden", &City { name: "X".into() })
        .schedule_to_close_timeout(Duration::from_secs(30))
        .run()
        .await
        .unwrap_err();
    let refused = match refused.kind {
        NexusOperationFailedKind::Rejected(m) => format!("rejected: {m}"),
        other => format!("{other:?}"),
    };
    Ok(format!("{} {} / {refused}", f.city, f.celsius))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_layer_headers_reach_the_handlers_inbound_layer() {
    let s = setup("nexus-guard").await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let outbound_seen = Arc::new(Mutex::new(Vec::new()));
    let outbound_log = outbound_seen.clone();
    let mut config = WorkerConfig::new(&s.tq)
        .workflow("Guarded", guarded)
        .nexus_service(weather_service(Arc::default()))
        .workflow_outbound_layer(move |ctx, inner| {
            let replaying = ctx.clone();
            let outbound_log = outbound_log.clone();
            tower::Layer::layer(
                &local_from_fn(
                    move |mut req: WorkflowOutbound,
                          next: LocalNext<
                        WorkflowOutbound,
                        WorkflowOutboundResponse,
                        WorkflowError,
                    >| {
                        let outbound_log = outbound_log.clone();
                        let replaying = replaying.is_replaying();
                        async move {
                            if let WorkflowOutbound::StartNexusOperation(cmd) = &req {
                                if !replaying {
                                    outbound_log.lock().unwrap().push(format!(
                                        "{}/{} caller={:?}",
                                        cmd.service,
                                        cmd.operation,
                                        cmd.nexus_header.get("x-caller")
                                    ));
                                }
                                if cmd.operation == "forbidden" {
                                    return Err(WorkflowError::task("not on my watch"));
                                }
                            }
                            assert!(req.headers_mut().is_none() || req.nexus_headers().is_none());
                            if let Some(h) = req.nexus_headers_mut() {
                                h.insert("x-bonus".into(), "100".into());
                            }
                            next.run(req).await
                        }
                    },
                ),
                inner,
            )
        })
        .nexus_inbound_layer(from_fn(
            move |req: NexusInbound, next: Next<NexusInbound, NexusInboundResponse, BoxError>| {
                let log = log.clone();
                async move {
                    log.lock().unwrap().push(format!(
                        "{} {} bonus={:?} caller={:?}",
                        req.name(),
                        req.operation(),
                        req.headers().get("x-bonus"),
                        req.headers().get("x-caller"),
                    ));
                    next.run(req).await
                }
            },
        ));
    config.max_cached_workflows = 0;
    let worker = spawn_worker(&s.client, config).await;

    let (_, out) = run_case(&s, "Guarded", "-").await;
    // The handler read the header the layer added (5 + 100).
    assert_eq!(out, "Kyiv 104 / rejected: not on my watch");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [r#"start_operation get_weather bonus=Some("100") caller=Some("guarded")"#],
        "{seen:?}"
    );
    let outbound_seen = outbound_seen.lock().unwrap().clone();
    assert_eq!(
        outbound_seen,
        [
            r#"WeatherService/get_weather caller=Some("guarded")"#,
            r#"WeatherService/forbidden caller=None"#
        ],
        "{outbound_seen:?}"
    );

    stop(worker).await;
    nexus::delete_endpoint(&s.client, &s.endpoint)
        .await
        .unwrap();
}

// ---------------------------------------------------------------- a Python SDK handler

async fn call_python(ctx: WorkflowContext, input: Case) -> Result<String, WorkflowError> {
    let f = ctx
        .nexus_service_client::<WeatherService>(&input.endpoint)
        .operation(
            WeatherService::GET_WEATHER,
            &City {
                name: "Lagos".into(),
            },
        )
        .schedule_to_close_timeout(Duration::from_secs(30))
        .run()
        .await?;
    let e = ctx
        .nexus_service_client::<WeatherService>(&input.endpoint)
        .operation(WeatherService::GET_WEATHER, &City { name: "".into() })
        .schedule_to_close_timeout(Duration::from_secs(30))
        .run()
        .await
        .unwrap_err();
    Ok(format!("{} {} / {}", f.city, f.celsius, describe(&e)))
}

/// Kills the Python handler when the test ends, whatever happens.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trellis_workflow_calls_a_python_nexus_handler() {
    let s = setup("nexus-py-handler").await;
    // Python serves the endpoint's task queue; Trellis runs the caller on its own queue.
    let python = trellis_testing::python().expect("a Python venv with temporalio");
    let script = format!(
        "{}/tests/python/nexus_handler.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut child = Command::new(python)
        .arg(script)
        .arg(trellis_testing::server_address())
        .arg(&s.tq)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting the Python handler");
    // Wait for its "ready" line.
    let stdout = child.stdout.take().unwrap();
    let _guard = KillOnDrop(child);
    let ready = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(ready.trim(), "ready", "the Python handler did not start");

    let caller_tq = unique("nexus-py-caller-wf");
    let worker = spawn_worker(
        &s.client,
        WorkerConfig::new(&caller_tq).workflow("CallPython", call_python),
    )
    .await;
    let handle = s
        .client
        .start_workflow(
            "CallPython",
            &Case {
                endpoint: s.endpoint_name.clone(),
                case: "-".into(),
            },
            WorkflowOptions::new(unique("nexus-py"), &caller_tq),
        )
        .await
        .unwrap();
    let out: String = handle.result().await.unwrap();
    assert_eq!(
        out,
        "Lagos 27 / handler-error BAD_REQUEST retryable=false: the city has no name"
    );
    stop(worker).await;
    nexus::delete_endpoint(&s.client, &s.endpoint)
        .await
        .unwrap();
}
