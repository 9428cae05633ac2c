//! Nexus handlers and the inbound stack, in-process: registration errors, dispatch, input
//! decoding, error classification into the failures callers see, and inbound layers.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tower::ServiceExt;
use trellis_converter::{ApplicationFailure, DataConverter, FailureConverter, TemporalFailure};
use trellis_interceptor::{BoxError, Next, from_fn};

use super::*;
use crate::WorkerConfig;
use crate::interceptors::{NexusCancelOperation, NexusStartOperation};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct City {
    name: String,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Forecast {
    city: String,
    celsius: i32,
}

struct WeatherService;
impl Service for WeatherService {
    const NAME: &'static str = "WeatherService";
}
impl WeatherService {
    const GET_WEATHER: Operation<City, Forecast> = Operation::new("get_weather");
}

fn weather() -> NexusServiceHandler {
    NexusServiceHandler::for_service::<WeatherService>()
        .sync(WeatherService::GET_WEATHER, |_ctx, city: City| async move {
            match city.name.as_str() {
                "" => Err(NexusError::bad_request("the city has no name")),
                "Atlantis" => Err(NexusError::operation_failed("Atlantis is under water")),
                "Nowhere" => Err(ApplicationFailure::new("Geo", "no such place")
                    .non_retryable()
                    .into()),
                "Boom" => panic!("the barometer exploded"),
                _ => Ok(Forecast {
                    city: city.name,
                    celsius: 21,
                }),
            }
        })
        .async_operation(
            "watch",
            |_ctx, city: City| async move { Ok(format!("watch-{}", city.name)) },
            |_ctx, token: String| async move {
                if token == "watch-locked" {
                    Err(NexusError::handler(
                        HandlerErrorType::Conflict,
                        "cannot cancel a locked watch",
                    ))
                } else {
                    Ok(())
                }
            },
        )
}

fn start(service: &str, operation: &str, input: Option<Payload>) -> NexusInbound {
    NexusInbound::StartOperation(NexusStartOperation {
        service: service.into(),
        operation: operation.into(),
        request_id: "req-1".into(),
        input,
        ..Default::default()
    })
}

fn city(name: &str) -> Option<Payload> {
    Some(
        DataConverter::default()
            .encode(&City { name: name.into() })
            .unwrap(),
    )
}

async fn call(svc: &NexusService, req: NexusInbound) -> Result<NexusInboundResponse, BoxError> {
    svc.clone().oneshot(req).await
}

fn handler_info(f: &Failure) -> (String, String, i32) {
    match FailureConverter::default().from_failure(f) {
        TemporalFailure::NexusHandler(h) => (h.error_type, h.message, h.retry_behavior as i32),
        other => panic!("not a handler failure: {other:?}"),
    }
}

#[tokio::test]
async fn sync_operation_decodes_runs_and_encodes() {
    let svc = WorkerConfig::new("q")
        .nexus_service(weather())
        .nexus_inbound_service()
        .unwrap();
    match call(&svc, start("WeatherService", "get_weather", city("Paris")))
        .await
        .unwrap()
    {
        NexusInboundResponse::Completed(p) => {
            let f: Forecast = DataConverter::default().decode(&p).unwrap();
            assert_eq!(
                f,
                Forecast {
                    city: "Paris".into(),
                    celsius: 21
                }
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn unknown_service_and_operation_are_not_found() {
    let svc = WorkerConfig::new("q")
        .nexus_service(weather())
        .nexus_inbound_service()
        .unwrap();
    let failures = FailureConverter::default();
    let err = call(&svc, start("Nope", "x", None)).await.unwrap_err();
    let ErrorReport::Handler(f) = report_error(&*err, &failures, true) else {
        panic!("expected a handler error")
    };
    let (ty, msg, _) = handler_info(&f);
    assert_eq!(ty, "NOT_FOUND");
    assert!(
        msg.contains("\"Nope\"") && msg.contains("WeatherService"),
        "{msg}"
    );

    let err = call(&svc, start("WeatherService", "get_rain", None))
        .await
        .unwrap_err();
    let ErrorReport::Handler(f) = report_error(&*err, &failures, true) else {
        panic!("expected a handler error")
    };
    let (ty, msg, _) = handler_info(&f);
    assert_eq!(ty, "NOT_FOUND");
    assert!(
        msg.contains("\"get_rain\"") && msg.contains("get_weather, watch"),
        "{msg}"
    );
}

#[tokio::test]
async fn errors_map_to_handler_and_operation_failures() {
    let svc = WorkerConfig::new("q")
        .nexus_service(weather())
        .nexus_inbound_service()
        .unwrap();
    let failures = FailureConverter::default();

    // Input of the wrong shape: BAD_REQUEST, non-retryable.
    let wrong = Some(DataConverter::default().encode(&42).unwrap());
    let err = call(&svc, start("WeatherService", "get_weather", wrong))
        .await
        .unwrap_err();
    let ErrorReport::Handler(f) = report_error(&*err, &failures, true) else {
        panic!()
    };
    let (ty, msg, _) = handler_info(&f);
    assert_eq!(ty, "BAD_REQUEST");
    assert!(msg.contains("does not decode"), "{msg}");

    // The handler's own handler error keeps its type.
    let err = call(&svc, start("WeatherService", "get_weather", city("")))
        .await
        .unwrap_err();
    let ErrorReport::Handler(f) = report_error(&*err, &failures, true) else {
        panic!()
    };
    assert_eq!(handler_info(&f).0, "BAD_REQUEST");

    // An operation error fails the operation: an application failure, non-retryable.
    let err = call(
        &svc,
        start("WeatherService", "get_weather", city("Atlantis")),
    )
    .await
    .unwrap_err();
    let ErrorReport::Operation(f) = report_error(&*err, &failures, true) else {
        panic!()
    };
    let app = failures.failure_to_application(&f).unwrap();
    assert_eq!(app.message, "Atlantis is under water");
    assert!(app.non_retryable);

    // Any other error: INTERNAL, with the error as cause; non-retryable application failures
    // stay non-retryable.
    let err = call(
        &svc,
        start("WeatherService", "get_weather", city("Nowhere")),
    )
    .await
    .unwrap_err();
    let ErrorReport::Handler(f) = report_error(&*err, &failures, true) else {
        panic!()
    };
    let (ty, msg, retry) = handler_info(&f);
    assert_eq!(ty, "INTERNAL");
    assert_eq!(msg, "no such place");
    assert_eq!(retry, NexusHandlerErrorRetryBehavior::NonRetryable as i32);
    let cause = failures
        .failure_to_application(f.cause.as_deref().unwrap())
        .unwrap();
    assert_eq!(cause.error_type, "Geo");
}

#[tokio::test]
async fn async_operation_starts_and_cancel_reaches_the_handler() {
    let svc = WorkerConfig::new("q")
        .nexus_service(weather())
        .nexus_inbound_service()
        .unwrap();
    match call(&svc, start("WeatherService", "watch", city("Oslo")))
        .await
        .unwrap()
    {
        NexusInboundResponse::Started {
            operation_token, ..
        } => {
            assert_eq!(operation_token, "watch-Oslo")
        }
        other => panic!("{other:?}"),
    }
    let cancel = |token: &str, operation: &str| {
        NexusInbound::CancelOperation(NexusCancelOperation {
            service: "WeatherService".into(),
            operation: operation.into(),
            operation_token: token.into(),
            ..Default::default()
        })
    };
    assert!(matches!(
        call(&svc, cancel("watch-Oslo", "watch")).await.unwrap(),
        NexusInboundResponse::CancelAccepted
    ));
    let err = call(&svc, cancel("watch-locked", "watch"))
        .await
        .unwrap_err();
    let h = err.downcast_ref::<HandlerError>().unwrap();
    assert_eq!(h.error_type, HandlerErrorType::Conflict);
    // A synchronous operation has nothing to cancel.
    let err = call(&svc, cancel("t", "get_weather")).await.unwrap_err();
    let h = err.downcast_ref::<HandlerError>().unwrap();
    assert_eq!(h.error_type, HandlerErrorType::NotImplemented);
}

#[tokio::test]
async fn inbound_layers_see_requests_in_order_and_can_refuse() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (outer, inner) = (seen.clone(), seen.clone());
    let svc = WorkerConfig::new("q")
        .nexus_service(weather())
        .nexus_inbound_layer(from_fn(
            move |mut req: NexusInbound,
                  next: Next<NexusInbound, NexusInboundResponse, BoxError>| {
                let seen = outer.clone();
                async move {
                    seen.lock().unwrap().push(format!(
                        "outer {} {}/{}",
                        req.name(),
                        req.service(),
                        req.operation()
                    ));
                    if req.headers().get("tenant").is_none() {
                        return Err(HandlerError::new(
                            HandlerErrorType::Unauthorized,
                            "no tenant header",
                        )
                        .into());
                    }
                    req.headers_mut().insert("checked".into(), "yes".into());
                    next.run(req).await
                }
            },
        ))
        .nexus_inbound_layer(from_fn(
            move |req: NexusInbound, next: Next<NexusInbound, NexusInboundResponse, BoxError>| {
                let seen = inner.clone();
                async move {
                    seen.lock()
                        .unwrap()
                        .push(format!("inner checked={:?}", req.headers().get("checked")));
                    next.run(req).await
                }
            },
        ))
        .nexus_inbound_service()
        .unwrap();
    let err = call(&svc, start("WeatherService", "get_weather", city("Paris")))
        .await
        .unwrap_err();
    assert_eq!(
        err.downcast_ref::<HandlerError>().unwrap().error_type,
        HandlerErrorType::Unauthorized
    );
    let mut req = start("WeatherService", "get_weather", city("Paris"));
    req.headers_mut().insert("tenant".into(), "acme".into());
    assert!(matches!(
        call(&svc, req).await.unwrap(),
        NexusInboundResponse::Completed(_)
    ));
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "outer start_operation WeatherService/get_weather",
            "outer start_operation WeatherService/get_weather",
            "inner checked=Some(\"yes\")",
        ]
    );
}

#[test]
fn duplicate_services_and_operations_are_refused() {
    let err = WorkerConfig::new("q")
        .nexus_service(weather())
        .nexus_service(NexusServiceHandler::new("WeatherService"))
        .nexus_inbound_service()
        .unwrap_err();
    assert!(
        matches!(&err, WorkerError::Duplicate { kind: "Nexus service", name, .. } if name == "WeatherService"),
        "{err}"
    );
    let twice = NexusServiceHandler::new("S")
        .sync_operation("op", |_ctx, (): ()| async { Ok(1) })
        .sync_operation("op", |_ctx, (): ()| async { Ok(2) });
    let err = WorkerConfig::new("q")
        .nexus_service(twice)
        .nexus_inbound_service()
        .unwrap_err();
    assert!(err.to_string().contains("\"S/op\""), "{err}");
}

#[test]
fn handler_error_types_have_spec_names_and_retry_defaults() {
    assert_eq!(HandlerErrorType::BadRequest.as_str(), "BAD_REQUEST");
    assert!(!HandlerErrorType::NotFound.retryable_by_default());
    assert!(HandlerErrorType::Internal.retryable_by_default());
    assert!(
        !HandlerError::new(HandlerErrorType::Internal, "x")
            .retryable(false)
            .is_retryable()
    );
}
