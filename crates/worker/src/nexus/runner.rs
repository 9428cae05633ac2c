//! The Nexus poll loop: polls Nexus tasks, runs each request through the Nexus inbound stack on
//! its own task, and reports the response, a handler error, or an operation error.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use temporalio_sdk_core::{PollError, Worker as CoreWorker};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use trellis_converter::{DataConverter, VisitOptions};
use trellis_core_proto::api::nexus::v1::{
    CancelOperationResponse, Response, StartOperationResponse, request, response,
    start_operation_response,
};
use trellis_core_proto::api::workflowservice::v1::PollNexusTaskQueueResponse;
use trellis_core_proto::coresdk::nexus::{NexusTaskCompletion, nexus_task, nexus_task_completion};
use trellis_core_proto::time::from_proto_timestamp;
use trellis_core_proto::{Failure, Payload};

use super::{ErrorReport, HandlerErrorType, handler_failure, report_error};
use crate::error::{WorkerError, panic_message};
use crate::interceptors::{
    NexusCancelOperation, NexusInbound, NexusInboundResponse, NexusService, NexusStartOperation,
    NexusTaskInfo,
};

type Cancels = Arc<Mutex<HashMap<Vec<u8>, CancellationToken>>>;

/// The Nexus poll loop. Returns when core reports shutdown, after every request it started has
/// been answered.
pub(crate) async fn run_nexus(
    core: Arc<CoreWorker>,
    service: NexusService,
    converter: DataConverter,
) -> Result<(), WorkerError> {
    let cancels: Cancels = Arc::default();
    let mut running = JoinSet::new();
    let result = loop {
        while running.try_join_next().is_some() {}
        let task = match core.poll_nexus_task().await {
            Ok(t) => t,
            Err(PollError::ShutDown) => break Ok(()),
            Err(e) => {
                break Err(WorkerError::Poll {
                    what: "Nexus tasks",
                    cause: e.to_string(),
                });
            }
        };
        match task.variant {
            Some(nexus_task::Variant::Task(poll)) => {
                let token = CancellationToken::new();
                cancels
                    .lock()
                    .expect("cancel map poisoned")
                    .insert(poll.task_token.clone(), token.clone());
                let info = NexusTaskInfo {
                    endpoint: task.endpoint,
                    request_deadline: task.request_deadline.as_ref().map(from_proto_timestamp),
                    cancellation: token,
                };
                running.spawn(run_one(
                    core.clone(),
                    service.clone(),
                    converter.clone(),
                    cancels.clone(),
                    poll,
                    info,
                ));
            }
            Some(nexus_task::Variant::CancelTask(cancel)) => {
                tracing::debug!(reason = ?cancel.reason(), "Nexus task cancelled by the engine");
                if let Some(token) = cancels
                    .lock()
                    .expect("cancel map poisoned")
                    .get(&cancel.task_token)
                {
                    token.cancel();
                }
            }
            None => {}
        }
    };
    while running.join_next().await.is_some() {}
    result
}

/// What the handler stack's outcome becomes on the wire.
enum Status {
    Completed(Response),
    Failure(Failure),
    AckCancel,
}

async fn run_one(
    core: Arc<CoreWorker>,
    service: NexusService,
    converter: DataConverter,
    cancels: Cancels,
    poll: PollNexusTaskQueueResponse,
    info: NexusTaskInfo,
) {
    let task_token = poll.task_token;
    let cancellation = info.cancellation.clone();
    let status = handle(&service, &converter, poll.request, info, &cancellation).await;
    cancels
        .lock()
        .expect("cancel map poisoned")
        .remove(&task_token);
    let status = match status {
        Status::Completed(r) => nexus_task_completion::Status::Completed(r),
        Status::Failure(f) => nexus_task_completion::Status::Failure(f),
        Status::AckCancel => nexus_task_completion::Status::AckCancel(true),
    };
    if let Err(e) = core
        .complete_nexus_task(NexusTaskCompletion {
            task_token,
            status: Some(status),
        })
        .await
    {
        tracing::warn!("completing a Nexus task failed: {e}");
    }
}

async fn handle(
    service: &NexusService,
    converter: &DataConverter,
    request: Option<trellis_core_proto::api::nexus::v1::Request>,
    info: NexusTaskInfo,
    cancellation: &CancellationToken,
) -> Status {
    let failures = converter.failures();
    let internal = |message: String| {
        Status::Failure(handler_failure(
            HandlerErrorType::Internal,
            &message,
            None,
            None,
            failures,
        ))
    };
    let bad_request = |message: String| {
        Status::Failure(handler_failure(
            HandlerErrorType::BadRequest,
            &message,
            Some(false),
            None,
            failures,
        ))
    };
    let Some(request) = request else {
        return bad_request("the Nexus task carries no request".to_owned());
    };
    let headers = request.header;
    let inbound = match request.variant {
        Some(request::Variant::StartOperation(s)) => {
            let input = match s.payload {
                Some(p) if !converter.codecs().is_empty() => {
                    match converter.decode_payloads(vec![p]).await {
                        Ok(mut v) => v.pop(),
                        Err(e) => {
                            return bad_request(format!(
                                "cannot decode the input of Nexus operation {}/{}: {e}",
                                s.service, s.operation
                            ));
                        }
                    }
                }
                other => other,
            };
            NexusInbound::StartOperation(NexusStartOperation {
                service: s.service,
                operation: s.operation,
                request_id: s.request_id,
                callback_url: s.callback,
                callback_headers: s.callback_header,
                links: s.links,
                input,
                headers,
                task: info,
            })
        }
        Some(request::Variant::CancelOperation(c)) => {
            #[allow(deprecated)]
            let operation_token = if c.operation_token.is_empty() {
                c.operation_id
            } else {
                c.operation_token
            };
            NexusInbound::CancelOperation(NexusCancelOperation {
                service: c.service,
                operation: c.operation,
                operation_token,
                headers,
                task: info,
            })
        }
        None => return bad_request("the Nexus request has no operation".to_owned()),
    };
    let start = matches!(inbound, NexusInbound::StartOperation(_));
    let what = format!("{}/{}", inbound.service(), inbound.operation());
    let call = AssertUnwindSafe(service.clone().oneshot(inbound)).catch_unwind();
    let outcome = tokio::select! {
        outcome = call => outcome,
        () = cancellation.cancelled() => return Status::AckCancel,
    };
    let mut status = match outcome {
        Ok(Ok(NexusInboundResponse::Completed(payload))) if start => {
            let payload = match encode(converter, payload).await {
                Ok(p) => p,
                Err(e) => {
                    return internal(format!(
                        "cannot encode the result of Nexus operation {what}: {e}"
                    ));
                }
            };
            Status::Completed(start_response(
                start_operation_response::Variant::SyncSuccess(start_operation_response::Sync {
                    payload: Some(payload),
                    links: Vec::new(),
                }),
            ))
        }
        Ok(Ok(NexusInboundResponse::Started {
            operation_token,
            links,
        })) if start => {
            #[allow(deprecated)]
            let started = start_operation_response::Async {
                operation_id: String::new(),
                links,
                operation_token,
            };
            Status::Completed(start_response(
                start_operation_response::Variant::AsyncSuccess(started),
            ))
        }
        Ok(Ok(NexusInboundResponse::CancelAccepted)) if !start => Status::Completed(Response {
            variant: Some(response::Variant::CancelOperation(
                CancelOperationResponse {},
            )),
        }),
        Ok(Ok(other)) => internal(format!(
            "a Nexus inbound layer answered a {} request for {what} with {other:?}",
            if start { "start" } else { "cancel" }
        )),
        Ok(Err(e)) => {
            tracing::debug!(operation = %what, "Nexus request failed: {e}");
            match report_error(&*e, failures, start) {
                ErrorReport::Operation(f) => Status::Completed(start_response(
                    start_operation_response::Variant::Failure(f),
                )),
                ErrorReport::Handler(f) => Status::Failure(f),
            }
        }
        Err(panic) => {
            let message = format!(
                "Nexus operation {what} panicked: {}",
                panic_message(&*panic)
            );
            tracing::warn!("{message}");
            internal(message)
        }
    };
    if !converter.codecs().is_empty() {
        // Failure details (and encoded attributes) are payloads too.
        let failure = match &mut status {
            Status::Failure(f) => Some(f),
            Status::Completed(Response {
                variant:
                    Some(response::Variant::StartOperation(StartOperationResponse {
                        variant: Some(start_operation_response::Variant::Failure(f)),
                    })),
            }) => Some(f),
            _ => None,
        };
        if let Some(f) = failure
            && let Err(e) = converter.encode_message(f, &VisitOptions::default()).await
        {
            return internal(format!(
                "cannot encode the failure of Nexus operation {what}: {e}"
            ));
        }
    }
    status
}

fn start_response(variant: start_operation_response::Variant) -> Response {
    Response {
        variant: Some(response::Variant::StartOperation(StartOperationResponse {
            variant: Some(variant),
        })),
    }
}

async fn encode(converter: &DataConverter, payload: Payload) -> Result<Payload, String> {
    if converter.codecs().is_empty() {
        return Ok(payload);
    }
    converter
        .encode_payloads(vec![payload])
        .await
        .map_err(|e| e.to_string())?
        .pop()
        .ok_or_else(|| "the codecs returned no payload".to_owned())
}
