//! [`ZstdCodec`]: Zstandard compression of payloads.

use std::io::Read as _;

use prost::Message as _;
use trellis_core_proto::payload::new_payload;
use trellis_core_proto::{Payload, PayloadExt};

use crate::{CodecError, CodecFuture, PayloadCodec};

/// The `encoding` of a payload compressed by [`ZstdCodec`].
pub const ZSTD_ENCODING: &str = "binary/zstd";

/// Compresses payloads with Zstandard.
///
/// Format (the same shape as the Go SDK's zlib codec, `binary/zlib`): a compressed payload has
/// metadata `encoding: binary/zstd` and no other key; its data is one zstd frame holding the
/// protobuf encoding of the original `Payload` (metadata and data), so the original metadata is
/// compressed and restored too.
///
/// A payload is left unchanged when its protobuf encoding is smaller than
/// [`min_size`](Self::with_min_size) (default 256 bytes), or when compressing does not make it
/// smaller. Decoding leaves every payload without `encoding: binary/zstd` unchanged, and refuses
/// to inflate one beyond [`max_decoded_size`](Self::with_max_decoded_size) (default 256 MiB).
#[derive(Debug, Clone)]
pub struct ZstdCodec {
    level: i32,
    min_size: usize,
    max_decoded_size: usize,
}

impl Default for ZstdCodec {
    fn default() -> Self {
        Self {
            level: 3,
            min_size: 256,
            max_decoded_size: 256 << 20,
        }
    }
}

impl ZstdCodec {
    /// A codec with level 3, a 256-byte threshold and a 256 MiB decode limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// The zstd compression level (1–22; negative levels are faster still).
    pub fn with_level(mut self, level: i32) -> Self {
        self.level = level;
        self
    }

    /// Payloads whose protobuf encoding is smaller than this many bytes are not compressed.
    pub fn with_min_size(mut self, bytes: usize) -> Self {
        self.min_size = bytes;
        self
    }

    /// Decoding fails rather than inflate one payload beyond this many bytes.
    pub fn with_max_decoded_size(mut self, bytes: usize) -> Self {
        self.max_decoded_size = bytes;
        self
    }

    /// Compresses one payload (or returns it unchanged, see the type docs).
    pub fn encode_one(&self, payload: Payload) -> Result<Payload, CodecError> {
        let raw = payload.encode_to_vec();
        if raw.len() < self.min_size {
            return Ok(payload);
        }
        let compressed =
            zstd::bulk::compress(&raw, self.level).map_err(|e| CodecError::Encode {
                codec: "zstd",
                reason: e.to_string(),
            })?;
        if compressed.len() >= raw.len() {
            return Ok(payload);
        }
        Ok(new_payload(ZSTD_ENCODING, compressed))
    }

    /// Decompresses one payload; payloads of other encodings come back unchanged.
    pub fn decode_one(&self, payload: Payload) -> Result<Payload, CodecError> {
        if payload.encoding() != Some(ZSTD_ENCODING) {
            return Ok(payload);
        }
        let corrupt = |reason: String| CodecError::Corrupt {
            codec: "zstd",
            reason,
        };
        let mut raw = Vec::new();
        zstd::stream::read::Decoder::new(payload.data.as_slice())
            .and_then(|d| {
                d.take(self.max_decoded_size as u64 + 1)
                    .read_to_end(&mut raw)
            })
            .map_err(|e| corrupt(format!("invalid zstd data: {e}")))?;
        if raw.len() > self.max_decoded_size {
            return Err(corrupt(format!(
                "decompresses to more than the {}-byte limit",
                self.max_decoded_size
            )));
        }
        Payload::decode(raw.as_slice())
            .map_err(|e| corrupt(format!("decompressed data is not a payload: {e}")))
    }
}

impl PayloadCodec for ZstdCodec {
    fn encode(&self, payloads: Vec<Payload>) -> CodecFuture<'_> {
        let out = payloads.into_iter().map(|p| self.encode_one(p)).collect();
        Box::pin(std::future::ready(out))
    }

    fn decode(&self, payloads: Vec<Payload>) -> CodecFuture<'_> {
        let out = payloads.into_iter().map(|p| self.decode_one(p)).collect();
        Box::pin(std::future::ready(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_core_proto::payload::encoding;

    #[test]
    fn compresses_large_payloads_and_restores_metadata() {
        let codec = ZstdCodec::new();
        let mut p = new_payload(encoding::JSON, vec![b'a'; 10_000]);
        p.metadata.insert("messageType".into(), b"x.Y".to_vec());
        let enc = codec.encode_one(p.clone()).unwrap();
        assert_eq!(enc.encoding(), Some(ZSTD_ENCODING));
        assert_eq!(enc.metadata.len(), 1);
        assert!(enc.data.len() < 200, "{}", enc.data.len());
        assert_eq!(codec.decode_one(enc).unwrap(), p);
    }

    #[test]
    fn small_and_incompressible_payloads_pass_through() {
        let codec = ZstdCodec::new();
        let small = new_payload(encoding::JSON, b"\"hi\"".to_vec());
        assert_eq!(codec.encode_one(small.clone()).unwrap(), small);
        let mut x = 0x1234_5678u32;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let noisy = new_payload(encoding::PLAIN, noise);
        assert_eq!(codec.encode_one(noisy.clone()).unwrap(), noisy);
        assert_eq!(codec.decode_one(small.clone()).unwrap(), small);
    }

    #[test]
    fn corrupt_and_oversized_data_are_errors() {
        let codec = ZstdCodec::new();
        let bad = new_payload(ZSTD_ENCODING, b"not zstd at all".to_vec());
        let e = codec.decode_one(bad).unwrap_err().to_string();
        assert!(
            e.starts_with("zstd: corrupt payload: invalid zstd data"),
            "{e}"
        );
        let big = new_payload(encoding::PLAIN, vec![0; 100_000]);
        let enc = codec.encode_one(big).unwrap();
        let mut truncated = enc.clone();
        truncated.data.truncate(enc.data.len() / 2);
        assert!(codec.decode_one(truncated).is_err());
        let e = codec
            .clone()
            .with_max_decoded_size(1000)
            .decode_one(enc)
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than the 1000-byte limit"), "{e}");
    }
}
