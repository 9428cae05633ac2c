//! A client + worker plugin with a run context: an audit sink that is opened when a worker
//! starts, collects what the plugin's activity records while the worker runs, and is flushed
//! when the worker stops — the shape of plugins that must flush exporters or clients on exit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use trellis_client::{Client, ClientConfig};
use trellis_plugin_simple::{RunScope, SimplePlugin};
use trellis_worker::{
    ActivityContext, ActivityError, WorkerConfig, WorkflowContext, WorkflowError,
};

use crate::AnyError;

/// The audit sink: lines buffered while a worker runs, and those flushed when it stopped.
#[derive(Clone, Debug, Default)]
pub struct AuditSink {
    buffer: Arc<Mutex<Vec<String>>>,
    flushed: Arc<Mutex<Vec<String>>>,
}

impl AuditSink {
    /// The lines flushed so far.
    pub fn flushed(&self) -> Vec<String> {
        self.flushed.lock().expect("sink").clone()
    }
}

/// What the `acme-audit` crate exports: the `audit.record` activity and the run context that
/// opens and flushes the sink around every worker run.
pub fn plugin(sink: AuditSink) -> SimplePlugin {
    let for_activity = sink.clone();
    SimplePlugin::new("acme.audit")
        .activity("audit.record", move |ctx: ActivityContext, line: String| {
            let sink = for_activity.clone();
            async move {
                let entry = format!("{}: {line}", ctx.info().workflow_id);
                sink.buffer.lock().expect("sink").push(entry);
                Ok::<_, ActivityError>(())
            }
        })
        .run_context(move |scope, run| {
            let sink = sink.clone();
            Box::pin(async move {
                if let RunScope::Worker { task_queue, .. } = &scope {
                    println!("  audit sink opened for {task_queue}");
                }
                let result = run.await;
                let lines: Vec<String> = sink.buffer.lock().expect("sink").drain(..).collect();
                println!("  audit sink flushed {} line(s)", lines.len());
                sink.flushed.lock().expect("sink").extend(lines);
                result
            })
        })
}

async fn transfer(ctx: WorkflowContext, cents: u64) -> Result<String, WorkflowError> {
    ctx.activity("audit.record")
        .arg(&format!("transfer of {cents} cents requested"))
        .start_to_close_timeout(Duration::from_secs(10))
        .run::<()>()
        .await?;
    ctx.activity("audit.record")
        .arg(&"transfer done")
        .start_to_close_timeout(Duration::from_secs(10))
        .run::<()>()
        .await?;
    Ok("transferred".into())
}

/// Connects with the plugin, runs one workflow, stops the worker, and reports what the sink
/// flushed when the worker stopped.
pub async fn run(address: String) -> Result<String, AnyError> {
    let sink = AuditSink::default();
    let client = Client::connect(ClientConfig::new(address).plugin(plugin(sink.clone()))).await?;
    let config =
        WorkerConfig::new(format!("audit-{}", crate::unique())).workflow("Transfer", transfer);
    let out: String = crate::execute(&client, config, "Transfer", &500).await?;
    Ok(format!("{out}; flushed on exit: {}", sink.flushed().len()))
}
