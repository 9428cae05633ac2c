//! The deterministic workflow runtime: workflow code runs as Rust futures on a dedicated thread,
//! driven only by core's activations.

pub(crate) mod context;
pub(crate) mod messages;
pub(crate) mod nexus;
pub(crate) mod ops;
pub(crate) mod run;
pub(crate) mod thread;
pub(crate) mod typed;
