//! Identifiers and offsets (PROTOCOL.md 1.1).
//!
//! Every id is a newtype, never a bare `String` or `u64`, so a message id cannot be passed where a
//! session id belongs. UUID ids are version 7 and travel as the lowercase hyphenated form only:
//! anything else is rejected when decoded (`invalid_id`), so one id has exactly one spelling on the
//! wire and in the log's keys.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::limits::{OFFSET_MAX, REQ_ID_CHARS_MAX};

/// Milliseconds since the Unix epoch, UTC. Every timestamp in v1 (fields end in `_ms`).
pub type Ms = i64;

/// Why an id or offset was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// Caller error: the text is not a lowercase hyphenated UUID of version 7.
    #[error("{value:?} is not a lowercase hyphenated version-7 UUID (36 characters)")]
    NotUuid7 {
        /// The text as received, cut to 64 characters.
        value: String,
    },
    /// Caller error: a request id must be 1..64 characters of `[A-Za-z0-9._:-]`.
    #[error("{value:?} is not a request id: use 1..64 characters of A-Z a-z 0-9 . _ : -")]
    BadReqId {
        /// The text as received, cut to 80 characters.
        value: String,
    },
    /// Caller error: offsets are below 2^53.
    #[error("offset {value} is not below 2^53")]
    OffsetTooLarge {
        /// The offending value.
        value: u64,
    },
    /// Caller error: a user or producer id must be 1..128 printable characters.
    #[error("{value:?} is not a valid {what}: use 1..128 printable characters")]
    BadName {
        /// Which kind of name.
        what: &'static str,
        /// The text as received, cut to 140 characters.
        value: String,
    },
}

fn cut(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// A position in the log. Assigned by the log; the first entry is 1, so 0 means "before
/// everything". Offsets have gaps: never compute "offset + 1" to find the next entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(transparent)]
pub struct Offset(u64);

impl Offset {
    /// Before every entry; `after: 0` and `after: null` mean the same.
    pub const ZERO: Offset = Offset(0);
    /// The largest offset the protocol allows (2^53 - 1).
    pub const MAX: Offset = Offset(OFFSET_MAX);

    /// # Errors
    /// [`IdError::OffsetTooLarge`] for values at or above 2^53.
    pub const fn new(value: u64) -> Result<Offset, IdError> {
        if value > OFFSET_MAX {
            return Err(IdError::OffsetTooLarge { value });
        }
        Ok(Offset(value))
    }

    /// The raw value.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The offset a log assigns after this one.
    ///
    /// # Panics
    /// When the log would pass 2^53 - 1 entries, which at a million appends per second takes
    /// 285 years; reaching it is a bug (a corrupt counter), not an operating error.
    #[must_use]
    pub const fn successor(self) -> Offset {
        assert!(self.0 < OFFSET_MAX, "log offset space exhausted");
        Offset(self.0 + 1)
    }

    /// Big-endian bytes: sorted byte-wise, they sort by offset (the log's keys).
    pub const fn to_be_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// The inverse of [`Offset::to_be_bytes`].
    ///
    /// # Errors
    /// [`IdError::OffsetTooLarge`] when the bytes hold a value at or above 2^53.
    pub const fn from_be_bytes(bytes: [u8; 8]) -> Result<Offset, IdError> {
        Offset::new(u64::from_be_bytes(bytes))
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Offset {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = u64::deserialize(deserializer)?;
        Offset::new(value).map_err(de::Error::custom)
    }
}

/// Parses the only accepted spelling of a version-7 UUID.
fn parse_uuid7(text: &str) -> Result<uuid::Uuid, IdError> {
    let bad = || IdError::NotUuid7 {
        value: cut(text, 64),
    };
    let bytes = text.as_bytes();
    if bytes.len() != 36 {
        return Err(bad());
    }
    for (idx, byte) in bytes.iter().enumerate() {
        let ok = match idx {
            8 | 13 | 18 | 23 => *byte == b'-',
            _ => byte.is_ascii_digit() || (b'a'..=b'f').contains(byte),
        };
        if !ok {
            return Err(bad());
        }
    }
    let uuid = uuid::Uuid::try_parse(text).map_err(|_| bad())?;
    if uuid.get_version_num() != 7 || uuid.get_variant() != uuid::Variant::RFC4122 {
        return Err(bad());
    }
    Ok(uuid)
}

macro_rules! uuid7_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// A fresh id, time-ordered (UUIDv7).
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }

            /// # Errors
            /// [`IdError::NotUuid7`] unless `text` is a lowercase hyphenated UUIDv7.
            pub fn parse(text: &str) -> Result<Self, IdError> {
                parse_uuid7(text).map(Self)
            }

            /// The same id every time for the same inputs: a UUIDv7 with `timestamp_ms` as its
            /// time and `seed` as its other bits (for ids derived from others, such as the
            /// prompts of a rerun or the messages of an imported file).
            pub fn derived(timestamp_ms: u64, seed: &[u8; 10]) -> Self {
                Self(uuid::Builder::from_unix_timestamp_millis(timestamp_ms, seed).into_uuid())
            }

            /// The id's time, in ms since the epoch.
            pub fn timestamp_ms(&self) -> u64 {
                self.0
                    .get_timestamp()
                    .map_or(0, |ts| {
                        let (secs, nanos) = ts.to_unix();
                        secs * 1000 + u64::from(nanos) / 1_000_000
                    })
            }

            /// The 16 raw bytes (the log's key prefixes).
            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }

            /// # Errors
            /// [`IdError::NotUuid7`] unless the bytes are a version-7 UUID.
            pub fn from_bytes(bytes: [u8; 16]) -> Result<Self, IdError> {
                let uuid = uuid::Uuid::from_bytes(bytes);
                if uuid.get_version_num() != 7 || uuid.get_variant() != uuid::Variant::RFC4122 {
                    return Err(IdError::NotUuid7 { value: uuid.to_string() });
                }
                Ok(Self(uuid))
            }

            /// The inner UUID.
            pub fn as_uuid(&self) -> uuid::Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(text: &str) -> Result<Self, IdError> {
                Self::parse(text)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut buffer = uuid::Uuid::encode_buffer();
                serializer.serialize_str(self.0.hyphenated().encode_lower(&mut buffer))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(Uuid7Visitor).map(Self)
            }
        }
    };
}

struct Uuid7Visitor;

impl Visitor<'_> for Uuid7Visitor {
    type Value = uuid::Uuid;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a lowercase hyphenated version-7 UUID string")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<uuid::Uuid, E> {
        parse_uuid7(text).map_err(E::custom)
    }
}

uuid7_id!(
    /// A session, minted by the server when `session.create` or `fork` is appended.
    SessionId
);
uuid7_id!(
    /// The client-chosen idempotency key of a logged command.
    CommandId
);
uuid7_id!(
    /// A message, minted by the runner when the message starts.
    MessageId
);
uuid7_id!(
    /// A part of a message, minted when the part opens (its first delta).
    PartId
);
uuid7_id!(
    /// One agent run, from `agent.working` to its terminal event.
    RunId
);
uuid7_id!(
    /// One WebSocket connection, named in `system.hello`.
    ConnectionId
);
uuid7_id!(
    /// A terminal opened on the terminal channel.
    TerminalId
);
uuid7_id!(
    /// An hstry attachment written through the facade.
    AttachmentId
);
uuid7_id!(
    /// One start of a runner process (section 14.2).
    BootId
);

/// Longest user or producer id, in bytes.
pub const NAME_BYTES_MAX: usize = 128;

fn check_name(what: &'static str, text: &str) -> Result<(), IdError> {
    let ok = !text.is_empty()
        && text.len() <= NAME_BYTES_MAX
        && text.chars().all(|c| !c.is_control() && !c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(IdError::BadName {
            what,
            value: cut(text, 140),
        })
    }
}

macro_rules! name_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// # Errors
            /// [`IdError::BadName`] for empty, over-long or whitespace/control-containing text.
            pub fn new(text: impl Into<String>) -> Result<Self, IdError> {
                let text = text.into();
                check_name($what, &text)?;
                Ok(Self(text))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::new(text).map_err(de::Error::custom)
            }
        }
    };
}

name_id!(
    /// The owner of a session: opaque and server-assigned.
    UserId,
    "user id"
);
name_id!(
    /// Who appended an entry: `gw:<node_id>`, a runner's `runner_id`, or `hstry:<node_id>`.
    ProducerId,
    "producer id"
);

/// A client-chosen request id that correlates a non-logged request with its reply:
/// 1..64 characters of `[A-Za-z0-9._:-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ReqId(String);

impl ReqId {
    /// # Errors
    /// [`IdError::BadReqId`] unless the text is 1..64 characters of `[A-Za-z0-9._:-]`.
    pub fn new(text: impl Into<String>) -> Result<Self, IdError> {
        let text = text.into();
        let ok = !text.is_empty()
            && text.len() <= REQ_ID_CHARS_MAX
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b));
        if ok {
            Ok(ReqId(text))
        } else {
            Err(IdError::BadReqId {
                value: cut(&text, 80),
            })
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReqId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ReqId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ReqId::new(text).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid7_accepts_only_the_canonical_spelling() {
        let id = SessionId::new();
        let text = id.to_string();
        assert_eq!(SessionId::parse(&text), Ok(id));
        assert!(SessionId::parse(&text.to_uppercase()).is_err(), "uppercase");
        assert!(
            SessionId::parse(&text.replace('-', "")).is_err(),
            "simple form"
        );
        assert!(SessionId::parse(&format!("{{{text}}}")).is_err(), "braced");
        assert!(
            SessionId::parse("6ba7b810-9dad-11d1-80b4-00c04fd430c8").is_err(),
            "v1"
        );
        assert!(SessionId::parse("").is_err(), "empty");
    }

    #[test]
    fn offset_bounds() {
        assert!(Offset::new(OFFSET_MAX).is_ok());
        assert!(Offset::new(OFFSET_MAX + 1).is_err());
        let decoded: Result<Offset, _> = serde_json::from_str("9007199254740992");
        assert!(decoded.is_err());
    }

    #[test]
    fn req_id_limits() {
        assert!(ReqId::new("a".repeat(64)).is_ok());
        assert!(ReqId::new("a".repeat(65)).is_err());
        assert!(ReqId::new("").is_err());
        assert!(ReqId::new("r1:x.y_z-9").is_ok());
        assert!(ReqId::new("r 1").is_err());
    }
}
