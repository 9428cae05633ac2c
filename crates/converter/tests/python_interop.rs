//! Byte-for-byte interop with the real Python SDK (`temporalio`): payload encodings, the AES-GCM
//! codec format of Temporal's encryption samples, and failures with encoded attributes.
//!
//! Each test skips with a printed note when the Python venv is absent.

mod common;

use common::{hex, python, run_python, unhex};
use prost::Message as _;
use serde_json::json;
use trellis_converter::{
    AesGcmCodec, ApplicationFailure, DataConverter, FailureConverter, Payload, PayloadCodec, Proto,
    ProtoJson, TemporalFailure,
};
use trellis_core_proto::Failure;
use trellis_core_proto::api::common::v1::WorkflowExecution;
use trellis_core_proto::payload::{encoding, new_payload};

fn payload_from_hex(s: &serde_json::Value) -> Payload {
    Payload::decode(unhex(s.as_str().unwrap()).as_slice()).unwrap()
}

const PYTHON_ENCODE: &str = r#"
import json, sys
from temporalio.converter import DataConverter, BinaryProtoPayloadConverter
from temporalio.api.common.v1 import WorkflowExecution, Payload
from google.protobuf.json_format import MessageToDict

pc = DataConverter.default.payload_converter
values = [
    None, b"\x00\x01\xff", "hello", 42, 2.5, True, [1, "a", None],
    {"a": 1, "b": [True, None]},
    WorkflowExecution(workflow_id="wf-\u00e9\u2603", run_id="r1"),
]
out = [pc.to_payloads([v])[0] for v in values]
out.append(BinaryProtoPayloadConverter().to_payload(WorkflowExecution(workflow_id="wf", run_id="r")))

def plain(v):
    if isinstance(v, bytes):
        return {"bytes": v.hex()}
    if hasattr(v, "DESCRIPTOR"):
        return {"proto": v.DESCRIPTOR.full_name, "fields": MessageToDict(v)}
    return v

req = json.load(sys.stdin)
decoded = [plain(pc.from_payloads([Payload.FromString(bytes.fromhex(h))])[0]) for h in req["from_rust"]]
print(json.dumps({"from_python": [p.SerializeToString().hex() for p in out], "decoded": decoded}))
"#;

#[test]
fn default_converter_writes_and_reads_what_python_writes() {
    let Some(py) = python() else { return };
    let dc = DataConverter::default();
    let ours = vec![
        dc.encode(&()).unwrap(),
        dc.encode(&serde_bytes::ByteBuf::from(vec![0u8, 1, 0xff]))
            .unwrap(),
        dc.encode("hello").unwrap(),
        dc.encode(&42).unwrap(),
        dc.encode(&2.5).unwrap(),
        dc.encode(&true).unwrap(),
        dc.encode(&(1, "a", None::<()>)).unwrap(),
        dc.encode(&json!({"a": 1, "b": [true, null]})).unwrap(),
        dc.encode(&ProtoJson(WorkflowExecution {
            workflow_id: "wf-\u{e9}\u{2603}".into(),
            run_id: "r1".into(),
        }))
        .unwrap(),
        dc.encode(&Proto(WorkflowExecution {
            workflow_id: "wf".into(),
            run_id: "r".into(),
        }))
        .unwrap(),
    ];
    let input = json!({
        "from_rust": ours.iter().map(|p| hex(&p.encode_to_vec())).collect::<Vec<_>>(),
    });
    let out = run_python(&py, PYTHON_ENCODE, &input);

    // Python → bytes: identical metadata and data.
    let theirs: Vec<Payload> = out["from_python"]
        .as_array()
        .unwrap()
        .iter()
        .map(payload_from_hex)
        .collect();
    assert_eq!(theirs.len(), ours.len());
    for (i, (t, o)) in theirs.iter().zip(&ours).enumerate() {
        assert_eq!(
            t,
            o,
            "value {i}: python wrote {:?} / {:?}, trellis wrote {:?} / {:?}",
            t.metadata,
            String::from_utf8_lossy(&t.data),
            o.metadata,
            String::from_utf8_lossy(&o.data)
        );
    }
    assert_eq!(
        theirs[8].data,
        br#"{"runId":"r1","workflowId":"wf-\u00e9\u2603"}"#
    );

    // Python reads what Trellis writes.
    assert_eq!(
        out["decoded"],
        json!([
            null,
            {"bytes": "0001ff"},
            "hello",
            42,
            2.5,
            true,
            [1, "a", null],
            {"a": 1, "b": [true, null]},
            {"proto": "temporal.api.common.v1.WorkflowExecution",
             "fields": {"workflowId": "wf-\u{e9}\u{2603}", "runId": "r1"}},
            {"proto": "temporal.api.common.v1.WorkflowExecution",
             "fields": {"workflowId": "wf", "runId": "r"}},
        ])
    );

    // Trellis reads what Python writes.
    let back: ProtoJson<WorkflowExecution> = dc.decode(&theirs[8]).unwrap();
    assert_eq!(back.workflow_id, "wf-\u{e9}\u{2603}");
    let back: ProtoJson<WorkflowExecution> = dc.decode(&theirs[9]).unwrap();
    assert_eq!(back.run_id, "r");
    let back: (i64, String, Option<()>) = dc.decode(&theirs[6]).unwrap();
    assert_eq!(back, (1, "a".into(), None));
    let back: serde_bytes::ByteBuf = dc.decode(&theirs[1]).unwrap();
    assert_eq!(back.as_slice(), &[0, 1, 0xff]);
}

/// The codec of Temporal's Python encryption sample (`encryption/codec.py`), with the key and id
/// given on stdin.
const PYTHON_AES: &str = r#"
import json, os, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload

req = json.load(sys.stdin)
key_id = req["key_id"]
aes = AESGCM(bytes.fromhex(req["key"]))

def encode(p):
    nonce = os.urandom(12)
    return Payload(
        metadata={"encoding": b"binary/encrypted", "encryption-key-id": key_id.encode()},
        data=nonce + aes.encrypt(nonce, p.SerializeToString(), None),
    )

def decode(p):
    if p.metadata.get("encoding", b"").decode() != "binary/encrypted":
        return p
    got = p.metadata.get("encryption-key-id", b"").decode()
    if got != key_id:
        raise ValueError(f"Unrecognized key ID {got}")
    return Payload.FromString(aes.decrypt(p.data[:12], p.data[12:], None))

decrypted = [decode(Payload.FromString(bytes.fromhex(h))) for h in req["from_rust"]]
plain = Payload(metadata={"encoding": b"json/plain"}, data=b'{"from":"python"}')
print(json.dumps({
    "decrypted": [p.SerializeToString().hex() for p in decrypted],
    "from_python": encode(plain).SerializeToString().hex(),
}))
"#;

#[tokio::test]
async fn aes_gcm_format_matches_the_python_encryption_sample() {
    let Some(py) = python() else { return };
    common::ensure_module(&py, "cryptography", "cryptography");
    let key = *b"test-key-test-key-test-key-test!";
    let codec = AesGcmCodec::new("test-key-test-key-test-key-test!", key);
    let plain = vec![
        new_payload(encoding::JSON, br#""secret \u00e9""#.to_vec()),
        new_payload(encoding::NULL, vec![]),
        {
            let mut p = new_payload(encoding::BINARY_PROTOBUF, vec![10, 2, b'w', b'f']);
            p.metadata.insert(
                "messageType".into(),
                b"temporal.api.common.v1.WorkflowExecution".to_vec(),
            );
            p
        },
    ];
    let encrypted = codec.encode(plain.clone()).await.unwrap();
    let input = json!({
        "key": hex(&key),
        "key_id": codec.key_id(),
        "from_rust": encrypted.iter().map(|p| hex(&p.encode_to_vec())).collect::<Vec<_>>(),
    });
    let out = run_python(&py, PYTHON_AES, &input);
    let decrypted: Vec<Payload> = out["decrypted"]
        .as_array()
        .unwrap()
        .iter()
        .map(payload_from_hex)
        .collect();
    assert_eq!(decrypted, plain, "python decrypts what trellis encrypts");

    let from_python = payload_from_hex(&out["from_python"]);
    assert_eq!(from_python.metadata["encoding"], b"binary/encrypted");
    assert_eq!(
        from_python.metadata["encryption-key-id"],
        b"test-key-test-key-test-key-test!"
    );
    let back = codec.decode(vec![from_python.clone()]).await.unwrap();
    assert_eq!(
        back,
        vec![new_payload(
            encoding::JSON,
            br#"{"from":"python"}"#.to_vec()
        )]
    );

    // Through a data converter: Python's ciphertext decodes to a value.
    let dc = DataConverter::default().with_codec(codec);
    let p = dc.decode_payloads(vec![from_python]).await.unwrap();
    let v: serde_json::Value = dc.decode(&p[0]).unwrap();
    assert_eq!(v, json!({"from": "python"}));
}

const PYTHON_FAILURE: &str = r#"
import json, sys
from temporalio.converter import (
    DataConverter, DefaultFailureConverter, DefaultFailureConverterWithEncodedAttributes,
)
from temporalio.exceptions import ApplicationError
from temporalio.api.failure.v1 import Failure

pc = DataConverter.default.payload_converter
req = json.load(sys.stdin)

try:
    try:
        raise ApplicationError("inner boom", type="Inner")
    except Exception as e:
        raise ApplicationError("outer boom", "detail", type="Outer", non_retryable=True) from e
except Exception as e:
    err = e
f = Failure()
DefaultFailureConverterWithEncodedAttributes().to_failure(err, pc, f)

rf = Failure.FromString(bytes.fromhex(req["from_rust"]))
e2 = DefaultFailureConverter().from_failure(rf, pc)
print(json.dumps({
    "from_python": f.SerializeToString().hex(),
    "read": {
        "class": type(e2).__name__,
        "message": e2.message,
        "activity_type": e2.activity_type,
        "cause_class": type(e2.__cause__).__name__,
        "cause_message": e2.__cause__.message,
        "cause_type": e2.__cause__.type,
        "cause_non_retryable": e2.__cause__.non_retryable,
        "cause_details": list(e2.__cause__.details),
        "cause_cause_class": type(e2.__cause__.__cause__).__name__,
        "cause_cause_message": e2.__cause__.__cause__.message,
        "cause_cause_timeout_type": int(e2.__cause__.__cause__.type),
    },
}))
"#;

#[test]
fn failures_with_encoded_attributes_cross_to_and_from_python() {
    let Some(py) = python() else { return };
    let dc = DataConverter::default();
    let fc = FailureConverter::default().with_encode_common_attributes(true);
    let ours = TemporalFailure::Activity(trellis_converter::ActivityFailure {
        message: "activity failed".into(),
        activity_type: "Charge".into(),
        cause: Some(Box::new(
            ApplicationFailure::new("Outer", "outer boom \u{e9}")
                .non_retryable()
                .with_details(vec![dc.encode("detail").unwrap()])
                .with_cause(trellis_converter::TimeoutFailure {
                    message: "too slow".into(),
                    timeout_type: trellis_converter::TimeoutType::StartToClose,
                    ..Default::default()
                })
                .into(),
        )),
        ..Default::default()
    });
    let failure = fc.to_failure(&ours);
    assert_eq!(failure.message, "Encoded failure");
    let out = run_python(
        &py,
        PYTHON_FAILURE,
        &json!({ "from_rust": hex(&failure.encode_to_vec()) }),
    );
    assert_eq!(
        out["read"],
        json!({
            "class": "ActivityError",
            "message": "activity failed",
            "activity_type": "Charge",
            "cause_class": "ApplicationError",
            "cause_message": "outer boom \u{e9}",
            "cause_type": "Outer",
            "cause_non_retryable": true,
            "cause_details": ["detail"],
            "cause_cause_class": "TimeoutError",
            "cause_cause_message": "too slow",
            "cause_cause_timeout_type": 1,
        })
    );

    let theirs = Failure::decode(unhex(out["from_python"].as_str().unwrap()).as_slice()).unwrap();
    assert_eq!(theirs.message, "Encoded failure");
    let read = FailureConverter::default().from_failure(&theirs);
    let TemporalFailure::Application(app) = &read else {
        panic!("expected an application failure, got {read:?}");
    };
    assert_eq!(
        (
            app.error_type.as_str(),
            app.message.as_str(),
            app.non_retryable
        ),
        ("Outer", "outer boom", true)
    );
    assert!(app.stack_trace.contains("line 16"), "{}", app.stack_trace);
    let detail: String = dc.decode(&app.details[0]).unwrap();
    assert_eq!(detail, "detail");
    let cause = read.cause().unwrap();
    assert_eq!(cause.message(), "inner boom");
    assert_eq!(cause.application().unwrap().error_type, "Inner");
}
