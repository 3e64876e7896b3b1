//! The macro that declares a catalogue of `type`-tagged bodies (commands, events) from one list of
//! wire names, so the enum, `type_name`, the list of known names and the per-type decoder can never
//! disagree.
//!
//! It generates no serde logic of its own: the enum is internally tagged by `type` with serde's
//! derive, one newtype variant per body wrapping a struct of the same name.

/// Declares `pub enum $enum` tagged by `type` with one newtype variant per `"wire" => Name`, plus
/// `type_name()`, `TYPE_NAMES`, `From<Name>` and a crate-internal decoder by type name.
macro_rules! tagged_catalogue {
    (
        $(#[$enum_meta:meta])*
        pub enum $enum:ident {
            $( $(#[$var_meta:meta])* $wire:literal => $variant:ident ),* $(,)?
        }
    ) => {
        $(#[$enum_meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "type")]
        #[non_exhaustive]
        pub enum $enum {
            $(
                $(#[$var_meta])*
                #[serde(rename = $wire)]
                $variant($variant),
            )*
        }

        impl $enum {
            /// Every `type` of this catalogue, in PROTOCOL.md order.
            pub const TYPE_NAMES: &'static [&'static str] = &[$($wire),*];

            /// The `type` on the wire.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $( $enum::$variant(_) => $wire, )*
                }
            }

            /// Decodes the body named `type_name` from the rest of a map whose `type` key was
            /// already read; `None` (and the map untouched) for a name not in the catalogue.
            pub(crate) fn from_rest_of_map<'de, A: serde::de::MapAccess<'de>>(
                type_name: &str,
                map: A,
            ) -> Result<Result<$enum, A::Error>, A> {
                use serde::Deserialize as _;
                match type_name {
                    $( $wire => Ok($variant::deserialize(
                        serde::de::value::MapAccessDeserializer::new(map),
                    ).map($enum::$variant)), )*
                    _ => Err(map),
                }
            }

            /// Decodes the body named `type_name` with `decoder`; `None` for a name not in the
            /// catalogue.
            #[allow(dead_code)]
            pub(crate) fn decode_with<D: crate::frame::FieldDecoder>(
                type_name: &str,
                decoder: D,
            ) -> Option<Result<$enum, D::Error>> {
                match type_name {
                    $( $wire => Some(decoder.decode::<$variant>().map($enum::$variant)), )*
                    _ => None,
                }
            }
        }

        $(
            impl From<$variant> for $enum {
                fn from(body: $variant) -> $enum {
                    $enum::$variant(body)
                }
            }
        )*
    };
}

/// Implements `Deserialize` for an enum internally tagged by `type` (one newtype variant per
/// `"wire" => Variant(Struct)`), reading the variant's struct straight from the rest of the map
/// when `type` is the first key, as Octo writes it. serde's derive would first buffer the whole
/// map; for parts, read by the thousand from the history, that buffering was the largest cost.
/// A map with `type` elsewhere decodes through the derived shape, with the same result.
macro_rules! tag_first_deserialize {
    ($enum:ident via $shape:ident { $( $wire:literal => $variant:ident($ty:ty) ),* $(,)? }) => {
        #[derive(serde::Deserialize)]
        #[serde(tag = "type")]
        enum $shape {
            $( #[serde(rename = $wire)] $variant($ty), )*
        }

        impl<'de> serde::Deserialize<'de> for $enum {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct TagFirst;

                impl<'de> serde::de::Visitor<'de> for TagFirst {
                    type Value = $enum;

                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("a map tagged by `type` (", stringify!($enum), ")"))
                    }

                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<$enum, A::Error> {
                        use serde::Deserialize as _;
                        use serde::de::Error as _;
                        let Some(first) = map.next_key::<std::borrow::Cow<'de, str>>()? else {
                            return Err(A::Error::missing_field("type"));
                        };
                        if first != "type" {
                            let mut object = serde_json::Map::new();
                            object.insert(first.into_owned(), map.next_value::<serde_json::Value>()?);
                            while let Some((key, value)) =
                                map.next_entry::<String, serde_json::Value>()?
                            {
                                object.insert(key, value);
                            }
                            let shape = $shape::deserialize(serde_json::Value::Object(object))
                                .map_err(A::Error::custom)?;
                            return Ok(match shape {
                                $( $shape::$variant(inner) => $enum::$variant(inner), )*
                            });
                        }
                        let type_name = map.next_value::<std::borrow::Cow<'de, str>>()?;
                        match type_name.as_ref() {
                            $( $wire => <$ty>::deserialize(
                                serde::de::value::MapAccessDeserializer::new(map),
                            ).map($enum::$variant), )*
                            other => Err(A::Error::unknown_variant(other, &[$($wire),*])),
                        }
                    }
                }

                deserializer.deserialize_map(TagFirst)
            }
        }
    };
}
