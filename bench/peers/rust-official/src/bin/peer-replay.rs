//! Benchmark B: replay recorded histories (binary temporal.api.history.v1.History files)
//! with temporalio_sdk::workflow_replayer::WorkflowReplayer::replay_workflows.
//! All files are decoded up front (untimed); each rep clones them into WorkflowHistory
//! values (untimed) and times one replay_workflows() call over the whole set.
use peerbench_official::*;
use prost::Message;
use std::time::Instant;
use temporalio_client::WorkflowHistory;
use temporalio_common::protos::temporal::api::history::v1::History;
use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};

/// CPU time of the whole process (all threads), seconds: clock_gettime(CLOCK_PROCESS_CPUTIME_ID),
/// the same clock Python's time.process_time() uses.
fn proc_cpu_s() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len();
    if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = arg("--dir").expect("--dir required");
    let label = arg("--label").expect("--label required");
    let reps: usize = arg("--reps").map(|s| s.parse().unwrap()).unwrap_or(5);
    let warmup: usize = arg("--warmup").map(|s| s.parse().unwrap()).unwrap_or(1);
    let mut files: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().map(|x| x == "pb").unwrap_or(false))
        .collect();
    files.sort();
    let histories: Vec<History> = files
        .iter()
        .map(|p| History::decode(std::fs::read(p).unwrap().as_slice()).unwrap())
        .collect();
    let n_events: usize = histories.iter().map(|h| h.events.len()).sum();
    let rss_after_load_kb = vm_hwm_kb();
    let replayer = WorkflowReplayer::new(
        WorkflowReplayerOptions::new()
            .register_workflow::<EchoWorkflow>()?
            .register_workflow::<LoopActivitiesWorkflow>()?
            .register_workflow::<LoopTimersWorkflow>()?
            .build(),
    )?;
    let mut times = vec![];
    let mut cpu = vec![];
    for r in 0..(warmup + reps) {
        let hs: Vec<WorkflowHistory> = histories.iter().cloned().map(WorkflowHistory::from).collect();
        let c0 = proc_cpu_s();
        let t0 = Instant::now();
        let results = replayer.replay_workflows(hs).await?;
        let dt = t0.elapsed().as_secs_f64();
        let dc = proc_cpu_s() - c0;
        let failures: Vec<_> = results.iter().filter_map(|r| r.replay_failure.clone()).collect();
        if !failures.is_empty() || results.len() != histories.len() {
            anyhow::bail!("replay failures ({} results): {:?}", results.len(), &failures[..failures.len().min(3)]);
        }
        if r >= warmup {
            times.push(dt);
            cpu.push(dc);
        }
    }
    let m = median(&times);
    println!(
        "{{\"peer\": \"rust-official\", \"label\": \"{label}\", \"histories\": {}, \"events\": {n_events}, \"times_s\": {:?}, \"cpu_s\": {:?}, \"median_s\": {m}, \"hist_per_s_median\": {}, \"rss_after_load_kb\": {rss_after_load_kb}, \"maxrss_kb\": {}}}",
        histories.len(),
        times,
        cpu,
        histories.len() as f64 / m,
        vm_hwm_kb()
    );
    Ok(())
}
