//! Trellis serving Nexus operations on a real dev server, called by a real Python SDK workflow
//! (Trellis workflows as callers are in `nexus_caller.rs`): typed results, handler errors,
//! operation errors, a panic retried, an unknown operation, an asynchronous operation cancelled,
//! inbound layers on the real path, and the endpoint helpers.

mod common;
use common::{spawn_worker, stop};

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use trellis_client::nexus;
use trellis_interceptor::{BoxError, Next, from_fn};
use trellis_testing::{client, unique};
use trellis_worker::interceptors::{NexusInbound, NexusInboundResponse};
use trellis_worker::nexus::{NexusError, NexusServiceHandler, Operation, Service};
use trellis_worker::{ApplicationFailure, Worker, WorkerConfig};

#[derive(Serialize, Deserialize)]
struct City {
    name: String,
}

#[derive(Serialize, Deserialize)]
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
}

fn weather_service(
    flaky_attempts: Arc<AtomicU32>,
    cancelled: Arc<Mutex<Vec<String>>>,
) -> NexusServiceHandler {
    NexusServiceHandler::for_service::<WeatherService>()
        .async_operation(
            "watch",
            |ctx, city: City| async move {
                assert!(
                    !ctx.callback_url().is_empty(),
                    "an async start has a callback"
                );
                Ok(format!("watch-{}", city.name))
            },
            move |_ctx, token: String| {
                let cancelled = cancelled.clone();
                async move {
                    cancelled.lock().unwrap().push(token);
                    Ok(())
                }
            },
        )
        .sync(WeatherService::GET_WEATHER, move |_ctx, city: City| {
            let flaky_attempts = flaky_attempts.clone();
            async move {
                match city.name.as_str() {
                    "" => Err(NexusError::bad_request("the city has no name")),
                    "Atlantis" => Err(NexusError::operation_failed("Atlantis is under water")),
                    "Nowhere" => Err(ApplicationFailure::new("GeoError", "no such place")
                        .non_retryable()
                        .into()),
                    "Flaky" if flaky_attempts.fetch_add(1, Ordering::SeqCst) == 0 => {
                        panic!("the barometer exploded")
                    }
                    _ => Ok(Forecast {
                        celsius: city.name.len() as i32,
                        city: city.name,
                    }),
                }
            }
        })
}

/// Runs the Python caller; returns its cases by name.
async fn run_python_caller(endpoint: &str) -> Vec<Value> {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/nexus_caller.py");
    let args = vec![
        trellis_testing::server_address().to_owned(),
        endpoint.to_owned(),
        unique("nexus-py-caller"),
    ];
    tokio::task::spawn_blocking(move || trellis_testing::python_json_lines(&script, &args))
        .await
        .unwrap()
}

fn case<'a>(cases: &'a [Value], name: &str) -> &'a Value {
    cases
        .iter()
        .find(|c| c["case"] == name)
        .unwrap_or_else(|| panic!("no case {name}: {cases:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_workflow_calls_trellis_nexus_operations() {
    let client = client().await;
    let tq = unique("nexus-weather");
    let endpoint = nexus::create_endpoint(&client, &unique("weather-ep"), &tq)
        .await
        .expect("endpoint created");
    let endpoint_name = endpoint.spec.as_ref().unwrap().name.clone();

    let flaky_attempts = Arc::new(AtomicU32::new(0));
    let cancelled = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let worker = spawn_worker(
        &client,
        WorkerConfig::new(&tq)
            .nexus_service(weather_service(flaky_attempts.clone(), cancelled.clone()))
            .nexus_inbound_layer(from_fn(
                move |req: NexusInbound,
                      next: Next<NexusInbound, NexusInboundResponse, BoxError>| {
                    let log = log.clone();
                    async move {
                        log.lock().unwrap().push(format!(
                            "{} {}/{} endpoint={}",
                            req.name(),
                            req.service(),
                            req.operation(),
                            req.task().endpoint
                        ));
                        next.run(req).await
                    }
                },
            )),
    )
    .await;

    let cases = run_python_caller(&endpoint_name).await;
    let all = serde_json::to_string_pretty(&cases).unwrap();

    // A typed result, decoded by Python into its own dataclass.
    assert_eq!(
        case(&cases, "sync")["result"],
        json!({"type": "Forecast", "city": "Paris", "celsius": 5}),
        "{all}"
    );

    // A handler error: Python's NexusOperationError caused by a HandlerError of the type the
    // handler chose, not retried.
    let cause = &case(&cases, "handler-error")["error"]["cause"];
    assert_eq!(cause["class"], "HandlerError", "{all}");
    assert_eq!(cause["type"], "BAD_REQUEST", "{all}");
    assert_eq!(cause["retryable"], false, "{all}");
    assert!(
        cause["message"]
            .as_str()
            .unwrap()
            .contains("the city has no name"),
        "{all}"
    );

    // An operation error: the operation failed, with the message as an application error.
    let err = &case(&cases, "operation-error")["error"];
    assert_eq!(err["class"], "NexusOperationError", "{all}");
    assert_eq!(err["operation"], "get_weather", "{all}");
    assert_eq!(err["cause"]["class"], "ApplicationError", "{all}");
    assert_eq!(err["cause"]["message"], "Atlantis is under water", "{all}");

    // Any other error is an INTERNAL handler error carrying the application failure as cause;
    // non-retryable stays non-retryable (so it fails at once instead of at the timeout).
    let cause = &case(&cases, "non-retryable-app-error")["error"]["cause"];
    assert_eq!(cause["type"], "INTERNAL", "{all}");
    assert_eq!(cause["retryable"], false, "{all}");
    assert_eq!(cause["cause"]["type"], "GeoError", "{all}");
    assert_eq!(cause["cause"]["message"], "no such place", "{all}");

    // A panic is a retryable INTERNAL error: the server retried and the worker, still
    // running, answered the second attempt.
    assert_eq!(
        case(&cases, "panic-then-retry")["result"]["city"],
        "Flaky",
        "{all}"
    );
    assert!(flaky_attempts.load(Ordering::SeqCst) >= 2);

    // An unknown operation: NOT_FOUND, naming what the service offers.
    let cause = &case(&cases, "unknown-operation")["error"]["cause"];
    assert_eq!(cause["type"], "NOT_FOUND", "{all}");
    let message = cause["message"].as_str().unwrap();
    assert!(
        message.contains("get_rain") && message.contains("get_weather"),
        "{all}"
    );

    // An asynchronous operation: Python got the token, and cancelling it delivered a cancel
    // request with that token to the handler (acknowledged before Python's handle resolved).
    let watch = case(&cases, "async-cancel");
    assert_eq!(watch["token"], "watch-Oslo", "{all}");
    assert_eq!(watch["error"]["class"], "CancelledError", "{all}");
    assert_eq!(*cancelled.lock().unwrap(), ["watch-Oslo"]);

    // Every start passed through the inbound layer, which saw the endpoint.
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.contains(&format!(
            "start_operation WeatherService/get_weather endpoint={endpoint_name}"
        )),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|s| s.starts_with("start_operation WeatherService/get_rain")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|s| s.starts_with("cancel_operation WeatherService/watch")),
        "{seen:?}"
    );

    stop(worker).await;
    nexus::delete_endpoint(&client, &endpoint).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_created_once_and_deleted() {
    let client = client().await;
    let name = unique("ep");
    let first = nexus::create_endpoint(&client, &name, "some-queue")
        .await
        .unwrap();
    let again = nexus::create_endpoint(&client, &name, "some-queue")
        .await
        .unwrap();
    assert_eq!(first.id, again.id);
    let found = nexus::get_endpoint(&client, &name).await.unwrap().unwrap();
    assert_eq!(found.id, first.id);
    nexus::delete_endpoint(&client, &found).await.unwrap();
    assert!(nexus::get_endpoint(&client, &name).await.unwrap().is_none());
    // Deleting again is not an error.
    nexus::delete_endpoint(&client, &found).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_nexus_services_name_both_sources() {
    let client = client().await;
    let a = NexusServiceHandler::new("Svc").sync_operation("op", |_ctx, (): ()| async { Ok(1) });
    let err = Worker::new(
        &client,
        WorkerConfig::new(unique("dup"))
            .nexus_service(a.clone())
            .nexus_service(a),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "duplicate Nexus service name \"Svc\": registered by the worker's configuration and by \
         the worker's configuration"
    );
}
