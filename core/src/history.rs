//! The `history.*` events of PROTOCOL.md 6.7: hstry writes (HSTRY_API.md section 8) kept in the log,
//! and the blob reference of PROTOCOL.md 2.2 that stands in for payloads too big for an entry.
//!
//! Field names follow the v1 rule that timestamps end in `_ms` (hstry's `created_at_ms` is
//! `created_ms` here). These types do not normalise or validate hstry's content (role folding,
//! content digests, tag trimming): the facade does that before it appends.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use crate::ids::{AttachmentId, MessageId, Ms};

/// Length of a BLAKE3 hash in lowercase hex.
pub const BLOB_HASH_HEX_CHARS: usize = 64;

/// The BLAKE3 hash of a blob: 32 bytes, written as 64 lowercase hex characters (the only accepted
/// spelling). The log's blob store is keyed by the raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobHash([u8; 32]);

/// Why a blob hash was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a blake3 hash: use 64 lowercase hex characters")]
pub struct BlobHashError {
    /// The text as received, cut to 80 characters.
    pub value: String,
}

fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        _ => None,
    }
}

impl BlobHash {
    /// # Errors
    /// [`BlobHashError`] unless `text` is 64 lowercase hex characters.
    pub fn parse(text: &str) -> Result<BlobHash, BlobHashError> {
        let refuse = || BlobHashError {
            value: text.chars().take(80).collect(),
        };
        if text.len() != BLOB_HASH_HEX_CHARS {
            return Err(refuse());
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            let (Some(high), Some(low)) = (hex_digit(pair[0]), hex_digit(pair[1])) else {
                return Err(refuse());
            };
            *byte = (high << 4) | low;
        }
        Ok(BlobHash(bytes))
    }

    /// The hash from its 32 raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> BlobHash {
        BlobHash(bytes)
    }

    /// The 32 raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({self})")
    }
}

impl Serialize for BlobHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BlobHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        BlobHash::parse(&text).map_err(de::Error::custom)
    }
}

/// `{blob, size}`: a payload stored in the log's content-addressed blob store, read through the
/// same owner checks as entries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlobRef {
    pub blob: BlobHash,
    /// The blob's length in bytes.
    pub size: u64,
}

/// A text field that is either inline or, when it would push the entry over `max_entry_bytes`,
/// moved to the blob store (PROTOCOL.md 2.2): a string or a [`BlobRef`] map on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TextOrBlob {
    Inline(String),
    Blob(BlobRef),
}

impl Default for TextOrBlob {
    fn default() -> TextOrBlob {
        TextOrBlob::Inline(String::new())
    }
}

impl From<String> for TextOrBlob {
    fn from(text: String) -> TextOrBlob {
        TextOrBlob::Inline(text)
    }
}

/// A message role as hstry stores it, after its normalisation (HSTRY_API.md 5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryRole {
    User,
    Assistant,
    System,
    Tool,
    Other,
}

impl HistoryRole {
    /// The role's wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            HistoryRole::User => "user",
            HistoryRole::Assistant => "assistant",
            HistoryRole::System => "system",
            HistoryRole::Tool => "tool",
            HistoryRole::Other => "other",
        }
    }
}

/// `history.conversation_upserted`: a WriteConversation, with every Conversation field the write
/// carried; absent optional fields are cleared as hstry does. The conversation UUID is the entry's
/// `session_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryConversationUpserted {
    pub source_id: String,
    pub external_id: String,
    /// The writer's, or minted by the facade for a new conversation.
    pub readable_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// hstry's `created_at_ms`, with "now" decided by the facade.
    pub created_ms: Ms,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_ms: Option<Ms>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_in: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_out: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::field::finite_f64_opt"
    )]
    pub cost_usd: Option<f64>,
    /// A JSON document as text; `""` means `{}`.
    #[serde(default)]
    pub metadata_json: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harness: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_conversation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_message_idx: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork_type: Option<String>,
}

/// `history.message_upserted`: one new or changed message at `idx`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryMessageUpserted {
    pub idx: i32,
    /// Minted by the facade for a new idx, kept for a rewrite.
    pub message_id: MessageId,
    pub role: HistoryRole,
    /// Flattened plain text as stored (the facade applies hstry's rewrite from parts, HSTRY_API.md
    /// 5.3), or a blob when too large.
    pub content: TextOrBlob,
    /// The content as the writer sent it, only when the rewrite changed it: what the message's
    /// event payload shows (HSTRY_API.md 5.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_content: Option<TextOrBlob>,
    /// A JSON array as text, or a blob when too large.
    pub parts_json: TextOrBlob,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_ms: Option<Ms>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harness: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::field::finite_f64_opt"
    )]
    pub cost_usd: Option<f64>,
    /// JSON as text; `""` means `{}`.
    #[serde(default)]
    pub metadata_json: String,
    /// A JSON Sender object as text; `""` means no sender.
    #[serde(default)]
    pub sender_json: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// `history.conversation_touched`: AppendMessages with `updated_at_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryConversationTouched {
    pub updated_ms: Ms,
}

/// `history.conversation_updated`: only the fields present in the request, plus the facade's now.
/// `Some("")` is meaningful (`title = ""` sets an empty title).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HistoryConversationUpdated {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_json: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readable_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harness: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_conversation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_message_idx: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork_type: Option<String>,
    pub updated_ms: Ms,
}

/// `history.conversation_deleted`: a tombstone; projections drop the conversation, the log keeps
/// it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HistoryConversationDeleted {}

/// `history.tag_added`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryTagAdded {
    /// Trimmed and lowercased.
    pub tag: String,
}

/// `history.tag_removed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryTagRemoved {
    /// Trimmed and lowercased.
    pub tag: String,
}

/// `history.attachment_added`: the bytes are always in the blob store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryAttachmentAdded {
    pub attachment_id: AttachmentId,
    pub message_id: MessageId,
    pub mime_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    pub data: BlobRef,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_hash_has_one_spelling() {
        let mut bytes = [0xab; 32];
        bytes[0] = 0x01;
        bytes[31] = 0xf0;
        let hash = BlobHash::from_bytes(bytes);
        let text = hash.to_string();
        assert_eq!(text.len(), BLOB_HASH_HEX_CHARS);
        assert!(text.starts_with("01ab") && text.ends_with("abf0"), "{text}");
        assert_eq!(BlobHash::parse(&text), Ok(hash));
        assert_eq!(BlobHash::parse(&text).map(|h| *h.as_bytes()), Ok(bytes));
        assert!(BlobHash::parse(&text.to_uppercase()).is_err());
        assert!(BlobHash::parse(&text[1..]).is_err());
        assert!(BlobHash::parse(&format!("{}g", &text[1..])).is_err());
    }

    #[test]
    fn text_or_blob_decides_by_shape() {
        let inline: TextOrBlob = serde_json::from_str(r#""hi""#).expect("a string");
        assert_eq!(inline, TextOrBlob::Inline("hi".into()));
        let text = format!(r#"{{"blob":"{}","size":3}}"#, "0".repeat(64));
        let blob: TextOrBlob = serde_json::from_str(&text).expect("a blob ref");
        assert!(matches!(blob, TextOrBlob::Blob(BlobRef { size: 3, .. })));
        let bad: Result<TextOrBlob, _> = serde_json::from_str(r#"{"blob":"x","size":3}"#);
        assert!(bad.is_err());
    }
}
