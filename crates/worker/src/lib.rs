//! The Trellis worker: runs Rust workflows, activities and Nexus operation handlers on Temporal's core engine
//! (`temporalio-sdk-core`).
//!
//! ```no_run
//! use std::time::Duration;
//! use trellis_client::{Client, ClientConfig};
//! use trellis_worker::{ActivityContext, ActivityError, Worker, WorkerConfig, WorkflowContext, WorkflowError};
//!
//! async fn compose_greeting(_ctx: ActivityContext, (greeting, name): (String, String)) -> Result<String, ActivityError> {
//!     Ok(format!("{greeting}, {name}!"))
//! }
//!
//! async fn greet(ctx: WorkflowContext, name: String) -> Result<String, WorkflowError> {
//!     Ok(ctx.activity("compose_greeting").args(("Hello", name))
//!         .start_to_close_timeout(Duration::from_secs(10)).run().await?)
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::connect(ClientConfig::new("127.0.0.1:7233")).await?;
//! let worker = Worker::new(&client, WorkerConfig::new("greetings")
//!     .workflow("Greet", greet)
//!     .activity("compose_greeting", compose_greeting)).await?;
//! worker.run_until(async { tokio::signal::ctrl_c().await.ok(); }).await?;
//! # Ok(()) }
//! ```
//!
//! # Structure
//!
//! - [`WorkerConfig`], [`Worker`], [`ShutdownHandle`]: what to serve, running and stopping.
//! - [`WorkflowContext`]: the deterministic API for workflow code: timers, activities and local
//!   activities, child and external workflows, signals, queries and updates, `wait_condition`,
//!   side effects, Nexus operations ([`WorkflowContext::nexus_client`]), continue-as-new,
//!   cancellation scopes, memo/search attribute upserts, time and randomness (see
//!   `docs/workflows.md` and `docs/nexus.md`).
//! - [`ActivityContext`]: info, heartbeats and cancellation for activity code.
//! - [`nexus`]: Nexus service contracts and the handlers a worker serves; workflows call
//!   operations through [`NexusClient`].
//!
//! # How workflow code runs
//!
//! Workflows are futures driven only by core's activations, on one thread per worker with no
//! async runtime: every job of an activation is applied first, then the run's future is polled
//! until it waits on something only a later activation can bring; the commands it issued go back
//! to core in the order the code issued them. A panic in workflow code fails the workflow task
//! (the server retries it), never the worker; a panic in an activity fails that attempt.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

mod activity;
mod error;
pub mod interceptors;
pub mod nexus;
pub mod plugin;
mod registry;
pub mod replay;
mod worker;
mod workflow;

pub use activity::{ActivityContext, ActivityInfo};
pub use error::{
    ActivityError, ActivityFailed, ActivityFailedKind, ChildWorkflowFailed,
    ChildWorkflowFailedKind, ExternalWorkflowFailed, NexusOperationFailed,
    NexusOperationFailedKind, WorkerError, WorkflowError,
};
pub use plugin::{Interceptor, WorkerPlugin};
pub use registry::{ActivityDefinition, WorkflowDefinition};
pub use trellis_converter::{ApplicationFailure, RawValue};
pub use trellis_core_proto::api::enums::v1::WorkflowIdReusePolicy;
pub use trellis_core_proto::coresdk::child_workflow::{
    ChildWorkflowCancellationType, ParentClosePolicy,
};
pub use trellis_core_proto::coresdk::nexus::NexusOperationCancellationType;
pub use trellis_core_proto::coresdk::workflow_commands::ActivityCancellationType;
pub use worker::{Pollers, RunningWorker, ShutdownHandle, Worker, WorkerConfig};
pub use workflow::context::{
    ActivityCall, ActivityFuture, CancelRequested, DynamicSignalChannel, SignalChannel, Timer,
    WorkflowContext, WorkflowInfo,
};
pub use workflow::nexus::{NexusClient, NexusOperationCall, NexusOperationHandle};
pub use workflow::ops::{
    CancellationScope, ChildWorkflowCall, ChildWorkflowHandle, ContinueAsNew,
    ExternalWorkflowHandle, ScopeCancelled, SideEffect,
};
pub use workflow::typed::{ActivityRef, TypedActivityCall, TypedChildCall, WorkflowRef};
