//! Where histories come from, and exporting them.
//!
//! - Files: `*.json` in either JSON form (the CLI's `temporal workflow show --output json` and
//!   other SDKs' proto3 JSON, or the Web UI's download) and `*.pb` / `*.binpb` (a binary
//!   `History` protobuf). [`stream_dir`] and [`stream_files`] read each file only when the
//!   replay gets to it (a [`ReplayHistories`] source), so a folder of any size replays with only
//!   the histories in flight in memory; [`read_dir`] reads them all up front.
//! - The server: [`fetch`] a workflow's history with a client, or [`fetch_matching`] every run
//!   a visibility query matches.
//! - Export: [`to_json`] writes proto3 JSON the CLI and other SDKs read; [`record`] fetches a
//!   run's history and writes it into a folder, to build a replay-test corpus.

use std::path::{Path, PathBuf};

use prost::Message;
use trellis_client::{Client, WorkflowHandle};
use trellis_core_proto::History;
use trellis_core_proto::api::history::v1::history_event::Attributes;
use trellis_core_proto::json::{history_from_json, history_to_json};
use trellis_worker::replay::{ReplayHistories, ReplayHistory};

use crate::ReplayError;

/// Reads a history from JSON (either form).
pub fn from_json(json: &[u8]) -> Result<History, String> {
    history_from_json(json).map_err(|e| e.to_string())
}

/// Writes a history as proto3 JSON.
pub fn to_json(history: &History) -> String {
    history_to_json(history).expect("a decoded History always has a JSON form")
}

/// Reads a history from binary protobuf.
pub fn from_protobuf(bytes: &[u8]) -> Result<History, String> {
    History::decode(bytes).map_err(|e| format!("not a History protobuf: {e}"))
}

/// The workflow id recorded in a history's first event, if any.
pub fn workflow_id_of(history: &History) -> Option<String> {
    history.events.first().and_then(|e| match &e.attributes {
        Some(Attributes::WorkflowExecutionStartedEventAttributes(a))
            if !a.workflow_id.is_empty() =>
        {
            Some(a.workflow_id.clone())
        }
        _ => None,
    })
}

/// Reads one history file. A file that cannot be read or parsed still gives a
/// [`ReplayHistory`], marked unreadable, so that the replay reports it as an invalid history
/// naming the file and the cause, and the other histories still replay.
pub fn read_file(path: &Path) -> ReplayHistory {
    let source = path.display().to_string();
    let parsed = std::fs::read(path)
        .map_err(|e| format!("cannot read the file: {e}"))
        .and_then(|bytes| match path.extension().and_then(|e| e.to_str()) {
            Some("json") => from_json(&bytes),
            _ => from_protobuf(&bytes),
        });
    match parsed {
        Ok(history) => {
            let workflow_id = workflow_id_of(&history).unwrap_or_else(|| file_stem(path));
            ReplayHistory::new(source, workflow_id, history)
        }
        Err(cause) => ReplayHistory::unreadable(source, file_stem(path), cause),
    }
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads every `*.json`, `*.pb` and `*.binpb` file in `dir` (not recursive), sorted by name,
/// all at once. To replay a large folder, prefer [`stream_dir`], which reads each file only when
/// the replay gets to it.
pub fn read_dir(dir: &Path) -> Result<Vec<ReplayHistory>, ReplayError> {
    Ok(history_files(dir)?.iter().map(|p| read_file(p)).collect())
}

/// The history files of `dir`, lazily: lists the `*.json`, `*.pb` and `*.binpb` files (not
/// recursive, sorted by name) now, and reads and decodes each one (see [`read_file`]) only when
/// the replay takes it, so a replay holds only the histories in flight in memory.
pub fn stream_dir(dir: &Path) -> Result<ReplayHistories, ReplayError> {
    Ok(stream_files(history_files(dir)?))
}

/// The given history files, read and decoded (see [`read_file`]) one at a time, in order, when
/// the replay takes each.
pub fn stream_files<P>(
    paths: impl IntoIterator<Item = P, IntoIter: Send + 'static>,
) -> ReplayHistories
where
    P: AsRef<Path>,
{
    ReplayHistories::lazy(paths.into_iter().map(|p| read_file(p.as_ref())))
}

/// The paths of the history files in `dir`, sorted.
pub fn history_files(dir: &Path) -> Result<Vec<PathBuf>, ReplayError> {
    let entries = std::fs::read_dir(dir).map_err(|e| ReplayError::Source {
        path: dir.display().to_string(),
        cause: e.to_string(),
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("json" | "pb" | "binpb")
            )
        })
        .collect();
    paths.sort();
    Ok(paths)
}

/// Fetches a workflow's history from the server (the given run, or the latest).
pub async fn fetch(
    client: &Client,
    workflow_id: &str,
    run_id: Option<String>,
) -> Result<ReplayHistory, trellis_client::ClientError> {
    let history = client
        .workflow_handle(workflow_id, run_id)
        .fetch_history()
        .await?;
    Ok(ReplayHistory::new("server", workflow_id, history))
}

/// Fetches the history of every workflow run matching a visibility query (e.g.
/// `WorkflowType = 'Greet' AND StartTime > '2026-11-01T00:00:00Z'`), one per run.
pub async fn fetch_matching(
    client: &Client,
    query: &str,
) -> Result<Vec<ReplayHistory>, trellis_client::ClientError> {
    let mut out = Vec::new();
    for info in client.list_workflows(query).await? {
        let Some(execution) = info.execution else {
            continue;
        };
        let history = client
            .workflow_handle(&execution.workflow_id, Some(execution.run_id.clone()))
            .fetch_history()
            .await?;
        out.push(ReplayHistory::new(
            format!("server run {}", execution.run_id),
            execution.workflow_id,
            history,
        ));
    }
    Ok(out)
}

/// Fetches the history of `handle`'s run and writes it as proto3 JSON to
/// `dir/<workflow id>.json`, creating `dir` if needed. Returns the file's path.
pub async fn record(handle: &WorkflowHandle, dir: impl AsRef<Path>) -> Result<PathBuf, String> {
    let history = handle.fetch_history().await.map_err(|e| e.to_string())?;
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let path = dir.join(format!("{}.json", handle.id()));
    std::fs::write(&path, to_json(&history))
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}
