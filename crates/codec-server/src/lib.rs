//! A Temporal **codec server** for Trellis: the HTTP endpoint the Temporal Web UI and CLI call to
//! decode (and encode) payloads with the codecs of a [`DataConverter`], so that people can read
//! encrypted or compressed workflow data without the keys ever leaving the server.
//!
//! [`router`] gives an [`axum::Router`] that answers
//!
//! - `POST …/decode`: runs the converter's codec stack *decoding* (codecs in reverse order);
//! - `POST …/encode`: runs it *encoding* (codecs in the order added).
//!
//! Both take and return a `Payloads` message as proto3 JSON (see [`wire`]):
//!
//! ```json
//! {"payloads":[{"metadata":{"encoding":"YmluYXJ5L2VuY3J5cHRlZA==","encryption-key-id":"azE="},"data":"…"}]}
//! ```
//!
//! As the codec-server protocol asks, only the **last path segment** decides the operation, so
//! the endpoints work at any depth (`/decode`, `/codec/decode`, `/ns/prod/decode`), and the
//! query string (the UI sends `?preserveStorageRefs=true`) is ignored. The `X-Namespace` header
//! picks a namespace's own converter when one was configured with
//! [`CodecServerOptions::namespace`], else the default one.
//!
//! Browsers call from the UI's origin, so the router answers CORS preflights for the origins of
//! [`CodecServerOptions`] (by default the dev server's UI, [`DEFAULT_CORS_ORIGINS`]), allowing
//! `POST`, the `Content-Type`, `X-Namespace` and `Authorization` headers, and credentials.
//!
//! Errors are JSON, `{"error": "<message>"}` (plus `"keyId"` when a key is involved):
//!
//! | status | when |
//! | --- | --- |
//! | 400 | the body is not a proto3-JSON `Payloads` message (the message says where and why) |
//! | 404 | the last path segment is neither `encode` nor `decode` |
//! | 405 | a method other than `POST` (or a CORS preflight `OPTIONS`) |
//! | 413 | the body is larger than [`CodecServerOptions::max_body_bytes`] |
//! | 422 | a payload cannot be decoded: unknown or missing key id, wrong key, corrupt data |
//! | 500 | any other codec failure |
//!
//! ```no_run
//! use trellis_codec_server::{CodecServerOptions, router};
//! use trellis_converter::{AesGcmCodec, DataConverter, ZstdCodec};
//!
//! # async fn run() -> std::io::Result<()> {
//! let codecs = DataConverter::default()
//!     .with_codec(ZstdCodec::new())
//!     .with_codec(AesGcmCodec::new("key-1", [0u8; 32]));
//! let app = router(codecs, CodecServerOptions::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

pub mod wire;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use serde_json::{Map, Value};
use tower_http::cors::{AllowOrigin, CorsLayer};
use trellis_converter::{CodecError, DataConverter};

pub use trellis_converter;

/// The origins allowed by default: the UI of `temporal server start-dev` (port 8233), under both
/// of the names a browser may use for it.
pub const DEFAULT_CORS_ORIGINS: [&str; 2] = ["http://localhost:8233", "http://127.0.0.1:8233"];

/// The header that names the namespace a request is for.
pub const NAMESPACE_HEADER: &str = "x-namespace";

/// The default limit on a request body: 8 MiB (Temporal's own limit on one payload is 2 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 << 20;

/// Which origins may call the server from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CorsOrigins {
    /// These origins, with credentials allowed.
    List(Vec<String>),
    /// Any origin (`Access-Control-Allow-Origin: *`), without credentials.
    Any,
}

/// An origin given to [`CodecServerOptions::cors_origins`] is not of the form
/// `http[s]://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid CORS origin {origin:?}: {reason} (expected scheme://host[:port], e.g. http://localhost:8233)"
)]
pub struct InvalidOrigin {
    /// The origin as given.
    pub origin: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Options of a [`router`]: CORS origins, per-namespace converters, body size limit.
#[derive(Debug, Clone)]
pub struct CodecServerOptions {
    cors: CorsOrigins,
    namespaces: HashMap<String, DataConverter>,
    max_body_bytes: usize,
}

impl Default for CodecServerOptions {
    /// CORS for [`DEFAULT_CORS_ORIGINS`], no per-namespace converters, an 8 MiB body limit.
    fn default() -> Self {
        Self {
            cors: CorsOrigins::List(DEFAULT_CORS_ORIGINS.map(String::from).to_vec()),
            namespaces: HashMap::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

impl CodecServerOptions {
    /// The default options (see [`Default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the allowed origins by `origins` (e.g. `https://temporal.example.com`), with
    /// credentials allowed. A trailing `/` is dropped and scheme and host are lowercased, as a
    /// browser writes its `Origin` header. An empty list allows no browser at all.
    pub fn cors_origins<I, S>(mut self, origins: I) -> Result<Self, InvalidOrigin>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let list = origins
            .into_iter()
            .map(|o| normalize_origin(o.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        self.cors = CorsOrigins::List(list);
        Ok(self)
    }

    /// Allows every origin (`Access-Control-Allow-Origin: *`). Browsers then send no
    /// credentials; fine for a server on a developer machine, not for one holding production
    /// keys on a network.
    pub fn any_cors_origin(mut self) -> Self {
        self.cors = CorsOrigins::Any;
        self
    }

    /// The allowed origins, or `None` when every origin is allowed.
    pub fn allowed_origins(&self) -> Option<&[String]> {
        match &self.cors {
            CorsOrigins::List(list) => Some(list),
            CorsOrigins::Any => None,
        }
    }

    /// Uses `converter` for requests whose `X-Namespace` header is `namespace`; requests for
    /// other namespaces (or with no header) use the router's default converter.
    pub fn namespace(mut self, namespace: impl Into<String>, converter: DataConverter) -> Self {
        self.namespaces.insert(namespace.into(), converter);
        self
    }

    /// Refuses request bodies larger than `bytes` with `413 Payload Too Large`.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }
}

fn normalize_origin(origin: &str) -> Result<String, InvalidOrigin> {
    let bad = |reason| InvalidOrigin {
        origin: origin.to_owned(),
        reason,
    };
    let trimmed = origin.trim().trim_end_matches('/');
    let uri: http::Uri = trimmed.parse().map_err(|_| bad("not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(_) => return Err(bad("the scheme must be http or https")),
        None => return Err(bad("no scheme")),
    }
    let Some(authority) = uri.authority() else {
        return Err(bad("no host"));
    };
    if authority.as_str().contains('@') {
        return Err(bad("an origin has no user info"));
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(bad("an origin has no path or query"));
    }
    let normalized =
        format!("{}://{}", uri.scheme_str().unwrap_or_default(), authority).to_ascii_lowercase();
    HeaderValue::from_str(&normalized).map_err(|_| bad("not a valid header value"))?;
    Ok(normalized)
}

#[derive(Debug)]
struct Shared {
    default: DataConverter,
    namespaces: HashMap<String, DataConverter>,
    max_body_bytes: usize,
}

impl Shared {
    fn converter(&self, namespace: Option<&str>) -> &DataConverter {
        namespace
            .and_then(|ns| self.namespaces.get(ns))
            .unwrap_or(&self.default)
    }
}

/// The codec server: `POST …/encode` and `POST …/decode` over the codecs of `codecs` (or of a
/// namespace's converter, see [`CodecServerOptions::namespace`]), with CORS. See the crate docs
/// for the protocol and the error statuses.
pub fn router(codecs: DataConverter, options: CodecServerOptions) -> Router {
    let cors = cors_layer(&options.cors);
    let shared = Arc::new(Shared {
        default: codecs,
        namespaces: options.namespaces,
        max_body_bytes: options.max_body_bytes,
    });
    Router::new()
        .fallback(handle)
        .with_state(shared)
        .layer(cors)
}

fn cors_layer(origins: &CorsOrigins) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([
            CONTENT_TYPE,
            HeaderName::from_static(NAMESPACE_HEADER),
            AUTHORIZATION,
        ])
        .max_age(Duration::from_secs(600));
    match origins {
        CorsOrigins::Any => layer.allow_origin(AllowOrigin::any()),
        CorsOrigins::List(list) => layer
            .allow_origin(AllowOrigin::list(list.iter().map(|o| {
                HeaderValue::from_str(o).expect("origins are validated when configured")
            })))
            .allow_credentials(true),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Encode,
    Decode,
}

impl Op {
    fn from_path(path: &str) -> Option<Self> {
        let path = path.strip_suffix('/').unwrap_or(path);
        match path.rsplit('/').next() {
            Some("encode") => Some(Self::Encode),
            Some("decode") => Some(Self::Decode),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Encode => "encode",
            Self::Decode => "decode",
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let Some(op) = Op::from_path(request.uri().path()) else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "no such endpoint {}: use POST …/encode or POST …/decode",
                request.uri().path()
            ),
            None,
        );
    };
    if request.method() != Method::POST {
        let mut response = error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} takes POST, not {}", op.name(), request.method()),
            None,
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST, OPTIONS"));
        return response;
    }
    let namespace = request
        .headers()
        .get(NAMESPACE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match read_body(request.into_body(), shared.max_body_bytes).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let payloads = match wire::payloads_from_json(&body) {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(op = op.name(), error = %e, "malformed codec request");
            return error(
                StatusCode::BAD_REQUEST,
                format!("malformed request body: {e}"),
                None,
            );
        }
    };
    let count = payloads.len();
    let converter = shared.converter(namespace.as_deref());
    let result = match op {
        Op::Encode => converter.encode_payloads(payloads).await,
        Op::Decode => converter.decode_payloads(payloads).await,
    };
    match result {
        Ok(out) => (
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            wire::payloads_to_json(&out),
        )
            .into_response(),
        Err(e) => {
            let (status, key_id) = classify(&e);
            tracing::warn!(
                op = op.name(),
                namespace = namespace.as_deref().unwrap_or(""),
                payloads = count,
                error = %e,
                "codec failed"
            );
            error(
                status,
                format!("cannot {} payloads: {e}", op.name()),
                key_id,
            )
        }
    }
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let inner = e.into_inner();
        if inner
            .downcast_ref::<http_body_util::LengthLimitError>()
            .is_some()
        {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is larger than the {limit}-byte limit"),
                None,
            )
        } else {
            error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {inner}"),
                None,
            )
        }
    })
}

/// The status of a codec failure, and the key id it involves.
fn classify(e: &CodecError) -> (StatusCode, Option<String>) {
    match e {
        CodecError::UnknownKey { key_id, .. } | CodecError::Decrypt { key_id, .. } => {
            (StatusCode::UNPROCESSABLE_ENTITY, Some(key_id.clone()))
        }
        CodecError::MissingKeyId | CodecError::Corrupt { .. } => {
            (StatusCode::UNPROCESSABLE_ENTITY, None)
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, None),
    }
}

fn error(status: StatusCode, message: String, key_id: Option<String>) -> Response {
    let mut body = Map::new();
    body.insert("error".into(), Value::String(message));
    if let Some(key_id) = key_id {
        body.insert("keyId".into(), Value::String(key_id));
    }
    let body = serde_json::to_vec(&Value::Object(body)).expect("a JSON value always serializes");
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests;
