//! The Trellis demo: one plugin, registered on the client, supplies everything a worker runs —
//! the `Greet` workflow, the `compose_greeting` activity, an encryption codec and an
//! interceptor. The worker itself registers nothing. The program prints the hooks in the order
//! they ran, the workflow's result, and the history (whose payloads are encrypted).
//!
//! Run it with `cargo xtask demo` (starts a local dev server), or against a server of your own:
//! `TEMPORAL_ADDRESS=127.0.0.1:7233 cargo run -p trellis-example-hello`.

use std::time::{SystemTime, UNIX_EPOCH};

use trellis_client::{Client, ClientConfig, WorkflowOptions};
use trellis_core_proto::PayloadExt;
use trellis_core_proto::api::history::v1::history_event::Attributes;
use trellis_example_hello::{HookLog, greetings_plugin};
use trellis_worker::{Worker, WorkerConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()))
        .init();
    let address = std::env::var("TEMPORAL_ADDRESS").unwrap_or_else(|_| "127.0.0.1:7233".into());
    let log = HookLog::default();

    // The user's one line: the plugin goes on the client and reaches its workers.
    let client =
        Client::connect(ClientConfig::new(&address).plugin(greetings_plugin(log.clone()))).await?;
    println!("Connected to {address}, namespace {}", client.namespace());

    let suffix = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let task_queue = format!("hello-{suffix}");
    // Nothing registered here: the workflow and activity come from the plugin.
    let worker = Worker::new(&client, WorkerConfig::new(&task_queue)).await?;
    println!(
        "Worker on {task_queue} with plugins {:?}: workflows {:?}, activities {:?}",
        worker.plugin_names(),
        worker.workflow_names(),
        worker.activity_names()
    );
    let shutdown = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());

    let handle = client
        .start_workflow(
            "Greet",
            "world",
            WorkflowOptions::new(format!("greet-{suffix}"), &task_queue),
        )
        .await?;
    let result: String = handle.result().await?;

    let history = handle.fetch_history().await?;
    shutdown.shutdown();
    running.await??;

    println!("\nHooks, in the order they ran:");
    for (i, line) in log.lock().expect("hook log").iter().enumerate() {
        println!("  {:>2}. {line}", i + 1);
    }
    println!("\nResult: {result:?}");
    println!("\nHistory ({} events):", history.events.len());
    for event in &history.events {
        let payload = match &event.attributes {
            Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) => a.input.as_ref(),
            Some(Attributes::ActivityTaskScheduledEventAttributes(a)) => a.input.as_ref(),
            Some(Attributes::ActivityTaskCompletedEventAttributes(a)) => a.result.as_ref(),
            Some(Attributes::WorkflowExecutionCompletedEventAttributes(a)) => a.result.as_ref(),
            _ => None,
        }
        .and_then(|p| p.payloads.first());
        let stored = payload.map_or(String::new(), |p| format!("  payload {}", p.describe()));
        println!("  {:>3} {:?}{stored}", event.event_id, event.event_type());
    }
    println!("\nWorker shut down cleanly");
    Ok(())
}
