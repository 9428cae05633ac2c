//! Interception points of Trellis, each a tower [`Service`](tower::Service), and the helpers to
//! write a layer around one without touching `poll_ready`.
//!
//! # Structure
//!
//! - [`grpc`]: the gRPC service every RPC of a client and its workers passes through.
//! - [`Next`] and [`from_fn`]: write middleware as `async fn(request, next)`, the shape of axum's
//!   `from_fn`. Calling `next.run(request)` runs the rest of the stack; not calling it
//!   short-circuits; calling a clone twice retries.
//! - [`LocalBoxService`], [`LocalNext`] and [`local_from_fn`]: the same for the `!Send`
//!   workflow side.
//! - `mock` (feature `test-util`): a strict mock service for testing layers; it panics when
//!   called unready.
//!
//! Layers listed first are outermost, as with [`tower::ServiceBuilder`].
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

mod from_fn;
pub mod grpc;
mod local;
#[cfg(any(test, feature = "test-util"))]
pub mod mock;
#[cfg(test)]
mod tests;

pub use from_fn::{FromFn, FromFnLayer, Next, from_fn};
pub use local::{LocalBoxService, LocalFromFnLayer, LocalNext, local_from_fn};

/// A boxed error that crosses service boundaries.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
