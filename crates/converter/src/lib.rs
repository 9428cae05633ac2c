//! Data conversion for Trellis: how Rust values become Temporal [`Payload`]s and back, and how
//! Rust errors become Temporal [`Failure`]s.
//!
//! A [`DataConverter`] holds a [`PayloadConverter`] and a [`FailureConverter`]. The default
//! payload converter writes exactly what the other Temporal SDKs write, so a Python or Go client
//! and a Trellis worker understand each other:
//!
//! | Rust value | encoding | data |
//! | --- | --- | --- |
//! | `()`, `None` | `binary/null` | empty |
//! | bytes (`serde_bytes::ByteBuf`, `#[serde(with = "serde_bytes")]`) | `binary/plain` | the bytes |
//! | anything else `Serialize` | `json/plain` | compact UTF-8 JSON |
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

mod args;
mod error;
mod failure;
mod json;
mod probe;
mod raw;

use std::sync::Arc;

pub use args::{IntoPayloads, decode_args};
pub use error::ConversionError;
pub use failure::{ApplicationFailure, FailureConverter};
pub use json::JsonPayloadConverter;
pub use raw::RawValue;
pub use trellis_core_proto::{Failure, Payload};

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
}

/// Typed helpers over any [`PayloadConverter`].
pub trait PayloadConverterExt: PayloadConverter {
    /// Encodes `value` into one payload.
    fn encode<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<Payload, ConversionError> {
        self.encode_erased(&value)
            .map_err(|e| e.for_type(std::any::type_name::<T>()))
    }

    /// Decodes one payload into a `T`.
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
        let mut out = None;
        self.decode_erased(payload, &mut |de| {
            out = Some(erased_serde::deserialize::<T>(de)?);
            Ok(())
        })
        .map_err(|e| e.for_type(std::any::type_name::<T>()))?;
        out.ok_or_else(|| ConversionError::decode::<T>(payload, "the converter produced no value"))
    }
}

impl<C: PayloadConverter + ?Sized> PayloadConverterExt for C {}

/// The payload converter, failure converter (and, later, codec stack) used wherever payloads
/// cross the wire. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DataConverter {
    payloads: Arc<dyn PayloadConverter>,
    failures: FailureConverter,
}

impl Default for DataConverter {
    fn default() -> Self {
        Self {
            payloads: Arc::new(JsonPayloadConverter),
            failures: FailureConverter::default(),
        }
    }
}

impl DataConverter {
    /// A data converter with the given payload converter and the default failure converter.
    pub fn new(payloads: impl PayloadConverter) -> Self {
        Self {
            payloads: Arc::new(payloads),
            failures: FailureConverter::default(),
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

    /// Replaces the failure converter.
    pub fn with_failure_converter(mut self, failures: FailureConverter) -> Self {
        self.failures = failures;
        self
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
}
