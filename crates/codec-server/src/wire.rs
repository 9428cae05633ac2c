//! The codec-server wire format: a `temporal.api.common.v1.Payloads` message as proto3 JSON.
//!
//! ```json
//! {"payloads":[{"metadata":{"encoding":"anNvbi9wbGFpbg=="},"data":"InNlY3JldCI="}]}
//! ```
//!
//! Bytes (metadata values and `data`) are base64. Reading follows the proto3 JSON rules: standard
//! or URL-safe alphabet, padded or not; `null` or a missing field means the default (empty);
//! `external_payloads` may be spelled in camelCase or snake_case, and its 64-bit `sizeBytes` may
//! be a string or a number. Unknown fields are refused, so a misspelt `"payload"` is an error
//! rather than an empty batch. Writing uses the standard padded alphabet and camelCase, always
//! writes `metadata` and `data` (also when empty, for JavaScript readers), and writes
//! `externalPayloads` only when there are some.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::Value;
use trellis_core_proto::Payload;
use trellis_core_proto::api::common::v1::payload::ExternalPayloadDetails;

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// A request body is not a proto3-JSON `Payloads` message. The message says where and why, e.g.
/// `payloads[0].metadata.encoding: invalid base64: …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(String);

impl WireError {
    fn at(path: &str, what: impl std::fmt::Display) -> Self {
        Self(format!("{path}: {what}"))
    }

    /// The description of what is wrong.
    pub fn message(&self) -> &str {
        &self.0
    }
}

/// Reads a proto3-JSON `Payloads` message (`{"payloads": [...]}`).
pub fn payloads_from_json(body: &[u8]) -> Result<Vec<Payload>, WireError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| WireError(format!("body is not JSON: {e}")))?;
    let Value::Object(top) = value else {
        return Err(WireError(format!(
            "body must be a JSON object like {{\"payloads\": [...]}}, not {}",
            kind(&value)
        )));
    };
    let mut payloads = Vec::new();
    for (key, value) in top {
        match key.as_str() {
            "payloads" => match value {
                Value::Null => {}
                Value::Array(items) => {
                    payloads.reserve(items.len());
                    for (i, item) in items.into_iter().enumerate() {
                        payloads.push(payload_from_json(item, &format!("payloads[{i}]"))?);
                    }
                }
                other => {
                    return Err(WireError::at(
                        "payloads",
                        format!("expected an array, found {}", kind(&other)),
                    ));
                }
            },
            other => {
                return Err(WireError(format!(
                    "unknown field {other:?} in the body (expected only \"payloads\")"
                )));
            }
        }
    }
    Ok(payloads)
}

fn payload_from_json(value: Value, path: &str) -> Result<Payload, WireError> {
    let Value::Object(fields) = value else {
        return Err(WireError::at(
            path,
            format!("expected a payload object, found {}", kind(&value)),
        ));
    };
    let mut payload = Payload::default();
    for (key, value) in fields {
        match key.as_str() {
            "metadata" => match value {
                Value::Null => {}
                Value::Object(entries) => {
                    for (name, v) in entries {
                        let at = format!("{path}.metadata.{name}");
                        let bytes = match v {
                            Value::Null => Vec::new(),
                            other => bytes_from_json(&other, &at)?,
                        };
                        payload.metadata.insert(name, bytes);
                    }
                }
                other => {
                    return Err(WireError::at(
                        &format!("{path}.metadata"),
                        format!(
                            "expected an object of base64 strings, found {}",
                            kind(&other)
                        ),
                    ));
                }
            },
            "data" => {
                if !value.is_null() {
                    payload.data = bytes_from_json(&value, &format!("{path}.data"))?;
                }
            }
            "externalPayloads" | "external_payloads" => match value {
                Value::Null => {}
                Value::Array(items) => {
                    for (i, item) in items.into_iter().enumerate() {
                        let at = format!("{path}.externalPayloads[{i}]");
                        payload
                            .external_payloads
                            .push(external_from_json(item, &at)?);
                    }
                }
                other => {
                    return Err(WireError::at(
                        &format!("{path}.externalPayloads"),
                        format!("expected an array, found {}", kind(&other)),
                    ));
                }
            },
            other => {
                return Err(WireError::at(
                    path,
                    format!(
                        "unknown payload field {other:?} (expected \"metadata\", \"data\", \"externalPayloads\")"
                    ),
                ));
            }
        }
    }
    Ok(payload)
}

fn external_from_json(value: Value, path: &str) -> Result<ExternalPayloadDetails, WireError> {
    let Value::Object(fields) = value else {
        return Err(WireError::at(
            path,
            format!("expected an object, found {}", kind(&value)),
        ));
    };
    let mut details = ExternalPayloadDetails::default();
    for (key, value) in fields {
        match key.as_str() {
            "sizeBytes" | "size_bytes" => {
                let at = format!("{path}.sizeBytes");
                details.size_bytes = match &value {
                    Value::Null => 0,
                    Value::String(s) => s
                        .parse()
                        .map_err(|e| WireError::at(&at, format!("not a 64-bit integer: {e}")))?,
                    Value::Number(n) => n.as_i64().ok_or_else(|| {
                        WireError::at(&at, format!("{n} is not a 64-bit integer"))
                    })?,
                    other => {
                        return Err(WireError::at(
                            &at,
                            format!("expected an integer, found {}", kind(other)),
                        ));
                    }
                };
            }
            other => {
                return Err(WireError::at(
                    path,
                    format!("unknown field {other:?} (expected \"sizeBytes\")"),
                ));
            }
        }
    }
    Ok(details)
}

fn bytes_from_json(value: &Value, path: &str) -> Result<Vec<u8>, WireError> {
    let Value::String(text) = value else {
        return Err(WireError::at(
            path,
            format!("expected a base64 string, found {}", kind(value)),
        ));
    };
    decode_base64(text).map_err(|e| WireError::at(path, format!("invalid base64: {e}")))
}

/// Decodes base64 as proto3 JSON allows it: standard or URL-safe alphabet, padded or not.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    if text.contains(['-', '_']) {
        URL_SAFE_LENIENT.decode(text)
    } else {
        STANDARD_LENIENT.decode(text)
    }
}

/// Encodes bytes as standard, padded base64 (what proto3 JSON writers emit).
pub fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Writes a proto3-JSON `Payloads` message (`{"payloads": [...]}`): fields in protobuf order,
/// metadata keys sorted.
pub fn payloads_to_json(payloads: &[Payload]) -> Vec<u8> {
    let mut out = String::from(r#"{"payloads":["#);
    for (i, payload) in payloads.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_payload(&mut out, payload);
    }
    out.push_str("]}");
    out.into_bytes()
}

fn write_payload(out: &mut String, payload: &Payload) {
    let metadata: BTreeMap<&str, &[u8]> = payload
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    out.push_str(r#"{"metadata":{"#);
    for (i, (key, value)) in metadata.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::from(key).to_string());
        out.push_str(":\"");
        out.push_str(&encode_base64(value));
        out.push('"');
    }
    out.push_str(r#"},"data":""#);
    out.push_str(&encode_base64(&payload.data));
    out.push('"');
    if !payload.external_payloads.is_empty() {
        out.push_str(r#","externalPayloads":["#);
        for (i, details) in payload.external_payloads.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // proto3 JSON writes 64-bit integers as strings.
            out.push_str(&format!(r#"{{"sizeBytes":"{}"}}"#, details.size_bytes));
        }
        out.push(']');
    }
    out.push('}');
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_core_proto::payload::new_payload;

    #[test]
    fn reads_the_ui_shape_and_writes_it_back() {
        let body = br#"{"payloads":[{"metadata":{"encoding":"YmluYXJ5L2VuY3J5cHRlZA==","encryption-key-id":"azE="},"data":"AAEC"}]}"#;
        let ps = payloads_from_json(body).unwrap();
        assert_eq!(ps.len(), 1);
        assert_eq!(ps[0].metadata["encoding"], b"binary/encrypted");
        assert_eq!(ps[0].metadata["encryption-key-id"], b"k1");
        assert_eq!(ps[0].data, [0, 1, 2]);
        let out = String::from_utf8(payloads_to_json(&ps)).unwrap();
        assert_eq!(
            out,
            r#"{"payloads":[{"metadata":{"encoding":"YmluYXJ5L2VuY3J5cHRlZA==","encryption-key-id":"azE="},"data":"AAEC"}]}"#
        );
    }

    #[test]
    fn accepts_every_proto3_json_spelling() {
        // URL-safe and unpadded base64, nulls, snake_case, 64-bit integers as strings or numbers.
        let body = br#"{"payloads":[
            {"metadata":{"encoding":"anNvbi9wbGFpbg"},"data":"-_8","external_payloads":[{"size_bytes":"12"},{"sizeBytes":7}]},
            {"metadata":null,"data":null},
            {}
        ]}"#;
        let ps = payloads_from_json(body).unwrap();
        assert_eq!(ps[0].metadata["encoding"], b"json/plain");
        assert_eq!(ps[0].data, [0xfb, 0xff]);
        assert_eq!(
            ps[0]
                .external_payloads
                .iter()
                .map(|d| d.size_bytes)
                .collect::<Vec<_>>(),
            [12, 7]
        );
        assert_eq!(ps[1], Payload::default());
        assert_eq!(ps[2], Payload::default());
        assert!(payloads_from_json(b"{}").unwrap().is_empty());
        assert!(
            payloads_from_json(br#"{"payloads":null}"#)
                .unwrap()
                .is_empty()
        );
        let out = String::from_utf8(payloads_to_json(&ps[..1])).unwrap();
        assert!(
            out.ends_with(
                r#""data":"+/8=","externalPayloads":[{"sizeBytes":"12"},{"sizeBytes":"7"}]}]}"#
            ),
            "{out}"
        );
    }

    #[test]
    fn empty_payloads_still_write_metadata_and_data() {
        let out = payloads_to_json(&[Payload::default(), new_payload("binary/null", vec![])]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"payloads":[{"metadata":{},"data":""},{"metadata":{"encoding":"YmluYXJ5L251bGw="},"data":""}]}"#
        );
        // Keys that need escaping survive the round trip.
        let mut odd = new_payload("json/plain", b"1".to_vec());
        odd.metadata.insert("a\"b\\c\u{e9}".into(), vec![0, 255]);
        let out = payloads_to_json(std::slice::from_ref(&odd));
        assert_eq!(payloads_from_json(&out).unwrap(), [odd]);
    }

    #[test]
    fn malformed_bodies_say_where_and_why() {
        let err = |body: &str| payloads_from_json(body.as_bytes()).unwrap_err().to_string();
        assert!(err("{").starts_with("body is not JSON"), "{}", err("{"));
        assert!(err("[]").contains("must be a JSON object"));
        assert!(err(r#"{"payload":[]}"#).contains(r#"unknown field "payload""#));
        assert_eq!(
            err(r#"{"payloads":{}}"#),
            "payloads: expected an array, found an object"
        );
        assert!(
            err(r#"{"payloads":[{"data":"!!"}]}"#).starts_with("payloads[0].data: invalid base64")
        );
        assert!(
            err(r#"{"payloads":[{},{"metadata":{"encoding":5}}]}"#)
                .starts_with("payloads[1].metadata.encoding: expected a base64 string")
        );
        assert!(err(r#"{"payloads":[{"meta":{}}]}"#).contains(r#"unknown payload field "meta""#));
        assert!(
            err(r#"{"payloads":[{"externalPayloads":[{"sizeBytes":"x"}]}]}"#)
                .starts_with("payloads[0].externalPayloads[0].sizeBytes: not a 64-bit integer")
        );
    }
}
