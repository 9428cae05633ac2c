use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use trellis_converter::DataConverter;
use trellis_interceptor::grpc::GrpcLayer;

use crate::interceptors::{ClientCall, ClientCallLayer, ClientCallResponse, ClientCallService};
use crate::plugin::ClientPlugin;

/// TLS settings for the connection. With none of the fields set, the server's certificate is
/// checked against the standard web roots.
#[derive(Clone, Debug, Default)]
pub struct TlsConfig {
    /// PEM of the CA that signed the server's certificate, if not a public one.
    pub server_root_ca_pem: Option<Vec<u8>>,
    /// The name to check in the server's certificate, if not the address's host.
    pub domain: Option<String>,
    /// PEM of the client certificate and key, for mutual TLS.
    pub client_cert_pem: Option<(Vec<u8>, Vec<u8>)>,
}

/// How to open the connection: the address and everything that shapes each RPC on the wire.
#[derive(Clone)]
pub struct ConnectConfig {
    /// `host:port`, or a URL (`http://…`, `https://…`).
    pub address: String,
    /// TLS; `None` connects in plain text (unless the address starts with `https://`).
    pub tls: Option<TlsConfig>,
    /// Sent as `authorization: Bearer <key>` on every RPC (Temporal Cloud API keys).
    pub api_key: Option<String>,
    /// Extra ASCII headers sent on every RPC.
    pub headers: BTreeMap<String, String>,
    /// How long to wait for the TCP/TLS connection.
    pub connect_timeout: Duration,
    /// Layers around the gRPC service; the first is outermost.
    pub grpc_layers: Vec<GrpcLayer>,
}

impl std::fmt::Debug for ConnectConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectConfig")
            .field("address", &self.address)
            .field("tls", &self.tls.is_some())
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("connect_timeout", &self.connect_timeout)
            .field("grpc_layers", &self.grpc_layers.len())
            .finish()
    }
}

impl ConnectConfig {
    /// A plain-text connection to `address`.
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            tls: None,
            api_key: None,
            headers: BTreeMap::new(),
            connect_timeout: Duration::from_secs(10),
            grpc_layers: Vec::new(),
        }
    }

    /// The address as a URL with a scheme.
    pub(crate) fn url(&self) -> String {
        if self.address.contains("://") {
            self.address.clone()
        } else if self.tls.is_some() {
            format!("https://{}", self.address)
        } else {
            format!("http://{}", self.address)
        }
    }
}

/// Everything a [`Client`](crate::Client) needs: the connection, the namespace, the identity
/// and the data converter.
#[derive(Clone)]
pub struct ClientConfig {
    /// How to connect.
    pub connect: ConnectConfig,
    /// The namespace every call goes to.
    pub namespace: String,
    /// Who this client (and its workers) say they are; defaults to `pid@host`.
    pub identity: String,
    /// How values become payloads.
    pub data_converter: DataConverter,
    /// Layers around every client call; the first is outermost.
    pub call_layers: Vec<ClientCallLayer>,
    pub(crate) plugins: Vec<Arc<dyn ClientPlugin>>,
}

impl ClientConfig {
    /// A configuration for `address` in the `default` namespace.
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            connect: ConnectConfig::new(address),
            namespace: "default".to_owned(),
            identity: default_identity(),
            data_converter: DataConverter::default(),
            call_layers: Vec::new(),
            plugins: Vec::new(),
        }
    }

    /// Adds a plugin (after those already added: the first is outermost and configures
    /// first). A plugin that is also a worker plugin propagates to the client's workers. Pass
    /// an `Arc` of the plugin to give the same instance to a worker as well; it is then
    /// applied there once.
    pub fn plugin(mut self, plugin: impl ClientPlugin) -> Self {
        self.plugins.push(Arc::new(plugin));
        self
    }

    /// The plugins added, in order, by name.
    pub fn plugin_names(&self) -> Vec<&str> {
        self.plugins.iter().map(|p| p.name()).collect()
    }

    /// Adds a layer around every client call (after those already added, so inside them).
    /// Any tower layer whose service keeps the request and response types fits, or a hook made
    /// with [`from_fn`](trellis_interceptor::from_fn).
    pub fn call_layer<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<ClientCallService> + Send + Sync + 'static,
        L::Service: tower::Service<ClientCall, Response = ClientCallResponse>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<ClientCall>>::Error:
            Into<trellis_interceptor::BoxError> + 'static,
        <L::Service as tower::Service<ClientCall>>::Future: Send + 'static,
    {
        use tower::ServiceExt;
        self.call_layers
            .push(ClientCallLayer::new(tower::layer::layer_fn(
                move |inner: ClientCallService| {
                    ClientCallService::new(layer.layer(inner).map_err(Into::into))
                },
            )));
        self
    }

    /// Sets the namespace.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Sets the identity.
    pub fn identity(mut self, identity: impl Into<String>) -> Self {
        self.identity = identity.into();
        self
    }

    /// Sets the data converter.
    pub fn data_converter(mut self, data_converter: DataConverter) -> Self {
        self.data_converter = data_converter;
        self
    }

    /// Turns on TLS.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.connect.tls = Some(tls);
        self
    }

    /// Sets the API key (implies nothing about TLS; Temporal Cloud needs both).
    pub fn api_key(mut self, api_key: impl Into<String>) -> Self {
        self.connect.api_key = Some(api_key.into());
        self
    }

    /// Adds a header sent on every RPC.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.connect.headers.insert(name.into(), value.into());
        self
    }

    /// Adds a tower layer around the gRPC service (after those already added, so inside them).
    pub fn grpc_layer<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<trellis_interceptor::grpc::GrpcService> + Send + Sync + 'static,
        L::Service: tower::Service<
                trellis_interceptor::grpc::GrpcRequest,
                Response = trellis_interceptor::grpc::GrpcResponse,
                Error = trellis_interceptor::BoxError,
            > + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<trellis_interceptor::grpc::GrpcRequest>>::Future:
            Send + 'static,
    {
        self.connect.grpc_layers.push(GrpcLayer::new(layer));
        self
    }
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{}@{host}", std::process::id())
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("connect", &self.connect)
            .field("namespace", &self.namespace)
            .field("identity", &self.identity)
            .field("data_converter", &self.data_converter)
            .field("call_layers", &self.call_layers.len())
            .field("plugins", &self.plugin_names())
            .finish()
    }
}
