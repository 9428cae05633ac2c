//! [`AesGcmCodec`]: AES-256-GCM encryption of payloads with key rotation.

use std::collections::BTreeMap;
use std::sync::Arc;

use prost::Message as _;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use trellis_core_proto::payload::new_payload;
use trellis_core_proto::{Payload, PayloadExt};

use crate::{CodecError, CodecFuture, PayloadCodec};

/// The `encoding` of a payload encrypted by [`AesGcmCodec`].
pub const ENCRYPTED_ENCODING: &str = "binary/encrypted";
/// The metadata key naming the key an encrypted payload was encrypted with.
pub const METADATA_ENCRYPTION_KEY_ID: &str = "encryption-key-id";

/// The size of the GCM authentication tag appended to the ciphertext.
const TAG_LEN: usize = 16;

/// Encrypts payloads with AES-256-GCM, in the format of Temporal's encryption samples for Go,
/// TypeScript and Python, so their codecs and codec servers read what Trellis writes and the
/// other way round:
///
/// - metadata `encoding: binary/encrypted` and `encryption-key-id: <key id>`, nothing else;
/// - data: a random 12-byte nonce, then the AES-256-GCM ciphertext and 16-byte tag of the
///   protobuf encoding of the original `Payload` (metadata and data); no associated data.
///
/// Key rotation: payloads are encrypted with the *current* key; any key added with
/// [`with_decryption_key`](Self::with_decryption_key) (and the current one) decrypts. Decoding
/// leaves payloads that are not `binary/encrypted` unchanged.
///
/// ```
/// use trellis_converter::{AesGcmCodec, DataConverter};
///
/// let codec = AesGcmCodec::new("key-2025", [7u8; 32]).with_decryption_key("key-2024", [6u8; 32]);
/// let dc = DataConverter::default().with_codec(codec);
/// ```
#[derive(Clone)]
pub struct AesGcmCodec {
    current: String,
    keys: Arc<BTreeMap<String, LessSafeKey>>,
    rng: SystemRandom,
}

impl std::fmt::Debug for AesGcmCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AesGcmCodec")
            .field("current_key_id", &self.current)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn aes_key(key: &[u8; 32]) -> LessSafeKey {
    // AES-256 takes any 32-byte key, so this cannot fail.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte AES-256 key"))
}

impl AesGcmCodec {
    /// A codec that encrypts with `key` (32 bytes), naming it `key_id` in the payload metadata.
    pub fn new(key_id: impl Into<String>, key: [u8; 32]) -> Self {
        let current = key_id.into();
        let mut keys = BTreeMap::new();
        keys.insert(current.clone(), aes_key(&key));
        Self {
            current,
            keys: Arc::new(keys),
            rng: SystemRandom::new(),
        }
    }

    /// Like [`new`](Self::new) with the key as a slice; fails unless it is 32 bytes long.
    pub fn from_slice(key_id: impl Into<String>, key: &[u8]) -> Result<Self, CodecError> {
        let key_id = key_id.into();
        let key: [u8; 32] = key.try_into().map_err(|_| CodecError::Encode {
            codec: "aes-256-gcm",
            reason: format!(
                "key {key_id:?} is {} bytes long; AES-256 needs 32",
                key.len()
            ),
        })?;
        Ok(Self::new(key_id, key))
    }

    /// Adds a key that decrypts payloads naming `key_id` (e.g. a retired key after rotation).
    /// Encryption keeps using the current key.
    pub fn with_decryption_key(mut self, key_id: impl Into<String>, key: [u8; 32]) -> Self {
        Arc::make_mut(&mut self.keys).insert(key_id.into(), aes_key(&key));
        self
    }

    /// The id of the key new payloads are encrypted with.
    pub fn key_id(&self) -> &str {
        &self.current
    }

    /// Encrypts one payload with the current key.
    pub fn encrypt(&self, payload: &Payload) -> Result<Payload, CodecError> {
        let key = &self.keys[&self.current];
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| CodecError::Encode {
            codec: "aes-256-gcm",
            reason: "the system random generator failed".into(),
        })?;
        let mut data = Vec::with_capacity(NONCE_LEN + payload.encoded_len() + TAG_LEN);
        data.extend_from_slice(&nonce);
        let mut sealed = payload.encode_to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::empty(),
            &mut sealed,
        )
        .map_err(|_| CodecError::Encode {
            codec: "aes-256-gcm",
            reason: "the payload is too large for one AES-GCM message".into(),
        })?;
        data.extend_from_slice(&sealed);
        let mut out = new_payload(ENCRYPTED_ENCODING, data);
        out.metadata.insert(
            METADATA_ENCRYPTION_KEY_ID.to_owned(),
            self.current.as_bytes().to_vec(),
        );
        Ok(out)
    }

    /// Decrypts one payload with the key it names; payloads that are not `binary/encrypted` come
    /// back unchanged.
    pub fn decrypt(&self, payload: Payload) -> Result<Payload, CodecError> {
        if payload.encoding() != Some(ENCRYPTED_ENCODING) {
            return Ok(payload);
        }
        let key_id = match payload.metadata.get(METADATA_ENCRYPTION_KEY_ID) {
            None => return Err(CodecError::MissingKeyId),
            Some(id) => String::from_utf8_lossy(id).into_owned(),
        };
        let Some(key) = self.keys.get(&key_id) else {
            return Err(CodecError::UnknownKey {
                key_id,
                known: self.keys.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        };
        let data = payload.data;
        if data.len() < NONCE_LEN + TAG_LEN {
            return Err(CodecError::Decrypt {
                key_id,
                reason: format!(
                    "truncated ciphertext: {} bytes, at least {} needed for nonce and tag",
                    data.len(),
                    NONCE_LEN + TAG_LEN
                ),
            });
        }
        let (nonce, sealed) = data.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CodecError::Decrypt {
            key_id: key_id.clone(),
            reason: "bad nonce".into(),
        })?;
        let mut buf = sealed.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::empty(), &mut buf)
            .map_err(|_| CodecError::Decrypt {
                key_id: key_id.clone(),
                reason: "authentication failed (wrong key, or corrupt or tampered data)".into(),
            })?;
        Payload::decode(&*plain).map_err(|e| CodecError::Corrupt {
            codec: "aes-256-gcm",
            reason: format!("decrypted data (key id {key_id:?}) is not a payload: {e}"),
        })
    }
}

impl PayloadCodec for AesGcmCodec {
    fn encode(&self, payloads: Vec<Payload>) -> CodecFuture<'_> {
        let out = payloads.iter().map(|p| self.encrypt(p)).collect();
        Box::pin(std::future::ready(out))
    }

    fn decode(&self, payloads: Vec<Payload>) -> CodecFuture<'_> {
        let out = payloads.into_iter().map(|p| self.decrypt(p)).collect();
        Box::pin(std::future::ready(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_core_proto::payload::encoding;

    fn payload() -> Payload {
        new_payload(encoding::JSON, br#"{"secret":"s3cr3t"}"#.to_vec())
    }

    #[test]
    fn round_trip_and_format() {
        let c = AesGcmCodec::new("k1", [1; 32]);
        let enc = c.encrypt(&payload()).unwrap();
        assert_eq!(enc.encoding(), Some(ENCRYPTED_ENCODING));
        assert_eq!(enc.metadata_str(METADATA_ENCRYPTION_KEY_ID), Some("k1"));
        assert_eq!(enc.metadata.len(), 2);
        assert_eq!(
            enc.data.len(),
            NONCE_LEN + payload().encoded_len() + TAG_LEN
        );
        assert!(!enc.data.windows(6).any(|w| w == b"s3cr3t"));
        assert_eq!(c.decrypt(enc.clone()).unwrap(), payload());
        // Fresh nonce every time.
        assert_ne!(c.encrypt(&payload()).unwrap().data, enc.data);
    }

    #[test]
    fn rotation_decrypts_with_old_keys_and_encrypts_with_the_new_one() {
        let old = AesGcmCodec::new("2024", [1; 32]);
        let old_payload = old.encrypt(&payload()).unwrap();
        let new = AesGcmCodec::new("2025", [2; 32]).with_decryption_key("2024", [1; 32]);
        assert_eq!(new.decrypt(old_payload).unwrap(), payload());
        let fresh = new.encrypt(&payload()).unwrap();
        assert_eq!(fresh.metadata_str(METADATA_ENCRYPTION_KEY_ID), Some("2025"));
        let e = old.decrypt(fresh).unwrap_err().to_string();
        assert_eq!(
            e,
            "payload was encrypted with unknown key id \"2025\" (known key ids: 2024)"
        );
    }

    #[test]
    fn wrong_missing_and_corrupt_are_clear_errors() {
        let c = AesGcmCodec::new("k", [1; 32]);
        let enc = c.encrypt(&payload()).unwrap();
        let wrong = AesGcmCodec::new("k", [2; 32]);
        let e = wrong.decrypt(enc.clone()).unwrap_err().to_string();
        assert!(e.contains("key id \"k\": authentication failed"), "{e}");
        let mut no_id = enc.clone();
        no_id.metadata.remove(METADATA_ENCRYPTION_KEY_ID);
        assert!(matches!(c.decrypt(no_id), Err(CodecError::MissingKeyId)));
        for len in [0, 5, 12, 27] {
            let mut t = enc.clone();
            t.data.truncate(len);
            let e = c.decrypt(t).unwrap_err().to_string();
            assert!(e.contains("truncated ciphertext"), "{e}");
        }
        let mut flipped = enc.clone();
        let last = flipped.data.len() - 1;
        flipped.data[last] ^= 1;
        assert!(
            c.decrypt(flipped)
                .unwrap_err()
                .to_string()
                .contains("authentication failed")
        );
        let mut cut = enc;
        cut.data.pop();
        assert!(c.decrypt(cut).is_err());
        assert!(AesGcmCodec::from_slice("short", &[0; 16]).is_err());
        // Not encrypted: passes through.
        assert_eq!(c.decrypt(payload()).unwrap(), payload());
    }
}
