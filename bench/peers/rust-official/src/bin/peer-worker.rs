//! Benchmark A worker process (Rust official SDK). Prints READY when polling, exits on SIGTERM.
use peerbench_official::*;
use temporalio_sdk::{
    Runtime, Worker, WorkerOptions,
    runtime::{
        PollerBehavior,
        worker_tuner::{FixedSizeSlotSupplier, TunerHolder},
    },
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = arg("--addr").unwrap_or_else(|| "127.0.0.1:7255".into());
    let tq = arg("--tq").expect("--tq required");
    let runtime = Runtime::from_current_tokio(Default::default())?;
    let client = connect(&addr).await?;
    let tuner = TunerHolder::builder()
        .workflow_task_slot_supplier(FixedSizeSlotSupplier::new(100))
        .activity_task_slot_supplier(FixedSizeSlotSupplier::new(100))
        .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(100))
        .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(100))
        .build();
    let opts = WorkerOptions::new(tq.clone())
        .register_workflow::<EchoWorkflow>()?
        .register_workflow::<LoopActivitiesWorkflow>()?
        .register_workflow::<LoopTimersWorkflow>()?
        .register_activities(EchoActivities)
        .tuner(tuner)
        .max_cached_workflows(1000)
        .workflow_task_poller_behavior(PollerBehavior::SimpleMaximum(5))
        .activity_task_poller_behavior(PollerBehavior::SimpleMaximum(5))
        .build();
    let mut worker = Worker::new(&runtime, client, opts)?;
    let shutdown = worker.shutdown_handle();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
        shutdown();
    });
    println!("READY");
    worker.run().await?;
    println!("MAXRSS_KB {}", vm_hwm_kb());
    Ok(())
}
