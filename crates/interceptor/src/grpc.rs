//! The gRPC interception point: one RPC as an `http::Request`, for connection-level layers
//! (auth headers, metrics, retries, rate limits).
//!
//! Every RPC of a Trellis client, and of every worker built from it, passes through one
//! [`GrpcService`]; Trellis builds it from the network channel and the layers the client's
//! configuration lists.

use tower::util::{BoxCloneSyncService, BoxCloneSyncServiceLayer};

use crate::BoxError;

/// The body of gRPC requests and responses.
pub use tonic::body::Body;

/// One RPC on the wire: path `/{service}/{method}`, gRPC-framed protobuf body.
pub type GrpcRequest = http::Request<Body>;
/// The server's answer to one RPC.
pub type GrpcResponse = http::Response<Body>;
/// The type-erased gRPC service stack.
pub type GrpcService = BoxCloneSyncService<GrpcRequest, GrpcResponse, BoxError>;
/// A type-erased layer around the gRPC service.
pub type GrpcLayer = BoxCloneSyncServiceLayer<GrpcService, GrpcRequest, GrpcResponse, BoxError>;

/// The RPC method name of a request (`StartWorkflowExecution` for
/// `/temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution`).
pub fn rpc_name(request: &GrpcRequest) -> &str {
    request.uri().path().rsplit('/').next().unwrap_or_default()
}
