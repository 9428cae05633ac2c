//! Building and reading [`Payload`]s.
//!
//! A payload is bytes plus metadata; the `encoding` metadata key names how the bytes were
//! written. The encodings below are the ones every Temporal SDK understands.

use std::collections::HashMap;

use crate::Payload;

/// Metadata key naming a payload's encoding.
pub const METADATA_ENCODING: &str = "encoding";
/// Metadata key naming the protobuf message type of a `json/protobuf` or `binary/protobuf`
/// payload.
pub const METADATA_MESSAGE_TYPE: &str = "messageType";

/// The encoding names the Temporal SDKs share, in the order their default converters try them.
pub mod encoding {
    /// A null / `None` / unit value; empty data.
    pub const NULL: &str = "binary/null";
    /// Raw bytes, passed through unchanged.
    pub const PLAIN: &str = "binary/plain";
    /// A protobuf message written as proto-JSON.
    pub const JSON_PROTOBUF: &str = "json/protobuf";
    /// A protobuf message in the binary wire format.
    pub const BINARY_PROTOBUF: &str = "binary/protobuf";
    /// Any other value as UTF-8 JSON.
    pub const JSON: &str = "json/plain";
}

/// Builds a payload from its encoding and data.
pub fn new_payload(encoding: &str, data: Vec<u8>) -> Payload {
    let mut metadata = HashMap::with_capacity(1);
    metadata.insert(METADATA_ENCODING.to_owned(), encoding.as_bytes().to_vec());
    Payload {
        metadata,
        data,
        external_payloads: Vec::new(),
    }
}

/// Reading helpers on [`Payload`].
pub trait PayloadExt {
    /// The `encoding` metadata as text, if present and UTF-8.
    fn encoding(&self) -> Option<&str>;
    /// Any metadata value as text, if present and UTF-8.
    fn metadata_str(&self, key: &str) -> Option<&str>;
    /// A short human description for error messages and logs: the encoding and size, plus the
    /// data itself when it is short printable text.
    fn describe(&self) -> String;
}

impl PayloadExt for Payload {
    fn encoding(&self) -> Option<&str> {
        self.metadata_str(METADATA_ENCODING)
    }

    fn metadata_str(&self, key: &str) -> Option<&str> {
        self.metadata
            .get(key)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    fn describe(&self) -> String {
        let enc = self.encoding().unwrap_or("<no encoding>");
        match std::str::from_utf8(&self.data) {
            Ok(text) if text.len() <= 80 => format!("{enc} {text:?}"),
            _ => format!("{enc} ({} bytes)", self.data.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_payload_sets_encoding() {
        let p = new_payload(encoding::JSON, b"\"hi\"".to_vec());
        assert_eq!(p.encoding(), Some("json/plain"));
        assert_eq!(p.describe(), "json/plain \"\\\"hi\\\"\"");
    }

    #[test]
    fn describe_large_binary() {
        let p = new_payload(encoding::PLAIN, vec![0xff; 100]);
        assert_eq!(p.describe(), "binary/plain (100 bytes)");
    }
}
