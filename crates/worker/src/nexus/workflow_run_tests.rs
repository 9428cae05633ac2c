use super::*;

#[test]
fn token_encodes_as_the_other_sdks_do() {
    let token = WorkflowRunToken::new("default", "order-42");
    let encoded = token.encode();
    assert!(!encoded.contains('='), "unpadded: {encoded}");
    let json = TOKEN_BASE64.decode(&encoded).unwrap();
    assert_eq!(
        String::from_utf8(json).unwrap(),
        r#"{"t":1,"ns":"default","wid":"order-42"}"#
    );
    assert_eq!(WorkflowRunToken::decode(&encoded).unwrap(), token);
}

#[test]
fn token_from_python_decodes() {
    // What the Python SDK's WorkflowHandle.to_token() gives for ("default", "wf-1"), with a
    // padding character added back (accepted) and a version 0 (accepted).
    let python = TOKEN_BASE64.encode(r#"{"t":1,"ns":"default","wid":"wf-1"}"#);
    assert_eq!(
        WorkflowRunToken::decode(&python).unwrap(),
        WorkflowRunToken::new("default", "wf-1")
    );
    let padded = base64::engine::general_purpose::URL_SAFE.encode(r#"{"t":1,"ns":"n","wid":"w"}"#);
    assert_eq!(
        WorkflowRunToken::decode(&padded).unwrap(),
        WorkflowRunToken::new("n", "w")
    );
    let v0 = TOKEN_BASE64.encode(r#"{"v":0,"t":1,"ns":"n","wid":"w"}"#);
    assert!(WorkflowRunToken::decode(&v0).is_ok());
}

#[test]
fn bad_tokens_name_the_problem() {
    let enc = |s: &str| TOKEN_BASE64.encode(s);
    let cases = [
        (String::new(), "empty"),
        ("watch-Oslo!".to_owned(), "not base64url"),
        (enc("not json"), "not JSON"),
        (enc("[1]"), "expected a JSON object"),
        (
            enc(r#"{"t":2,"ns":"n","aid":"a"}"#),
            "token type 2 is not a workflow run",
        ),
        (enc(r#"{"ns":"n","wid":"w"}"#), "no integer token type"),
        (enc(r#"{"t":1,"ns":"n"}"#), "no workflow id"),
        (enc(r#"{"t":1,"ns":"n","wid":""}"#), "no workflow id"),
        (enc(r#"{"t":1,"wid":"w"}"#), "no namespace"),
        (
            enc(r#"{"t":1,"ns":"n","wid":"w","v":1}"#),
            "unsupported token version 1",
        ),
    ];
    for (token, expected) in cases {
        let err = WorkflowRunToken::decode(&token).unwrap_err().to_string();
        assert!(
            err.starts_with("invalid workflow run operation token: ") && err.contains(expected),
            "{token:?}: {err}"
        );
    }
}

#[tokio::test]
async fn cancel_with_a_bad_token_is_bad_request() {
    use crate::interceptors::{NexusCancelOperation, NexusInbound};
    use tower::ServiceExt;

    let handler = NexusServiceHandler::new("Svc")
        .workflow_run_operation("op", |_ctx, (): ()| async {
            Err::<WorkflowRunHandle<()>, _>(NexusError::internal("unused"))
        });
    let service = crate::WorkerConfig::new("tq")
        .nexus_service(handler)
        .nexus_inbound_service()
        .unwrap();
    let err = service
        .oneshot(NexusInbound::CancelOperation(NexusCancelOperation {
            service: "Svc".into(),
            operation: "op".into(),
            operation_token: "watch-Oslo".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    let h = err.downcast_ref::<HandlerError>().expect("a handler error");
    assert_eq!(h.error_type, HandlerErrorType::BadRequest);
    assert!(
        h.message.contains("invalid workflow run operation token"),
        "{}",
        h.message
    );
}

#[test]
fn workflow_event_links_round_trip() {
    // As the server sends a caller's scheduled event.
    let from_server = NexusLink {
        url: "temporal:///namespaces/default/workflows/caller%2F1/run-1/history?eventID=5&eventType=NexusOperationScheduled&referenceType=EventReference".into(),
        r#type: WORKFLOW_EVENT_LINK_TYPE.into(),
    };
    let l = nexus_link_to_temporal(&from_server).expect("parsed");
    let Some(link::Variant::WorkflowEvent(e)) = &l.variant else {
        panic!("{l:?}")
    };
    assert_eq!(
        (
            e.namespace.as_str(),
            e.workflow_id.as_str(),
            e.run_id.as_str()
        ),
        ("default", "caller/1", "run-1")
    );
    assert_eq!(
        e.reference,
        Some(link::workflow_event::Reference::EventRef(
            link::workflow_event::EventReference {
                event_id: 5,
                event_type: EventType::NexusOperationScheduled as i32,
            }
        ))
    );
    assert_eq!(temporal_link_to_nexus(&l).unwrap(), from_server);

    // The prefixed event type name is accepted too.
    let prefixed = NexusLink {
        url: from_server.url.replace(
            "NexusOperationScheduled",
            "EVENT_TYPE_NEXUS_OPERATION_SCHEDULED",
        ),
        ..from_server.clone()
    };
    assert_eq!(nexus_link_to_temporal(&prefixed), Some(l));

    // A request-id reference (what a workflow-run start returns).
    let started = Link {
        variant: Some(link::Variant::WorkflowEvent(link::WorkflowEvent {
            namespace: "default".into(),
            workflow_id: "wf 1".into(),
            run_id: "r".into(),
            reference: Some(link::workflow_event::Reference::RequestIdRef(
                link::workflow_event::RequestIdReference {
                    request_id: "req-1".into(),
                    event_type: EventType::WorkflowExecutionStarted as i32,
                },
            )),
        })),
    };
    let nexus = temporal_link_to_nexus(&started).unwrap();
    assert_eq!(
        nexus.url,
        "temporal:///namespaces/default/workflows/wf%201/r/history?eventType=WorkflowExecutionStarted&referenceType=RequestIdReference&requestID=req-1"
    );
    assert_eq!(nexus_link_to_temporal(&nexus), Some(started));
}

#[test]
fn other_links_are_skipped() {
    for (url, ty) in [
        ("https://example.com/x", WORKFLOW_EVENT_LINK_TYPE),
        (
            "temporal:///namespaces/n/workflows/w/r/history",
            WORKFLOW_EVENT_LINK_TYPE,
        ),
        (
            "temporal:///namespaces/n/activities/a/r/details",
            "temporal.api.common.v1.Link.Activity",
        ),
    ] {
        let l = NexusLink {
            url: url.into(),
            r#type: ty.into(),
        };
        assert_eq!(nexus_link_to_temporal(&l), None, "{url}");
    }
    let wf = NexusLink {
        url: "temporal:///namespaces/n/workflows/w/r?reason=reset".into(),
        r#type: WORKFLOW_LINK_TYPE.into(),
    };
    let l = nexus_link_to_temporal(&wf).unwrap();
    assert_eq!(temporal_link_to_nexus(&l), Some(wf));
}

#[test]
fn start_errors_map_to_handler_errors() {
    let rpc = |code: Code| ClientError::Rpc {
        operation: "start_workflow",
        status: trellis_client::Status::new(code, "the server says no"),
    };
    for (code, expected, retryable) in [
        (Code::AlreadyExists, HandlerErrorType::Conflict, false),
        (Code::InvalidArgument, HandlerErrorType::BadRequest, false),
        (Code::Unavailable, HandlerErrorType::Unavailable, true),
        (Code::NotFound, HandlerErrorType::NotFound, false),
        (Code::FailedPrecondition, HandlerErrorType::Internal, false),
        (
            Code::DeadlineExceeded,
            HandlerErrorType::UpstreamTimeout,
            true,
        ),
        (Code::Internal, HandlerErrorType::Internal, true),
    ] {
        let e = client_error(rpc(code), "starting the workflow").into_inner();
        let h = e.downcast_ref::<HandlerError>().expect("a handler error");
        assert_eq!(h.error_type, expected, "{code:?}");
        assert_eq!(h.is_retryable(), retryable, "{code:?}");
        assert_eq!(h.message, "starting the workflow: the server says no");
    }
}
