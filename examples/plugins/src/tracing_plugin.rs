//! A plugin that adds an interceptor: Trellis's tracing interceptor, which opens `tracing`
//! spans for client calls, workflow runs and activities and carries the W3C trace context
//! through Temporal headers. Registered on the client, it reaches the worker too, and runs once
//! per call on each side.

use std::time::Duration;

use trellis_client::{Client, ClientConfig};
use trellis_plugin_simple::SimplePlugin;
use trellis_tracing::TracingInterceptor;
use trellis_worker::{
    ActivityContext, ActivityError, WorkerConfig, WorkflowContext, WorkflowError,
};

use crate::AnyError;

/// What the `acme-observability` crate exports.
pub fn plugin() -> SimplePlugin {
    SimplePlugin::new("acme.tracing").interceptor(TracingInterceptor::new())
}

async fn lookup(_ctx: ActivityContext, sku: String) -> Result<u32, ActivityError> {
    tracing::info!(%sku, "looking up stock");
    Ok(sku.len() as u32 * 7)
}

async fn check_stock(ctx: WorkflowContext, sku: String) -> Result<u32, WorkflowError> {
    Ok(ctx
        .activity("lookup")
        .arg(&sku)
        .start_to_close_timeout(Duration::from_secs(10))
        .run()
        .await?)
}

/// Connects with the plugin and runs one workflow; the spans print to stderr when a
/// `tracing` subscriber is installed (the program installs one).
pub async fn run(address: String) -> Result<String, AnyError> {
    let client = Client::connect(ClientConfig::new(address).plugin(plugin())).await?;
    let config = WorkerConfig::new(format!("stock-{}", crate::unique()))
        .workflow("CheckStock", check_stock)
        .activity("lookup", lookup);
    let stock: u32 = crate::execute(&client, config, "CheckStock", "sku-42").await?;
    Ok(format!("{stock} in stock"))
}
