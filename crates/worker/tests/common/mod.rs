//! Helpers the worker's integration tests share (`mod common;` in each test file).

use std::time::Duration;

use trellis_client::Client;
use trellis_worker::{RunningWorker, Worker, WorkerConfig};

/// Starts a worker in the background; panics if it cannot start.
pub async fn spawn_worker(client: &Client, config: WorkerConfig) -> RunningWorker {
    Worker::new(client, config)
        .await
        .expect("worker starts")
        .spawn()
}

/// Stops a worker gracefully; panics unless it stops within 30 s and its run ended cleanly.
pub async fn stop(worker: RunningWorker) {
    tokio::time::timeout(Duration::from_secs(30), worker.stop())
        .await
        .expect("worker stops within 30 s")
        .expect("worker ran without error");
}
