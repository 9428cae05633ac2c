//! The example programs, run as a user runs them (`cargo xtask demo` runs `hello`) against the
//! test dev server: each finishes successfully and prints what the docs say it prints.

use std::process::Command;

fn run(program: &str) -> String {
    let out = Command::new(program)
        .env("TEMPORAL_ADDRESS", trellis_testing::server_address())
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{program} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_and_the_schedule_program_run() {
    // Waits until the test server answers.
    let _client = trellis_testing::client().await;

    let demo = tokio::task::spawn_blocking(|| run(env!("CARGO_BIN_EXE_hello")))
        .await
        .unwrap();
    for expected in [
        "Hooks, in the order they ran:",
        "Result: \"Hello, world!\"",
        "WorkflowExecutionStarted  payload binary/encrypted",
        "Worker shut down cleanly",
    ] {
        assert!(demo.contains(expected), "{expected:?} missing in\n{demo}");
    }

    let schedule = tokio::task::spawn_blocking(|| run(env!("CARGO_BIN_EXE_schedule")))
        .await
        .unwrap();
    for expected in [
        "Created schedule hourly-greeting-",
        "greeted: \"Hello, world!\"",
        "Paused: true (\"done for today\"); actions taken: ",
        "Deleted schedule hourly-greeting-",
    ] {
        assert!(
            schedule.contains(expected),
            "{expected:?} missing in\n{schedule}"
        );
    }
}
