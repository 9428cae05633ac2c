use trellis_core_proto::{Payload, PayloadExt};

/// A value could not be encoded to, or decoded from, a payload. The message names the Rust type,
/// the payload's encoding and the underlying cause.
#[derive(Debug, thiserror::Error)]
pub enum ConversionError {
    /// A Rust value could not be encoded.
    #[error("cannot encode a {type_name} as a payload: {cause}")]
    Encode {
        /// The Rust type being encoded.
        type_name: &'static str,
        /// What went wrong.
        cause: String,
    },
    /// A payload could not be decoded into the requested Rust type.
    #[error("cannot decode payload ({payload}) into {type_name}: {cause}")]
    Decode {
        /// The Rust type being decoded into.
        type_name: &'static str,
        /// A short description of the payload (encoding, size or short text).
        payload: String,
        /// What went wrong.
        cause: String,
    },
    /// The payload's encoding is not one this converter knows.
    #[error("unknown payload encoding {encoding:?}; known encodings: {known}")]
    UnknownEncoding {
        /// The payload's `encoding` metadata.
        encoding: String,
        /// The encodings the converter knows, comma separated.
        known: String,
    },
    /// The number of payloads does not fit the requested arguments.
    #[error("expected {expected} argument payload(s) for {type_name}, got {got}")]
    ArgumentCount {
        /// The Rust type being decoded into.
        type_name: &'static str,
        /// How many payloads it needs (a description, e.g. "2" or "at least 1").
        expected: String,
        /// How many arrived.
        got: usize,
    },
}

impl ConversionError {
    /// A decode error for target `T` and `payload`.
    pub fn decode<T: ?Sized>(payload: &Payload, cause: impl std::fmt::Display) -> Self {
        Self::Decode {
            type_name: std::any::type_name::<T>(),
            payload: payload.describe(),
            cause: cause.to_string(),
        }
    }

    /// The same error, naming `type_name` as the Rust type converted.
    pub fn for_type(self, name: &'static str) -> Self {
        match self {
            Self::Encode { cause, .. } => Self::Encode {
                type_name: name,
                cause,
            },
            Self::Decode { payload, cause, .. } => Self::Decode {
                type_name: name,
                payload,
                cause,
            },
            other => other,
        }
    }

    /// An encode error for `T`.
    pub fn encode<T: ?Sized>(cause: impl std::fmt::Display) -> Self {
        Self::Encode {
            type_name: std::any::type_name::<T>(),
            cause: cause.to_string(),
        }
    }
}
