//! A plugin that adds a Nexus service: `WeatherService.get_weather`, served by every worker the
//! plugin reaches, in one line on the client.
//!
//! Trellis workflows cannot call Nexus operations yet, so `run` starts a worker that serves the
//! service behind a real endpoint, then calls the operation through the worker configuration's
//! own Nexus inbound stack in-process. `crates/worker/tests/nexus.rs` has a Python SDK workflow
//! call the same kind of service through the server.

use tower::ServiceExt;
use trellis_client::{Client, ClientConfig, nexus};
use trellis_plugin_simple::SimplePlugin;
use trellis_worker::interceptors::{NexusInbound, NexusInboundResponse, NexusStartOperation};
use trellis_worker::nexus::{NexusError, NexusServiceHandler, Service};
use trellis_worker::{Worker, WorkerConfig};

use crate::AnyError;

// The contract: `City`, `Forecast` and `WeatherService` (with `WeatherService::GET_WEATHER`),
// generated from `proto/acme/weather/v1/weather.proto` by `cargo xtask codegen`. The handler
// and every caller share it.
include!("gen/acme.weather.v1.rs");

/// The handlers (a real plugin calls a weather API).
pub fn handler() -> NexusServiceHandler {
    NexusServiceHandler::for_service::<WeatherService>().sync(
        WeatherService::GET_WEATHER,
        |_ctx, city: City| async move {
            if city.name.is_empty() {
                return Err(NexusError::bad_request("the city has no name"));
            }
            Ok(Forecast {
                celsius: 10 + city.name.len() as i32,
                city: city.name,
            })
        },
    )
}

/// What the `acme-weather` crate exports: the Nexus service in one line.
pub fn plugin() -> SimplePlugin {
    SimplePlugin::new("acme.weather").nexus_service(handler())
}

/// Connects with the plugin, serves the service on a fresh task queue behind an endpoint, and
/// gets the forecast for Lisbon.
pub async fn run(address: String) -> Result<String, AnyError> {
    let client = Client::connect(ClientConfig::new(address).plugin(plugin())).await?;
    let task_queue = format!("weather-{}", crate::unique());
    let endpoint = nexus::create_endpoint(
        &client,
        &format!("weather-{}", crate::unique()),
        &task_queue,
    )
    .await?;

    // The worker registers nothing itself: the plugin supplies the Nexus service.
    let worker = Worker::new(&client, WorkerConfig::new(&task_queue)).await?;
    let served = worker.nexus_service_names().join(", ");
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());

    // The same configuration's Nexus stack, called in-process.
    let stack = WorkerConfig::new(&task_queue)
        .plugin(plugin())
        .apply_plugins()?
        .nexus_inbound_service()?;
    let input = client.data_converter().encode(&City {
        name: "Lisbon".into(),
    })?;
    let answer = stack
        .oneshot(NexusInbound::StartOperation(NexusStartOperation {
            service: WeatherService::NAME.into(),
            operation: WeatherService::GET_WEATHER.name().into(),
            input: Some(input),
            ..Default::default()
        }))
        .await?;
    let NexusInboundResponse::Completed(payload) = answer else {
        return Err(format!("unexpected answer {answer:?}").into());
    };
    let forecast: Forecast = client.data_converter().decode(&payload)?;

    stop.shutdown();
    running.await??;
    nexus::delete_endpoint(&client, &endpoint).await?;
    Ok(format!(
        "serving [{served}]; {} {}°C",
        forecast.city, forecast.celsius
    ))
}
