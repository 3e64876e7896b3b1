//! The log entry (PROTOCOL.md 2.1) and its body: a command or an event.
//!
//! Shape only: offsets, producer sequences and `command_id` deduplication are the log's to assign
//! and check.

use serde::{Deserialize, Serialize};

use crate::command::Command;
use crate::event::Event;
use crate::ids::{CommandId, Ms, Offset, ProducerId, SessionId, UserId};

/// Whether an entry is a command (a request, keyed by `command_id`) or an event (a fact).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Command,
    Event,
}

/// Who appended an entry, and its place in that producer's sequence (which increases by exactly 1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Producer {
    pub id: ProducerId,
    pub seq: u64,
}

/// One entry of the log, as stored, read and sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub offset: Offset,
    pub ts_ms: Ms,
    pub user_id: UserId,
    pub session_id: SessionId,
    pub kind: Kind,
    pub producer: Producer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<CommandId>,
    pub body: Body,
}

/// The body of an entry: a map tagged by `type`.
///
/// Command and event `type`s are disjoint, so the tag alone says which one a body is. A body whose
/// `type` this build does not know decodes as [`Body::Unknown`] so that clients can skip it
/// (PROTOCOL.md 1.3); the log never accepts one for append.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
#[allow(
    clippy::large_enum_variant,
    reason = "bodies are built and matched by value everywhere; boxing events would cost an allocation per entry"
)]
pub enum Body {
    Event(Event),
    Command(Command),
    Unknown(UnknownBody),
}

/// A body of a `type` newer than this build. Only its `type` is kept.
///
/// A body whose `type` this build knows never decodes as unknown: if it does not match its type's
/// shape, decoding the body fails instead of hiding the damage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnknownBody {
    #[serde(rename = "type")]
    pub type_name: String,
}

impl<'de> Deserialize<'de> for UnknownBody {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Tagged {
            #[serde(rename = "type")]
            type_name: String,
        }
        let Tagged { type_name } = Tagged::deserialize(deserializer)?;
        if Event::TYPE_NAMES.contains(&type_name.as_str())
            || Command::TYPE_NAMES.contains(&type_name.as_str())
        {
            return Err(serde::de::Error::custom(format!(
                "body of known type {type_name:?} does not match its shape"
            )));
        }
        Ok(UnknownBody { type_name })
    }
}

/// The shape of [`Body`] for decoding through serde's own machinery: what a map whose `type` is
/// not its first key falls back to.
#[derive(Deserialize)]
#[serde(untagged)]
#[allow(
    clippy::large_enum_variant,
    reason = "decoded once, then moved into a Body"
)]
enum BufferedBody {
    Event(Event),
    Command(Command),
    Unknown(UnknownBody),
}

impl From<BufferedBody> for Body {
    fn from(body: BufferedBody) -> Body {
        match body {
            BufferedBody::Event(event) => Body::Event(event),
            BufferedBody::Command(command) => Body::Command(command),
            BufferedBody::Unknown(unknown) => Body::Unknown(unknown),
        }
    }
}

/// Decodes a body by its `type`, straight into its struct when `type` comes first (as Octo
/// writes it: serde writes an internal tag before the fields), so the common case skips serde's
/// buffering of the whole map for untagged and internally tagged enums, the slowest part of
/// reading the log. Any other order goes through the buffered path, with the same result.
impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BodyVisitor;

        impl<'de> serde::de::Visitor<'de> for BodyVisitor {
            type Value = Body;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a body: a map tagged by `type`")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Body, A::Error> {
                use serde::de::Error as _;
                let Some(first) = map.next_key::<std::borrow::Cow<'de, str>>()? else {
                    return Err(A::Error::missing_field("type"));
                };
                if first != "type" {
                    // Rare (a foreign writer): rebuild the map as JSON and decode it the slow way.
                    let mut object = serde_json::Map::new();
                    object.insert(first.into_owned(), map.next_value::<serde_json::Value>()?);
                    while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
                        object.insert(key, value);
                    }
                    return BufferedBody::deserialize(serde_json::Value::Object(object))
                        .map(Body::from)
                        .map_err(A::Error::custom);
                }
                let type_name = map.next_value::<std::borrow::Cow<'de, str>>()?;
                let map = match Event::from_rest_of_map(&type_name, map) {
                    Ok(event) => return event.map(Body::Event),
                    Err(map) => map,
                };
                let mut map = match Command::from_rest_of_map(&type_name, map) {
                    Ok(command) => return command.map(Body::Command),
                    Err(map) => map,
                };
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Body::Unknown(UnknownBody {
                    type_name: type_name.into_owned(),
                }))
            }
        }

        deserializer.deserialize_map(BodyVisitor)
    }
}

impl Body {
    /// The body's `type` on the wire.
    pub fn type_name(&self) -> &str {
        match self {
            Body::Event(event) => event.type_name(),
            Body::Command(command) => command.type_name(),
            Body::Unknown(unknown) => &unknown.type_name,
        }
    }

    /// The kind an entry with this body must have; `None` for an unknown body.
    pub fn kind(&self) -> Option<Kind> {
        match self {
            Body::Event(_) => Some(Kind::Event),
            Body::Command(_) => Some(Kind::Command),
            Body::Unknown(_) => None,
        }
    }
}

impl From<Command> for Body {
    fn from(command: Command) -> Body {
        Body::Command(command)
    }
}

impl From<Event> for Body {
    fn from(event: Event) -> Body {
        Body::Event(event)
    }
}

/// Why an entry is not well formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// Caller error: the body's type is not one this build knows.
    #[error("body type {type_name:?} is not a known command or event")]
    UnknownBody { type_name: String },
    /// Caller error: a command needs a `command_id`, an event must not have one.
    #[error("a {kind:?} entry {problem}")]
    KindMismatch { kind: Kind, problem: &'static str },
}

impl LogEntry {
    /// Checks that kind, body and `command_id` agree.
    ///
    /// # Errors
    /// [`EntryError`] naming the disagreement.
    pub fn check(&self) -> Result<(), EntryError> {
        check_shape(self.kind, self.command_id.is_some(), &self.body)
    }
}

/// The shape rule of [`LogEntry::check`], for entries not yet given an offset.
///
/// # Errors
/// [`EntryError`] naming the disagreement.
pub fn check_shape(kind: Kind, has_command_id: bool, body: &Body) -> Result<(), EntryError> {
    let body_kind = body.kind().ok_or_else(|| EntryError::UnknownBody {
        type_name: body.type_name().to_owned(),
    })?;
    if body_kind != kind {
        return Err(EntryError::KindMismatch {
            kind,
            problem: "has a body of the other kind",
        });
    }
    match (kind, has_command_id) {
        (Kind::Command, false) => Err(EntryError::KindMismatch {
            kind,
            problem: "needs a command_id",
        }),
        (Kind::Event, true) => Err(EntryError::KindMismatch {
            kind,
            problem: "must not carry a command_id",
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod body_decoding {
    use super::*;

    #[test]
    fn bodies_decode_whatever_the_key_order() {
        let first: Body = serde_json::from_str(r#"{"type":"notice","level":"info","text":"x"}"#)
            .expect("decodes");
        let last: Body = serde_json::from_str(r#"{"text":"x","level":"info","type":"notice"}"#)
            .expect("decodes");
        assert_eq!(first, last);
        assert!(matches!(first, Body::Event(Event::Notice(_))));
        let packed = crate::codec::to_msgpack(&first).expect("encodes");
        assert_eq!(
            crate::codec::from_msgpack::<Body>(&packed).expect("decodes"),
            first
        );
    }

    #[test]
    fn parts_decode_whatever_the_key_order() {
        use crate::message::Part;
        let id = crate::ids::PartId::new();
        let first: Part =
            serde_json::from_str(&format!(r#"{{"type":"text","id":"{id}","text":"hi"}}"#))
                .expect("decodes");
        let last: Part =
            serde_json::from_str(&format!(r#"{{"id":"{id}","text":"hi","type":"text"}}"#))
                .expect("decodes");
        assert_eq!(first, last);
        let packed = crate::codec::to_msgpack(&first).expect("encodes");
        assert_eq!(
            crate::codec::from_msgpack::<Part>(&packed).expect("decodes"),
            first
        );
        assert!(serde_json::from_str::<Part>(r#"{"type":"hologram","id":"x"}"#).is_err());
    }

    #[test]
    fn unknown_types_are_kept_and_damaged_known_ones_fail() {
        let unknown: Body =
            serde_json::from_str(r#"{"type":"future.thing","a":[1,{"b":2}]}"#).expect("decodes");
        assert_eq!(unknown.type_name(), "future.thing");
        assert!(matches!(unknown, Body::Unknown(_)));
        for damaged in [
            r#"{"type":"notice","level":"bogus","text":"x"}"#,
            r#"{"level":"bogus","text":"x","type":"notice"}"#,
            r#"{"text":"x"}"#,
        ] {
            assert!(serde_json::from_str::<Body>(damaged).is_err(), "{damaged}");
        }
        let command: Body = serde_json::from_str(r#"{"type":"abort"}"#).expect("decodes");
        assert!(matches!(command, Body::Command(Command::Abort(_))));
    }
}
