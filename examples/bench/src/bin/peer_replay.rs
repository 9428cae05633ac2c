//! Benchmark B, replay (Trellis): replays every `*.pb` history in `--dir` the way a project's CI
//! replays a folder of histories: `Replayer::replay_dir` lists the folder and reads and decodes
//! each file only when the replay gets to it, so only the history in flight is in memory. Each
//! pass is timed whole, reading and decoding included (the other peers decode every history up
//! front, untimed). `--warmup` untimed passes, then `--reps` timed ones. Before the passes, one
//! untimed scan counts the events (decoding one file at a time). Prints one JSON line:
//! histories/s, process CPU per pass and peak RSS (VmHWM) after the scan and at the end.
//!
//! `--eager` replays the old way instead, for comparison: every history decoded up front and
//! cloned per pass (untimed), then `Replayer::replay_all` over the whole `Vec`.

use std::time::Instant;

use trellis_example_bench::{arg, arg_or, median, process_cpu_s, vm_hwm_kb, worker_config};
use trellis_replayer::{ReplayHistory, ReplayResult, Replayer, ReplayerConfig, history};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = arg("--dir").ok_or("--dir required")?;
    let label = arg("--label").ok_or("--label required")?;
    let reps: usize = arg_or("--reps", 5);
    let warmup: usize = arg_or("--warmup", 1);
    let concurrency: usize = arg_or("--concurrency", 1);
    let eager = std::env::args().any(|a| a == "--eager");
    let files = history::history_files(dir.as_ref())?;
    let mut n_events = 0;
    for f in &files {
        let h = history::read_file(f);
        if let Some(e) = &h.load_error {
            return Err(format!("{}: {e}", h.source).into());
        }
        n_events += h.history.events.len();
    }
    let loaded: Vec<ReplayHistory> = if eager {
        files.iter().map(|f| history::read_file(f)).collect()
    } else {
        Vec::new()
    };
    let rss_after_load_kb = vm_hwm_kb();
    let replayer =
        Replayer::new(ReplayerConfig::new(worker_config("bench-replay")).concurrency(concurrency))?;
    let (mut times, mut cpu) = (Vec::new(), Vec::new());
    for r in 0..warmup + reps {
        let pass = eager.then(|| loaded.clone());
        let c0 = process_cpu_s();
        let t0 = Instant::now();
        let results: Vec<ReplayResult> = match pass {
            Some(pass) => replayer.replay_all(pass).await?,
            None => replayer.replay_dir(&dir).await?,
        };
        let dt = t0.elapsed().as_secs_f64();
        let dc = process_cpu_s() - c0;
        let failures: Vec<String> = results
            .iter()
            .filter(|r| !r.is_ok())
            .take(3)
            .map(|r| format!("{r:?}"))
            .collect();
        if !failures.is_empty() || results.len() != files.len() {
            return Err(
                format!("replay failures ({} results): {failures:?}", results.len()).into(),
            );
        }
        if r >= warmup {
            times.push(dt);
            cpu.push(dc);
        }
    }
    let m = median(&times);
    println!(
        "{{\"peer\": \"trellis\", \"label\": \"{label}\", \"mode\": \"{}\", \"histories\": {}, \"events\": {n_events}, \"times_s\": {times:?}, \"cpu_s\": {cpu:?}, \"median_s\": {m}, \"hist_per_s_median\": {}, \"rss_after_load_kb\": {rss_after_load_kb}, \"maxrss_kb\": {}}}",
        if eager { "eager" } else { "streaming" },
        files.len(),
        files.len() as f64 / m,
        vm_hwm_kb()
    );
    Ok(())
}
