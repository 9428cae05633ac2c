//! The Trellis demo: a worker runs `Greet`, which calls the activity `compose_greeting` and
//! waits on a durable timer; a client starts it, prints the result and the history.
//!
//! Run it with `cargo xtask demo` (starts a local dev server), or against a server of your own:
//! `TEMPORAL_ADDRESS=127.0.0.1:7233 cargo run -p trellis-example-hello`.

use std::time::{SystemTime, UNIX_EPOCH};

use trellis_client::{Client, ClientConfig, WorkflowOptions};
use trellis_example_hello::{compose_greeting, greet};
use trellis_worker::{Worker, WorkerConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()))
        .init();
    let address = std::env::var("TEMPORAL_ADDRESS").unwrap_or_else(|_| "127.0.0.1:7233".into());
    let client = Client::connect(ClientConfig::new(&address)).await?;
    println!("Connected to {address}, namespace {}", client.namespace());

    let suffix = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let task_queue = format!("hello-{suffix}");
    let worker = Worker::new(
        &client,
        WorkerConfig::new(&task_queue)
            .workflow("Greet", greet)
            .activity("compose_greeting", compose_greeting),
    )
    .await?;
    let shutdown = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    println!("Worker polling task queue {task_queue}");

    let handle = client
        .start_workflow(
            "Greet",
            "world",
            WorkflowOptions::new(format!("greet-{suffix}"), &task_queue),
        )
        .await?;
    println!(
        "Started workflow {} (run {})",
        handle.id(),
        handle.run_id().unwrap_or("?")
    );
    let result: String = handle.result().await?;
    println!("Result: {result:?}");

    let history = handle.fetch_history().await?;
    println!("History ({} events):", history.events.len());
    for event in &history.events {
        println!("  {:>3} {:?}", event.event_id, event.event_type());
    }

    shutdown.shutdown();
    running.await??;
    println!("Worker shut down cleanly");
    Ok(())
}
