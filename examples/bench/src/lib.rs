//! The Trellis peer of `cargo xtask bench`: the workloads every SDK runs (same type names, so
//! recorded histories are interchangeable across SDKs) and small helpers the peer binaries share.
//!
//! - `EchoWorkflow(String) -> String` calls activity `echo` once (10 s start-to-close);
//! - `LoopActivitiesWorkflow(n) -> n` calls `echo("x")` n times in sequence;
//! - `LoopTimersWorkflow(n) -> n` sleeps on n timers of 1 ms in sequence.
//!
//! Binaries: `trellis-peer-worker` and `trellis-peer-client` (A, end to end),
//! `trellis-peer-record` and `trellis-peer-replay` (B, replay), `trellis-peer-convert` (C,
//! converter round trip). `trellis-bench` holds the in-process measurements (D, plugin layers).

use std::time::Duration;

use trellis_worker::{
    ActivityContext, ActivityError, Pollers, WorkerConfig, WorkflowContext, WorkflowError,
};

/// Activity `echo`: returns its input.
pub async fn echo(_ctx: ActivityContext, s: String) -> Result<String, ActivityError> {
    Ok(s)
}

/// Workflow `EchoWorkflow`: one `echo` activity.
pub async fn echo_workflow(ctx: WorkflowContext, s: String) -> Result<String, WorkflowError> {
    Ok(ctx
        .activity("echo")
        .arg(&s)
        .start_to_close_timeout(Duration::from_secs(10))
        .run::<String>()
        .await?)
}

/// Workflow `LoopActivitiesWorkflow`: `n` sequential `echo("x")` activities.
pub async fn loop_activities(ctx: WorkflowContext, n: i64) -> Result<i64, WorkflowError> {
    for _ in 0..n {
        ctx.activity("echo")
            .arg("x")
            .start_to_close_timeout(Duration::from_secs(10))
            .run::<String>()
            .await?;
    }
    Ok(n)
}

/// Workflow `LoopTimersWorkflow`: `n` sequential 1 ms timers.
pub async fn loop_timers(ctx: WorkflowContext, n: i64) -> Result<i64, WorkflowError> {
    for _ in 0..n {
        ctx.timer(Duration::from_millis(1)).await;
    }
    Ok(n)
}

/// The benchmark worker: the three workflows and `echo`, with the limits every peer uses
/// (100 workflow tasks, 100 activities, 1000 cached runs, at most 5 workflow and 5 activity
/// task polls).
pub fn worker_config(task_queue: &str) -> WorkerConfig {
    let mut config = WorkerConfig::new(task_queue)
        .workflow("EchoWorkflow", echo_workflow)
        .workflow("LoopActivitiesWorkflow", loop_activities)
        .workflow("LoopTimersWorkflow", loop_timers)
        .activity("echo", echo);
    config.max_concurrent_workflow_tasks = 100;
    config.max_concurrent_activities = 100;
    config.max_cached_workflows = 1000;
    config.workflow_task_pollers = Some(Pollers::Maximum(5));
    config.activity_task_pollers = Some(Pollers::Maximum(5));
    config
}

/// The value following `name` on the command line.
pub fn arg(name: &str) -> Option<String> {
    let mut it = std::env::args();
    while let Some(a) = it.next() {
        if a == name {
            return it.next();
        }
    }
    None
}

/// The value following `name` parsed, or `default`.
pub fn arg_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    arg(name).and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// Peak resident set size (VmHWM) of this process, KiB.
pub fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time (user + system, all threads) of this process so far, seconds, from
/// `/proc/self/stat` (clock ticks of 1/100 s).
pub fn process_cpu_s() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_owned();
            let f: Vec<u64> = rest
                .split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|x| x.parse().ok())
                .collect();
            Some(f.iter().sum::<u64>() as f64 / 100.0)
        })
        .unwrap_or(f64::NAN)
}

/// Median of a non-empty slice.
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n.is_multiple_of(2) {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    } else {
        s[n / 2]
    }
}
