use trellis_core_proto::Payload;

use crate::encoding::{
    BinaryNullConverter, BinaryPlainConverter, EncodingConverter, JsonPlainConverter, decode_with,
    encode_with,
};
use crate::{ConversionError, PayloadConverter};

/// The JSON-only payload converter: `binary/null` for unit and `None`, `binary/plain` for bytes,
/// [`RawValue`](crate::RawValue) passed through untouched, and `json/plain` (compact serde JSON)
/// for everything else — the encodings every Temporal SDK reads (see
/// [`JsonPlainConverter`](crate::JsonPlainConverter) for how its JSON compares with Python's).
///
/// Decoding accepts `binary/null`, `binary/plain` and `json/plain` payloads; `json/plain` data is
/// read with `serde_json`, `binary/plain` data is offered to the target as bytes, and
/// `binary/null` as unit (so it decodes into `()`, `Option<_>` or `serde_json::Value::Null`).
///
/// It is the [`CompositePayloadConverter`](crate::CompositePayloadConverter) of those three
/// encodings; the default converter adds the two protobuf encodings.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonPayloadConverter;

const CONVERTERS: [&dyn EncodingConverter; 3] = [
    &BinaryNullConverter,
    &BinaryPlainConverter,
    &JsonPlainConverter,
];

impl PayloadConverter for JsonPayloadConverter {
    fn encode_erased(
        &self,
        value: &dyn erased_serde::Serialize,
    ) -> Result<Payload, ConversionError> {
        encode_with(CONVERTERS.iter().copied(), value)
    }

    fn decode_erased<'p>(
        &self,
        payload: &'p Payload,
        visit: &mut dyn FnMut(
            &mut dyn erased_serde::Deserializer<'p>,
        ) -> Result<(), erased_serde::Error>,
    ) -> Result<(), ConversionError> {
        decode_with(CONVERTERS.iter().copied(), payload, visit)
    }

    fn typed_fast_path(&self, _: crate::fast::Sealed) -> crate::fast::FastPath {
        crate::fast::FastPath::ALL
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PayloadConverterExt;
    use serde::{Deserialize, Serialize};
    use trellis_core_proto::PayloadExt;
    use trellis_core_proto::payload::{encoding, new_payload};

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Order {
        id: u32,
        item: String,
        note: Option<String>,
    }

    #[test]
    fn json_bytes_match_other_sdks() {
        // Python: json.dumps(obj, separators=(",", ":"), sort_keys=False)
        let p = JsonPayloadConverter
            .encode(&Order {
                id: 7,
                item: "tea".into(),
                note: None,
            })
            .unwrap();
        assert_eq!(p.encoding(), Some("json/plain"));
        assert_eq!(p.data, br#"{"id":7,"item":"tea","note":null}"#);
        let s = JsonPayloadConverter.encode("Hello, world!").unwrap();
        assert_eq!(s.data, br#""Hello, world!""#);
    }

    #[test]
    fn null_and_bytes_encodings() {
        let p = JsonPayloadConverter.encode(&()).unwrap();
        assert_eq!((p.encoding(), p.data.len()), (Some("binary/null"), 0));
        let p = JsonPayloadConverter.encode(&None::<u8>).unwrap();
        assert_eq!(p.encoding(), Some("binary/null"));
        let bytes = serde_bytes::ByteBuf::from(vec![1u8, 2, 3]);
        let p = JsonPayloadConverter.encode(&bytes).unwrap();
        assert_eq!(
            (p.encoding(), p.data.clone()),
            (Some("binary/plain"), vec![1, 2, 3])
        );
        let back: serde_bytes::ByteBuf = JsonPayloadConverter.decode(&p).unwrap();
        assert_eq!(back.into_vec(), vec![1, 2, 3]);
        let none: Option<String> = JsonPayloadConverter
            .decode(&new_payload(encoding::NULL, vec![]))
            .unwrap();
        assert_eq!(none, None);
        let unit: () = JsonPayloadConverter
            .decode(&new_payload(encoding::NULL, vec![]))
            .unwrap();
        assert_eq!(unit, ());
    }

    #[test]
    fn reads_what_python_writes() {
        // What temporalio's default converter writes for {"id": 1, "item": "x", "note": "n"}
        let p = new_payload(
            encoding::JSON,
            br#"{"id": 1, "item": "x", "note": "n"}"#.to_vec(),
        );
        let o: Order = JsonPayloadConverter.decode(&p).unwrap();
        assert_eq!(
            o,
            Order {
                id: 1,
                item: "x".into(),
                note: Some("n".into())
            }
        );
    }

    #[test]
    fn corrupt_and_unknown_payloads_name_the_cause() {
        let p = new_payload(encoding::JSON, b"{not json".to_vec());
        let e = JsonPayloadConverter
            .decode::<Order>(&p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot decode payload (json/plain"), "{e}");
        assert!(e.contains("key must be a string"), "{e}");
        let p = new_payload("binary/encrypted", vec![1, 2]);
        let e = JsonPayloadConverter
            .decode::<Order>(&p)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown payload encoding \"binary/encrypted\""),
            "{e}"
        );
        let p = new_payload(
            encoding::JSON,
            br#"{"id":1,"item":"x","note":null} trailing"#.to_vec(),
        );
        assert!(JsonPayloadConverter.decode::<Order>(&p).is_err());
    }
}
