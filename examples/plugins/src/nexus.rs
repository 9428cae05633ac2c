//! A plugin that adds a Nexus service, served by every worker the plugin reaches, in one line
//! on the client: `WeatherService.get_weather` (synchronous) and
//! `WeatherService.weekly_forecast` (asynchronous, backed by a run of the plugin's own
//! `WeeklyForecast` workflow).
//!
//! `run` serves the service behind a real endpoint from a worker that registers nothing itself,
//! and a caller workflow on another worker (the user's own code, which shares only the
//! generated contract) calls both operations through the server.
//! `crates/worker/tests/nexus.rs` and `crates/worker/tests/nexus_workflow_run.rs` have a Python
//! SDK workflow call the same kinds of operations.

use std::time::Duration;

use trellis_client::{Client, ClientConfig, WorkflowOptions, nexus};
use trellis_plugin_simple::SimplePlugin;
use trellis_worker::nexus::{NexusError, NexusServiceHandler};
use trellis_worker::{Worker, WorkerConfig, WorkflowContext, WorkflowError, WorkflowRef};

use crate::AnyError;

// The contract: `City`, `Forecast`, `WeeklyForecast` and `WeatherService` (with
// `WeatherService::GET_WEATHER` and `WeatherService::WEEKLY_FORECAST`), generated from
// `proto/acme/weather/v1/weather.proto` by `cargo xtask codegen`. The handler and every
// caller share it.
include!("gen/acme.weather.v1.rs");

/// The workflow behind `weekly_forecast` (the plugin registers it too).
pub const WEEKLY_FORECAST_WORKFLOW: WorkflowRef<(City,), WeeklyForecast> =
    WorkflowRef::new("WeeklyForecast");

/// Computes a week of forecasts (a real one would run activities calling a weather API).
pub async fn weekly_forecast(
    _ctx: WorkflowContext,
    city: City,
) -> Result<WeeklyForecast, WorkflowError> {
    Ok(WeeklyForecast {
        days: (0..7)
            .map(|day| Forecast {
                city: city.name.clone(),
                celsius: 10 + day,
            })
            .collect(),
    })
}

/// The handlers (a real plugin calls a weather API).
pub fn handler() -> NexusServiceHandler {
    NexusServiceHandler::for_service::<WeatherService>()
        .sync(WeatherService::GET_WEATHER, |_ctx, city: City| async move {
            if city.name.is_empty() {
                return Err(NexusError::bad_request("the city has no name"));
            }
            Ok(Forecast {
                celsius: 10 + city.name.len() as i32,
                city: city.name,
            })
        })
        // The caller gets the workflow's result when it completes; cancelling the operation
        // cancels the workflow.
        .workflow_run(
            WeatherService::WEEKLY_FORECAST,
            |ctx, city: City| async move {
                let options = WorkflowOptions {
                    id: format!("weekly-forecast-{}-{}", city.name, ctx.request_id()),
                    ..Default::default()
                };
                ctx.start_workflow(WEEKLY_FORECAST_WORKFLOW, (city,), options)
                    .await
            },
        )
}

/// What the `acme-weather` crate exports: the Nexus service in one line.
pub fn plugin() -> SimplePlugin {
    SimplePlugin::new("acme.weather")
        .nexus_service(handler())
        .workflow(WEEKLY_FORECAST_WORKFLOW.name(), weekly_forecast)
}

/// The caller: a workflow of the user's that asks the weather service for today's forecast and
/// the week's, through the endpoint named by its input.
pub async fn plan_trip(ctx: WorkflowContext, endpoint: String) -> Result<String, WorkflowError> {
    let weather = ctx.nexus_service_client::<WeatherService>(endpoint);
    let lisbon = City {
        name: "Lisbon".into(),
    };
    let today = weather
        .operation(WeatherService::GET_WEATHER, &lisbon)
        .schedule_to_close_timeout(Duration::from_secs(30))
        .run()
        .await?;
    let week = weather
        .operation(WeatherService::WEEKLY_FORECAST, &lisbon)
        .schedule_to_close_timeout(Duration::from_secs(60))
        .run()
        .await?;
    let warmest = week
        .days
        .iter()
        .map(|d| d.celsius)
        .max()
        .unwrap_or(today.celsius);
    Ok(format!(
        "{} {}°C today, up to {}°C this week",
        today.city, today.celsius, warmest
    ))
}

/// Connects with the plugin, serves the service on a fresh task queue behind an endpoint, and
/// runs the caller workflow on another task queue.
pub async fn run(address: String) -> Result<String, AnyError> {
    let client = Client::connect(ClientConfig::new(address).plugin(plugin())).await?;
    let task_queue = format!("weather-{}", crate::unique());
    let endpoint_name = format!("weather-{}", crate::unique());
    let endpoint = nexus::create_endpoint(&client, &endpoint_name, &task_queue).await?;

    // The worker registers nothing itself: the plugin supplies the Nexus service.
    let worker = Worker::new(&client, WorkerConfig::new(&task_queue)).await?;
    let operations = handler().operation_names().join(", ");
    let served = format!("{}: {operations}", worker.nexus_service_names().join(", "));
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());

    // The caller's worker (the plugin reaches it too, but only the workflow is used here).
    let caller_queue = format!("trips-{}", crate::unique());
    let caller = Worker::new(
        &client,
        WorkerConfig::new(&caller_queue).workflow("PlanTrip", plan_trip),
    )
    .await?;
    let stop_caller = caller.shutdown_handle();
    let running_caller = tokio::spawn(caller.run());

    let trip: Result<String, _> = client
        .execute_workflow(
            "PlanTrip",
            &endpoint_name,
            WorkflowOptions::new(format!("trip-{}", crate::unique()), &caller_queue),
        )
        .await;

    stop_caller.shutdown();
    stop.shutdown();
    running_caller.await??;
    running.await??;
    nexus::delete_endpoint(&client, &endpoint).await?;
    Ok(format!("serving [{served}]; {}", trip?))
}
