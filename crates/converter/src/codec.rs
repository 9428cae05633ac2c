//! Payload codecs: byte-level transformations (compression, encryption) applied to payloads after
//! conversion, as a stack of layers on the [`DataConverter`](crate::DataConverter).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use trellis_core_proto::Payload;

/// The future a [`PayloadCodec`] returns: `Send`, so codecs run on any executor thread.
pub type CodecFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<Payload>, CodecError>> + Send + 'a>>;

/// Transforms a batch of payloads into other payloads and back: compression, encryption, or
/// offloading to external storage. The same trait, with the same wire formats, as the other
/// SDKs' `PayloadCodec`.
///
/// Rules:
/// - `encode` and `decode` return exactly one payload per payload given, in order (the payload
///   visitors put them back in place; a count mismatch is a [`CodecError::CountMismatch`]).
/// - `decode` passes through payloads it did not encode (check the `encoding` metadata), so
///   codecs can be added to a deployment that already holds unencoded data.
///
/// ```
/// use trellis_converter::{CodecError, CodecFuture, Payload, PayloadCodec};
///
/// /// Reverses the data bytes (do not do this at home).
/// #[derive(Debug)]
/// struct Reverse;
///
/// impl PayloadCodec for Reverse {
///     fn encode(&self, mut payloads: Vec<Payload>) -> CodecFuture<'_> {
///         Box::pin(async move {
///             payloads.iter_mut().for_each(|p| p.data.reverse());
///             Ok(payloads)
///         })
///     }
///     fn decode(&self, payloads: Vec<Payload>) -> CodecFuture<'_> {
///         self.encode(payloads)
///     }
/// }
/// ```
pub trait PayloadCodec: Send + Sync + std::fmt::Debug + 'static {
    /// Encodes a batch of payloads.
    fn encode(&self, payloads: Vec<Payload>) -> CodecFuture<'_>;

    /// Decodes a batch of payloads.
    fn decode(&self, payloads: Vec<Payload>) -> CodecFuture<'_>;
}

impl<C: PayloadCodec + ?Sized> PayloadCodec for Arc<C> {
    fn encode(&self, payloads: Vec<Payload>) -> CodecFuture<'_> {
        (**self).encode(payloads)
    }

    fn decode(&self, payloads: Vec<Payload>) -> CodecFuture<'_> {
        (**self).decode(payloads)
    }
}

/// A codec failed. Messages name the codec, the key id or the size involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// An encrypted payload names a key this codec does not hold.
    #[error("payload was encrypted with unknown key id {key_id:?} (known key ids: {known})")]
    UnknownKey {
        /// The payload's `encryption-key-id`.
        key_id: String,
        /// The key ids the codec holds, comma separated.
        known: String,
    },
    /// An encrypted payload has no `encryption-key-id` metadata.
    #[error("encrypted payload has no encryption-key-id metadata")]
    MissingKeyId,
    /// Decryption failed: wrong key for this key id, or tampered or corrupt data.
    #[error("cannot decrypt payload with key id {key_id:?}: {reason}")]
    Decrypt {
        /// The key id used.
        key_id: String,
        /// What went wrong.
        reason: String,
    },
    /// An encoded payload is malformed (truncated, not the codec's format, bad inner payload).
    #[error("{codec}: corrupt payload: {reason}")]
    Corrupt {
        /// The codec that found it.
        codec: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Encoding failed.
    #[error("{codec}: cannot encode payload: {reason}")]
    Encode {
        /// The codec that failed.
        codec: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// A codec returned a different number of payloads than it was given.
    #[error("codec {codec} returned {got} payload(s) for {expected}")]
    CountMismatch {
        /// The codec, as its `Debug` text.
        codec: String,
        /// How many payloads it was given.
        expected: usize,
        /// How many it returned.
        got: usize,
    },
    /// Any other failure of a user codec.
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

impl CodecError {
    /// Wraps any error of a user codec.
    pub fn other(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Other(err.into())
    }
}

/// Runs `codecs` over `payloads` for encoding: in order (the first codec sees the converter's
/// payloads).
pub(crate) async fn encode_stack(
    codecs: &[Arc<dyn PayloadCodec>],
    mut payloads: Vec<Payload>,
) -> Result<Vec<Payload>, CodecError> {
    for codec in codecs {
        payloads = checked(codec, payloads, true).await?;
    }
    Ok(payloads)
}

/// Runs `codecs` over `payloads` for decoding: in reverse order.
pub(crate) async fn decode_stack(
    codecs: &[Arc<dyn PayloadCodec>],
    mut payloads: Vec<Payload>,
) -> Result<Vec<Payload>, CodecError> {
    for codec in codecs.iter().rev() {
        payloads = checked(codec, payloads, false).await?;
    }
    Ok(payloads)
}

async fn checked(
    codec: &Arc<dyn PayloadCodec>,
    payloads: Vec<Payload>,
    encode: bool,
) -> Result<Vec<Payload>, CodecError> {
    let expected = payloads.len();
    let out = if encode {
        codec.encode(payloads).await?
    } else {
        codec.decode(payloads).await?
    };
    if out.len() != expected {
        return Err(CodecError::CountMismatch {
            codec: format!("{codec:?}"),
            expected,
            got: out.len(),
        });
    }
    Ok(out)
}
