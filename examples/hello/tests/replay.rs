//! The one-line replay test: every history recorded under `tests/histories/` must replay
//! against the current `Greet`. No server needed. (`greet-cli.json` was exported with
//! `temporal workflow show --output json` from a run of `cargo xtask demo`.)

use trellis_example_hello::greet;
use trellis_replayer::{Replayer, ReplayerConfig, WorkerConfig};

#[tokio::test]
async fn recorded_histories_replay() {
    let replayer = Replayer::new(ReplayerConfig::new(
        WorkerConfig::new("replay").workflow("Greet", greet),
    ))
    .unwrap();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/histories");
    let results = replayer.assert_replays_dir(dir).await.unwrap();
    assert_eq!(results.len(), 1);
}
