//! `SimplePlugin` (in progress): one value that adds activities, workflows, a data converter,
//! interceptors and run context to clients, workers and replayers. It sits at the top of the
//! dependency chain (`plugin-simple → replayer → worker → client → …`).
#![forbid(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]

pub use trellis_replayer::WorkerConfig;
