//! Benchmark B, replay (Trellis): decodes every `*.pb` history in `--dir` up front (untimed),
//! then per pass clones them (untimed) and times one `Replayer::replay_all` over the whole set;
//! `--warmup` untimed passes, then `--reps` timed ones. Prints one JSON line: histories/s,
//! process CPU per pass and peak RSS (VmHWM) after loading and at the end.

use std::time::Instant;

use trellis_example_bench::{arg, arg_or, median, process_cpu_s, vm_hwm_kb, worker_config};
use trellis_replayer::{ReplayHistory, Replayer, ReplayerConfig, history};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = arg("--dir").ok_or("--dir required")?;
    let label = arg("--label").ok_or("--label required")?;
    let reps: usize = arg_or("--reps", 5);
    let warmup: usize = arg_or("--warmup", 1);
    let concurrency: usize = arg_or("--concurrency", 1);
    let histories = history::read_dir(dir.as_ref())?;
    if let Some(bad) = histories.iter().find(|h| h.load_error.is_some()) {
        return Err(format!("{}: {:?}", bad.source, bad.load_error).into());
    }
    let n_events: usize = histories.iter().map(|h| h.history.events.len()).sum();
    let rss_after_load_kb = vm_hwm_kb();
    let replayer =
        Replayer::new(ReplayerConfig::new(worker_config("bench-replay")).concurrency(concurrency))?;
    let (mut times, mut cpu) = (Vec::new(), Vec::new());
    for r in 0..warmup + reps {
        let pass: Vec<ReplayHistory> = histories.clone();
        let c0 = process_cpu_s();
        let t0 = Instant::now();
        let results = replayer.replay_all(pass).await?;
        let dt = t0.elapsed().as_secs_f64();
        let dc = process_cpu_s() - c0;
        let failures: Vec<String> = results
            .iter()
            .filter(|r| !r.is_ok())
            .take(3)
            .map(|r| format!("{r:?}"))
            .collect();
        if !failures.is_empty() || results.len() != histories.len() {
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
        "{{\"peer\": \"trellis\", \"label\": \"{label}\", \"histories\": {}, \"events\": {n_events}, \"times_s\": {times:?}, \"cpu_s\": {cpu:?}, \"median_s\": {m}, \"hist_per_s_median\": {}, \"rss_after_load_kb\": {rss_after_load_kb}, \"maxrss_kb\": {}}}",
        histories.len(),
        histories.len() as f64 / m,
        vm_hwm_kb()
    );
    Ok(())
}
