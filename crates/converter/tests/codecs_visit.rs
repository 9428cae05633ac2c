//! The codec stack on `DataConverter` and the payload visitors of worker messages.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use trellis_converter::visit::{self, VisitOptions, payloads_mut};
use trellis_converter::{
    AesGcmCodec, CodecError, CodecFuture, DataConverter, Payload, PayloadCodec, ZstdCodec,
};
use trellis_core_proto::api::common::v1::{Memo, Payloads, SearchAttributes};
use trellis_core_proto::api::failure::v1::{
    ApplicationFailureInfo, CanceledFailureInfo, ResetWorkflowFailureInfo, TimeoutFailureInfo,
    failure::FailureInfo,
};
use trellis_core_proto::api::sdk::v1::{EventGroupMarker, UserMetadata, event_group_marker};
use trellis_core_proto::coresdk::{
    ActivityHeartbeat, ActivityTaskCompletion, activity_result as ar, activity_task as at,
    child_workflow as cw, nexus, workflow_activation as wa, workflow_commands as wc,
    workflow_completion as wcomp,
};
use trellis_core_proto::payload::{encoding, new_payload};
use trellis_core_proto::{Failure, PayloadExt};

/// Appends its name to a shared log and tags payload data, so the order of layers shows.
#[derive(Debug)]
struct Tag(&'static str, Arc<Mutex<Vec<String>>>);

impl PayloadCodec for Tag {
    fn encode(&self, mut payloads: Vec<Payload>) -> CodecFuture<'_> {
        self.1.lock().unwrap().push(format!("encode {}", self.0));
        for p in &mut payloads {
            p.data.extend_from_slice(self.0.as_bytes());
        }
        Box::pin(async move { Ok(payloads) })
    }

    fn decode(&self, mut payloads: Vec<Payload>) -> CodecFuture<'_> {
        self.1.lock().unwrap().push(format!("decode {}", self.0));
        for p in &mut payloads {
            let n = p.data.len() - self.0.len();
            assert_eq!(
                &p.data[n..],
                self.0.as_bytes(),
                "layers decoded out of order"
            );
            p.data.truncate(n);
        }
        Box::pin(async move { Ok(payloads) })
    }
}

#[tokio::test]
async fn codecs_accumulate_encode_in_order_added_and_decode_in_reverse() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let dc = DataConverter::default()
        .with_codec(Tag("A", log.clone()))
        .with_codec(Tag("B", log.clone()));
    assert_eq!(dc.codecs().len(), 2);
    let p = dc.encode("x").unwrap();
    let enc = dc.encode_payloads(vec![p.clone()]).await.unwrap();
    assert_eq!(enc[0].data, br#""x"AB"#);
    let dec = dc.decode_payloads(enc).await.unwrap();
    assert_eq!(dec, vec![p]);
    assert_eq!(
        *log.lock().unwrap(),
        ["encode A", "encode B", "decode B", "decode A"]
    );
}

#[tokio::test]
async fn zstd_then_aes_round_trip() {
    let dc = DataConverter::default()
        .with_codec(ZstdCodec::new().with_min_size(0))
        .with_codec(AesGcmCodec::new("k1", [9; 32]));
    let values: Vec<Payload> = vec![
        dc.encode(&"a".repeat(5000)).unwrap(),
        dc.encode(&()).unwrap(),
        dc.encode(&serde_bytes::ByteBuf::from(vec![7u8; 3]))
            .unwrap(),
    ];
    let enc = dc.encode_payloads(values.clone()).await.unwrap();
    assert!(enc.iter().all(|p| p.encoding() == Some("binary/encrypted")));
    // Compressed before encryption: the big payload is small on the wire.
    assert!(enc[0].data.len() < 200, "{}", enc[0].data.len());
    assert_eq!(dc.decode_payloads(enc).await.unwrap(), values);

    // A converter with only the AES layer cannot read the zstd layer underneath.
    let aes_only = DataConverter::default().with_codec(AesGcmCodec::new("k1", [9; 32]));
    let enc = dc.encode_payloads(values.clone()).await.unwrap();
    let inner = aes_only.decode_payloads(enc).await.unwrap();
    assert_eq!(inner[0].encoding(), Some("binary/zstd"));
    let e = aes_only
        .decode::<String>(&inner[0])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown payload encoding \"binary/zstd\""),
        "{e}"
    );
}

#[tokio::test]
async fn wrong_key_and_truncated_ciphertext_through_the_converter() {
    let writer = DataConverter::default().with_codec(AesGcmCodec::new("2025-01", [1; 32]));
    let enc = writer
        .encode_payloads(vec![writer.encode("secret").unwrap()])
        .await
        .unwrap();
    let reader = DataConverter::default().with_codec(AesGcmCodec::new("2024-06", [1; 32]));
    let e = reader.decode_payloads(enc.clone()).await.unwrap_err();
    assert!(matches!(&e, CodecError::UnknownKey { key_id, .. } if key_id == "2025-01"));
    assert!(e.to_string().contains("\"2025-01\""), "{e}");
    let mut cut = enc;
    cut[0].data.truncate(20);
    let e = writer.decode_payloads(cut).await.unwrap_err().to_string();
    assert!(e.contains("truncated ciphertext: 20 bytes"), "{e}");
}

#[derive(Debug)]
struct Drop1;

impl PayloadCodec for Drop1 {
    fn encode(&self, mut payloads: Vec<Payload>) -> CodecFuture<'_> {
        payloads.pop();
        Box::pin(async move { Ok(payloads) })
    }
    fn decode(&self, payloads: Vec<Payload>) -> CodecFuture<'_> {
        self.encode(payloads)
    }
}

#[tokio::test]
async fn a_codec_that_changes_the_count_is_an_error() {
    let dc = DataConverter::default().with_codec(Drop1);
    let e = dc
        .encode_payloads(vec![Payload::default(), Payload::default()])
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            CodecError::CountMismatch {
                expected: 2,
                got: 1,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn codec_futures_are_send() {
    fn send<T: Send>(_: T) {}
    let dc = DataConverter::default();
    send(dc.encode_payloads(vec![]));
    send(dc.decode_payloads(vec![]));
    let mut activation = wa::WorkflowActivation::default();
    send(dc.decode_message(&mut activation, &VisitOptions::default()));
    let mut failure = Failure::default();
    send(visit::encode_in_place(
        &dc,
        &mut failure,
        &VisitOptions::default(),
    ));
}

// ----- visitors -----

/// Payloads whose data names them, so tests can tell which were visited.
fn p(name: &str) -> Payload {
    new_payload(encoding::JSON, format!("\"{name}\"").into_bytes())
}

fn ps(names: &[&str]) -> Vec<Payload> {
    names.iter().map(|n| p(n)).collect()
}

fn map(names: &[&str]) -> HashMap<String, Payload> {
    names.iter().map(|n| (n.to_string(), p(n))).collect()
}

fn search_attributes() -> Option<SearchAttributes> {
    Some(SearchAttributes {
        indexed_fields: map(&["SA-never"]),
    })
}

/// A failure with a payload in every visited place, and a nested cause chain.
fn failure(tag: &str) -> Failure {
    let leaf = Failure {
        failure_info: Some(FailureInfo::ResetWorkflowFailureInfo(
            ResetWorkflowFailureInfo {
                last_heartbeat_details: Some(Payloads {
                    payloads: ps(&[&format!("{tag}-reset")]),
                }),
            },
        )),
        ..Default::default()
    };
    let cancelled = Failure {
        failure_info: Some(FailureInfo::CanceledFailureInfo(CanceledFailureInfo {
            details: Some(Payloads {
                payloads: ps(&[&format!("{tag}-cancel")]),
            }),
            ..Default::default()
        })),
        cause: Some(Box::new(leaf)),
        ..Default::default()
    };
    let timeout = Failure {
        failure_info: Some(FailureInfo::TimeoutFailureInfo(TimeoutFailureInfo {
            last_heartbeat_details: Some(Payloads {
                payloads: ps(&[&format!("{tag}-hb")]),
            }),
            ..Default::default()
        })),
        cause: Some(Box::new(cancelled)),
        ..Default::default()
    };
    Failure {
        encoded_attributes: Some(p(&format!("{tag}-attrs"))),
        failure_info: Some(FailureInfo::ApplicationFailureInfo(
            ApplicationFailureInfo {
                details: Some(Payloads {
                    payloads: ps(&[&format!("{tag}-details")]),
                }),
                ..Default::default()
            },
        )),
        cause: Some(Box::new(timeout)),
        ..Default::default()
    }
}

fn failure_names(tag: &str) -> Vec<String> {
    ["attrs", "details", "hb", "cancel", "reset"]
        .iter()
        .map(|s| format!("{tag}-{s}"))
        .collect()
}

fn names<M: trellis_converter::VisitPayloads>(m: &mut M, options: &VisitOptions) -> Vec<String> {
    let mut out: Vec<String> = payloads_mut(m, options)
        .into_iter()
        .map(|p| serde_json::from_slice::<String>(&p.data).unwrap())
        .collect();
    out.sort();
    out
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn job(v: wa::workflow_activation_job::Variant) -> wa::WorkflowActivationJob {
    wa::WorkflowActivationJob { variant: Some(v) }
}

fn activation() -> wa::WorkflowActivation {
    use wa::workflow_activation_job::Variant as V;
    wa::WorkflowActivation {
        jobs: vec![
            job(V::InitializeWorkflow(wa::InitializeWorkflow {
                arguments: ps(&["init-arg1", "init-arg2"]),
                headers: map(&["H-init"]),
                continued_failure: Some(failure("continued")),
                last_completion_result: Some(Payloads {
                    payloads: ps(&["last-result"]),
                }),
                memo: Some(Memo {
                    fields: map(&["init-memo"]),
                }),
                search_attributes: search_attributes(),
                ..Default::default()
            })),
            job(V::FireTimer(wa::FireTimer { seq: 1 })),
            job(V::QueryWorkflow(wa::QueryWorkflow {
                arguments: ps(&["query-arg"]),
                headers: map(&["H-query"]),
                ..Default::default()
            })),
            job(V::SignalWorkflow(wa::SignalWorkflow {
                input: ps(&["signal-arg"]),
                headers: map(&["H-signal"]),
                ..Default::default()
            })),
            job(V::ResolveActivity(wa::ResolveActivity {
                result: Some(ar::ActivityResolution {
                    status: Some(ar::activity_resolution::Status::Completed(ar::Success {
                        result: Some(p("activity-result")),
                    })),
                }),
                ..Default::default()
            })),
            job(V::ResolveActivity(wa::ResolveActivity {
                result: Some(ar::ActivityResolution {
                    status: Some(ar::activity_resolution::Status::Failed(ar::Failure {
                        failure: Some(failure("activity-failed")),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            })),
            job(V::ResolveActivity(wa::ResolveActivity {
                result: Some(ar::ActivityResolution {
                    status: Some(ar::activity_resolution::Status::Cancelled(
                        ar::Cancellation {
                            failure: Some(failure("activity-cancelled")),
                        },
                    )),
                }),
                ..Default::default()
            })),
            job(V::ResolveChildWorkflowExecutionStart(
                wa::ResolveChildWorkflowExecutionStart {
                    seq: 1,
                    status: Some(
                        wa::resolve_child_workflow_execution_start::Status::Cancelled(
                            wa::ResolveChildWorkflowExecutionStartCancelled {
                                failure: Some(failure("child-start-cancelled")),
                            },
                        ),
                    ),
                },
            )),
            job(V::ResolveChildWorkflowExecution(
                wa::ResolveChildWorkflowExecution {
                    seq: 2,
                    result: Some(cw::ChildWorkflowResult {
                        status: Some(cw::child_workflow_result::Status::Completed(cw::Success {
                            result: Some(p("child-result")),
                        })),
                    }),
                },
            )),
            job(V::ResolveChildWorkflowExecution(
                wa::ResolveChildWorkflowExecution {
                    seq: 3,
                    result: Some(cw::ChildWorkflowResult {
                        status: Some(cw::child_workflow_result::Status::Failed(cw::Failure {
                            failure: Some(failure("child-failed")),
                        })),
                    }),
                },
            )),
            job(V::ResolveSignalExternalWorkflow(
                wa::ResolveSignalExternalWorkflow {
                    failure: Some(failure("signal-ext")),
                    ..Default::default()
                },
            )),
            job(V::ResolveRequestCancelExternalWorkflow(
                wa::ResolveRequestCancelExternalWorkflow {
                    failure: Some(failure("cancel-ext")),
                    ..Default::default()
                },
            )),
            job(V::DoUpdate(wa::DoUpdate {
                input: ps(&["update-arg"]),
                headers: map(&["H-update"]),
                ..Default::default()
            })),
            job(V::ResolveNexusOperationStart(
                wa::ResolveNexusOperationStart {
                    seq: 4,
                    status: Some(wa::resolve_nexus_operation_start::Status::Failed(failure(
                        "nexus-start",
                    ))),
                },
            )),
            job(V::ResolveNexusOperation(wa::ResolveNexusOperation {
                seq: 5,
                result: Some(nexus::NexusOperationResult {
                    status: Some(nexus::nexus_operation_result::Status::Completed(p(
                        "nexus-result",
                    ))),
                }),
            })),
            job(V::ResolveNexusOperation(wa::ResolveNexusOperation {
                seq: 6,
                result: Some(nexus::NexusOperationResult {
                    status: Some(nexus::nexus_operation_result::Status::TimedOut(failure(
                        "nexus-timeout",
                    ))),
                }),
            })),
        ],
        ..Default::default()
    }
}

fn activation_names() -> Vec<String> {
    let mut v: Vec<String> = [
        "init-arg1",
        "init-arg2",
        "last-result",
        "init-memo",
        "query-arg",
        "signal-arg",
        "activity-result",
        "child-result",
        "update-arg",
        "nexus-result",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for tag in [
        "continued",
        "activity-failed",
        "activity-cancelled",
        "child-start-cancelled",
        "child-failed",
        "signal-ext",
        "cancel-ext",
        "nexus-start",
        "nexus-timeout",
    ] {
        v.extend(failure_names(tag));
    }
    sorted(v)
}

#[test]
fn activation_visitor_finds_every_job_payload_but_no_search_attributes() {
    let mut a = activation();
    assert_eq!(names(&mut a, &VisitOptions::default()), activation_names());
    let with_headers = names(&mut a, &VisitOptions::default().with_headers(true));
    let mut expected = activation_names();
    expected.extend(["H-init", "H-query", "H-signal", "H-update"].map(String::from));
    assert_eq!(with_headers, sorted(expected));
    assert!(!with_headers.iter().any(|n| n.starts_with("SA")));
}

fn command(v: wc::workflow_command::Variant) -> wc::WorkflowCommand {
    wc::WorkflowCommand {
        variant: Some(v),
        ..Default::default()
    }
}

fn completion() -> wcomp::WorkflowActivationCompletion {
    use wc::workflow_command::Variant as V;
    let mut commands = vec![
        command(V::StartTimer(wc::StartTimer::default())),
        command(V::ScheduleActivity(wc::ScheduleActivity {
            arguments: ps(&["activity-arg"]),
            headers: map(&["H-activity"]),
            ..Default::default()
        })),
        command(V::ScheduleLocalActivity(wc::ScheduleLocalActivity {
            arguments: ps(&["local-arg"]),
            headers: map(&["H-local"]),
            ..Default::default()
        })),
        command(V::RespondToQuery(wc::QueryResult {
            query_id: "q1".into(),
            variant: Some(wc::query_result::Variant::Succeeded(wc::QuerySuccess {
                response: Some(p("query-response")),
            })),
        })),
        command(V::RespondToQuery(wc::QueryResult {
            query_id: "q2".into(),
            variant: Some(wc::query_result::Variant::Failed(failure("query-failed"))),
        })),
        command(V::CompleteWorkflowExecution(
            wc::CompleteWorkflowExecution {
                result: Some(p("wf-result")),
            },
        )),
        command(V::FailWorkflowExecution(wc::FailWorkflowExecution {
            failure: Some(failure("wf-failed")),
        })),
        command(V::ContinueAsNewWorkflowExecution(
            wc::ContinueAsNewWorkflowExecution {
                arguments: ps(&["can-arg"]),
                memo: map(&["can-memo"]),
                headers: map(&["H-can"]),
                search_attributes: search_attributes(),
                ..Default::default()
            },
        )),
        command(V::CancelWorkflowExecution(wc::CancelWorkflowExecution {
            details: Some(Payloads {
                payloads: ps(&["cancel-details"]),
            }),
        })),
        command(V::StartChildWorkflowExecution(
            wc::StartChildWorkflowExecution {
                input: ps(&["child-arg"]),
                headers: map(&["H-child"]),
                memo: map(&["child-memo"]),
                search_attributes: search_attributes(),
                ..Default::default()
            },
        )),
        command(V::SignalExternalWorkflowExecution(
            wc::SignalExternalWorkflowExecution {
                args: ps(&["signal-ext-arg"]),
                headers: map(&["H-signal-ext"]),
                ..Default::default()
            },
        )),
        command(V::UpsertWorkflowSearchAttributes(
            wc::UpsertWorkflowSearchAttributes {
                search_attributes: search_attributes(),
            },
        )),
        command(V::ModifyWorkflowProperties(wc::ModifyWorkflowProperties {
            upserted_memo: Some(Memo {
                fields: map(&["upsert-memo"]),
            }),
        })),
        command(V::UpdateResponse(wc::UpdateResponse {
            response: Some(wc::update_response::Response::Completed(p("update-result"))),
            ..Default::default()
        })),
        command(V::UpdateResponse(wc::UpdateResponse {
            response: Some(wc::update_response::Response::Rejected(failure(
                "update-rejected",
            ))),
            ..Default::default()
        })),
        command(V::ScheduleNexusOperation(wc::ScheduleNexusOperation {
            input: Some(p("nexus-input")),
            ..Default::default()
        })),
    ];
    commands[0].user_metadata = Some(UserMetadata {
        summary: Some(p("summary")),
        details: Some(p("details")),
    });
    commands[0].event_group_markers = vec![EventGroupMarker {
        variant: Some(event_group_marker::Variant::Label(
            event_group_marker::Label {
                id: "l".into(),
                label: Some(p("label")),
            },
        )),
    }];
    wcomp::WorkflowActivationCompletion {
        run_id: "run".into(),
        status: Some(wcomp::workflow_activation_completion::Status::Successful(
            wcomp::Success {
                commands,
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

fn completion_names() -> Vec<String> {
    let mut v: Vec<String> = [
        "activity-arg",
        "local-arg",
        "query-response",
        "wf-result",
        "can-arg",
        "can-memo",
        "cancel-details",
        "child-arg",
        "child-memo",
        "signal-ext-arg",
        "upsert-memo",
        "update-result",
        "nexus-input",
        "summary",
        "details",
        "label",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for tag in ["query-failed", "wf-failed", "update-rejected"] {
        v.extend(failure_names(tag));
    }
    sorted(v)
}

#[test]
fn completion_visitor_finds_every_command_payload_but_no_search_attributes() {
    let mut c = completion();
    assert_eq!(names(&mut c, &VisitOptions::default()), completion_names());
    let with_headers = names(&mut c, &VisitOptions::default().with_headers(true));
    let mut expected = completion_names();
    expected
        .extend(["H-activity", "H-local", "H-can", "H-child", "H-signal-ext"].map(String::from));
    assert_eq!(with_headers, sorted(expected));

    let mut failed = wcomp::WorkflowActivationCompletion {
        status: Some(wcomp::workflow_activation_completion::Status::Failed(
            wcomp::Failure {
                failure: Some(failure("task")),
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    assert_eq!(
        names(&mut failed, &VisitOptions::default()),
        sorted(failure_names("task"))
    );
}

#[test]
fn activity_visitors() {
    let mut task = at::ActivityTask {
        variant: Some(at::activity_task::Variant::Start(at::Start {
            input: ps(&["in1", "in2"]),
            heartbeat_details: ps(&["hb"]),
            header_fields: map(&["H-act"]),
            ..Default::default()
        })),
        ..Default::default()
    };
    assert_eq!(
        names(&mut task, &VisitOptions::default()),
        ["hb", "in1", "in2"]
    );
    assert_eq!(
        names(&mut task, &VisitOptions::default().with_headers(true)),
        ["H-act", "hb", "in1", "in2"]
    );

    let mut done = ActivityTaskCompletion {
        result: Some(ar::ActivityExecutionResult {
            status: Some(ar::activity_execution_result::Status::Completed(
                ar::Success {
                    result: Some(p("result")),
                },
            )),
        }),
        ..Default::default()
    };
    assert_eq!(names(&mut done, &VisitOptions::default()), ["result"]);
    let mut failed = ar::ActivityExecutionResult {
        status: Some(ar::activity_execution_result::Status::Failed(ar::Failure {
            failure: Some(failure("act")),
            ..Default::default()
        })),
    };
    assert_eq!(
        names(&mut failed, &VisitOptions::default()),
        sorted(failure_names("act"))
    );
    let mut hb = ActivityHeartbeat {
        details: ps(&["d1", "d2"]),
        ..Default::default()
    };
    assert_eq!(names(&mut hb, &VisitOptions::default()), ["d1", "d2"]);
}

#[tokio::test]
async fn messages_encode_and_decode_in_place_in_one_batch() {
    #[derive(Debug, Default)]
    struct Count(Mutex<Vec<usize>>);
    impl PayloadCodec for Count {
        fn encode(&self, payloads: Vec<Payload>) -> CodecFuture<'_> {
            self.0.lock().unwrap().push(payloads.len());
            Box::pin(async move { Ok(payloads) })
        }
        fn decode(&self, payloads: Vec<Payload>) -> CodecFuture<'_> {
            self.encode(payloads)
        }
    }
    let counter = Arc::new(Count::default());
    let dc = DataConverter::default()
        .with_shared_codec(counter.clone())
        .with_codec(AesGcmCodec::new("k", [3; 32]));
    let opts = VisitOptions::default();

    let original = completion();
    let mut c = original.clone();
    dc.encode_message(&mut c, &opts).await.unwrap();
    assert_eq!(*counter.0.lock().unwrap(), [completion_names().len()]);
    let visited = payloads_mut(&mut c, &opts);
    assert!(
        visited
            .iter()
            .all(|p| p.encoding() == Some("binary/encrypted"))
    );
    // Headers and search attributes were left alone.
    let wcomp::workflow_activation_completion::Status::Successful(s) = c.status.as_ref().unwrap()
    else {
        unreachable!()
    };
    let Some(wc::workflow_command::Variant::StartChildWorkflowExecution(child)) =
        &s.commands[9].variant
    else {
        unreachable!()
    };
    assert_eq!(child.headers["H-child"], p("H-child"));
    assert_eq!(
        child.search_attributes.as_ref().unwrap().indexed_fields["SA-never"],
        p("SA-never")
    );
    dc.decode_message(&mut c, &opts).await.unwrap();
    assert_eq!(c, original);

    let mut a = activation();
    dc.encode_message(&mut a, &opts).await.unwrap();
    assert_ne!(a, activation());
    dc.decode_message(&mut a, &opts).await.unwrap();
    assert_eq!(a, activation());

    // A failure on its own.
    let mut f = failure("solo");
    visit::encode_in_place(&dc, &mut f, &opts).await.unwrap();
    assert_eq!(
        f.encoded_attributes.as_ref().unwrap().encoding(),
        Some("binary/encrypted")
    );
    visit::decode_in_place(&dc, &mut f, &opts).await.unwrap();
    assert_eq!(f, failure("solo"));

    // Without codecs nothing changes.
    let mut c = original.clone();
    DataConverter::default()
        .encode_message(&mut c, &opts)
        .await
        .unwrap();
    assert_eq!(c, original);
}
