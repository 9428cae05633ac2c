//! Argument lists: Temporal carries a call's arguments as a list of payloads, one per argument.

use serde::de::{self, DeserializeOwned, DeserializeSeed, SeqAccess, Visitor};
use trellis_core_proto::Payload;

use crate::{ConversionError, DataConverter, PayloadConverterExt, RawValue};

/// A value that becomes a list of argument payloads: `()` for none, a tuple for one payload per
/// element, a `Vec<RawValue>` for payloads given as they are.
///
/// A single value that is not a tuple goes through methods that take one input (e.g.
/// `start_workflow(.., &input, ..)`); use a one-element tuple `(value,)` where a list is asked.
pub trait IntoPayloads {
    /// Encodes each argument with `converter`.
    fn into_payloads(self, converter: &DataConverter) -> Result<Vec<Payload>, ConversionError>;
}

impl IntoPayloads for Vec<RawValue> {
    fn into_payloads(self, _: &DataConverter) -> Result<Vec<Payload>, ConversionError> {
        Ok(self.into_iter().map(|r| r.0).collect())
    }
}

impl IntoPayloads for Vec<Payload> {
    fn into_payloads(self, _: &DataConverter) -> Result<Vec<Payload>, ConversionError> {
        Ok(self)
    }
}

macro_rules! tuple_args {
    ($( ($($name:ident),*) )*) => {$(
        impl<$($name: serde::Serialize),*> IntoPayloads for ($($name,)*) {
            #[allow(non_snake_case, unused_variables)]
            fn into_payloads(self, converter: &DataConverter) -> Result<Vec<Payload>, ConversionError> {
                let ($($name,)*) = self;
                Ok(vec![$(converter.encode(&$name)?),*])
            }
        }
    )*};
}

tuple_args! { () (A) (A, B) (A, B, C) (A, B, C, D) (A, B, C, D, E) (A, B, C, D, E, F) (A, B, C, D, E, F, G) }

/// Decodes a list of argument payloads into one Rust value:
///
/// - no payloads: decoded as a null value (so `()` and `Option<_>` accept a call with no
///   arguments);
/// - one payload: decoded directly (a function taking `String` accepts `"world"`);
/// - several payloads: decoded as a sequence whose elements are the payloads, so a tuple
///   `(String, String)` accepts a call with two arguments, as other SDKs send them.
pub fn decode_args<T: DeserializeOwned + 'static>(
    converter: &DataConverter,
    payloads: &[Payload],
) -> Result<T, ConversionError> {
    match payloads {
        [] => converter
            .payloads()
            .decode(&trellis_core_proto::payload::new_payload(
                trellis_core_proto::payload::encoding::NULL,
                Vec::new(),
            ))
            .map_err(|_| ConversionError::ArgumentCount {
                type_name: std::any::type_name::<T>(),
                expected: "at least 1".into(),
                got: 0,
            }),
        [one] => converter.decode(one),
        many => T::deserialize(PayloadSeq {
            converter,
            payloads: many,
        })
        .map_err(|e| ConversionError::Decode {
            type_name: std::any::type_name::<T>(),
            payload: format!("{} argument payloads", many.len()),
            cause: e.to_string(),
        }),
    }
}

struct PayloadSeq<'a> {
    converter: &'a DataConverter,
    payloads: &'a [Payload],
}

impl<'de> de::Deserializer<'de> for PayloadSeq<'de> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_seq(PayloadSeqAccess {
            converter: self.converter,
            rest: self.payloads.iter(),
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct PayloadSeqAccess<'a> {
    converter: &'a DataConverter,
    rest: std::slice::Iter<'a, Payload>,
}

impl<'de> SeqAccess<'de> for PayloadSeqAccess<'de> {
    type Error = de::value::Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Self::Error> {
        let Some(payload) = self.rest.next() else {
            return Ok(None);
        };
        crate::fast::decode_seed(self.converter.payloads(), payload, seed)
            .map(Some)
            .map_err(<Self::Error as de::Error>::custom)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.rest.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuple_arguments_round_trip_as_separate_payloads() {
        let dc = DataConverter::default();
        let ps = dc.encode_args(("Hello", "world")).unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[1].data, br#""world""#);
        let (a, b): (String, String) = dc.decode_args(&ps).unwrap();
        assert_eq!((a.as_str(), b.as_str()), ("Hello", "world"));
    }

    #[test]
    fn single_and_empty_argument_lists() {
        let dc = DataConverter::default();
        let ps = dc.encode_args((42u32,)).unwrap();
        assert_eq!(dc.decode_args::<u32>(&ps).unwrap(), 42);
        dc.decode_args::<()>(&[]).unwrap();
        assert_eq!(dc.decode_args::<Option<u32>>(&[]).unwrap(), None);
        let e = dc.decode_args::<u32>(&[]).unwrap_err().to_string();
        assert!(e.contains("expected at least 1 argument"), "{e}");
    }

    #[test]
    fn raw_values_pass_through_untouched() {
        let dc = DataConverter::default();
        let p = trellis_core_proto::payload::new_payload("binary/custom", vec![9, 9]);
        let raw: RawValue = dc.decode(&p).unwrap();
        assert_eq!(raw.0, p);
        assert_eq!(dc.encode(&raw).unwrap(), p);
    }
}
