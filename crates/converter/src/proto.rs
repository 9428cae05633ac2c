//! Protobuf messages as payloads: the [`Proto`] and [`ProtoJson`] wrappers.
//!
//! Rust has no runtime reflection, so a converter cannot tell that a value is a protobuf message
//! the way the Python or Go SDK can. Instead, wrap the message: the wrapper serializes through
//! any Trellis payload converter as a reserved "magic" newtype carrying the message's full proto
//! name and its encoded forms, and the `binary/protobuf` / `json/protobuf` encoding converters
//! recognise it.
//!
//! | wrapper | needs | writes (standard converter) | reads |
//! | --- | --- | --- | --- |
//! | [`Proto<M>`] | `M: prost::Message + prost::Name` | `binary/protobuf` | `binary/protobuf` |
//! | [`ProtoJson<M>`] | also `M: Serialize + Deserialize` in the proto3 JSON mapping | `json/protobuf` | `json/protobuf`, `binary/protobuf` |
//!
//! Both set the `messageType` metadata to the message's fully-qualified proto name
//! ([`prost::Name::full_name`], e.g. `temporal.api.common.v1.WorkflowExecution`), as the Python
//! and Go SDKs do, and refuse to decode a payload whose `messageType` names another message.
//!
//! `json/protobuf` data is written exactly as the Python SDK writes it:
//! `json.dumps(MessageToDict(msg), separators=(",", ":"), sort_keys=True)` — compact, object keys
//! sorted, non-ASCII characters escaped as `\uXXXX`. The JSON itself comes from `M`'s serde
//! impls, so they must follow the proto3 JSON mapping (lowerCamelCase names, 64-bit integers as
//! strings, enums by name, default values omitted): the impls [`pbjson-build`] generates do, and
//! so do those of the Temporal API's `common`, `failure` and `enums` packages in
//! `trellis_core_proto`. Plain `#[derive(Serialize)]` on a prost struct does *not*: use
//! [`Proto`] for such messages.
//!
//! Since a Python client writes `json/protobuf` by default, a Rust worker that receives a
//! message from Python should take a [`ProtoJson<M>`]. A wrapper is only recognised as the whole
//! value (an argument, a result); nested inside another serde value it is not a message.
//!
//! ```
//! use trellis_converter::{DataConverter, ProtoJson};
//! use trellis_core_proto::api::common::v1::WorkflowExecution;
//!
//! let dc = DataConverter::default();
//! let we = WorkflowExecution { workflow_id: "wf-1".into(), run_id: "r".into() };
//! let p = dc.encode(&ProtoJson(we.clone())).unwrap();
//! assert_eq!(p.metadata["encoding"], b"json/protobuf");
//! assert_eq!(p.metadata["messageType"], b"temporal.api.common.v1.WorkflowExecution");
//! assert_eq!(p.data, br#"{"runId":"r","workflowId":"wf-1"}"#);
//! let back: ProtoJson<WorkflowExecution> = dc.decode(&p).unwrap();
//! assert_eq!(back.0, we);
//! ```
//!
//! [`pbjson-build`]: https://docs.rs/pbjson-build

use std::collections::HashMap;

use prost::{Message, Name};
use serde::de::{DeserializeOwned, Error as _};
use serde::ser::Error as _;
use trellis_core_proto::payload::{METADATA_ENCODING, METADATA_MESSAGE_TYPE, encoding};
use trellis_core_proto::{Payload, PayloadExt};

use crate::magic::{BytesRef, PackedVisitor, pack_payload, unpack_payload};

pub(crate) const PROTO_MAGIC: &str = "$trellis::Proto";
/// Metadata key carrying the JSON form inside a packed [`ProtoValue`]; never written to a real
/// payload.
const PACKED_JSON: &str = "$json";

/// A protobuf message as the payload converters see it.
#[derive(Debug, Clone)]
pub(crate) struct ProtoValue {
    pub(crate) message_type: String,
    pub(crate) binary: Vec<u8>,
    pub(crate) json: Option<Vec<u8>>,
}

impl ProtoValue {
    fn pack(&self) -> Vec<u8> {
        let mut metadata = HashMap::with_capacity(2);
        metadata.insert(
            METADATA_MESSAGE_TYPE.to_owned(),
            self.message_type.as_bytes().to_vec(),
        );
        if let Some(json) = &self.json {
            metadata.insert(PACKED_JSON.to_owned(), json.clone());
        }
        pack_payload(&Payload {
            metadata,
            data: self.binary.clone(),
            external_payloads: Vec::new(),
        })
    }

    pub(crate) fn unpack(bytes: &[u8]) -> Option<Self> {
        let mut p = unpack_payload(bytes)?;
        Some(Self {
            message_type: p.metadata_str(METADATA_MESSAGE_TYPE)?.to_owned(),
            json: p.metadata.remove(PACKED_JSON),
            binary: p.data,
        })
    }

    /// The payload for `encoding` (`binary/protobuf` with the binary form, `json/protobuf` with
    /// the JSON form).
    pub(crate) fn payload(&self, encoding: &str, data: Vec<u8>) -> Payload {
        let mut metadata = HashMap::with_capacity(2);
        metadata.insert(METADATA_ENCODING.to_owned(), encoding.as_bytes().to_vec());
        metadata.insert(
            METADATA_MESSAGE_TYPE.to_owned(),
            self.message_type.as_bytes().to_vec(),
        );
        Payload {
            metadata,
            data,
            external_payloads: Vec::new(),
        }
    }
}

/// A protobuf message encoded as `binary/protobuf` (the wire bytes), with `messageType` metadata.
/// See the [module docs](crate::proto).
///
/// ```
/// use trellis_converter::{DataConverter, Proto};
/// use trellis_core_proto::api::common::v1::WorkflowType;
///
/// let dc = DataConverter::default();
/// let p = dc.encode(&Proto(WorkflowType { name: "Greet".into() })).unwrap();
/// assert_eq!(p.metadata["encoding"], b"binary/protobuf");
/// let back: Proto<WorkflowType> = dc.decode(&p).unwrap();
/// assert_eq!(back.0.name, "Greet");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Proto<M>(pub M);

/// A protobuf message encoded as `json/protobuf` (proto3 JSON, written as the Python SDK writes
/// it) when the converter has a `json/protobuf` encoding, else as `binary/protobuf`; decodes from
/// either. `M`'s serde impls must follow the proto3 JSON mapping. See the
/// [module docs](crate::proto).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProtoJson<M>(pub M);

macro_rules! wrapper_common {
    ($w:ident) => {
        impl<M> $w<M> {
            /// The message.
            pub fn into_inner(self) -> M {
                self.0
            }
        }

        impl<M> From<M> for $w<M> {
            fn from(m: M) -> Self {
                Self(m)
            }
        }

        impl<M> std::ops::Deref for $w<M> {
            type Target = M;
            fn deref(&self) -> &M {
                &self.0
            }
        }

        impl<M> std::ops::DerefMut for $w<M> {
            fn deref_mut(&mut self) -> &mut M {
                &mut self.0
            }
        }
    };
}
wrapper_common!(Proto);
wrapper_common!(ProtoJson);

impl<M: Message + Name> serde::Serialize for Proto<M> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let v = ProtoValue {
            message_type: M::full_name(),
            binary: self.0.encode_to_vec(),
            json: None,
        };
        serializer.serialize_newtype_struct(PROTO_MAGIC, &BytesRef(&v.pack()))
    }
}

impl<M: Message + Name + serde::Serialize> serde::Serialize for ProtoJson<M> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let json = proto_json_bytes(&self.0).map_err(S::Error::custom)?;
        let v = ProtoValue {
            message_type: M::full_name(),
            binary: self.0.encode_to_vec(),
            json: Some(json),
        };
        serializer.serialize_newtype_struct(PROTO_MAGIC, &BytesRef(&v.pack()))
    }
}

fn packed<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Payload, D::Error> {
    d.deserialize_newtype_struct(
        PROTO_MAGIC,
        PackedVisitor {
            expecting: "a protobuf payload (binary/protobuf or json/protobuf) from a Trellis \
                        payload converter",
        },
    )
}

fn check_type<M: Name>(p: &Payload) -> Result<(), String> {
    match p.metadata_str(METADATA_MESSAGE_TYPE) {
        Some(t) if t != M::full_name() => Err(format!(
            "the payload holds a {t} message, not a {}",
            M::full_name()
        )),
        _ => Ok(()),
    }
}

fn from_binary<M: Message + Name + Default>(p: &Payload) -> Result<M, String> {
    check_type::<M>(p)?;
    M::decode(p.data.as_slice())
        .map_err(|e| format!("invalid protobuf bytes for {}: {e}", M::full_name()))
}

impl<'de, M: Message + Name + Default> serde::Deserialize<'de> for Proto<M> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let p = packed(d)?;
        match p.encoding() {
            Some(encoding::BINARY_PROTOBUF) => from_binary(&p).map(Proto),
            Some(encoding::JSON_PROTOBUF) => Err(format!(
                "a json/protobuf payload needs ProtoJson<{}> (with proto3-JSON serde impls), \
                 not Proto",
                M::NAME
            )),
            other => Err(format!(
                "expected a binary/protobuf payload, got {}",
                other.unwrap_or("<no encoding>")
            )),
        }
        .map_err(D::Error::custom)
    }
}

impl<'de, M: Message + Name + Default + DeserializeOwned> serde::Deserialize<'de> for ProtoJson<M> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let p = packed(d)?;
        match p.encoding() {
            Some(encoding::BINARY_PROTOBUF) => from_binary(&p).map(ProtoJson),
            Some(encoding::JSON_PROTOBUF) => check_type::<M>(&p).and_then(|()| {
                serde_json::from_slice(&p.data)
                    .map(ProtoJson)
                    .map_err(|e| format!("invalid proto3 JSON for {}: {e}", M::full_name()))
            }),
            other => Err(format!(
                "expected a json/protobuf or binary/protobuf payload, got {}",
                other.unwrap_or("<no encoding>")
            )),
        }
        .map_err(D::Error::custom)
    }
}

/// The proto3 JSON of `message` (through its serde impls) as the Python SDK writes it: compact,
/// keys sorted, non-ASCII escaped.
pub fn proto_json_bytes<M: serde::Serialize + ?Sized>(
    message: &M,
) -> Result<Vec<u8>, serde_json::Error> {
    let value = serde_json::to_value(message)?;
    let mut out = Vec::with_capacity(64);
    write_python_json(&value, &mut out);
    Ok(out)
}

/// Writes `value` as Python's `json.dumps(value, separators=(",", ":"), sort_keys=True)` does.
pub(crate) fn write_python_json(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_ascii_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_python_json(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            // Python sorts `str` keys by code point, which is UTF-8 byte order.
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_ascii_string(k, out);
                out.push(b':');
                write_python_json(v, out);
            }
            out.push(b'}');
        }
    }
}

fn write_ascii_string(s: &str, out: &mut Vec<u8>) {
    use std::io::Write as _;
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            c if !(' '..='~').contains(&c) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    // Writing to a Vec cannot fail.
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c as u8),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_json_escapes_and_sorts() {
        let v = serde_json::json!({"b": "h\u{e9}llo \u{2603} \u{1F600}", "a": [1, 2.5, null, true], "\u{7f}": "\n\u{1}"});
        let mut out = Vec::new();
        write_python_json(&v, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":[1,2.5,null,true],"b":"h\u00e9llo \u2603 \ud83d\ude00","\u007f":"\n\u0001"}"#
        );
    }
}
