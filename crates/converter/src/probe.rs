//! A serializer that only answers "is this value null, bytes, a protobuf message, a raw payload,
//! or something else?" without writing anything, so the encoding converters can pick
//! `binary/null`, `binary/plain`, `json/protobuf`, `binary/protobuf` or `json/plain` the way the
//! other SDKs do.

use serde::ser::{self, Impossible, Serializer};

pub(crate) enum Kind {
    Null,
    Bytes(Vec<u8>),
    Raw(trellis_core_proto::Payload),
    Proto(crate::proto::ProtoValue),
    Other,
}

#[derive(Debug)]
pub(crate) struct NotSpecial;

impl std::fmt::Display for NotSpecial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not null or bytes")
    }
}
impl std::error::Error for NotSpecial {}
impl ser::Error for NotSpecial {
    fn custom<T: std::fmt::Display>(_msg: T) -> Self {
        NotSpecial
    }
}

pub(crate) struct Probe;

pub(crate) fn kind_of(value: &dyn erased_serde::Serialize) -> Kind {
    erased_serde::serialize(value, Probe).unwrap_or(Kind::Other)
}

macro_rules! other {
    ($($name:ident($($t:ty),*);)*) => {
        $(fn $name(self, $(_: $t),*) -> Result<Kind, NotSpecial> { Err(NotSpecial) })*
    };
}

impl Serializer for Probe {
    type Ok = Kind;
    type Error = NotSpecial;
    type SerializeSeq = Impossible<Kind, NotSpecial>;
    type SerializeTuple = Impossible<Kind, NotSpecial>;
    type SerializeTupleStruct = Impossible<Kind, NotSpecial>;
    type SerializeTupleVariant = Impossible<Kind, NotSpecial>;
    type SerializeMap = Impossible<Kind, NotSpecial>;
    type SerializeStruct = Impossible<Kind, NotSpecial>;
    type SerializeStructVariant = Impossible<Kind, NotSpecial>;

    fn serialize_unit(self) -> Result<Kind, NotSpecial> {
        Ok(Kind::Null)
    }
    fn serialize_none(self) -> Result<Kind, NotSpecial> {
        Ok(Kind::Null)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Kind, NotSpecial> {
        Ok(Kind::Bytes(v.to_vec()))
    }
    fn serialize_some<T: ?Sized + ser::Serialize>(self, value: &T) -> Result<Kind, NotSpecial> {
        value.serialize(self)
    }
    fn serialize_newtype_struct<T: ?Sized + ser::Serialize>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Kind, NotSpecial> {
        match value.serialize(self)? {
            Kind::Bytes(b) if name == crate::raw::RAW_MAGIC => crate::magic::unpack_payload(&b)
                .map(Kind::Raw)
                .ok_or(NotSpecial),
            Kind::Bytes(b) if name == crate::proto::PROTO_MAGIC => {
                crate::proto::ProtoValue::unpack(&b)
                    .map(Kind::Proto)
                    .ok_or(NotSpecial)
            }
            other => Ok(other),
        }
    }

    other! {
        serialize_bool(bool); serialize_i8(i8); serialize_i16(i16); serialize_i32(i32);
        serialize_i64(i64); serialize_u8(u8); serialize_u16(u16); serialize_u32(u32);
        serialize_u64(u64); serialize_f32(f32); serialize_f64(f64); serialize_char(char);
        serialize_str(&str); serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }

    fn serialize_newtype_variant<T: ?Sized + ser::Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Kind, NotSpecial> {
        Err(NotSpecial)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NotSpecial> {
        Err(NotSpecial)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, NotSpecial> {
        Err(NotSpecial)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, NotSpecial> {
        Err(NotSpecial)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotSpecial> {
        Err(NotSpecial)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotSpecial> {
        Err(NotSpecial)
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, NotSpecial> {
        Err(NotSpecial)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotSpecial> {
        Err(NotSpecial)
    }
}
