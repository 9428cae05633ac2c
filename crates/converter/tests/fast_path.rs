//! The typed fast path of the standard converters writes the same bytes, decodes the same
//! values and reports the same errors as the type-erased path, and steps aside when a custom
//! encoding could claim a value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use trellis_converter::{
    CompositePayloadConverter, ConversionError, DataConverter, DecodeVisit, EncodingConverter,
    JsonPayloadConverter, Payload, PayloadConverter, PayloadConverterExt, Proto, ProtoJson,
    RawValue,
};
use trellis_core_proto::PayloadExt;
use trellis_core_proto::api::common::v1::WorkflowType;
use trellis_core_proto::payload::{encoding, new_payload};

/// The standard composite behind a converter that only forwards the erased methods: it takes
/// the type-erased path for everything, which is what the fast path must match.
#[derive(Debug)]
struct Erased(CompositePayloadConverter);

impl PayloadConverter for Erased {
    fn encode_erased(
        &self,
        value: &dyn erased_serde::Serialize,
    ) -> Result<Payload, ConversionError> {
        self.0.encode_erased(value)
    }

    fn decode_erased<'p>(
        &self,
        payload: &'p Payload,
        visit: &mut dyn FnMut(
            &mut dyn erased_serde::Deserializer<'p>,
        ) -> Result<(), erased_serde::Error>,
    ) -> Result<(), ConversionError> {
        self.0.decode_erased(payload, visit)
    }
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Item {
    price: f64,
    qty: i64,
    sku: String,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Order {
    active: bool,
    attrs: BTreeMap<String, String>,
    customer: String,
    items: Vec<Item>,
    note: Option<String>,
}

fn order() -> Order {
    Order {
        active: true,
        attrs: BTreeMap::from([("k\u{e9}y".into(), "v\"q\\".into())]),
        customer: "Ada \u{1F600}".into(),
        items: vec![Item {
            price: 9.75,
            qty: -3,
            sku: "SKU-1".into(),
        }],
        note: None,
    }
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Shape {
    Unit,
    Circle(f64),
    Rect { w: u32, h: u32 },
}

#[test]
fn encodes_the_same_bytes_as_the_erased_path() {
    let fast = DataConverter::default();
    let erased = Erased(CompositePayloadConverter::standard());
    macro_rules! same {
        ($($v:expr),* $(,)?) => {$(
            let a = fast.encode(&$v).unwrap();
            let b = erased.encode(&$v).unwrap();
            assert_eq!(a, b, "{}", stringify!($v));
            assert_eq!(JsonPayloadConverter.encode(&$v).unwrap(), b, "{}", stringify!($v));
        )*};
    }
    same!(
        (),
        None::<Order>,
        Some(order()),
        order(),
        vec![order(), order()],
        "text",
        String::from("t\u{e9}xt"),
        42u64,
        -1.5f64,
        true,
        'c',
        (1, "two", 3.5),
        Shape::Unit,
        Shape::Circle(1.0),
        Shape::Rect { w: 1, h: 2 },
        serde_bytes::ByteBuf::from(vec![0u8, 1, 255]),
        serde_json::json!({"z": 1, "a": [null, {"b": false}]}),
        serde_json::Value::Null,
        BTreeMap::from([("k", 1)]),
        RawValue(new_payload("binary/custom", vec![9])),
    );
    // Protobuf wrappers go to their encodings on both paths.
    let wt = WorkflowType { name: "T".into() };
    assert_eq!(
        fast.encode(&Proto(wt.clone())).unwrap(),
        erased.encode(&Proto(wt.clone())).unwrap()
    );
    assert_eq!(
        fast.encode(&ProtoJson(wt.clone())).unwrap(),
        erased.encode(&ProtoJson(wt)).unwrap()
    );
    // Encoding errors read the same.
    let bad = BTreeMap::from([((1, 2), "tuple keys are not JSON keys")]);
    assert_eq!(
        fast.encode(&bad).unwrap_err().to_string(),
        erased.encode(&bad).unwrap_err().to_string()
    );
}

fn json(text: &str) -> Payload {
    new_payload(encoding::JSON, text.as_bytes().to_vec())
}

#[test]
fn decodes_the_same_values_and_errors_as_the_erased_path() {
    let fast = DataConverter::default();
    let erased = Erased(CompositePayloadConverter::standard());
    let p = fast.encode(&order()).unwrap();
    assert_eq!(fast.decode::<Order>(&p).unwrap(), order());
    macro_rules! same {
        ($t:ty: $($p:expr),* $(,)?) => {$(
            let p = $p;
            let a = fast.decode::<$t>(&p).map_err(|e| e.to_string());
            let b = erased.decode::<$t>(&p).map_err(|e| e.to_string());
            assert_eq!(a, b, "{} from {}", stringify!($t), p.describe());
        )*};
    }
    same!(Order: p.clone(), json("{not json"), json(r#"{"active":true}"#),
        json(r#"{"active":true,"attrs":{},"customer":"c","items":[],"note":null} trailing"#),
        json(r#"{"active":1}"#), new_payload(encoding::NULL, vec![]),
        new_payload("binary/encrypted", vec![1]));
    same!(Option<Order>: p.clone(), new_payload(encoding::NULL, vec![]),
        new_payload(encoding::NULL, vec![1]), json("null"));
    same!((): new_payload(encoding::NULL, vec![]), json("null"), json("1"));
    same!(String: json(r#""h\u00e9""#), json(r#""unterminated"#), json("12"),
        new_payload(encoding::PLAIN, b"raw".to_vec()));
    same!(Shape: json(r#""Unit""#), json(r#"{"Circle":2.5}"#), json(r#"{"Rect":{"w":1,"h":2}}"#),
        json(r#""Triangle""#));
    same!(serde_bytes::ByteBuf: new_payload(encoding::PLAIN, vec![1, 2]), json("[1,2]"));
    same!(serde_json::Value: json(r#"{"a":[1,2.5,"x"]}"#), new_payload(encoding::NULL, vec![]));
    same!(RawValue: new_payload("binary/custom", vec![7]), json("1"));
    let wt = WorkflowType { name: "T".into() };
    same!(ProtoJson<WorkflowType>: fast.encode(&ProtoJson(wt.clone())).unwrap(),
        fast.encode(&Proto(wt.clone())).unwrap(), json(r#"{"name":"T"}"#));
    same!(Proto<WorkflowType>: fast.encode(&Proto(wt)).unwrap(), json("{}"));
}

#[test]
fn argument_lists_decode_the_same_on_both_paths() {
    let fast = DataConverter::default();
    let erased = DataConverter::new(Erased(CompositePayloadConverter::standard()));
    let args = fast.encode_args(("a", 2u32, order(), ())).unwrap();
    type Args = (String, u32, Order, Option<u8>);
    assert_eq!(
        fast.decode_args::<Args>(&args).unwrap(),
        erased.decode_args::<Args>(&args).unwrap()
    );
    let mixed = vec![
        json("1"),
        new_payload("binary/custom", vec![1]),
        json("\"x\""),
    ];
    assert_eq!(
        fast.decode_args::<(u8, RawValue, String)>(&mixed).unwrap(),
        erased
            .decode_args::<(u8, RawValue, String)>(&mixed)
            .unwrap()
    );
    let wrong = vec![json("1"), json("{")];
    assert_eq!(
        fast.decode_args::<(u8, u8)>(&wrong)
            .unwrap_err()
            .to_string(),
        erased
            .decode_args::<(u8, u8)>(&wrong)
            .unwrap_err()
            .to_string()
    );
    assert_eq!(
        fast.decode_args::<Option<u8>>(&[]).unwrap(),
        erased.decode_args::<Option<u8>>(&[]).unwrap()
    );
}

/// Takes every value, as `json/plain`, but writes it differently: a composite that puts it
/// first (or in place of the standard `json/plain`) must not take the fast path.
#[derive(Debug)]
struct LoudJson;

impl EncodingConverter for LoudJson {
    fn encoding(&self) -> &str {
        "json/plain"
    }

    fn to_payload(
        &self,
        value: &dyn erased_serde::Serialize,
    ) -> Result<Option<Payload>, ConversionError> {
        let v = serde_json::to_value(value).map_err(ConversionError::encode::<str>)?;
        Ok(Some(new_payload(
            "json/plain",
            serde_json::to_vec_pretty(&v).unwrap(),
        )))
    }

    fn from_payload<'p>(
        &self,
        payload: &'p Payload,
        visit: &mut DecodeVisit<'_, 'p>,
    ) -> Result<(), ConversionError> {
        // Reads "loud" numbers: every payload decodes as the number 7.
        let _ = payload;
        let de = serde::de::value::U8Deserializer::<serde::de::value::Error>::new(7);
        visit(&mut <dyn erased_serde::Deserializer<'_>>::erase(de))
            .map_err(|e| ConversionError::decode::<u8>(payload, e))
    }
}

/// Takes unit values as `x/unit`.
#[derive(Debug)]
struct CustomUnit;

impl EncodingConverter for CustomUnit {
    fn encoding(&self) -> &str {
        "x/unit"
    }

    fn to_payload(
        &self,
        value: &dyn erased_serde::Serialize,
    ) -> Result<Option<Payload>, ConversionError> {
        let v = serde_json::to_value(value).map_err(ConversionError::encode::<str>)?;
        Ok(v.is_null().then(|| new_payload("x/unit", vec![])))
    }

    fn from_payload<'p>(
        &self,
        _payload: &'p Payload,
        visit: &mut DecodeVisit<'_, 'p>,
    ) -> Result<(), ConversionError> {
        let de = serde::de::value::UnitDeserializer::<serde::de::value::Error>::new();
        visit(&mut <dyn erased_serde::Deserializer<'_>>::erase(de)).map_err(|e| {
            ConversionError::Encode {
                type_name: "unit",
                cause: e.to_string(),
            }
        })
    }
}

#[test]
fn custom_encodings_turn_the_fast_path_off_where_they_could_apply() {
    // Replacing json/plain: both directions use the custom converter.
    let dc = DataConverter::new(CompositePayloadConverter::standard().with_converter(LoudJson));
    let p = dc.encode(&[1, 2]).unwrap();
    assert_eq!(p.data, b"[\n  1,\n  2\n]");
    assert_eq!(dc.decode::<u8>(&json("1")).unwrap(), 7);
    // Unit and bytes still take the standard encodings (they come before json/plain).
    assert_eq!(dc.encode(&()).unwrap().encoding(), Some("binary/null"));

    // A custom converter put before binary/null claims unit values; JSON values still take
    // the standard json/plain.
    let dc = DataConverter::new(CompositePayloadConverter::new(
        std::iter::once(std::sync::Arc::new(CustomUnit) as std::sync::Arc<dyn EncodingConverter>)
            .chain(CompositePayloadConverter::standard_converters()),
    ));
    assert_eq!(dc.encode(&()).unwrap().encoding(), Some("x/unit"));
    assert_eq!(dc.encode(&None::<u8>).unwrap().encoding(), Some("x/unit"));
    assert_eq!(dc.encode(&3).unwrap().data, b"3");
    assert_eq!(dc.decode::<u8>(&json("3")).unwrap(), 3);

    // Without json/plain at all, a plain value is an error on every path.
    let dc =
        DataConverter::new(CompositePayloadConverter::standard().without_encoding(encoding::JSON));
    let e = dc.encode(&order()).unwrap_err().to_string();
    assert!(e.contains("no payload converter accepted it"), "{e}");
    let e = dc.decode::<u8>(&json("3")).unwrap_err().to_string();
    assert!(e.contains("unknown payload encoding \"json/plain\""), "{e}");
}
