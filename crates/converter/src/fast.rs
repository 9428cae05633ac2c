//! The typed fast path of the standard encodings.
//!
//! [`PayloadConverter`] is object safe, so values cross it type-erased (`erased_serde`): every
//! field is visited through dynamic dispatch, and decoding boxes what it visits. That is the price
//! of pluggable converters, but most programs run the standard converters, whose encodings are
//! known here. When a converter says (through a sealed trait method only this crate's converters
//! answer) that it handles an encoding exactly as the standard converter of that encoding does,
//! the typed helpers ([`PayloadConverterExt`](crate::PayloadConverterExt), argument decoding)
//! run `serde_json` (or the unit / bytes deserializer) straight into or out of the target type,
//! and only fall back to the erased path for anything else. The bytes written and the errors
//! reported are the same on both paths.

use std::cell::Cell;

use serde::Serialize;
use serde::de::DeserializeSeed;
use trellis_core_proto::payload::{encoding, new_payload};
use trellis_core_proto::{Payload, PayloadExt};

use crate::magic::MagicDe;
use crate::probe::{Kind, Probe};
use crate::{ConversionError, EncodingConverter, PayloadConverter};

/// Proof that a call comes from this crate: the converter traits' fast-path methods take one, so
/// they can be neither called nor overridden elsewhere.
#[allow(unreachable_pub, missing_debug_implementations)]
pub struct Sealed(pub(crate) ());

/// The standard encoding converters, as they identify themselves to composites.
#[allow(unreachable_pub)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standard {
    Null,
    Plain,
    JsonProto,
    BinaryProto,
    Json,
}

/// Which typed shortcuts a payload converter allows.
#[allow(unreachable_pub)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FastPath {
    /// Values that are not null, bytes, raw payloads or protobuf wrappers encode as `json/plain`
    /// exactly as [`JsonPlainConverter`](crate::JsonPlainConverter) writes them.
    encode_json: bool,
    /// Unit and `None` encode as `binary/null`.
    encode_null: bool,
    /// Bytes encode as `binary/plain`.
    encode_plain: bool,
    /// `json/plain` payloads decode as the standard converter decodes them.
    decode_json: bool,
    /// `binary/null` payloads decode as the standard converter decodes them.
    decode_null: bool,
    /// `binary/plain` payloads decode as the standard converter decodes them.
    decode_plain: bool,
}

impl FastPath {
    /// No shortcut: everything goes through the erased methods.
    pub(crate) const NONE: Self = Self {
        encode_json: false,
        encode_null: false,
        encode_plain: false,
        decode_json: false,
        decode_null: false,
        decode_plain: false,
    };

    /// Every shortcut (a converter made only of the standard JSON-family encodings).
    pub(crate) const ALL: Self = Self {
        encode_json: true,
        encode_null: true,
        encode_plain: true,
        decode_json: true,
        decode_null: true,
        decode_plain: true,
    };

    /// The shortcuts a composite of `converters` (tried in this order when encoding; the first
    /// of an encoding wins when decoding) allows.
    pub(crate) fn of_composite<'c>(
        converters: impl Iterator<Item = &'c dyn EncodingConverter> + Clone,
    ) -> Self {
        let kinds = || converters.clone().map(|c| c.standard(Sealed(())));
        // Encoding offers a value to each converter in order. The standard converters other than
        // the target's pass a value of the target's kind on (`json/plain` takes everything), so
        // the target's converter gets it when only standard converters come before it.
        let encodes = |target: Standard| {
            for kind in kinds() {
                match kind {
                    Some(k) if k == target => return true,
                    Some(Standard::Json) | None => return false,
                    Some(_) => {}
                }
            }
            false
        };
        let decodes = |target: Standard, enc: &str| {
            converters
                .clone()
                .find(|c| c.encoding() == enc)
                .and_then(|c| c.standard(Sealed(())))
                == Some(target)
        };
        Self {
            encode_json: encodes(Standard::Json),
            encode_null: encodes(Standard::Null),
            encode_plain: encodes(Standard::Plain),
            decode_json: decodes(Standard::Json, encoding::JSON),
            decode_null: decodes(Standard::Null, encoding::NULL),
            decode_plain: decodes(Standard::Plain, encoding::PLAIN),
        }
    }

    fn encodes_any(&self) -> bool {
        self.encode_json || self.encode_null || self.encode_plain
    }
}

/// `value` as compact JSON, the way [`JsonPlainConverter`](crate::JsonPlainConverter) writes it.
fn json_payload<T: Serialize + ?Sized>(value: &T) -> Result<Payload, ConversionError> {
    // Most payloads are small; serde_json::to_vec starts at the same capacity.
    let mut data = Vec::with_capacity(128);
    serde_json::to_writer(&mut data, value).map_err(ConversionError::encode::<T>)?;
    Ok(new_payload(encoding::JSON, data))
}

/// Encodes `value` with `converter`, typed where the converter allows it.
pub(crate) fn encode<C, T>(converter: &C, value: &T) -> Result<Payload, ConversionError>
where
    C: PayloadConverter + ?Sized,
    T: Serialize + ?Sized,
{
    let fast = converter.typed_fast_path(Sealed(()));
    if fast.encodes_any() {
        match value.serialize(Probe) {
            // Not null, bytes, a raw payload or a protobuf wrapper.
            Err(_) if fast.encode_json => return json_payload(value),
            Ok(Kind::Null) if fast.encode_null => {
                return Ok(new_payload(encoding::NULL, Vec::new()));
            }
            Ok(Kind::Bytes(b)) if fast.encode_plain => {
                return Ok(new_payload(encoding::PLAIN, b));
            }
            _ => {}
        }
    }
    converter
        .encode_erased(&value)
        .map_err(|e| e.for_type(std::any::type_name::<T>()))
}

fn decode_failure(payload: &Payload, cause: impl std::fmt::Display) -> ConversionError {
    ConversionError::Decode {
        type_name: "the requested type",
        payload: payload.describe(),
        cause: cause.to_string(),
    }
}

/// Decodes `payload` into `seed`'s value with `converter`, typed where the converter allows it.
/// Errors name "the requested type", as the erased path's do; callers name the type.
pub(crate) fn decode_seed<'p, C, S>(
    converter: &C,
    payload: &'p Payload,
    seed: S,
) -> Result<S::Value, ConversionError>
where
    C: PayloadConverter + ?Sized,
    S: DeserializeSeed<'p>,
{
    let fast = converter.typed_fast_path(Sealed(()));
    if fast != FastPath::NONE {
        let served = Cell::new(false);
        match payload.encoding() {
            Some(encoding::JSON) if fast.decode_json => {
                let mut de = serde_json::Deserializer::from_slice(&payload.data);
                let value = seed
                    .deserialize(MagicDe {
                        payload,
                        inner: &mut de,
                        served: &served,
                    })
                    .map_err(|e| decode_failure(payload, e))?;
                // A wrapper served from the whole payload never read the JSON.
                if !served.get() {
                    de.end().map_err(|e| decode_failure(payload, e))?;
                }
                return Ok(value);
            }
            Some(encoding::NULL) if fast.decode_null && payload.data.is_empty() => {
                let de = serde::de::value::UnitDeserializer::<serde::de::value::Error>::new();
                return seed
                    .deserialize(MagicDe {
                        payload,
                        inner: de,
                        served: &served,
                    })
                    .map_err(|e| decode_failure(payload, e));
            }
            Some(encoding::PLAIN) if fast.decode_plain => {
                let de = serde::de::value::BytesDeserializer::<serde::de::value::Error>::new(
                    &payload.data,
                );
                return seed
                    .deserialize(MagicDe {
                        payload,
                        inner: de,
                        served: &served,
                    })
                    .map_err(|e| decode_failure(payload, e));
            }
            _ => {}
        }
    }
    let mut seed = Some(seed);
    let mut out = None;
    converter.decode_erased(payload, &mut |de| {
        if let Some(seed) = seed.take() {
            out = Some(seed.deserialize(de)?);
        }
        Ok(())
    })?;
    out.ok_or_else(|| decode_failure(payload, "the converter produced no value"))
}
