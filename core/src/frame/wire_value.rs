//! A generic JSON-or-msgpack value for the client frame decoder: read once from either encoding,
//! then inspected by hand (`ch`, `type`, ids) and decoded field by field.
//!
//! Unlike `serde_json::Value` it keeps msgpack `bin` as bytes (so [`crate::Bytes`] fields get them
//! without a base64 detour and nothing else mistakes them for text), refuses msgpack ext types,
//! non-string map keys, duplicate keys and non-finite floats, and caps nesting at
//! [`CLIENT_FRAME_DEPTH_MAX`] so hostile input cannot exhaust the stack. It is not a general value
//! type: nothing outside the decoder sees it.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::value::{Error as ValueError, MapDeserializer, SeqDeserializer};
use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde::{Deserialize, forward_to_deserialize_any};

/// Deepest nesting a client frame may have. Real frames nest three levels (a prompt's images);
/// the cap keeps recursion on hostile input far from the stack's end.
pub const CLIENT_FRAME_DEPTH_MAX: usize = 32;

/// One decoded value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WireValue {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(String),
    Bytes(Vec<u8>),
    Seq(Vec<WireValue>),
    Map(BTreeMap<String, WireValue>),
}

impl WireValue {
    pub(crate) fn is_null(&self) -> bool {
        matches!(self, WireValue::Null)
    }
}

impl<'de> Deserialize<'de> for WireValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        DepthSeed {
            depth_left: CLIENT_FRAME_DEPTH_MAX,
        }
        .deserialize(deserializer)
    }
}

#[derive(Clone, Copy)]
struct DepthSeed {
    depth_left: usize,
}

impl DepthSeed {
    fn nested<E: de::Error>(self) -> Result<DepthSeed, E> {
        match self.depth_left.checked_sub(1) {
            Some(depth_left) if depth_left > 0 => Ok(DepthSeed { depth_left }),
            _ => Err(E::custom(format!(
                "nested deeper than {CLIENT_FRAME_DEPTH_MAX} levels"
            ))),
        }
    }
}

impl<'de> DeserializeSeed<'de> for DepthSeed {
    type Value = WireValue;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<WireValue, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DepthSeed {
    type Value = WireValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON or msgpack value with string map keys and no ext types")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<WireValue, E> {
        Ok(WireValue::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<WireValue, E> {
        Ok(WireValue::I64(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<WireValue, E> {
        Ok(WireValue::U64(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<WireValue, E> {
        if value.is_finite() {
            Ok(WireValue::F64(value))
        } else {
            Err(E::custom("a number that is not finite"))
        }
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<WireValue, E> {
        Ok(WireValue::Str(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<WireValue, E> {
        Ok(WireValue::Str(value))
    }

    fn visit_bytes<E: de::Error>(self, value: &[u8]) -> Result<WireValue, E> {
        Ok(WireValue::Bytes(value.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, value: Vec<u8>) -> Result<WireValue, E> {
        Ok(WireValue::Bytes(value))
    }

    fn visit_none<E: de::Error>(self) -> Result<WireValue, E> {
        Ok(WireValue::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<WireValue, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_unit<E: de::Error>(self) -> Result<WireValue, E> {
        Ok(WireValue::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WireValue, A::Error> {
        let inner = self.nested()?;
        // A declared length is the peer's claim: never allocate for more than a few items ahead.
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(WireValue::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireValue, A::Error> {
        let inner = self.nested()?;
        let mut entries = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(inner)?;
            if entries.insert(key, value).is_some() {
                return Err(de::Error::custom("a key appears twice in one map"));
            }
        }
        Ok(WireValue::Map(entries))
    }
}

impl<'de> IntoDeserializer<'de, ValueError> for WireValue {
    type Deserializer = WireValue;

    fn into_deserializer(self) -> WireValue {
        self
    }
}

impl<'de> Deserializer<'de> for WireValue {
    type Error = ValueError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            WireValue::Null => visitor.visit_unit(),
            WireValue::Bool(value) => visitor.visit_bool(value),
            WireValue::I64(value) => visitor.visit_i64(value),
            WireValue::U64(value) => visitor.visit_u64(value),
            WireValue::F64(value) => visitor.visit_f64(value),
            WireValue::Str(value) => visitor.visit_string(value),
            WireValue::Bytes(value) => visitor.visit_byte_buf(value),
            WireValue::Seq(items) => {
                let mut access = SeqDeserializer::new(items.into_iter());
                let value = visitor.visit_seq(&mut access)?;
                access.end()?;
                Ok(value)
            }
            WireValue::Map(entries) => {
                let mut access = MapDeserializer::new(entries.into_iter());
                let value = visitor.visit_map(&mut access)?;
                access.end()?;
                Ok(value)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            WireValue::Null => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        match self {
            // Unit variants: the wire's enums of strings.
            WireValue::Str(name) => visitor.visit_enum(name.into_deserializer()),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msgpack_bin_stays_bytes_and_ext_is_refused() {
        let bin = [0x81, 0xa1, b'd', 0xc4, 0x02, 0x01, 0x02];
        let value: WireValue = crate::codec::from_msgpack(&bin).expect("a map with bin");
        let WireValue::Map(map) = value else {
            panic!("not a map");
        };
        assert_eq!(map.get("d"), Some(&WireValue::Bytes(vec![1, 2])));
        let ext = [0x81, 0xa1, b'd', 0xd4, 0x01, 0x00];
        assert!(crate::codec::from_msgpack::<WireValue>(&ext).is_err());
        let int_key = [0x81, 0x01, 0x02];
        assert!(crate::codec::from_msgpack::<WireValue>(&int_key).is_err());
    }

    #[test]
    fn depth_is_capped() {
        let ok = format!(
            "{}{}",
            "[".repeat(CLIENT_FRAME_DEPTH_MAX),
            "]".repeat(CLIENT_FRAME_DEPTH_MAX)
        );
        assert!(serde_json::from_str::<WireValue>(&ok).is_err());
        let depth = CLIENT_FRAME_DEPTH_MAX - 1;
        let ok = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(serde_json::from_str::<WireValue>(&ok).is_ok());
    }
}
