//! Test a plugin against a real Temporal dev server in a few lines (feature `testing`).
//!
//! ```no_run
//! # async fn demo(my_plugin: trellis_plugin_simple::SimplePlugin) {
//! use trellis_plugin_simple::testing::TestEnv;
//!
//! let env = TestEnv::new().plugin(my_plugin).start().await.unwrap();
//! let out: String = env.execute("Greet", &"world").await.unwrap();
//! env.shutdown().await.unwrap();
//! # }
//! ```
//!
//! The dev server is the test run's (see `trellis-testing`: installed and started on first
//! use, or the one `TRELLIS_TEST_ADDRESS` names). The environment connects a client with the
//! plugins, as a user would, and runs a worker built from it on a task queue of its own, so
//! the plugins reach the worker the way they do in production (propagated from the client).

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;
use trellis_client::{Client, ClientConfig, ClientError, ClientPlugin, WorkflowOptions};
use trellis_worker::{ShutdownHandle, Worker, WorkerConfig, WorkerError, WorkerPlugin};

/// Builds a [`RunningEnv`]: plugins for the client (which propagate to the worker), plugins
/// for the worker only, and the worker's own registrations.
pub struct TestEnv {
    client: ClientConfig,
    worker: WorkerConfig,
}

impl std::fmt::Debug for TestEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestEnv")
            .field("client", &self.client)
            .field("worker", &self.worker)
            .finish()
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl TestEnv {
    /// An environment with no plugins, a worker on a unique task queue.
    pub fn new() -> Self {
        Self {
            client: ClientConfig::new(trellis_testing::server_address()),
            worker: WorkerConfig::new(trellis_testing::unique("plugin-test")),
        }
    }

    /// Adds a plugin to the client, as a user would with `ClientConfig::plugin`; a worker
    /// plugin among them propagates to the worker.
    pub fn plugin(mut self, plugin: impl ClientPlugin) -> Self {
        self.client = self.client.plugin(plugin);
        self
    }

    /// Adds a plugin to the worker only.
    pub fn worker_plugin(mut self, plugin: impl WorkerPlugin) -> Self {
        self.worker = self.worker.plugin(plugin);
        self
    }

    /// Changes the client's configuration (e.g. a codec of the user's own).
    pub fn client_config(mut self, f: impl FnOnce(ClientConfig) -> ClientConfig) -> Self {
        self.client = f(self.client);
        self
    }

    /// Changes the worker's configuration (e.g. the user's own workflows that use the plugin's
    /// workflow library).
    pub fn worker_config(mut self, f: impl FnOnce(WorkerConfig) -> WorkerConfig) -> Self {
        self.worker = f(self.worker);
        self
    }

    /// Connects the client and starts the worker in the background.
    pub async fn start(self) -> Result<RunningEnv, WorkerError> {
        let client = trellis_testing::client_with(self.client).await;
        let task_queue = self.worker.task_queue.clone();
        let worker = Worker::new(&client, self.worker).await?;
        let shutdown = worker.shutdown_handle();
        let run = tokio::spawn(worker.run());
        Ok(RunningEnv {
            client,
            task_queue,
            shutdown,
            run,
        })
    }
}

/// A connected client and a running worker on the dev server.
#[derive(Debug)]
pub struct RunningEnv {
    client: Client,
    task_queue: String,
    shutdown: ShutdownHandle,
    run: JoinHandle<Result<(), WorkerError>>,
}

impl RunningEnv {
    /// The client (with the plugins applied).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The worker's task queue.
    pub fn task_queue(&self) -> &str {
        &self.task_queue
    }

    /// Options for a workflow on the worker's task queue, with a unique id.
    pub fn options(&self) -> WorkflowOptions {
        WorkflowOptions::new(trellis_testing::unique("wf"), &self.task_queue)
    }

    /// Starts a workflow on the worker's task queue and waits for its result.
    pub async fn execute<I, O>(&self, workflow_type: &str, input: &I) -> Result<O, ClientError>
    where
        I: Serialize + ?Sized,
        O: DeserializeOwned + 'static,
    {
        self.client
            .start_workflow(workflow_type, input, self.options())
            .await?
            .result()
            .await
    }

    /// Stops the worker gracefully and returns how its run ended (including the plugins'
    /// `run_worker` hooks).
    pub async fn shutdown(self) -> Result<(), WorkerError> {
        self.shutdown.shutdown();
        self.run.await.unwrap_or_else(|e| {
            Err(WorkerError::Config(format!(
                "the worker task panicked: {e}"
            )))
        })
    }
}
