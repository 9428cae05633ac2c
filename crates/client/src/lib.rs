//! The Trellis client: connect to a Temporal server, start workflows, and drive them through
//! their handles.
//!
//! ```no_run
//! # async fn demo() -> Result<(), trellis_client::ClientError> {
//! use trellis_client::{Client, ClientConfig, WorkflowOptions};
//!
//! let client = Client::connect(ClientConfig::new("127.0.0.1:7233").namespace("default")).await?;
//! let handle = client
//!     .start_workflow("Greet", &"world", WorkflowOptions::new("greet-1", "greetings"))
//!     .await?;
//! let greeting: String = handle.result().await?;
//! # Ok(()) }
//! ```
//!
//! # Structure
//!
//! - [`ClientConfig`] / [`ConnectConfig`]: where and how to connect (address, namespace,
//!   identity, TLS, API key, headers, gRPC layers).
//! - [`Client`]: starts workflows and makes [`WorkflowHandle`]s.
//! - [`WorkflowHandle`]: result, signal, query, cancel, terminate, describe, history.
//! - [`AsyncActivityHandle`]: heartbeat, complete, fail or cancel an activity that completes
//!   asynchronously.
//!
//! # Traffic
//!
//! Every RPC — the client's own and those of every worker built from the client — passes through
//! one tower service stack that Trellis owns: the configured gRPC layers (first listed is
//! outermost), then a header layer (API key, custom headers), then the tonic channel. Temporal's
//! engine (`temporalio-sdk-core`) reaches the stack through `temporalio-client`'s service
//! override, so core's retries sit above it and every byte still crosses it.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

mod activity;
mod client;
mod config;
mod error;
mod handle;
pub mod interceptors;
pub mod nexus;
pub mod plugin;
pub mod schedule;
mod stack;

pub use activity::AsyncActivityHandle;
pub use client::{Client, WorkflowOptions};
pub use config::{ClientConfig, ConnectConfig, TlsConfig};
pub use error::{ClientError, WorkflowFailure};
pub use handle::{UpdateHandle, WorkflowDescription, WorkflowHandle};
pub use plugin::ClientPlugin;

/// A boxed, sendable future: what plugin hooks return.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
/// gRPC status codes and statuses, as RPC errors carry them.
pub use tonic::{Code, Status};
pub use trellis_converter::{self as converter, DataConverter};
pub use trellis_interceptor::grpc::{GrpcLayer, GrpcService};

/// The engine's connection type, which a worker hands to `temporalio-sdk-core`.
pub use temporalio_client::Connection as CoreConnection;

/// Retry policy for workflows and activities.
pub use trellis_core_proto::api::common::v1::RetryPolicy;
/// A workflow's status, as the server reports it.
pub use trellis_core_proto::api::enums::v1::WorkflowExecutionStatus;
/// Workflow id reuse and conflict policies, as the server defines them.
pub use trellis_core_proto::api::enums::v1::{WorkflowIdConflictPolicy, WorkflowIdReusePolicy};
