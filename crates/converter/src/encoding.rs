//! Encoding converters and the composite payload converter that chains them.

use std::sync::Arc;

use trellis_core_proto::payload::{encoding, new_payload};
use trellis_core_proto::{Payload, PayloadExt};

use crate::fast::{FastPath, Sealed, Standard};
use crate::magic::{MagicDe, RefuseDe};
use crate::probe::{Kind, kind_of};
use crate::{ConversionError, PayloadConverter};

/// The callback a converter hands its deserializer to (see [`PayloadConverter::decode_erased`]).
pub type DecodeVisit<'v, 'p> =
    dyn FnMut(&mut dyn erased_serde::Deserializer<'p>) -> Result<(), erased_serde::Error> + 'v;

/// One payload encoding (`json/plain`, `binary/protobuf`, your own `binary/msgpack`, …): the
/// building block of a [`CompositePayloadConverter`].
///
/// Encoding offers the value to each converter in order; the first that returns `Some` wins.
/// Decoding picks the converter whose [`encoding`](Self::encoding) equals the payload's
/// `encoding` metadata.
///
/// A custom converter inspects the type-erased value with any serde serializer, e.g.
/// `erased_serde::serialize(value, &mut rmp_serde::Serializer::new(&mut buf))`, and returns
/// `Ok(None)` for values it does not handle.
pub trait EncodingConverter: Send + Sync + std::fmt::Debug + 'static {
    /// The `encoding` metadata this converter writes and reads.
    fn encoding(&self) -> &str;

    /// Encodes `value`, or returns `Ok(None)` to let the next converter try.
    fn to_payload(
        &self,
        value: &dyn erased_serde::Serialize,
    ) -> Result<Option<Payload>, ConversionError>;

    /// Decodes a payload of this converter's encoding: hands a deserializer over its data to
    /// `visit`, which builds the target value.
    #[allow(clippy::wrong_self_convention)] // named as in the other SDKs
    fn from_payload<'p>(
        &self,
        payload: &'p Payload,
        visit: &mut DecodeVisit<'_, 'p>,
    ) -> Result<(), ConversionError>;

    /// Which standard converter this is, if it is one (see [`crate::fast`]). Only this crate's
    /// converters answer; the argument cannot be named elsewhere.
    #[doc(hidden)]
    fn standard(&self, _: Sealed) -> Option<Standard> {
        None
    }
}

fn decode_failure(payload: &Payload, cause: impl std::fmt::Display) -> ConversionError {
    ConversionError::Decode {
        type_name: "the requested type",
        payload: payload.describe(),
        cause: cause.to_string(),
    }
}

fn visit_with<'p, D>(
    payload: &'p Payload,
    de: D,
    visit: &mut DecodeVisit<'_, 'p>,
) -> Result<(), ConversionError>
where
    D: serde::Deserializer<'p>,
{
    visit(&mut <dyn erased_serde::Deserializer<'p>>::erase(de))
        .map_err(|e| decode_failure(payload, e))
}

/// `binary/null`: unit, `None` (and `serde_json::Value::Null`, which serializes as unit); empty
/// data. Decodes into `()`, `Option<_>` or anything that accepts a unit.
#[derive(Debug, Clone, Copy, Default)]
pub struct BinaryNullConverter;

impl EncodingConverter for BinaryNullConverter {
    fn standard(&self, _: Sealed) -> Option<Standard> {
        Some(Standard::Null)
    }

    fn encoding(&self) -> &str {
        encoding::NULL
    }

    fn to_payload(
        &self,
        value: &dyn erased_serde::Serialize,
    ) -> Result<Option<Payload>, ConversionError> {
        Ok(matches!(kind_of(value), Kind::Null).then(|| new_payload(encoding::NULL, Vec::new())))
    }

    fn from_payload<'p>(
        &self,
        payload: &'p Payload,
        visit: &mut DecodeVisit<'_, 'p>,
    ) -> Result<(), ConversionError> {
        if !payload.data.is_empty() {
            return Err(decode_failure(
                payload,
                "a binary/null payload must have empty data",
            ));
        }
        let de = serde::de::value::UnitDeserializer::<serde::de::value::Error>::new();
        visit_with(payload, de, visit)
    }
}

/// `binary/plain`: bytes (values that serialize with `serialize_bytes`, e.g.
/// `serde_bytes::ByteBuf` or a `#[serde(with = "serde_bytes")]` field), written unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct BinaryPlainConverter;

impl EncodingConverter for BinaryPlainConverter {
    fn standard(&self, _: Sealed) -> Option<Standard> {
        Some(Standard::Plain)
    }

    fn encoding(&self) -> &str {
        encoding::PLAIN
    }

    fn to_payload(
        &self,
        value: &dyn erased_serde::Serialize,
    ) -> Result<Option<Payload>, ConversionError> {
        Ok(match kind_of(value) {
            Kind::Bytes(b) => Some(new_payload(encoding::PLAIN, b)),
            _ => None,
        })
    }

    fn from_payload<'p>(
        &self,
        payload: &'p Payload,
        visit: &mut DecodeVisit<'_, 'p>,
    ) -> Result<(), ConversionError> {
        let de = serde::de::value::BytesDeserializer::<serde::de::value::Error>::new(&payload.data);
        visit_with(payload, de, visit)
    }
}

/// `json/protobuf`: [`ProtoJson`](crate::ProtoJson) messages as proto3 JSON, with `messageType`
/// metadata. Other targets decoding such a payload read its data as plain JSON.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonProtoConverter;

impl EncodingConverter for JsonProtoConverter {
    fn standard(&self, _: Sealed) -> Option<Standard> {
        Some(Standard::JsonProto)
    }

    fn encoding(&self) -> &str {
        encoding::JSON_PROTOBUF
    }

    fn to_payload(
        &self,
        value: &dyn erased_serde::Serialize,
    ) -> Result<Option<Payload>, ConversionError> {
        Ok(match kind_of(value) {
            Kind::Proto(v) => v
                .json
                .clone()
                .map(|json| v.payload(encoding::JSON_PROTOBUF, json)),
            _ => None,
        })
    }

    fn from_payload<'p>(
        &self,
        payload: &'p Payload,
        visit: &mut DecodeVisit<'_, 'p>,
    ) -> Result<(), ConversionError> {
        json_from_payload(payload, visit)
    }
}

/// `binary/protobuf`: [`Proto`](crate::Proto) and [`ProtoJson`](crate::ProtoJson) messages as
/// protobuf wire bytes, with `messageType` metadata. Other targets decoding such a payload read
/// its data as bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct BinaryProtoConverter;

impl EncodingConverter for BinaryProtoConverter {
    fn standard(&self, _: Sealed) -> Option<Standard> {
        Some(Standard::BinaryProto)
    }

    fn encoding(&self) -> &str {
        encoding::BINARY_PROTOBUF
    }

    fn to_payload(
        &self,
        value: &dyn erased_serde::Serialize,
    ) -> Result<Option<Payload>, ConversionError> {
        Ok(match kind_of(value) {
            Kind::Proto(v) => Some(v.payload(encoding::BINARY_PROTOBUF, v.binary.clone())),
            _ => None,
        })
    }

    fn from_payload<'p>(
        &self,
        payload: &'p Payload,
        visit: &mut DecodeVisit<'_, 'p>,
    ) -> Result<(), ConversionError> {
        let de = serde::de::value::BytesDeserializer::<serde::de::value::Error>::new(&payload.data);
        visit_with(payload, de, visit)
    }
}

/// `json/plain`: any serde value as compact UTF-8 JSON (`serde_json`, fields in declaration
/// order). The catch-all: it accepts every value, so it belongs last.
///
/// Go and TypeScript write the same shape. Python's `json.dumps(..., sort_keys=True)` differs
/// only in sorting object keys and escaping non-ASCII characters (`"\u00e9"`), so the bytes are
/// equal for ASCII values whose fields are declared in sorted order; each SDK reads the other's
/// output either way.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonPlainConverter;

impl EncodingConverter for JsonPlainConverter {
    fn standard(&self, _: Sealed) -> Option<Standard> {
        Some(Standard::Json)
    }

    fn encoding(&self) -> &str {
        encoding::JSON
    }

    fn to_payload(
        &self,
        value: &dyn erased_serde::Serialize,
    ) -> Result<Option<Payload>, ConversionError> {
        match kind_of(value) {
            Kind::Raw(p) => return Ok(Some(p)),
            Kind::Proto(v) => {
                return Err(ConversionError::Encode {
                    type_name: "a protobuf message",
                    cause: format!(
                        "{} is wrapped in Proto/ProtoJson but the converter has no \
                         binary/protobuf or json/protobuf encoding",
                        v.message_type
                    ),
                });
            }
            _ => {}
        }
        let mut data = Vec::with_capacity(64);
        let mut ser = serde_json::Serializer::new(&mut data);
        erased_serde::serialize(value, &mut ser)
            .map_err(ConversionError::encode::<dyn erased_serde::Serialize>)?;
        Ok(Some(new_payload(encoding::JSON, data)))
    }

    fn from_payload<'p>(
        &self,
        payload: &'p Payload,
        visit: &mut DecodeVisit<'_, 'p>,
    ) -> Result<(), ConversionError> {
        json_from_payload(payload, visit)
    }
}

fn json_from_payload<'p>(
    payload: &'p Payload,
    visit: &mut DecodeVisit<'_, 'p>,
) -> Result<(), ConversionError> {
    let mut de = serde_json::Deserializer::from_slice(&payload.data);
    visit_with(payload, &mut de, visit)?;
    de.end().map_err(|e| decode_failure(payload, e))
}

/// A payload converter made of [`EncodingConverter`]s: encoding tries them in order, decoding
/// dispatches on the payload's `encoding` metadata. [`RawValue`](crate::RawValue)s pass through
/// untouched in both directions, whatever the encodings.
///
/// [`standard`](Self::standard) (also `Default`) has the encodings of the Python and Go SDKs, in
/// their order: `binary/null`, `binary/plain`, `json/protobuf`, `binary/protobuf`, `json/plain`.
/// It is what [`DataConverter::default`](crate::DataConverter::default) uses.
///
/// ```
/// use trellis_converter::{CompositePayloadConverter, DataConverter, EncodingConverter};
/// # use trellis_converter::{ConversionError, DecodeVisit, Payload};
/// # #[derive(Debug)] struct Msgpack;
/// # impl EncodingConverter for Msgpack {
/// #     fn encoding(&self) -> &str { "binary/msgpack" }
/// #     fn to_payload(&self, _: &dyn erased_serde::Serialize) -> Result<Option<Payload>, ConversionError> { Ok(None) }
/// #     fn from_payload<'p>(&self, _: &'p Payload, _: &mut DecodeVisit<'_, 'p>) -> Result<(), ConversionError> { Ok(()) }
/// # }
/// // Adds `binary/msgpack` before the catch-all `json/plain`.
/// let dc = DataConverter::new(CompositePayloadConverter::standard().with_converter(Msgpack));
/// ```
#[derive(Clone, Debug)]
pub struct CompositePayloadConverter {
    converters: Vec<Arc<dyn EncodingConverter>>,
    /// What the typed helpers may do without type erasure, given `converters`.
    fast: FastPath,
}

impl Default for CompositePayloadConverter {
    fn default() -> Self {
        Self::standard()
    }
}

impl CompositePayloadConverter {
    /// A composite of exactly these converters, tried in this order.
    pub fn new(converters: impl IntoIterator<Item = Arc<dyn EncodingConverter>>) -> Self {
        Self::with_list(converters.into_iter().collect())
    }

    fn with_list(converters: Vec<Arc<dyn EncodingConverter>>) -> Self {
        let fast = FastPath::of_composite(converters.iter().map(|c| &**c));
        Self { converters, fast }
    }

    /// The standard converters, in the standard order: `binary/null`, `binary/plain`,
    /// `json/protobuf`, `binary/protobuf`, `json/plain`.
    pub fn standard_converters() -> Vec<Arc<dyn EncodingConverter>> {
        vec![
            Arc::new(BinaryNullConverter),
            Arc::new(BinaryPlainConverter),
            Arc::new(JsonProtoConverter),
            Arc::new(BinaryProtoConverter),
            Arc::new(JsonPlainConverter),
        ]
    }

    /// The composite of the [standard converters](Self::standard_converters).
    pub fn standard() -> Self {
        Self::new(Self::standard_converters())
    }

    /// Adds a converter: it replaces the converter of the same encoding where there is one (in
    /// its place); otherwise it goes just before `json/plain` (which accepts every value), or
    /// last when there is no `json/plain`.
    pub fn with_converter(mut self, converter: impl EncodingConverter) -> Self {
        let converter: Arc<dyn EncodingConverter> = Arc::new(converter);
        let enc = converter.encoding().to_owned();
        if let Some(slot) = self.converters.iter_mut().find(|c| c.encoding() == enc) {
            *slot = converter;
        } else if let Some(i) = self
            .converters
            .iter()
            .position(|c| c.encoding() == encoding::JSON)
        {
            self.converters.insert(i, converter);
        } else {
            self.converters.push(converter);
        }
        Self::with_list(self.converters)
    }

    /// Removes the converter of `encoding`, if any.
    pub fn without_encoding(mut self, encoding: &str) -> Self {
        self.converters.retain(|c| c.encoding() != encoding);
        Self::with_list(self.converters)
    }

    /// The converters, in order.
    pub fn converters(&self) -> &[Arc<dyn EncodingConverter>] {
        &self.converters
    }

    /// The encodings, in order.
    pub fn encodings(&self) -> Vec<&str> {
        self.converters.iter().map(|c| c.encoding()).collect()
    }
}

/// Encoding shared by every composite: raw values first, then the converters in order.
pub(crate) fn encode_with<'c>(
    converters: impl Iterator<Item = &'c dyn EncodingConverter> + Clone,
    value: &dyn erased_serde::Serialize,
) -> Result<Payload, ConversionError> {
    if let Kind::Raw(p) = kind_of(value) {
        return Ok(p);
    }
    for c in converters.clone() {
        if let Some(p) = c.to_payload(value)? {
            return Ok(p);
        }
    }
    Err(ConversionError::Encode {
        type_name: "the value",
        cause: format!(
            "no payload converter accepted it (encodings tried: {})",
            converters
                .map(|c| c.encoding())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

/// Decoding shared by every composite: dispatch on the encoding, with the magic wrapper around
/// every deserializer so [`RawValue`](crate::RawValue) and the proto wrappers get the payload.
pub(crate) fn decode_with<'c, 'p>(
    mut converters: impl Iterator<Item = &'c dyn EncodingConverter> + Clone,
    payload: &'p Payload,
    visit: &mut DecodeVisit<'_, 'p>,
) -> Result<(), ConversionError> {
    let enc = payload.encoding();
    let found = enc.and_then(|e| converters.clone().find(|c| c.encoding() == e));
    let served = std::cell::Cell::new(false);
    match found {
        Some(c) => {
            let mut visited_ok = false;
            let result = c.from_payload(payload, &mut |de| {
                let r = visit(&mut <dyn erased_serde::Deserializer<'p>>::erase(MagicDe {
                    payload,
                    inner: de,
                    served: &served,
                }));
                visited_ok = r.is_ok();
                r
            });
            // A wrapper served from the whole payload never read the encoding's data, so the
            // encoding's own checks (e.g. JSON end of input) do not apply.
            if served.get() && visited_ok {
                Ok(())
            } else {
                result
            }
        }
        None => {
            // Only a RawValue can take a payload of an unknown encoding.
            let de = MagicDe {
                payload,
                inner: RefuseDe,
                served: &served,
            };
            visit(&mut <dyn erased_serde::Deserializer<'p>>::erase(de)).map_err(|_| {
                ConversionError::UnknownEncoding {
                    encoding: enc.unwrap_or("<none>").to_owned(),
                    known: converters
                        .by_ref()
                        .map(|c| c.encoding())
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            })
        }
    }
}

impl PayloadConverter for CompositePayloadConverter {
    fn encode_erased(
        &self,
        value: &dyn erased_serde::Serialize,
    ) -> Result<Payload, ConversionError> {
        encode_with(self.converters.iter().map(|c| &**c), value)
    }

    fn decode_erased<'p>(
        &self,
        payload: &'p Payload,
        visit: &mut dyn FnMut(
            &mut dyn erased_serde::Deserializer<'p>,
        ) -> Result<(), erased_serde::Error>,
    ) -> Result<(), ConversionError> {
        decode_with(self.converters.iter().map(|c| &**c), payload, visit)
    }

    fn typed_fast_path(&self, _: Sealed) -> FastPath {
        self.fast
    }
}
