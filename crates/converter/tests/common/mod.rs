//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of lowercase or uppercase hex.
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The Python interpreter with `temporalio` and `cryptography`: `$TRELLIS_PYTHON` (set by
/// `cargo xtask test`), else the project's venv `.tools/venv` (made by `cargo xtask
/// python-env`). Panics with those instructions when neither exists.
pub fn python() -> Option<PathBuf> {
    let path = std::env::var_os("TRELLIS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/python")
        });
    assert!(
        path.exists(),
        "no Python interpreter at {}: run `cargo xtask python-env` or set TRELLIS_PYTHON",
        path.display()
    );
    Some(path)
}

/// Runs `script` with `python`, feeding `input` as JSON on stdin, and parses its stdout as JSON.
/// Panics with Python's stderr when the script fails.
pub fn run_python(
    python: &std::path::Path,
    script: &str,
    input: &serde_json::Value,
) -> serde_json::Value {
    let mut child = Command::new(python)
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "python printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Makes sure `python` can import `module`, installing `package` with pip when it cannot (the
/// venv that `trellis-testing` creates has only `temporalio`). Panics when that fails.
pub fn ensure_module(python: &std::path::Path, module: &str, package: &str) {
    let importable = |python: &std::path::Path| {
        Command::new(python)
            .args(["-c", &format!("import {module}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if importable(python) {
        return;
    }
    let status = Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            package,
        ])
        .status()
        .expect("run pip");
    assert!(
        status.success() && importable(python),
        "cannot install {package} into {}",
        python.display()
    );
}
