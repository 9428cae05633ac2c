//! Client plugins: one value that configures a client, wraps the opening of its connection, and
//! (when it also is a worker plugin) travels on to every worker built from the client.
//!
//! ```no_run
//! use trellis_client::plugin::{ClientPlugin, ConnectNext, ServiceClient};
//! use trellis_client::{BoxFuture, ClientConfig, ConnectConfig};
//! use trellis_interceptor::BoxError;
//!
//! /// Sends a tenant header on every RPC and checks the namespace name.
//! struct Tenant(String);
//!
//! impl ClientPlugin for Tenant {
//!     fn name(&self) -> &str {
//!         "acme.tenant"
//!     }
//!
//!     fn configure_client(&self, config: ClientConfig) -> Result<ClientConfig, BoxError> {
//!         if config.namespace.is_empty() {
//!             return Err("the namespace is empty".into());
//!         }
//!         Ok(config)
//!     }
//!
//!     fn connect_service_client<'a>(
//!         &'a self,
//!         mut config: ConnectConfig,
//!         next: ConnectNext<'a>,
//!     ) -> BoxFuture<'a, Result<ServiceClient, BoxError>> {
//!         config.headers.insert("x-tenant".into(), self.0.clone());
//!         Box::pin(next.run(config))
//!     }
//! }
//!
//! # async fn demo() -> Result<(), trellis_client::ClientError> {
//! let client = trellis_client::Client::connect(
//!     ClientConfig::new("127.0.0.1:7233").plugin(Tenant("acme".into())),
//! )
//! .await?;
//! # Ok(()) }
//! ```
//!
//! # Order
//!
//! On [`Client::connect`](crate::Client::connect): `configure_client` of each plugin in list
//! order (so it may still change the connection settings), then the `connect_service_client`
//! chain with the first plugin outermost. The plugins given to the client that are also worker
//! plugins (see [`ClientPlugin::worker_side`]) propagate to every worker built from the client,
//! ahead of the worker's own.

use std::any::Any;
use std::sync::Arc;

use temporalio_client::{Connection, ConnectionOptions, Url};
use trellis_interceptor::BoxError;
use trellis_interceptor::grpc::GrpcService;

use crate::BoxFuture;
use crate::config::{ClientConfig, ConnectConfig};
use crate::error::{ClientError, error_chain};
use crate::stack;

/// A plugin for clients. Every hook has a default that passes through, so a plugin implements
/// only what it changes. Errors a hook returns surface as [`ClientError::Plugin`], naming the
/// plugin and the hook.
pub trait ClientPlugin: Send + Sync + 'static {
    /// The plugin's name, used in errors and logs (defaults to the type's path).
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }

    /// Identifies the plugin instance: a plugin that reaches a worker twice (propagated from
    /// its client and given to the worker again) is applied once. Defaults to the value's
    /// address; handle types whose clones share one state (like `SimplePlugin`) return the
    /// address of that state.
    fn instance_key(&self) -> usize {
        self as *const Self as *const () as usize
    }

    /// Changes the client's configuration: namespace, identity, data converter, call layers,
    /// connection settings. Runs before the connection opens, in plugin order.
    fn configure_client(&self, config: ClientConfig) -> Result<ClientConfig, BoxError> {
        Ok(config)
    }

    /// Wraps the opening of the connection: change `config` (address, TLS, API key, headers,
    /// gRPC layers that then see every RPC of the client and its workers) before calling
    /// `next`, observe or retry the result after. Not calling `next` fails the connect unless
    /// the hook returns a service client of its own.
    fn connect_service_client<'a>(
        &'a self,
        config: ConnectConfig,
        next: ConnectNext<'a>,
    ) -> BoxFuture<'a, Result<ServiceClient, BoxError>> {
        Box::pin(next.run(config))
    }

    /// The worker side of a plugin that is also a `trellis_worker::WorkerPlugin`, so that it
    /// propagates to the client's workers. Such a plugin returns
    /// `Some(trellis_worker::plugin::worker_side(self))`; the default is `None` (client only).
    fn worker_side(self: Arc<Self>) -> Option<Arc<dyn Any + Send + Sync>> {
        None
    }
}

impl<P: ClientPlugin + ?Sized> ClientPlugin for Arc<P> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn instance_key(&self) -> usize {
        (**self).instance_key()
    }

    fn configure_client(&self, config: ClientConfig) -> Result<ClientConfig, BoxError> {
        (**self).configure_client(config)
    }

    fn connect_service_client<'a>(
        &'a self,
        config: ConnectConfig,
        next: ConnectNext<'a>,
    ) -> BoxFuture<'a, Result<ServiceClient, BoxError>> {
        (**self).connect_service_client(config, next)
    }

    fn worker_side(self: Arc<Self>) -> Option<Arc<dyn Any + Send + Sync>> {
        P::worker_side(Arc::clone(&*self))
    }
}

/// A plugin that travels from a client to the workers built from it.
#[derive(Clone)]
pub struct PropagatedPlugin {
    /// The plugin's name.
    pub name: String,
    /// The plugin instance's key ([`ClientPlugin::instance_key`]).
    pub instance_key: usize,
    /// The worker side, as returned by [`ClientPlugin::worker_side`].
    pub worker_side: Arc<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for PropagatedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PropagatedPlugin")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// An opened connection: what the innermost `connect_service_client` returns.
#[derive(Clone)]
pub struct ServiceClient {
    pub(crate) connection: Connection,
    pub(crate) grpc: GrpcService,
    pub(crate) connect: ConnectConfig,
}

impl ServiceClient {
    /// The gRPC service stack every RPC passes through.
    pub fn grpc_service(&self) -> &GrpcService {
        &self.grpc
    }

    /// The connection settings it was opened with.
    pub fn connect_config(&self) -> &ConnectConfig {
        &self.connect
    }
}

impl std::fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceClient")
            .field("connect", &self.connect)
            .finish_non_exhaustive()
    }
}

/// The rest of the `connect_service_client` chain: the plugins inside this one, then the
/// opening of the connection itself.
pub struct ConnectNext<'a> {
    plugins: &'a [Arc<dyn ClientPlugin>],
    identity: &'a str,
}

impl std::fmt::Debug for ConnectNext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectNext")
            .field("plugins_left", &self.plugins.len())
            .finish()
    }
}

impl<'a> ConnectNext<'a> {
    pub(crate) fn new(plugins: &'a [Arc<dyn ClientPlugin>], identity: &'a str) -> Self {
        Self { plugins, identity }
    }

    /// Runs the rest of the chain with `config`. Errors of inner plugins arrive already naming
    /// their plugin.
    pub async fn run(self, config: ConnectConfig) -> Result<ServiceClient, BoxError> {
        let Some((plugin, rest)) = self.plugins.split_first() else {
            return open(config, self.identity).await.map_err(Into::into);
        };
        let next = ConnectNext::new(rest, self.identity);
        plugin
            .connect_service_client(config, next)
            .await
            .map_err(|e| named(plugin.name(), "connect_service_client", e))
    }
}

/// Wraps a hook's error so it names the plugin and the hook, unless it already is a client
/// error (from the hooks inside, or built by the plugin on purpose).
pub(crate) fn named(plugin: &str, hook: &'static str, err: BoxError) -> BoxError {
    if err.is::<ClientError>() {
        err
    } else {
        Box::new(ClientError::Plugin {
            plugin: plugin.to_owned(),
            hook,
            cause: err,
        })
    }
}

/// Opens the connection: the gRPC stack for `config`, and core's connection routed through it.
async fn open(config: ConnectConfig, identity: &str) -> Result<ServiceClient, ClientError> {
    let grpc = stack::build(&config)?;
    let bad = |cause: String| ClientError::Connect {
        address: config.address.clone(),
        cause,
    };
    let url = Url::parse(&config.url()).map_err(|e| bad(e.to_string()))?;
    let options = ConnectionOptions::new(url)
        .identity(identity.to_owned())
        .service_override(stack::into_core_override(grpc.clone()))
        .dns_load_balancing(None)
        .keep_alive(None)
        .build();
    let connection = Connection::connect(options)
        .await
        .map_err(|e| bad(error_chain(&e)))?;
    Ok(ServiceClient {
        connection,
        grpc,
        connect: config,
    })
}
