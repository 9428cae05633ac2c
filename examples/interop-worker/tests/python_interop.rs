//! The interop contract, driven by the real Temporal Python SDK: a Python client runs the
//! Trellis worker's workflows on a real dev server and checks what comes back.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `interop-worker` on `task_queue` with extra flags and waits for its `ready` line.
fn start_worker(task_queue: &str, extra: &[&OsStr]) -> Child {
    let mut worker = Command::new(env!("CARGO_BIN_EXE_interop-worker"))
        .args([
            "--address",
            trellis_testing::server_address(),
            "--task-queue",
            task_queue,
        ])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting interop-worker");
    let mut lines = BufReader::new(worker.stdout.take().unwrap()).lines();
    let first = lines.next().expect("the worker printed a line").unwrap();
    assert_eq!(first, "ready");
    worker
}

/// Closing stdin stops the worker gracefully; it must exit cleanly.
fn stop_worker(mut worker: Child) {
    drop(worker.stdin.take());
    let status = worker.wait().unwrap();
    assert!(status.success(), "interop-worker exited with {status}");
}

/// Runs a Python driver script from `tests/python/` with the server address and `args`,
/// asserts it succeeded, and returns the checks it printed (one JSON object per line) with
/// their text for assertion messages.
fn run_driver(script: &str, args: &[&str]) -> (Vec<serde_json::Value>, String) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let mut all = vec![trellis_testing::server_address().to_owned()];
    all.extend(args.iter().map(|a| a.to_string()));
    let checks = trellis_testing::python_json_lines(&script, &all);
    let text = checks
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    (checks, text)
}

fn names(checks: &[serde_json::Value]) -> Vec<&str> {
    checks
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect()
}

#[test]
fn python_client_runs_trellis_workflows() {
    let task_queue = trellis_testing::unique("interop-py");
    let worker = start_worker(&task_queue, &[]);
    let started = Instant::now();
    let (checks, stdout) = run_driver("drive.py", &[&task_queue]);
    assert_eq!(
        names(&checks),
        [
            "greet",
            "echo-json",
            "echo-bytes",
            "echo-null",
            "sleep",
            "fail-type",
            "fail-message",
            "fail-non-retryable",
            "fail-details",
            "inspect-str",
            "inspect-dict",
            "inspect-bytes",
            "inspect-none",
            "inspect-proto-json",
            "inspect-proto-binary"
        ]
    );
    assert!(checks.iter().all(|c| c["ok"] == true), "{stdout}");
    assert!(started.elapsed() < Duration::from_secs(120));
    stop_worker(worker);
}

#[test]
fn python_client_with_encryption_codec_talks_to_an_encrypting_worker() {
    let task_queue = trellis_testing::unique("interop-enc");
    let key: Vec<u8> = (0u8..32)
        .map(|i| i.wrapping_mul(7).wrapping_add(3))
        .collect();
    let key_file = std::env::temp_dir().join(format!("{task_queue}.key"));
    std::fs::write(&key_file, &key).unwrap();
    let key_hex: String = key.iter().map(|b| format!("{b:02x}")).collect();

    let worker = start_worker(
        &task_queue,
        &[
            OsStr::new("--encryption-key-id"),
            OsStr::new("test-key-1"),
            OsStr::new("--encryption-key-file"),
            key_file.as_os_str(),
        ],
    );
    let (checks, _) = run_driver("drive_encrypted.py", &[&task_queue, "test-key-1", &key_hex]);
    assert_eq!(
        names(&checks),
        [
            "greet",
            "echo-json",
            "fail-type",
            "fail-message",
            "no-plaintext-in-history"
        ]
    );
    stop_worker(worker);
    let _ = std::fs::remove_file(key_file);
}

#[test]
fn python_signals_queries_and_updates_trellis_and_serves_its_child() {
    let task_queue = trellis_testing::unique("interop-msg");
    let worker = start_worker(&task_queue, &[]);
    let (checks, stdout) = run_driver("drive_messages.py", &[&task_queue]);
    assert_eq!(
        names(&checks),
        [
            "query-after-signals",
            "update-result",
            "update-rejected",
            "update-unknown",
            "messages-result",
            "rejected-updates-not-in-history",
            "update-before-cancel",
            "cancel-closes-as-cancelled",
            "cancelled-status",
            "update-with-start-starts",
            "update-with-start-uses-running",
            "update-with-start-same-run",
            "update-with-start-result",
            "child-served-by-python",
            "continue-as-new"
        ]
    );
    assert!(checks.iter().all(|c| c["ok"] == true), "{stdout}");
    stop_worker(worker);
}

#[test]
fn python_calls_trellis_nexus_operations_and_trellis_calls_python_ones() {
    let task_queue = trellis_testing::unique("interop-nexus");
    let endpoint = trellis_testing::unique("interop-nexus-ep");
    let py_task_queue = trellis_testing::unique("interop-nexus-py");
    let py_endpoint = trellis_testing::unique("interop-nexus-py-ep");
    // The worker creates the endpoint to its own task queue (`--nexus-endpoint`); the Python
    // service's endpoint is made here.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime.block_on(trellis_testing::client());
    let py = runtime
        .block_on(trellis_client::nexus::create_endpoint(
            &client,
            &py_endpoint,
            &py_task_queue,
        ))
        .expect("creating the Python service's endpoint");
    let worker = start_worker(
        &task_queue,
        &["--nexus-endpoint".as_ref(), endpoint.as_ref()],
    );
    let (checks, stdout) = run_driver(
        "drive_nexus.py",
        &[&task_queue, &endpoint, &py_task_queue, &py_endpoint],
    );
    assert_eq!(
        names(&checks),
        [
            "python-calls-trellis-sync",
            "python-calls-trellis-echo",
            "python-sees-handler-error",
            "python-sees-operation-failure",
            "python-calls-trellis-workflow-run",
            "python-cancels-trellis-workflow-run",
            "the-backing-workflow-is-cancelled",
            "trellis-calls-python",
        ],
        "{stdout}"
    );
    assert!(checks.iter().all(|c| c["ok"] == true), "{stdout}");
    stop_worker(worker);
    runtime.block_on(async {
        trellis_client::nexus::delete_endpoint(&client, &py)
            .await
            .unwrap();
        let mine = trellis_client::nexus::get_endpoint(&client, &endpoint)
            .await
            .unwrap()
            .expect("the worker created its endpoint");
        trellis_client::nexus::delete_endpoint(&client, &mine)
            .await
            .unwrap();
    });
}
