//! Serde helpers for the optional fields of PROTOCOL.md 1.1: senders omit an absent field,
//! decoders also accept `null` for it.
//!
//! `Option<T>` fields already read `null` as `None`; these helpers give the same leniency to
//! fields whose absence has a natural default (lists, flags). They do not validate content: that is
//! `validate`'s job.

use serde::{Deserialize, Deserializer};

/// Reads `null` as `T::default()`. Pair it with `#[serde(default)]` so that an absent field is the
/// default too: `#[serde(default, deserialize_with = "crate::field::null_as_default")]`.
///
/// # Errors
/// Whatever `T` refuses (a wrong type).
pub fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `skip_serializing_if` for flags that are omitted when false.
#[allow(clippy::trivially_copy_pass_by_ref)] // serde passes a reference.
pub fn is_false(value: &bool) -> bool {
    !*value
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Holder {
        #[serde(default, deserialize_with = "super::null_as_default")]
        items: Vec<String>,
        #[serde(
            default,
            deserialize_with = "super::null_as_default",
            skip_serializing_if = "super::is_false"
        )]
        flag: bool,
    }

    #[test]
    fn null_absent_and_present_all_decode() {
        let cases = [
            (
                r#"{}"#,
                Holder {
                    items: vec![],
                    flag: false,
                },
            ),
            (
                r#"{"items":null,"flag":null}"#,
                Holder {
                    items: vec![],
                    flag: false,
                },
            ),
            (
                r#"{"items":["a"],"flag":true}"#,
                Holder {
                    items: vec!["a".into()],
                    flag: true,
                },
            ),
        ];
        for (text, expected) in cases {
            let decoded: Holder = serde_json::from_str(text).expect("valid holder");
            assert_eq!(decoded, expected, "{text}");
        }
        let wrong: Result<Holder, _> = serde_json::from_str(r#"{"items":5}"#);
        assert!(wrong.is_err());
        let encoded = serde_json::to_string(&Holder {
            items: vec![],
            flag: false,
        })
        .expect("encodable");
        assert_eq!(encoded, r#"{"items":[]}"#);
    }
}
