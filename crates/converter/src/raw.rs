use trellis_core_proto::Payload;

use crate::magic::{BytesRef, PackedVisitor, pack_payload};

/// A payload passed through a converter untouched, whatever its encoding: use it as an input or
/// result type to forward values without decoding them (e.g. an echo workflow that returns bytes,
/// JSON or null exactly as it received them).
///
/// Encoding a `RawValue` with any Trellis converter yields the payload it holds; decoding into a
/// `RawValue` yields the payload as it arrived (also as an element of a tuple of arguments).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawValue(pub Payload);

pub(crate) const RAW_MAGIC: &str = "$trellis::RawValue";

impl serde::Serialize for RawValue {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_newtype_struct(RAW_MAGIC, &BytesRef(&pack_payload(&self.0)))
    }
}

impl<'de> serde::Deserialize<'de> for RawValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Trellis converters answer this newtype request with the payload itself (see
        // `magic::MagicDe`); any other deserializer fails here.
        deserializer
            .deserialize_newtype_struct(
                RAW_MAGIC,
                PackedVisitor {
                    expecting: "a payload (a RawValue can only be decoded by a Trellis payload \
                                converter)",
                },
            )
            .map(RawValue)
    }
}
