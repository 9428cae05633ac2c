//! Round trips through every standard encoding, custom encodings, and clear errors for corrupt,
//! mismatched or unknown payloads.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use trellis_converter::{
    BinaryProtoConverter, CompositePayloadConverter, ConversionError, DataConverter, DecodeVisit,
    EncodingConverter, JsonPayloadConverter, Payload, PayloadConverterExt, Proto, ProtoJson,
    RawValue,
};
use trellis_core_proto::PayloadExt;
use trellis_core_proto::api::common::v1::{Payloads, WorkflowExecution, WorkflowType};
use trellis_core_proto::api::failure::v1::{TimeoutFailureInfo, failure::FailureInfo};
use trellis_core_proto::payload::{encoding, new_payload};

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Order {
    id: u32,
    item: String,
    tags: Vec<String>,
    note: Option<String>,
}

fn order() -> Order {
    Order {
        id: 7,
        item: "t\u{e9}a".into(),
        tags: vec!["a".into(), "b".into()],
        note: None,
    }
}

#[test]
fn default_writes_exactly_what_the_json_converter_writes_for_serde_values() {
    let dc = DataConverter::default();
    let legacy = JsonPayloadConverter;
    macro_rules! same {
        ($($v:expr),*) => {$(
            assert_eq!(dc.encode(&$v).unwrap(), legacy.encode(&$v).unwrap(), "{}", stringify!($v));
        )*};
    }
    same!(
        (),
        None::<u8>,
        Some(3u8),
        serde_bytes::ByteBuf::from(vec![1u8, 2]),
        "text",
        order(),
        vec![order()],
        (1, "two", 3.5),
        serde_json::json!({"z": 1, "a": null}),
        serde_json::Value::Null,
        std::collections::BTreeMap::from([("k", 1)])
    );
    let p = dc.encode(&order()).unwrap();
    assert_eq!(
        p.data,
        "{\"id\":7,\"item\":\"t\u{e9}a\",\"tags\":[\"a\",\"b\"],\"note\":null}".as_bytes()
    );
}

#[test]
fn every_standard_encoding_round_trips() {
    let dc = DataConverter::default();

    let p = dc.encode(&()).unwrap();
    assert_eq!((p.encoding(), p.data.len()), (Some("binary/null"), 0));
    dc.decode::<()>(&p).unwrap();
    assert_eq!(dc.decode::<Option<Order>>(&p).unwrap(), None);

    let bytes = serde_bytes::ByteBuf::from(vec![0u8, 159, 255]);
    let p = dc.encode(&bytes).unwrap();
    assert_eq!(p.encoding(), Some("binary/plain"));
    assert_eq!(dc.decode::<serde_bytes::ByteBuf>(&p).unwrap(), bytes);

    let p = dc.encode(&order()).unwrap();
    assert_eq!(p.encoding(), Some("json/plain"));
    assert_eq!(dc.decode::<Order>(&p).unwrap(), order());

    let we = WorkflowExecution {
        workflow_id: "wf".into(),
        run_id: "run".into(),
    };
    let p = dc.encode(&ProtoJson(we.clone())).unwrap();
    assert_eq!(p.encoding(), Some("json/protobuf"));
    assert_eq!(
        p.metadata_str("messageType"),
        Some("temporal.api.common.v1.WorkflowExecution")
    );
    assert_eq!(p.data, br#"{"runId":"run","workflowId":"wf"}"#);
    assert_eq!(dc.decode::<ProtoJson<WorkflowExecution>>(&p).unwrap().0, we);
    // A json/protobuf payload also reads as plain JSON.
    let v: serde_json::Value = dc.decode(&p).unwrap();
    assert_eq!(v["workflowId"], "wf");

    let p = dc.encode(&Proto(we.clone())).unwrap();
    assert_eq!(p.encoding(), Some("binary/protobuf"));
    assert_eq!(
        p.metadata_str("messageType"),
        Some("temporal.api.common.v1.WorkflowExecution")
    );
    assert_eq!(p.data, prost::Message::encode_to_vec(&we));
    assert_eq!(dc.decode::<Proto<WorkflowExecution>>(&p).unwrap().0, we);
    // ProtoJson reads binary too.
    assert_eq!(dc.decode::<ProtoJson<WorkflowExecution>>(&p).unwrap().0, we);

    // Nested messages, maps and bytes in proto3 JSON.
    let nested = Payloads {
        payloads: vec![new_payload(encoding::JSON, b"1".to_vec())],
    };
    let p = dc.encode(&ProtoJson(nested.clone())).unwrap();
    assert_eq!(
        p.data,
        br#"{"payloads":[{"data":"MQ==","metadata":{"encoding":"anNvbi9wbGFpbg=="}}]}"#
    );
    assert_eq!(dc.decode::<ProtoJson<Payloads>>(&p).unwrap().0, nested);

    // Enums by name, defaults omitted: the bytes Python's converter writes for this failure.
    let f = trellis_core_proto::Failure {
        message: "m".into(),
        failure_info: Some(FailureInfo::TimeoutFailureInfo(TimeoutFailureInfo {
            timeout_type: 4,
            last_heartbeat_details: None,
        })),
        ..Default::default()
    };
    let p = dc.encode(&ProtoJson(f.clone())).unwrap();
    assert_eq!(
        p.data,
        br#"{"message":"m","timeoutFailureInfo":{"timeoutType":"TIMEOUT_TYPE_HEARTBEAT"}}"#
    );
    assert_eq!(
        dc.decode::<ProtoJson<trellis_core_proto::Failure>>(&p)
            .unwrap()
            .0,
        f
    );
}

#[test]
fn arguments_mix_protos_raw_values_and_serde_values() {
    let dc = DataConverter::default();
    let raw = new_payload("binary/custom", vec![1, 2, 3]);
    let args = dc
        .encode_args((
            Proto(WorkflowType { name: "T".into() }),
            RawValue(raw.clone()),
            "x",
        ))
        .unwrap();
    assert_eq!(args[1], raw);
    let (t, r, x): (Proto<WorkflowType>, RawValue, String) = dc.decode_args(&args).unwrap();
    assert_eq!((t.name.as_str(), r.0, x.as_str()), ("T", raw, "x"));
}

#[test]
fn mismatched_and_corrupt_proto_payloads_are_clear_errors() {
    let dc = DataConverter::default();
    let p = dc
        .encode(&Proto(WorkflowType { name: "T".into() }))
        .unwrap();
    let e = dc
        .decode::<Proto<WorkflowExecution>>(&p)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "the payload holds a temporal.api.common.v1.WorkflowType message, not a \
             temporal.api.common.v1.WorkflowExecution"
        ),
        "{e}"
    );

    let mut bad = new_payload(encoding::BINARY_PROTOBUF, vec![0xff, 0xff, 0xff]);
    bad.metadata.insert(
        "messageType".into(),
        b"temporal.api.common.v1.WorkflowType".to_vec(),
    );
    let e = dc
        .decode::<Proto<WorkflowType>>(&bad)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("invalid protobuf bytes for temporal.api.common.v1.WorkflowType"),
        "{e}"
    );

    let json = dc
        .encode(&ProtoJson(WorkflowType { name: "T".into() }))
        .unwrap();
    let e = dc
        .decode::<Proto<WorkflowType>>(&json)
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs ProtoJson<WorkflowType>"), "{e}");

    let mut bad_json = json.clone();
    bad_json.data = br#"{"name": 5}"#.to_vec();
    let e = dc
        .decode::<ProtoJson<WorkflowType>>(&bad_json)
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid proto3 JSON"), "{e}");

    let plain = dc.encode("not a proto").unwrap();
    let e = dc
        .decode::<Proto<WorkflowType>>(&plain)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("expected a binary/protobuf payload, got json/plain"),
        "{e}"
    );
}

#[test]
fn corrupt_json_wrong_and_unknown_encodings_are_clear_errors() {
    let dc = DataConverter::default();
    let e = dc
        .decode::<Order>(&new_payload(encoding::JSON, b"{\"id\":".to_vec()))
        .unwrap_err();
    assert!(matches!(e, ConversionError::Decode { .. }), "{e:?}");
    let e = e.to_string();
    assert!(e.contains("into encodings::Order"), "{e}");
    assert!(e.contains("EOF while parsing"), "{e}");

    let e = dc
        .decode::<Order>(&new_payload(encoding::PLAIN, vec![1, 2]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot decode payload (binary/plain"), "{e}");

    let e = dc
        .decode::<()>(&new_payload(encoding::NULL, vec![0]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("binary/null payload must have empty data"),
        "{e}"
    );

    let e = dc
        .decode::<Order>(&new_payload("binary/encrypted", vec![1]))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown payload encoding \"binary/encrypted\"; known encodings: binary/null, \
         binary/plain, json/protobuf, binary/protobuf, json/plain"
    );
    let e = dc
        .decode::<Order>(&Payload::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown payload encoding \"<none>\""), "{e}");
}

/// A custom encoding: values as Rust debug-ish text, for `String`s only.
#[derive(Debug)]
struct Text;

impl EncodingConverter for Text {
    fn encoding(&self) -> &str {
        "text/plain"
    }

    fn to_payload(
        &self,
        value: &dyn erased_serde::Serialize,
    ) -> Result<Option<Payload>, ConversionError> {
        // Accept strings only: serialize to JSON and look.
        let v = serde_json::to_value(value).map_err(ConversionError::encode::<str>)?;
        Ok(v.as_str()
            .map(|s| new_payload("text/plain", s.as_bytes().to_vec())))
    }

    fn from_payload<'p>(
        &self,
        payload: &'p Payload,
        visit: &mut DecodeVisit<'_, 'p>,
    ) -> Result<(), ConversionError> {
        let s = std::str::from_utf8(&payload.data)
            .map_err(|e| ConversionError::decode::<str>(payload, e))?;
        let de = serde::de::value::StrDeserializer::<serde::de::value::Error>::new(s);
        visit(&mut <dyn erased_serde::Deserializer<'_>>::erase(de))
            .map_err(|e| ConversionError::decode::<str>(payload, e))
    }
}

#[test]
fn custom_encodings_go_before_the_json_catch_all() {
    let composite = CompositePayloadConverter::standard().with_converter(Text);
    assert_eq!(
        composite.encodings(),
        [
            "binary/null",
            "binary/plain",
            "json/protobuf",
            "binary/protobuf",
            "text/plain",
            "json/plain"
        ]
    );
    let dc = DataConverter::new(composite);
    let p = dc.encode("hello").unwrap();
    assert_eq!(
        (p.encoding(), p.data.as_slice()),
        (Some("text/plain"), &b"hello"[..])
    );
    assert_eq!(dc.decode::<String>(&p).unwrap(), "hello");
    // Other values still reach json/plain.
    assert_eq!(dc.encode(&5).unwrap().encoding(), Some("json/plain"));
}

#[test]
fn composites_without_protobuf_encodings() {
    // Without json/protobuf, ProtoJson falls back to binary/protobuf, as encoding tries in order.
    let dc = DataConverter::new(
        CompositePayloadConverter::standard().without_encoding(encoding::JSON_PROTOBUF),
    );
    let p = dc
        .encode(&ProtoJson(WorkflowType { name: "T".into() }))
        .unwrap();
    assert_eq!(p.encoding(), Some("binary/protobuf"));

    // Without either, wrapping a message is an error rather than garbage JSON.
    let dc = DataConverter::new(JsonPayloadConverter);
    let e = dc
        .encode(&Proto(WorkflowType { name: "T".into() }))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("temporal.api.common.v1.WorkflowType is wrapped in Proto/ProtoJson"),
        "{e}"
    );

    // An explicit list, in the caller's order.
    let only_binary = CompositePayloadConverter::new([
        Arc::new(BinaryProtoConverter) as Arc<dyn EncodingConverter>
    ]);
    let e = only_binary.encode(&5).unwrap_err().to_string();
    assert!(
        e.contains("no payload converter accepted it (encodings tried: binary/protobuf)"),
        "{e}"
    );
}
