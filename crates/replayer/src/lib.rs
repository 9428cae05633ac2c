//! The Trellis replayer: replays recorded workflow histories against the current workflow code,
//! so a change to a workflow — or to a plugin's workflow library — is proven safe for the runs
//! already in flight before it is deployed.
//!
//! ```no_run
//! # async fn demo(worker_config: trellis_worker::WorkerConfig) -> Result<(), trellis_replayer::ReplayError> {
//! use trellis_replayer::{Replayer, ReplayerConfig};
//!
//! let replayer = Replayer::new(ReplayerConfig::new(worker_config))?;
//! // Every history recorded under tests/histories/ must replay clean.
//! replayer.assert_replays_dir("tests/histories").await?;
//! # Ok(()) }
//! ```
//!
//! # Structure
//!
//! - [`Replayer`]: replays one history, many (concurrently, bounded; optionally failing fast),
//!   or a folder of history files. Histories are streamed: the replay takes each from its
//!   source ([`ReplayHistories`]: a `Vec`, a lazy iterator, a stream; [`history::stream_dir`]
//!   for a folder) only when the engine is ready for it, so memory holds only the histories in
//!   flight.
//! - [`history`]: history sources — files (JSON in the CLI/UI form or proto3 JSON, or binary
//!   protobuf), the server — and JSON export the CLI and other SDKs read back.
//! - [`ReplayResult`] / [`ReplayOutcome`]: ok, non-determinism (with the event and the engine's
//!   description of expected vs issued command), workflow task failure, or invalid history.
//!
//! The replayer is configured like a worker (it takes a [`WorkerConfig`]'s workflows and
//! workflow interceptors, and a data converter) and runs the worker's own workflow runtime on
//! Temporal core's replay worker: no server is needed.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

pub mod history;

use std::path::Path;

pub use trellis_worker::WorkerConfig;
use trellis_worker::WorkerError;
pub use trellis_worker::replay::{
    ReplayHistories, ReplayHistory, ReplayOutcome, ReplayResult, ReplayerConfig, validate_history,
};

/// Why a replay could not run, or (for the `assert_*` helpers) why it did not pass.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The replayer's configuration is unusable (e.g. no workflows).
    #[error(transparent)]
    Worker(#[from] WorkerError),
    /// A history source could not be read.
    #[error("cannot read histories from {path}: {cause}")]
    Source {
        /// The file or folder.
        path: String,
        /// What went wrong.
        cause: String,
    },
    /// Histories did not replay clean (from the `assert_*` helpers); one line per failure.
    #[error("{failed} of {total} histories did not replay clean:\n{details}")]
    Failed {
        /// How many failed.
        failed: usize,
        /// How many were replayed.
        total: usize,
        /// One line per failed history.
        details: String,
        /// Every result.
        results: Vec<ReplayResult>,
    },
}

/// Replays histories against the workflows of a [`ReplayerConfig`].
#[derive(Debug, Clone)]
pub struct Replayer {
    config: ReplayerConfig,
}

impl Replayer {
    /// A replayer for `config`: runs its plugins' `configure_replayer` hooks (in order) and
    /// checks there is at least one workflow to replay.
    pub fn new(config: ReplayerConfig) -> Result<Self, ReplayError> {
        Ok(Self {
            config: config.configure()?,
        })
    }

    /// The configuration, after the plugins' hooks.
    pub fn config(&self) -> &ReplayerConfig {
        &self.config
    }

    /// Replays one history.
    pub async fn replay(&self, history: ReplayHistory) -> Result<ReplayResult, ReplayError> {
        let mut results = self.replay_all(vec![history]).await?;
        Ok(results.remove(0))
    }

    /// Replays many histories (up to `concurrency` at once), one result each, in input order,
    /// inside the plugins' `run_replayer` chain (the first plugin outermost).
    /// With `fail_fast`, histories after the first failure are not replayed (and have no
    /// result).
    ///
    /// `histories` is a `Vec<ReplayHistory>` or any [`ReplayHistories`] source. The replay takes
    /// one history at a time as the engine gets ready for it, so a lazy source
    /// ([`history::stream_files`], [`history::stream_dir`], [`ReplayHistories::lazy`]) holds only
    /// the histories being replayed in memory.
    pub async fn replay_all(
        &self,
        histories: impl Into<ReplayHistories>,
    ) -> Result<Vec<ReplayResult>, ReplayError> {
        Ok(self.config.replay(histories).await?)
    }

    /// Replays every history file in `dir` (see [`history::stream_dir`]): each file is read and
    /// decoded when its turn comes, so memory holds only the histories in flight, however many
    /// files there are. A file that cannot be read or parsed gives an invalid-history result
    /// naming the file; the others still replay.
    pub async fn replay_dir(
        &self,
        dir: impl AsRef<Path>,
    ) -> Result<Vec<ReplayResult>, ReplayError> {
        let histories = history::stream_dir(dir.as_ref())?;
        self.replay_all(histories).await
    }

    /// Replays the given history files in order, each read and decoded when its turn comes
    /// (see [`history::stream_files`]).
    pub async fn replay_files<P>(
        &self,
        paths: impl IntoIterator<Item = P, IntoIter: Send + 'static>,
    ) -> Result<Vec<ReplayResult>, ReplayError>
    where
        P: AsRef<Path>,
    {
        self.replay_all(history::stream_files(paths)).await
    }

    /// Replays every history file in `dir` and fails, listing each history that did not replay
    /// clean, unless all did. The one-line replay test of a project:
    /// `replayer.assert_replays_dir("tests/histories").await.unwrap()`.
    pub async fn assert_replays_dir(
        &self,
        dir: impl AsRef<Path>,
    ) -> Result<Vec<ReplayResult>, ReplayError> {
        let dir = dir.as_ref();
        let results = self.replay_dir(dir).await?;
        if results.is_empty() {
            return Err(ReplayError::Source {
                path: dir.display().to_string(),
                cause: "no history files (*.json, *.pb) found".into(),
            });
        }
        check(results)
    }
}

fn check(results: Vec<ReplayResult>) -> Result<Vec<ReplayResult>, ReplayError> {
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.is_ok())
        .map(|r| format!("  {r}"))
        .collect();
    if failed.is_empty() {
        Ok(results)
    } else {
        Err(ReplayError::Failed {
            failed: failed.len(),
            total: results.len(),
            details: failed.join("\n"),
            results,
        })
    }
}
