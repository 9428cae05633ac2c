//! Data conversion for Trellis: how Rust values become Temporal [`Payload`]s and back, and how
//! Rust errors become Temporal [`Failure`]s.
//!
//! A [`DataConverter`] holds a [`PayloadConverter`], a [`FailureConverter`] and a stack of
//! [`PayloadCodec`]s. The default payload converter writes the encodings, metadata and data the
//! other Temporal SDKs write (`json/plain` key order and non-ASCII escaping aside, see
//! [`JsonPlainConverter`]), so a Python or Go client and a Trellis worker understand each other:
//!
//! | Rust value | encoding | data |
//! | --- | --- | --- |
//! | `()`, `None` | `binary/null` | empty |
//! | bytes (`serde_bytes::ByteBuf`, `#[serde(with = "serde_bytes")]`) | `binary/plain` | the bytes |
//! | [`ProtoJson<M>`] (a prost message with proto3-JSON serde impls) | `json/protobuf` | proto3 JSON, as Python writes it |
//! | [`Proto<M>`] (a prost message) | `binary/protobuf` | protobuf wire bytes |
//! | anything else `Serialize` | `json/plain` | compact UTF-8 JSON |
//!
//! That is the [`CompositePayloadConverter`] of the standard [`EncodingConverter`]s, in the order
//! of the Python and Go SDKs; add your own encodings to it.
//!
//! After conversion, payloads may pass through a stack of [`PayloadCodec`]s (compression with
//! [`ZstdCodec`], encryption with [`AesGcmCodec`], or your own): see
//! [`DataConverter::with_codec`]. The [`visit`] module finds every payload of a worker or client
//! message that the codecs must see. Failures convert with the [`FailureConverter`]; see
//! [`failure`] for reading them back as a [`TemporalFailure`].
//!
//! ```
//! use trellis_converter::DataConverter;
//!
//! let dc = DataConverter::default();
//! let p = dc.encode(&("Hello", 3)).unwrap();
//! assert_eq!(p.data, br#"["Hello",3]"#);
//! let back: (String, u32) = dc.decode(&p).unwrap();
//! assert_eq!(back, ("Hello".to_string(), 3));
//! ```
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

mod aes_codec;
mod args;
mod codec;
mod encoding;
mod error;
pub mod failure;
mod fast;
mod json;
mod magic;
mod probe;
pub mod proto;
mod raw;
pub mod visit;
mod zstd_codec;

use std::sync::Arc;

pub use aes_codec::{AesGcmCodec, ENCRYPTED_ENCODING, METADATA_ENCRYPTION_KEY_ID};
pub use args::{IntoPayloads, decode_args};
pub use codec::{CodecError, CodecFuture, PayloadCodec};
pub use encoding::{
    BinaryNullConverter, BinaryPlainConverter, BinaryProtoConverter, CompositePayloadConverter,
    DecodeVisit, EncodingConverter, JsonPlainConverter, JsonProtoConverter,
};
pub use error::ConversionError;
pub use failure::{
    ActivityFailure, ApplicationErrorCategory, ApplicationFailure, CancelledFailure,
    ChildWorkflowFailure, FailureConverter, GenericFailure, NexusHandlerFailure,
    NexusOperationFailure, ResetWorkflowFailure, RetryState, ServerFailure, TemporalFailure,
    TerminatedFailure, TimeoutFailure, TimeoutType, decode_common_attributes,
    encode_common_attributes,
};
pub use json::JsonPayloadConverter;
pub use proto::{Proto, ProtoJson};
pub use raw::RawValue;
pub use trellis_core_proto::{Failure, Payload};
pub use visit::{VisitOptions, VisitPayloads};
pub use zstd_codec::{ZSTD_ENCODING, ZstdCodec};

/// Converts Rust values to and from [`Payload`]s.
///
/// The trait is object safe so a [`DataConverter`] can hold any converter; values cross it as
/// type-erased serde values. Use the typed helpers of [`PayloadConverterExt`] (implemented for
/// every converter) rather than these methods.
pub trait PayloadConverter: Send + Sync + std::fmt::Debug + 'static {
    /// Encodes one value.
    fn encode_erased(
        &self,
        value: &dyn erased_serde::Serialize,
    ) -> Result<Payload, ConversionError>;

    /// Decodes one payload: hands a deserializer over the payload's data to `visit`, which
    /// builds the target value from it.
    fn decode_erased<'p>(
        &self,
        payload: &'p Payload,
        visit: &mut dyn FnMut(
            &mut dyn erased_serde::Deserializer<'p>,
        ) -> Result<(), erased_serde::Error>,
    ) -> Result<(), ConversionError>;

    /// Which standard encodings this converter handles exactly as the standard converters do,
    /// so the typed helpers may skip type erasure for them. Only this crate's converters answer
    /// (the argument cannot be named elsewhere); every other converter keeps the default, no
    /// shortcut.
    #[doc(hidden)]
    fn typed_fast_path(&self, _: fast::Sealed) -> fast::FastPath {
        fast::FastPath::NONE
    }
}

/// Typed helpers over any [`PayloadConverter`].
pub trait PayloadConverterExt: PayloadConverter {
    /// Encodes `value` into one payload.
    ///
    /// With the standard converters ([`CompositePayloadConverter::standard`],
    /// [`JsonPayloadConverter`]) a plain serde value goes straight through `serde_json`, with no
    /// type erasure; any other converter gets the value through
    /// [`encode_erased`](PayloadConverter::encode_erased). The bytes are the same either way.
    fn encode<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<Payload, ConversionError> {
        fast::encode(self, value)
    }

    /// Decodes one payload into a `T`.
    ///
    /// With the standard converters a `json/plain`, `binary/null` or `binary/plain` payload is
    /// deserialized straight into `T`; other payloads and converters go through
    /// [`decode_erased`](PayloadConverter::decode_erased).
    fn decode<T: serde::de::DeserializeOwned + 'static>(
        &self,
        payload: &Payload,
    ) -> Result<T, ConversionError> {
        if std::any::TypeId::of::<T>() == std::any::TypeId::of::<RawValue>() {
            let raw: Box<dyn std::any::Any> = Box::new(RawValue(payload.clone()));
            if let Ok(raw) = raw.downcast::<T>() {
                return Ok(*raw);
            }
        }
        fast::decode_seed(self, payload, std::marker::PhantomData::<T>)
            .map_err(|e| e.for_type(std::any::type_name::<T>()))
    }
}

impl<C: PayloadConverter + ?Sized> PayloadConverterExt for C {}

/// The payload converter, failure converter and codec stack used wherever payloads cross the
/// wire. Cheap to clone.
///
/// # Codecs
///
/// [`with_codec`](Self::with_codec) adds a [`PayloadCodec`] layer; layers accumulate. In tower
/// terms the first codec added is the outermost layer: **encoding runs the codecs in the order
/// they were added** (the first one sees the converter's payloads), **decoding runs them in
/// reverse**. So
///
/// ```
/// use trellis_converter::{AesGcmCodec, DataConverter, ZstdCodec};
///
/// let dc = DataConverter::default()
///     .with_codec(ZstdCodec::new())
///     .with_codec(AesGcmCodec::new("key-1", [0u8; 32]));
/// ```
///
/// compresses, then encrypts (the wire payloads are `binary/encrypted`), and decodes by
/// decrypting, then decompressing. [`encode`](Self::encode) and [`decode`](Self::decode) convert
/// values only; the codecs run in [`encode_payloads`](Self::encode_payloads) /
/// [`decode_payloads`](Self::decode_payloads), or over every payload of a message with
/// [`encode_message`](Self::encode_message) / [`decode_message`](Self::decode_message).
#[derive(Clone, Debug)]
pub struct DataConverter {
    payloads: Arc<dyn PayloadConverter>,
    failures: FailureConverter,
    codecs: Vec<Arc<dyn PayloadCodec>>,
}

impl Default for DataConverter {
    /// The standard composite converter ([`CompositePayloadConverter::standard`]), the default
    /// failure converter, no codecs.
    fn default() -> Self {
        Self {
            payloads: Arc::new(CompositePayloadConverter::standard()),
            failures: FailureConverter::default(),
            codecs: Vec::new(),
        }
    }
}

impl DataConverter {
    /// A data converter with the given payload converter, the default failure converter and no
    /// codecs.
    pub fn new(payloads: impl PayloadConverter) -> Self {
        Self {
            payloads: Arc::new(payloads),
            ..Self::default()
        }
    }

    /// The payload converter.
    pub fn payloads(&self) -> &dyn PayloadConverter {
        &*self.payloads
    }

    /// The failure converter.
    pub fn failures(&self) -> &FailureConverter {
        &self.failures
    }

    /// Replaces the payload converter (keeping the failure converter and codecs).
    pub fn with_payload_converter(mut self, payloads: impl PayloadConverter) -> Self {
        self.payloads = Arc::new(payloads);
        self
    }

    /// Replaces the failure converter.
    pub fn with_failure_converter(mut self, failures: FailureConverter) -> Self {
        self.failures = failures;
        self
    }

    /// Adds a codec layer below the ones already added (see [Codecs](Self#codecs)).
    pub fn with_codec(self, codec: impl PayloadCodec) -> Self {
        self.with_shared_codec(Arc::new(codec))
    }

    /// Adds a shared codec layer below the ones already added.
    pub fn with_shared_codec(mut self, codec: Arc<dyn PayloadCodec>) -> Self {
        self.codecs.push(codec);
        self
    }

    /// The codec layers, first added first.
    pub fn codecs(&self) -> &[Arc<dyn PayloadCodec>] {
        &self.codecs
    }

    /// Encodes one value.
    pub fn encode<T: serde::Serialize + ?Sized>(
        &self,
        value: &T,
    ) -> Result<Payload, ConversionError> {
        self.payloads.encode(value)
    }

    /// Decodes one payload.
    pub fn decode<T: serde::de::DeserializeOwned + 'static>(
        &self,
        payload: &Payload,
    ) -> Result<T, ConversionError> {
        self.payloads.decode(payload)
    }

    /// Encodes a list of arguments (see [`IntoPayloads`]).
    pub fn encode_args<A: IntoPayloads>(&self, args: A) -> Result<Vec<Payload>, ConversionError> {
        args.into_payloads(self)
    }

    /// Decodes a list of argument payloads into one value (see [`decode_args`]).
    pub fn decode_args<T: serde::de::DeserializeOwned + 'static>(
        &self,
        payloads: &[Payload],
    ) -> Result<T, ConversionError> {
        decode_args(self, payloads)
    }

    /// Runs the codec stack's encoding over a batch of payloads (codecs in the order added).
    /// With no codecs, returns the payloads as they are.
    pub async fn encode_payloads(
        &self,
        payloads: Vec<Payload>,
    ) -> Result<Vec<Payload>, CodecError> {
        codec::encode_stack(&self.codecs, payloads).await
    }

    /// Runs the codec stack's decoding over a batch of payloads (codecs in reverse order).
    pub async fn decode_payloads(
        &self,
        payloads: Vec<Payload>,
    ) -> Result<Vec<Payload>, CodecError> {
        codec::decode_stack(&self.codecs, payloads).await
    }

    /// Encodes, in place and in one batch, every payload of `message` that codecs must see
    /// (see [`visit`]).
    pub async fn encode_message<M: VisitPayloads + Send + ?Sized>(
        &self,
        message: &mut M,
        options: &VisitOptions,
    ) -> Result<(), CodecError> {
        visit::encode_in_place(self, message, options).await
    }

    /// Decodes, in place and in one batch, every payload of `message` that codecs must see
    /// (see [`visit`]).
    pub async fn decode_message<M: VisitPayloads + Send + ?Sized>(
        &self,
        message: &mut M,
        options: &VisitOptions,
    ) -> Result<(), CodecError> {
        visit::decode_in_place(self, message, options).await
    }
}
