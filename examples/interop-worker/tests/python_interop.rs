//! The interop contract, driven by the real Temporal Python SDK: a Python client runs the
//! Trellis worker's workflows on a real dev server and checks what comes back.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn python_client_runs_trellis_workflows() {
    let address = trellis_testing::server_address();
    let python = trellis_testing::python().expect("a Python venv with temporalio");
    let task_queue = trellis_testing::unique("interop-py");

    let mut worker = Command::new(env!("CARGO_BIN_EXE_interop-worker"))
        .args(["--address", address, "--task-queue", &task_queue])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting interop-worker");
    let mut lines = BufReader::new(worker.stdout.take().unwrap()).lines();
    let first = lines.next().expect("the worker printed a line").unwrap();
    assert_eq!(first, "ready");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/drive.py");
    let started = Instant::now();
    let out = Command::new(&python)
        .args([script, address, &task_queue])
        .output()
        .expect("running the Python driver");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python driver failed:\n{stdout}\n{stderr}"
    );
    let checks: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let names: Vec<&str> = checks
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
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

    // Closing stdin stops the worker gracefully.
    drop(worker.stdin.take());
    let status = worker.wait().unwrap();
    assert!(status.success(), "interop-worker exited with {status}");
}

#[test]
fn python_client_with_encryption_codec_talks_to_an_encrypting_worker() {
    let address = trellis_testing::server_address();
    let python = trellis_testing::python().expect("a Python venv with temporalio");
    let task_queue = trellis_testing::unique("interop-enc");
    let key: Vec<u8> = (0u8..32)
        .map(|i| i.wrapping_mul(7).wrapping_add(3))
        .collect();
    let key_file = std::env::temp_dir().join(format!("{task_queue}.key"));
    std::fs::write(&key_file, &key).unwrap();
    let key_hex: String = key.iter().map(|b| format!("{b:02x}")).collect();

    let mut worker = Command::new(env!("CARGO_BIN_EXE_interop-worker"))
        .args(["--address", address, "--task-queue", &task_queue])
        .args(["--encryption-key-id", "test-key-1", "--encryption-key-file"])
        .arg(&key_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting interop-worker");
    let mut lines = BufReader::new(worker.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/drive_encrypted.py"
    );
    let out = Command::new(&python)
        .args([script, address, &task_queue, "test-key-1", &key_hex])
        .output()
        .expect("running the Python driver");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python driver failed:\n{stdout}\n{stderr}"
    );
    let checks: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = checks
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "greet",
            "echo-json",
            "fail-type",
            "fail-message",
            "no-plaintext-in-history"
        ]
    );
    drop(worker.stdin.take());
    assert!(worker.wait().unwrap().success());
    let _ = std::fs::remove_file(key_file);
}
