//! The "magic newtype" channel between Trellis wrapper types ([`RawValue`](crate::RawValue),
//! [`Proto`](crate::Proto), [`ProtoJson`](crate::ProtoJson)) and Trellis payload converters.
//!
//! Serde has no way to hand a payload's metadata to a `Deserialize` impl, so the wrappers ask for
//! a newtype struct with a reserved name. The composite converter wraps every deserializer it hands
//! out in [`MagicDe`], which answers that one request with the whole payload (metadata and data),
//! packed as protobuf bytes behind a marker prefix. Any other request goes to the encoding's own
//! deserializer untouched, so ordinary serde types never notice.

use serde::de::{self, Deserializer, Visitor};
use trellis_core_proto::Payload;

use crate::proto::PROTO_MAGIC;
use crate::raw::RAW_MAGIC;

/// Marks packed payload bytes, so bytes that merely look like a payload (e.g. a JSON string
/// handed to a wrapper by a non-Trellis deserializer) are never taken for one.
const PACK_PREFIX: &[u8] = b"\0trellis-packed-payload\0";

/// A payload as prefixed protobuf bytes.
pub(crate) fn pack_payload(payload: &Payload) -> Vec<u8> {
    let body = trellis_core_proto::encode_message(payload);
    let mut out = Vec::with_capacity(PACK_PREFIX.len() + body.len());
    out.extend_from_slice(PACK_PREFIX);
    out.extend_from_slice(&body);
    out
}

/// The payload packed by [`pack_payload`], if `bytes` is one.
pub(crate) fn unpack_payload(bytes: &[u8]) -> Option<Payload> {
    let body = bytes.strip_prefix(PACK_PREFIX)?;
    trellis_core_proto::decode_payload(body).ok()
}

/// Serializes a byte slice as serde bytes.
pub(crate) struct BytesRef<'a>(pub(crate) &'a [u8]);

impl serde::Serialize for BytesRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// Receives a packed payload from [`MagicDe`].
pub(crate) struct PackedVisitor {
    /// What the wrapper expected, for error messages.
    pub(crate) expecting: &'static str,
}

impl<'de> Visitor<'de> for PackedVisitor {
    type Value = Payload;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Payload, D::Error> {
        d.deserialize_byte_buf(self)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Payload, E> {
        unpack_payload(v).ok_or_else(|| E::custom(format_args!("expected {}", self.expecting)))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Payload, E> {
        self.visit_bytes(&v)
    }
}

/// Wraps an encoding's deserializer: answers the wrappers' magic newtype requests with the
/// packed payload, forwards everything else.
pub(crate) struct MagicDe<'p, 's, D> {
    pub(crate) payload: &'p Payload,
    pub(crate) inner: D,
    /// Set when the magic request was answered: the encoding's own deserializer was then never
    /// used, so its end-of-input checks do not apply.
    pub(crate) served: &'s std::cell::Cell<bool>,
}

macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, Self::Error> {
            self.inner.$method($($arg,)* visitor)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for MagicDe<'_, '_, D> {
    type Error = D::Error;

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        if name == RAW_MAGIC || name == PROTO_MAGIC {
            self.served.set(true);
            visitor.visit_byte_buf(pack_payload(self.payload))
        } else {
            self.inner.deserialize_newtype_struct(name, visitor)
        }
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }

    forward! {
        deserialize_any(); deserialize_bool(); deserialize_i8(); deserialize_i16();
        deserialize_i32(); deserialize_i64(); deserialize_i128(); deserialize_u8();
        deserialize_u16(); deserialize_u32(); deserialize_u64(); deserialize_u128();
        deserialize_f32(); deserialize_f64(); deserialize_char(); deserialize_str();
        deserialize_string(); deserialize_bytes(); deserialize_byte_buf(); deserialize_option();
        deserialize_unit(); deserialize_unit_struct(name: &'static str); deserialize_seq();
        deserialize_tuple(len: usize); deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map(); deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier(); deserialize_ignored_any();
    }
}

/// The deserializer for a payload whose encoding no converter knows: it refuses everything, so
/// only [`RawValue`](crate::RawValue) (served by [`MagicDe`]) can take such a payload.
pub(crate) struct RefuseDe;

impl<'de> Deserializer<'de> for RefuseDe {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("unknown payload encoding"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}
