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

/// Reads a finite `f64`: NaN and infinities have no JSON spelling (they would turn into `null` and
/// break every reader of the entry), and sums of costs must stay numbers.
///
/// # Errors
/// A non-finite number or a wrong type.
pub fn finite_f64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let value = f64::deserialize(deserializer)?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(serde::de::Error::custom(format!(
            "{value} is not a finite number"
        )))
    }
}

/// [`finite_f64`] for an optional field (`null` reads as `None`).
///
/// # Errors
/// A non-finite number or a wrong type.
pub fn finite_f64_opt<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    match Option::<f64>::deserialize(deserializer)? {
        Some(value) if !value.is_finite() => Err(serde::de::Error::custom(format!(
            "{value} is not a finite number"
        ))),
        other => Ok(other),
    }
}

/// `skip_serializing_if` for flags that are omitted when false.
#[allow(clippy::trivially_copy_pass_by_ref)] // serde passes a reference.
pub fn is_false(value: &bool) -> bool {
    !*value
}

#[cfg(test)]
mod tests {
    #[test]
    fn costs_must_be_finite() {
        let bytes = crate::codec::to_msgpack(&serde_json::json!({"provider": "p", "model_id": "m",
            "run_id": crate::RunId::new(), "message_id": crate::MessageId::new(),
            "input_tokens": 1, "output_tokens": 1, "cache_read_tokens": 0, "cache_write_tokens": 0}))
        .expect("encodes");
        let fine: Result<crate::event::UsageRecorded, _> = crate::codec::from_msgpack(&bytes);
        assert!(fine.is_ok(), "{fine:?}");
        for cost in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            #[derive(serde::Serialize)]
            struct WithCost {
                run_id: crate::RunId,
                message_id: crate::MessageId,
                provider: &'static str,
                model_id: &'static str,
                input_tokens: u64,
                output_tokens: u64,
                cache_read_tokens: u64,
                cache_write_tokens: u64,
                cost_usd: f64,
            }
            let bytes = crate::codec::to_msgpack(&WithCost {
                run_id: crate::RunId::new(),
                message_id: crate::MessageId::new(),
                provider: "p",
                model_id: "m",
                input_tokens: 1,
                output_tokens: 1,
                cache_read_tokens: 0,
                cache_write_tokens: 0,
                cost_usd: cost,
            })
            .expect("encodes");
            let refused: Result<crate::event::UsageRecorded, _> =
                crate::codec::from_msgpack(&bytes);
            assert!(refused.is_err(), "{cost} was accepted");
        }
    }

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
