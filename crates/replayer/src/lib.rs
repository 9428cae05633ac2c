//! The Trellis replayer (in progress): replays recorded workflow histories against the current
//! workflow code to catch non-determinism before a deploy. It is built on the worker's workflow
//! runtime and core's replay worker; see `docs/architecture.md` for where it fits.
#![forbid(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]

pub use trellis_worker::WorkerConfig;
