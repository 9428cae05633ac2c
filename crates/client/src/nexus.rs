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

/// A completion callback attached to a workflow start (the Temporal API's `Callback`).
pub use trellis_core_proto::api::common::v1::Callback;
/// A link between Temporal executions and events (the Temporal API's `Link`).
pub use trellis_core_proto::api::common::v1::Link;
/// What to attach to a running workflow when a start with
/// [`WorkflowIdConflictPolicy::UseExisting`](crate::WorkflowIdConflictPolicy::UseExisting)
/// finds it (the Temporal API's `OnConflictOptions`).
pub use trellis_core_proto::api::workflow::v1::OnConflictOptions;

/// Nexus plumbing for a workflow start: what a Nexus operation handler attaches when the
/// workflow it starts backs an asynchronous operation. Set through
/// [`WorkflowOptions::nexus`](crate::WorkflowOptions::nexus); `trellis_worker`'s
/// workflow-run operations fill it in, so application code rarely builds one.
///
/// - `request_id` becomes the start request's id (an empty one means a fresh random id): the
///   Nexus request id, so a retried Nexus start finds the workflow its first attempt started
///   instead of failing as already started;
/// - `completion_callbacks` make the server deliver the workflow's outcome (result, failure,
///   cancellation) to the Nexus caller when the workflow closes;
/// - `links` point back at the caller (e.g. the workflow event that scheduled the operation)
///   and show up on the started event in the history;
/// - `on_conflict_options` say what to attach to an already running workflow when the start
///   uses the `UseExisting` conflict policy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NexusStartOptions {
    /// The start request id (empty: a random one).
    pub request_id: String,
    /// Callbacks the server calls when the workflow closes.
    pub completion_callbacks: Vec<Callback>,
    /// Links recorded on the workflow's started event.
    pub links: Vec<Link>,
    /// What to attach to an existing workflow under `UseExisting`.
    pub on_conflict_options: Option<OnConflictOptions>,
}

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
