//! The worker's interception points against the strict mock (it panics when called before
//! `poll_ready`, its clones start unready, its first readiness check is `Pending`): activity
//! inbound and outbound, workflow inbound and outbound, and the Nexus inbound types.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};
use trellis_converter::DataConverter;
use trellis_core_proto::Payload;
use trellis_interceptor::mock::Strict;
use trellis_interceptor::{BoxError, LocalBoxService, LocalNext, Next, from_fn, local_from_fn};

use super::*;
use crate::activity::{ActivityContext, ActivityInfo};

fn dc() -> DataConverter {
    DataConverter::default()
}

fn info() -> ActivityInfo {
    ActivityInfo {
        activity_id: "1".into(),
        activity_type: "charge".into(),
        attempt: 1,
        workflow_namespace: "default".into(),
        workflow_type: "Order".into(),
        workflow_id: "order-1".into(),
        workflow_run_id: "run-1".into(),
        task_queue: "orders".into(),
        scheduled_time: None,
        heartbeat_timeout: None,
        start_to_close_timeout: None,
        headers: Headers::new(),
    }
}

/// The innermost outbound service of the tests: records heartbeat details, echoes info.
fn recording_outbound(seen: Arc<Mutex<Vec<String>>>) -> ActivityOutboundService {
    ActivityOutboundService::new(
        Strict::new(service_fn(move |req: ActivityOutbound| {
            let seen = seen.clone();
            async move {
                Ok::<_, BoxError>(match req {
                    ActivityOutbound::Heartbeat(h) => {
                        let d: String = dc().decode(&h.details[0]).unwrap();
                        seen.lock().unwrap().push(d);
                        ActivityOutboundResponse::HeartbeatRecorded
                    }
                    ActivityOutbound::Info(i) => ActivityOutboundResponse::Info(i),
                })
            }
        }))
        .pending_first(),
    )
}

#[tokio::test]
async fn activity_inbound_layers_and_tower_layers_over_an_unready_inner() {
    let inner = Strict::new(service_fn(|req: ActivityRequest| async move {
        let s: String = dc().decode(&req.args[0]).unwrap();
        Ok::<_, BoxError>(dc().encode(&format!("{s}|{}", req.context.info().activity_type))?)
    }))
    .pending_first();
    let calls = inner.calls();
    let svc = ServiceBuilder::new()
        .layer(from_fn(
            |mut req: ActivityRequest, next: Next<ActivityRequest, Payload, BoxError>| async move {
                let s: String = dc().decode(&req.args[0]).unwrap();
                req.args = vec![dc().encode(&format!("{s}!")).unwrap()];
                next.run(req).await
            },
        ))
        .timeout(Duration::from_secs(5))
        .concurrency_limit(1)
        .service(ActivityService::new(inner));
    let svc = ActivityService::new(svc);
    for _ in 0..2 {
        let req = ActivityRequest {
            context: ActivityContext::for_test(info(), recording_outbound(Arc::default())),
            args: vec![dc().encode("hi").unwrap()],
            headers: Headers::new(),
        };
        let out = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(dc().decode::<String>(&out).unwrap(), "hi!|charge");
    }
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn activity_outbound_layers_see_and_change_heartbeats_in_order() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let layer_saw = Arc::new(Mutex::new(Vec::new()));
    let saw = layer_saw.clone();
    let outbound = ActivityOutboundService::new(
        from_fn(
            move |mut req: ActivityOutbound,
                  next: Next<ActivityOutbound, ActivityOutboundResponse, BoxError>| {
                let saw = saw.clone();
                async move {
                    match &mut req {
                        ActivityOutbound::Heartbeat(h) => {
                            let d: String = dc().decode(&h.details[0]).unwrap();
                            saw.lock()
                                .unwrap()
                                .push(format!("{} {d}", h.info.activity_type));
                            if d == "drop me" {
                                return Ok(ActivityOutboundResponse::HeartbeatRecorded);
                            }
                            h.details = vec![dc().encode(&format!("{d} (seen)")).unwrap()];
                        }
                        ActivityOutbound::Info(i) => i.attempt = 99,
                    }
                    next.run(req).await
                }
            },
        )
        .layer(recording_outbound(seen.clone())),
    );
    // Info: the layer's answer is the attempt's info.
    let info = match outbound
        .clone()
        .oneshot(ActivityOutbound::Info(Box::new(info())))
        .await
        .unwrap()
    {
        ActivityOutboundResponse::Info(i) => *i,
        other => panic!("{other:?}"),
    };
    assert_eq!(info.attempt, 99);
    let ctx = ActivityContext::for_test(info, outbound);
    for d in ["one", "drop me", "two", "three"] {
        ctx.heartbeat(d);
    }
    ctx.flush_heartbeats_for_test().await;
    assert_eq!(
        *layer_saw.lock().unwrap(),
        ["charge one", "charge drop me", "charge two", "charge three"]
    );
    assert_eq!(
        *seen.lock().unwrap(),
        ["one (seen)", "two (seen)", "three (seen)"]
    );
}

#[test]
fn workflow_inbound_and_outbound_layers_over_an_unready_inner() {
    let inbound_inner: WorkflowInboundService = LocalBoxService::new(
        Strict::new(service_fn(|req: WorkflowInbound| async move {
            let tenant: String = dc().decode(&req.headers()["tenant"]).unwrap();
            Ok::<_, WorkflowError>(WorkflowInboundResponse::QueryAnswer(
                dc().encode(&tenant).unwrap(),
            ))
        }))
        .pending_first(),
    );
    let inbound = local_from_fn(
        |mut req: WorkflowInbound,
         next: LocalNext<WorkflowInbound, WorkflowInboundResponse, WorkflowError>| async move {
            req.headers_mut()
                .insert("tenant".into(), dc().encode("acme").unwrap());
            next.run(req).await
        },
    )
    .layer(inbound_inner);
    let query = WorkflowInbound::Query(QueryInput {
        name: "q".into(),
        args: vec![],
        headers: Headers::new(),
    });
    match futures::executor::block_on(inbound.oneshot(query)).unwrap() {
        WorkflowInboundResponse::QueryAnswer(p) => {
            assert_eq!(dc().decode::<String>(&p).unwrap(), "acme")
        }
        other => panic!("{other:?}"),
    }

    let outbound_inner: WorkflowOutboundService = LocalBoxService::new(
        Strict::new(service_fn(|req: WorkflowOutbound| async move {
            match req {
                WorkflowOutbound::StartTimer(t) => {
                    assert_eq!(t.duration, Duration::from_secs(2));
                    Ok::<_, WorkflowError>(WorkflowOutboundResponse::TimerFired)
                }
                other => panic!("{other:?}"),
            }
        }))
        .pending_first(),
    );
    let outbound = local_from_fn(
        |mut req: WorkflowOutbound,
         next: LocalNext<WorkflowOutbound, WorkflowOutboundResponse, WorkflowError>| async move {
            if let WorkflowOutbound::StartTimer(t) = &mut req {
                t.duration *= 2;
            }
            next.run(req).await
        },
    )
    .layer(outbound_inner);
    let timer = WorkflowOutbound::StartTimer(StartTimerInput {
        seq: 1,
        duration: Duration::from_secs(1),
    });
    assert!(matches!(
        futures::executor::block_on(outbound.oneshot(timer)).unwrap(),
        WorkflowOutboundResponse::TimerFired
    ));
}

#[tokio::test]
async fn nexus_inbound_layers_see_start_and_cancel_with_headers() {
    let inner = Strict::new(service_fn(|req: NexusInbound| async move {
        Ok::<_, BoxError>(match req {
            NexusInbound::StartOperation(s) => NexusInboundResponse::Started {
                operation_token: format!("{}/{}/{}", s.service, s.operation, s.headers["auth"]),
                links: Vec::new(),
            },
            NexusInbound::CancelOperation(_) => NexusInboundResponse::CancelAccepted,
        })
    }))
    .pending_first();
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    let svc = NexusService::new(
        from_fn(
            move |mut req: NexusInbound,
                  next: Next<NexusInbound, NexusInboundResponse, BoxError>| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(format!(
                        "{}.{} auth={:?}",
                        req.service(),
                        req.operation(),
                        req.headers().get("auth")
                    ));
                    if matches!(req, NexusInbound::CancelOperation(_)) {
                        return Err(BoxError::from("cancel refused by a layer"));
                    }
                    req.headers_mut().insert("auth".into(), "checked".into());
                    next.run(req).await
                }
            },
        )
        .layer(inner),
    );
    let start = NexusInbound::StartOperation(NexusStartOperation {
        service: "payments".into(),
        operation: "charge".into(),
        request_id: "r1".into(),
        input: Some(dc().encode(&10).unwrap()),
        headers: [("auth".to_owned(), "token".to_owned())].into(),
        ..Default::default()
    });
    match svc.clone().oneshot(start).await.unwrap() {
        NexusInboundResponse::Started {
            operation_token, ..
        } => {
            assert_eq!(operation_token, "payments/charge/checked")
        }
        other => panic!("{other:?}"),
    }
    let cancel = NexusInbound::CancelOperation(NexusCancelOperation {
        service: "payments".into(),
        operation: "charge".into(),
        operation_token: "t".into(),
        headers: NexusHeaders::new(),
        task: NexusTaskInfo::default(),
    });
    let err = svc.oneshot(cancel).await.unwrap_err();
    assert_eq!(err.to_string(), "cancel refused by a layer");
    assert_eq!(
        *log.lock().unwrap(),
        [
            "payments.charge auth=Some(\"token\")",
            "payments.charge auth=None"
        ]
    );
}

#[test]
fn workflow_outbound_layers_change_a_nexus_start_and_short_circuit() {
    use trellis_core_proto::coresdk::workflow_activation::{
        ResolveNexusOperationStart, resolve_nexus_operation_start,
    };
    use trellis_core_proto::coresdk::workflow_commands::ScheduleNexusOperation;

    let inner: WorkflowOutboundService = LocalBoxService::new(
        Strict::new(service_fn(|req: WorkflowOutbound| async move {
            let WorkflowOutbound::StartNexusOperation(cmd) = req else {
                panic!("{req:?}");
            };
            // The layer's header and its rewritten input arrive.
            assert_eq!(cmd.nexus_header["traceparent"], "00-abc");
            let city: String = dc().decode(cmd.input.as_ref().unwrap()).unwrap();
            Ok::<_, WorkflowError>(WorkflowOutboundResponse::NexusStarted(Box::new(
                ResolveNexusOperationStart {
                    seq: cmd.seq,
                    status: Some(resolve_nexus_operation_start::Status::OperationToken(
                        format!("token-{city}"),
                    )),
                },
            )))
        }))
        .pending_first(),
    );
    let outbound = local_from_fn(
        |mut req: WorkflowOutbound,
         next: LocalNext<WorkflowOutbound, WorkflowOutboundResponse, WorkflowError>| async move {
            // Temporal (payload) headers: none on a Nexus start; Nexus headers: strings.
            assert!(req.headers_mut().is_none());
            assert_eq!(req.name(), "start_nexus_operation");
            if let Some(h) = req.nexus_headers_mut() {
                h.insert("traceparent".into(), "00-abc".into());
            }
            if let WorkflowOutbound::StartNexusOperation(cmd) = &mut req {
                if cmd.operation == "forbidden" {
                    return Err(WorkflowError::task("refused"));
                }
                let city: String = dc().decode(cmd.input.as_ref().unwrap()).unwrap();
                cmd.input = Some(dc().encode(&city.to_uppercase()).unwrap());
            }
            next.run(req).await
        },
    )
    .layer(inner);
    let start = |operation: &str| {
        WorkflowOutbound::StartNexusOperation(Box::new(ScheduleNexusOperation {
            seq: 1,
            endpoint: "ep".into(),
            service: "WeatherService".into(),
            operation: operation.into(),
            input: Some(dc().encode("oslo").unwrap()),
            ..Default::default()
        }))
    };
    let req = start("watch");
    assert_eq!(req.nexus_headers().map(|h| h.len()), Some(0));
    match futures::executor::block_on(outbound.clone().oneshot(req)).unwrap() {
        WorkflowOutboundResponse::NexusStarted(s) => assert_eq!(
            s.status,
            Some(resolve_nexus_operation_start::Status::OperationToken(
                "token-OSLO".into()
            ))
        ),
        other => panic!("{other:?}"),
    }
    // Short-circuit: the inner service is never called.
    let err = futures::executor::block_on(outbound.oneshot(start("forbidden"))).unwrap_err();
    assert_eq!(err.to_string(), "refused");
    // Other requests have no Nexus headers.
    let timer = WorkflowOutbound::StartTimer(StartTimerInput {
        seq: 1,
        duration: Duration::from_secs(1),
    });
    assert!(timer.nexus_headers().is_none());
}
