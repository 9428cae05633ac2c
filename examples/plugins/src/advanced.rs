//! An advanced plugin, written on the traits directly: it wraps the connection (a tenant
//! header on every RPC and a gRPC layer that counts them), wraps the worker's run (reports the
//! count when the worker stops), and reuses a `SimplePlugin` for its activity rather than
//! re-implementing registration.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use trellis_client::plugin::{ConnectNext, ServiceClient};
use trellis_client::{BoxFuture, Client, ClientConfig, ClientPlugin, ConnectConfig, GrpcLayer};
use trellis_interceptor::grpc::{GrpcRequest, GrpcResponse};
use trellis_interceptor::{BoxError, Next, from_fn};
use trellis_plugin_simple::SimplePlugin;
use trellis_worker::plugin::{RunNext, worker_side};
use trellis_worker::{
    ActivityContext, ActivityError, Worker, WorkerConfig, WorkerPlugin, WorkflowContext,
    WorkflowError,
};

use crate::AnyError;

/// A multi-tenant platform's plugin.
pub struct TenantPlugin {
    tenant: String,
    rpcs: Arc<AtomicUsize>,
    simple: SimplePlugin,
}

impl TenantPlugin {
    /// The plugin for `tenant`.
    pub fn new(tenant: impl Into<String>) -> Self {
        let tenant = tenant.into();
        let who = tenant.clone();
        Self {
            simple: SimplePlugin::new("acme.tenant").activity(
                "tenant.name",
                move |_ctx: ActivityContext, (): ()| {
                    let who = who.clone();
                    async move { Ok::<_, ActivityError>(who) }
                },
            ),
            tenant,
            rpcs: Arc::default(),
        }
    }

    /// How many RPCs the plugin's gRPC layer has seen (the client's and its workers').
    pub fn rpcs(&self) -> usize {
        self.rpcs.load(Ordering::Relaxed)
    }
}

impl ClientPlugin for TenantPlugin {
    fn name(&self) -> &str {
        "acme.tenant"
    }

    fn configure_client(&self, config: ClientConfig) -> Result<ClientConfig, BoxError> {
        ClientPlugin::configure_client(&self.simple, config)
    }

    fn connect_service_client<'a>(
        &'a self,
        mut config: ConnectConfig,
        next: ConnectNext<'a>,
    ) -> BoxFuture<'a, Result<ServiceClient, BoxError>> {
        config
            .headers
            .insert("x-tenant".into(), self.tenant.clone());
        let rpcs = self.rpcs.clone();
        config.grpc_layers.push(GrpcLayer::new(from_fn(
            move |req: GrpcRequest, next: Next<GrpcRequest, GrpcResponse, BoxError>| {
                rpcs.fetch_add(1, Ordering::Relaxed);
                next.run(req)
            },
        )));
        Box::pin(next.run(config))
    }

    fn worker_side(self: Arc<Self>) -> Option<Arc<dyn Any + Send + Sync>> {
        Some(worker_side(self))
    }
}

impl WorkerPlugin for TenantPlugin {
    fn name(&self) -> &str {
        "acme.tenant"
    }

    fn configure_worker(&self, config: WorkerConfig) -> Result<WorkerConfig, BoxError> {
        // SimplePlugin's behaviour for the activity, then this plugin's own limit.
        let mut config = WorkerPlugin::configure_worker(&self.simple, config)?;
        config.max_concurrent_activities = config.max_concurrent_activities.min(20);
        Ok(config)
    }

    fn run_worker<'a>(
        &'a self,
        worker: Worker,
        next: RunNext<'a>,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            println!(
                "  tenant {}: worker on {} starting",
                self.tenant,
                worker.task_queue()
            );
            let result = next.run(worker).await;
            println!(
                "  tenant {}: worker stopped after {} RPCs",
                self.tenant,
                self.rpcs()
            );
            result
        })
    }
}

async fn whoami(ctx: WorkflowContext, (): ()) -> Result<String, WorkflowError> {
    Ok(ctx
        .activity("tenant.name")
        .start_to_close_timeout(Duration::from_secs(10))
        .run()
        .await?)
}

/// Connects with the plugin (through an `Arc`, to read its counter afterwards) and runs one
/// workflow.
pub async fn run(address: String) -> Result<String, AnyError> {
    let plugin = Arc::new(TenantPlugin::new("acme"));
    let client = Client::connect(ClientConfig::new(address).plugin(plugin.clone())).await?;
    let config =
        WorkerConfig::new(format!("tenant-{}", crate::unique())).workflow("WhoAmI", whoami);
    let tenant: String = crate::execute(&client, config, "WhoAmI", &()).await?;
    Ok(format!(
        "tenant {tenant}; {} RPCs went through the plugin's layer",
        plugin.rpcs()
    ))
}
