//! Client-call layers against the strict mock (it panics when called before `poll_ready`, its
//! clones start unready, its first readiness check is `Pending`): `from_fn` hooks and tower
//! layers over every kind of call, and the headers each call exposes.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower::{ServiceBuilder, ServiceExt, service_fn};
use trellis_client::WorkflowOptions;
use trellis_client::converter::DataConverter;
use trellis_client::interceptors::{
    AsyncActivityCall, AsyncActivityId, ClientCall, ClientCallResponse, ClientCallService,
    FailActivityCall, ListCall, QueryCall, SignalCall, SignalWithStartCall, StartWorkflowCall,
    TargetCall,
};
use trellis_interceptor::mock::Strict;
use trellis_interceptor::{BoxError, Next, from_fn};

fn dc() -> DataConverter {
    DataConverter::default()
}

fn target() -> TargetCall {
    TargetCall {
        workflow_id: "wf".into(),
        run_id: Some("run".into()),
        reason: String::new(),
    }
}

fn activity_call() -> AsyncActivityCall {
    AsyncActivityCall {
        activity: AsyncActivityId::task_token(b"token".to_vec()),
        details: vec![dc().encode("d").unwrap()],
    }
}

/// One call of every kind.
fn every_call() -> Vec<ClientCall> {
    vec![
        ClientCall::StartWorkflow(StartWorkflowCall {
            workflow_type: "Greet".into(),
            args: vec![],
            options: WorkflowOptions::new("wf", "tq"),
        }),
        ClientCall::Signal(SignalCall {
            workflow_id: "wf".into(),
            run_id: None,
            name: "s".into(),
            args: vec![],
            headers: Default::default(),
        }),
        ClientCall::Query(QueryCall {
            workflow_id: "wf".into(),
            run_id: None,
            name: "q".into(),
            args: vec![],
            headers: Default::default(),
        }),
        ClientCall::Cancel(target()),
        ClientCall::Terminate(target()),
        ClientCall::Describe(target()),
        ClientCall::FetchHistory(target()),
        ClientCall::List(ListCall {
            query: String::new(),
        }),
        ClientCall::Count(ListCall {
            query: String::new(),
        }),
        ClientCall::SignalWithStart(SignalWithStartCall {
            workflow_type: "Cart".into(),
            args: vec![],
            options: WorkflowOptions::new("wf", "tq"),
            signal_name: "add".into(),
            signal_args: vec![],
        }),
        ClientCall::GetResult(target()),
        ClientCall::HeartbeatActivity(activity_call()),
        ClientCall::CompleteActivity(activity_call()),
        ClientCall::FailActivity(FailActivityCall {
            activity: AsyncActivityId::ids("wf", None, "1"),
            failure: Box::default(),
            last_heartbeat_details: vec![],
        }),
        ClientCall::ReportActivityCancellation(activity_call()),
    ]
}

#[test]
fn headers_are_exposed_exactly_where_the_rpc_carries_them() {
    let with_headers: Vec<&str> = every_call()
        .iter_mut()
        .filter_map(|c| c.headers_mut().is_some().then(|| c.name()))
        .collect();
    assert_eq!(
        with_headers,
        [
            "start_workflow",
            "signal",
            "query",
            "signal_with_start_workflow"
        ]
    );
    let names: Vec<&str> = every_call().iter().map(|c| c.name()).collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "every call has its own name");
}

/// The innermost service of the tests: answers each call, recording what reached it.
fn strict_inner(
    seen: Arc<Mutex<Vec<String>>>,
) -> Strict<
    impl tower::Service<
        ClientCall,
        Response = ClientCallResponse,
        Error = BoxError,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static,
> {
    Strict::new(service_fn(move |mut call: ClientCall| {
        let seen = seen.clone();
        async move {
            let tenant = call
                .headers_mut()
                .and_then(|h| h.get("tenant").cloned())
                .map(|p| dc().decode::<String>(&p).unwrap());
            if let Some(h) = call.headers_mut() {
                assert!(h.contains_key("mapped"), "the map_request layer ran");
            }
            seen.lock()
                .unwrap()
                .push(format!("{} tenant={tenant:?}", call.name()));
            Ok::<_, BoxError>(match call {
                ClientCall::GetResult(t) => ClientCallResponse::WorkflowResult {
                    run_id: t.run_id.unwrap_or_default(),
                    result: vec![dc().encode("r").unwrap()],
                },
                ClientCall::StartWorkflow(_) | ClientCall::SignalWithStart(_) => {
                    ClientCallResponse::Started {
                        run_id: "run".into(),
                        link: None,
                    }
                }
                _ => ClientCallResponse::Accepted,
            })
        }
    }))
    .pending_first()
}

#[tokio::test]
async fn from_fn_and_tower_layers_over_an_unready_inner_see_every_call() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let inner = strict_inner(seen.clone());
    let calls = inner.calls();
    let svc = ClientCallService::new(
        ServiceBuilder::new()
            .timeout(Duration::from_secs(5))
            .concurrency_limit(1)
            // A plain closure mapping the request is a layer too.
            .map_request(|mut call: ClientCall| {
                if let Some(h) = call.headers_mut() {
                    h.insert("mapped".into(), dc().encode(&true).unwrap());
                }
                call
            })
            .layer(from_fn(
                |mut call: ClientCall, next: Next<ClientCall, ClientCallResponse, BoxError>| async move {
                    if let Some(h) = call.headers_mut() {
                        h.insert("tenant".into(), dc().encode("acme")?);
                    }
                    // Short-circuit: terminate never reaches the inner service.
                    if matches!(call, ClientCall::Terminate(_)) {
                        return Err("no terminate".into());
                    }
                    let is_result = matches!(call, ClientCall::GetResult(_));
                    let response = next.run(call).await?;
                    Ok(match response {
                        ClientCallResponse::WorkflowResult { run_id, .. } if is_result => {
                            ClientCallResponse::WorkflowResult {
                                run_id,
                                result: vec![dc().encode("changed")?],
                            }
                        }
                        other => other,
                    })
                },
            ))
            .service(inner),
    );
    let mut results = Vec::new();
    for call in every_call() {
        results.push(svc.clone().oneshot(call).await);
    }
    let n = every_call().len();
    assert_eq!(calls.load(Ordering::SeqCst), n - 1);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), n - 1);
    assert!(seen.contains(&"signal_with_start_workflow tenant=Some(\"acme\")".to_owned()));
    assert!(seen.contains(&"complete_activity tenant=None".to_owned()));
    assert!(!seen.iter().any(|s| s.starts_with("terminate")));
    let terminate = results[4].as_ref().unwrap_err();
    assert_eq!(terminate.to_string(), "no terminate");
    match &results[10] {
        Ok(ClientCallResponse::WorkflowResult { run_id, result }) => {
            assert_eq!(run_id, "run");
            assert_eq!(dc().decode::<String>(&result[0]).unwrap(), "changed");
        }
        other => panic!("{other:?}"),
    }
}
