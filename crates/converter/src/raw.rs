use trellis_core_proto::Payload;

/// A payload passed through a converter untouched, whatever its encoding: use it as an input or
/// result type to forward values without decoding them (e.g. an echo workflow that returns bytes,
/// JSON or null exactly as it received them).
///
/// Encoding a `RawValue` with any Trellis converter yields the payload it holds; decoding into a
/// `RawValue` yields the payload as it arrived.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawValue(pub Payload);

pub(crate) const RAW_MAGIC: &str = "$trellis::RawValue";

impl serde::Serialize for RawValue {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bytes = trellis_core_proto::encode_message(&self.0);
        serializer.serialize_newtype_struct(RAW_MAGIC, &Bytes(&bytes))
    }
}

struct Bytes<'a>(&'a [u8]);

impl serde::Serialize for Bytes<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for RawValue {
    fn deserialize<D: serde::Deserializer<'de>>(_deserializer: D) -> Result<Self, D::Error> {
        // Trellis converters hand over the payload itself before any deserializer is built (see
        // `PayloadConverterExt::decode`); reaching this means a plain serde format was used.
        Err(serde::de::Error::custom(
            "a RawValue can only be decoded by a Trellis payload converter",
        ))
    }
}
