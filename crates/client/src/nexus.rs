//! Nexus endpoints: the server-side names callers use to reach a Nexus service, each routing
//! to a worker's task queue in a namespace. Created through the operator service (for tests,
//! examples and set-up scripts; production endpoints are usually managed by operators).
//!
//! ```no_run
//! # async fn demo(client: trellis_client::Client) -> Result<(), trellis_client::ClientError> {
//! use trellis_client::nexus;
//!
//! let endpoint = nexus::create_endpoint(&client, "weather-endpoint", "weather").await?;
//! // ... workers on task queue "weather" serve the endpoint's Nexus services ...
//! nexus::delete_endpoint(&client, &endpoint).await?;
//! # Ok(()) }
//! ```

use tonic::Code;
use trellis_core_proto::api::nexus::v1::{EndpointSpec, EndpointTarget, endpoint_target};
use trellis_core_proto::api::operatorservice::v1::{
    CreateNexusEndpointRequest, DeleteNexusEndpointRequest, ListNexusEndpointsRequest,
};

use crate::client::Client;
use crate::error::ClientError;

/// A Nexus endpoint as the server stores it (id, version, spec).
pub use trellis_core_proto::api::nexus::v1::Endpoint;

/// Creates the endpoint `name`, routing to `target_task_queue` in the client's namespace, and
/// returns it. If an endpoint of that name exists already it is returned as it is (whatever
/// it targets), so set-up code can run repeatedly.
pub async fn create_endpoint(
    client: &Client,
    name: &str,
    target_task_queue: &str,
) -> Result<Endpoint, ClientError> {
    let mut svc = client.core_connection().operator_service();
    let request = CreateNexusEndpointRequest {
        spec: Some(EndpointSpec {
            name: name.to_owned(),
            description: None,
            target: Some(EndpointTarget {
                variant: Some(endpoint_target::Variant::Worker(endpoint_target::Worker {
                    namespace: client.namespace().to_owned(),
                    task_queue: target_task_queue.to_owned(),
                })),
            }),
        }),
    };
    match svc
        .create_nexus_endpoint(tonic::Request::new(request))
        .await
    {
        Ok(r) => r.into_inner().endpoint.ok_or_else(|| ClientError::Rpc {
            operation: "create_nexus_endpoint",
            status: tonic::Status::internal("the server returned no endpoint"),
        }),
        Err(status) if status.code() == Code::AlreadyExists => {
            match get_endpoint(client, name).await? {
                Some(e) => Ok(e),
                None => Err(ClientError::rpc("create_nexus_endpoint")(status)),
            }
        }
        Err(status) => Err(ClientError::rpc("create_nexus_endpoint")(status)),
    }
}

/// The endpoint named `name`, if it exists.
pub async fn get_endpoint(client: &Client, name: &str) -> Result<Option<Endpoint>, ClientError> {
    let mut svc = client.core_connection().operator_service();
    let r = svc
        .list_nexus_endpoints(tonic::Request::new(ListNexusEndpointsRequest {
            page_size: 1,
            next_page_token: Vec::new(),
            name: name.to_owned(),
        }))
        .await
        .map_err(ClientError::rpc("list_nexus_endpoints"))?
        .into_inner();
    Ok(r.endpoints
        .into_iter()
        .find(|e| e.spec.as_ref().is_some_and(|s| s.name == name)))
}

/// Deletes `endpoint` (the version must be current). An endpoint already gone is not an error.
pub async fn delete_endpoint(client: &Client, endpoint: &Endpoint) -> Result<(), ClientError> {
    let mut svc = client.core_connection().operator_service();
    match svc
        .delete_nexus_endpoint(tonic::Request::new(DeleteNexusEndpointRequest {
            id: endpoint.id.clone(),
            version: endpoint.version,
        }))
        .await
    {
        Ok(_) => Ok(()),
        Err(status) if status.code() == Code::NotFound => Ok(()),
        Err(status) => Err(ClientError::rpc("delete_nexus_endpoint")(status)),
    }
}
