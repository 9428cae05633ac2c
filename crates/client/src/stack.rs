//! The gRPC service stack: network channel, header layer, configured layers — and the adapter
//! that lets `temporalio-client` (and through it, core) send every RPC through it.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{BufMut, BytesMut};
use futures::FutureExt;
use http::HeaderValue;
use http::header::HeaderName;
use http_body_util::BodyExt;
use temporalio_client::callback_based::{
    CallbackBasedGrpcService, GrpcRequest as CoreGrpcRequest, GrpcSuccessResponse,
};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};
use tower::{Layer, Service, ServiceExt};
use trellis_interceptor::BoxError;
use trellis_interceptor::grpc::{Body, GrpcRequest, GrpcResponse, GrpcService};

use crate::config::ConnectConfig;
use crate::error::ClientError;

/// Builds the whole gRPC stack for a connection config.
pub(crate) fn build(config: &ConnectConfig) -> Result<GrpcService, ClientError> {
    let url = config.url();
    let bad = |e: &dyn std::fmt::Display| ClientError::Connect {
        address: config.address.clone(),
        cause: e.to_string(),
    };
    let mut endpoint = Endpoint::from_shared(url.clone())
        .map_err(|e| bad(&e))?
        .connect_timeout(config.connect_timeout)
        .http2_keep_alive_interval(std::time::Duration::from_secs(30))
        .keep_alive_while_idle(true);
    if config.tls.is_some() || url.starts_with("https://") {
        let tls = config.tls.clone().unwrap_or_default();
        let mut tc = ClientTlsConfig::new().with_webpki_roots();
        if let Some(ca) = &tls.server_root_ca_pem {
            tc = tc.ca_certificate(Certificate::from_pem(ca));
        }
        if let Some(domain) = &tls.domain {
            tc = tc.domain_name(domain.clone());
        }
        if let Some((cert, key)) = &tls.client_cert_pem {
            tc = tc.identity(Identity::from_pem(cert, key));
        }
        endpoint = endpoint.tls_config(tc).map_err(|e| bad(&e))?;
    }
    let channel = endpoint.connect_lazy();

    let mut headers = Vec::new();
    if let Some(key) = &config.api_key {
        let value = HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|_| bad(&"the API key is not a valid header value"))?;
        headers.push((http::header::AUTHORIZATION, value));
    }
    for (name, value) in &config.headers {
        let name = HeaderName::try_from(name.as_str())
            .map_err(|e| bad(&format!("header name {name:?}: {e}")))?;
        let value =
            HeaderValue::from_str(value).map_err(|e| bad(&format!("header {name} value: {e}")))?;
        headers.push((name, value));
    }
    let base = HeadersService {
        inner: channel,
        headers: Arc::new(headers),
    }
    .map_err(|e: tonic::transport::Error| -> BoxError { Box::new(e) });
    let mut svc = GrpcService::new(base);
    for layer in config.grpc_layers.iter().rev() {
        svc = layer.layer(svc);
    }
    Ok(svc)
}

/// Sets fixed headers on every request.
#[derive(Clone)]
struct HeadersService<S> {
    inner: S,
    headers: Arc<Vec<(HeaderName, HeaderValue)>>,
}

impl<S: Service<GrpcRequest>> Service<GrpcRequest> for HeadersService<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: GrpcRequest) -> Self::Future {
        for (name, value) in self.headers.iter() {
            req.headers_mut().insert(name.clone(), value.clone());
        }
        self.inner.call(req)
    }
}

/// Presents a [`GrpcService`] as the callback `temporalio-client` accepts as a service
/// override: it frames the encoded request, sends it through the stack, and unframes the answer.
pub(crate) fn into_core_override(svc: GrpcService) -> CallbackBasedGrpcService {
    CallbackBasedGrpcService {
        callback: Arc::new(move |req: CoreGrpcRequest| {
            let svc = svc.clone();
            async move { call_framed(svc, req).await }.boxed()
        }),
    }
}

async fn call_framed(
    svc: GrpcService,
    req: CoreGrpcRequest,
) -> Result<GrpcSuccessResponse, Status> {
    let len = u32::try_from(req.proto.len())
        .map_err(|_| Status::resource_exhausted("request message larger than 4 GiB"))?;
    let mut framed = BytesMut::with_capacity(5 + req.proto.len());
    framed.put_u8(0);
    framed.put_u32(len);
    framed.put_slice(&req.proto);
    let mut hreq = http::Request::builder()
        .method(http::Method::POST)
        .version(http::Version::HTTP_2)
        .uri(format!("/{}/{}", req.service, req.rpc))
        .body(Body::new(http_body_util::Full::new(framed.freeze())))
        .map_err(|e| Status::internal(format!("building the request: {e}")))?;
    *hreq.headers_mut() = req.headers;
    let resp: GrpcResponse = svc.oneshot(hreq).await.map_err(status_from_error)?;
    let (parts, body) = resp.into_parts();
    if let Some(st) = Status::from_header_map(&parts.headers)
        && st.code() != Code::Ok
    {
        return Err(st);
    }
    let collected = body
        .collect()
        .await
        .map_err(|e| Status::unavailable(format!("reading the response: {e}")))?;
    if let Some(trailers) = collected.trailers()
        && let Some(st) = Status::from_header_map(trailers)
        && st.code() != Code::Ok
    {
        return Err(st);
    }
    let bytes = collected.to_bytes();
    if bytes.len() < 5 {
        return Err(Status::internal("response has no gRPC message frame"));
    }
    if bytes[0] != 0 {
        return Err(Status::internal(
            "response is compressed; compression is not negotiated",
        ));
    }
    let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
    if bytes.len() < 5 + len {
        return Err(Status::internal("response gRPC frame is truncated"));
    }
    Ok(GrpcSuccessResponse {
        headers: parts.headers,
        proto: bytes.slice(5..5 + len).to_vec(),
    })
}

/// Maps a stack error to a gRPC status: a `Status` raised by a layer is kept as is; transport
/// errors become `Unavailable` (so retries apply) with the cause chain in the message.
fn status_from_error(err: BoxError) -> Status {
    match err.downcast::<Status>() {
        Ok(st) => *st,
        Err(err) => Status::unavailable(crate::error::error_chain(&*err)),
    }
}
