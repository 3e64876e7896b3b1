//! Messages and parts (PROTOCOL.md 7) and the small value types they share with commands, events
//! and frames: `ModelRef`, `ThinkingLevel`, `ImageInput`, `Usage`.
//!
//! One `Message` shape everywhere: the log, the wire, projections. Types only: the rules of section 7
//! (who mints ids, truncation to fit an entry) belong to the runner, and run-scoping checks belong
//! to projections.

use serde::{Deserialize, Serialize};

use crate::bytes::Bytes;
use crate::field::{is_false, null_as_default};
use crate::ids::{MessageId, Ms, PartId};

/// `{provider, model_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelRef {
    pub provider: String,
    pub model_id: String,
}

/// How hard the model thinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThinkingLevel {
    Off,
    Minimal,
    Low,
    Medium,
    High,
    Xhigh,
}

impl ThinkingLevel {
    /// Every level, weakest first.
    pub const ALL: [ThinkingLevel; 6] = [
        ThinkingLevel::Off,
        ThinkingLevel::Minimal,
        ThinkingLevel::Low,
        ThinkingLevel::Medium,
        ThinkingLevel::High,
        ThinkingLevel::Xhigh,
    ];
}

/// Who a message is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
    Tool,
}

/// Why an assistant message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    Stop,
    Length,
    ToolUse,
    Error,
    Aborted,
}

/// One message: a user prompt, an assistant answer or a tool result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub role: Role,
    pub parts: Vec<Part>,
    pub created_ms: Ms,
    /// Assistant messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_ms: Option<Ms>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Assistant messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// Assistant messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<StopReason>,
    /// The harness's message when `stop_reason` is `error` or `aborted`. Never a fake error of ours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Harness attributes, kept as they came (pi: `{response_id}`). Nothing is keyed by them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harness_ref: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Message {
    /// A message with only the fields every role has; the assistant-only ones are absent.
    pub fn new(id: MessageId, role: Role, parts: Vec<Part>, created_ms: Ms) -> Message {
        Message {
            id,
            role,
            parts,
            created_ms,
            completed_ms: None,
            provider: None,
            model_id: None,
            stop_reason: None,
            error: None,
            harness_ref: None,
        }
    }
}

/// A part of a message, tagged by `type`. Every part has an `id` unique in the session.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Part {
    Text(TextPart),
    Thinking(ThinkingPart),
    ToolCall(ToolCallPart),
    ToolResult(ToolResultPart),
    Image(ImagePart),
    FileRef(FileRefPart),
}

tag_first_deserialize!(Part via PartShape {
    "text" => Text(TextPart),
    "thinking" => Thinking(ThinkingPart),
    "tool_call" => ToolCall(ToolCallPart),
    "tool_result" => ToolResult(ToolResultPart),
    "image" => Image(ImagePart),
    "file_ref" => FileRef(FileRefPart),
});

impl Part {
    /// Every part `type`.
    pub const TYPE_NAMES: &'static [&'static str] = &[
        "text",
        "thinking",
        "tool_call",
        "tool_result",
        "image",
        "file_ref",
    ];

    /// The part's id.
    pub fn id(&self) -> PartId {
        match self {
            Part::Text(part) => part.id,
            Part::Thinking(part) => part.id,
            Part::ToolCall(part) => part.id,
            Part::ToolResult(part) => part.id,
            Part::Image(part) => part.id,
            Part::FileRef(part) => part.id,
        }
    }

    /// The `type` on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            Part::Text(_) => "text",
            Part::Thinking(_) => "thinking",
            Part::ToolCall(_) => "tool_call",
            Part::ToolResult(_) => "tool_result",
            Part::Image(_) => "image",
            Part::FileRef(_) => "file_ref",
        }
    }
}

/// `text`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextPart {
    pub id: PartId,
    pub text: String,
    /// Set when the runner cut the text to fit an entry.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_false"
    )]
    pub truncated: bool,
}

/// `thinking`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThinkingPart {
    pub id: PartId,
    pub text: String,
    /// Opaque provider signature, kept for replay to the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// `tool_call`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallPart {
    pub id: PartId,
    pub tool_call_id: String,
    pub name: String,
    /// The arguments, kept losslessly.
    pub input: serde_json::Value,
}

/// `tool_result`: the output of one tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResultPart {
    pub id: PartId,
    pub tool_call_id: String,
    pub name: String,
    pub is_error: bool,
    /// Only `text` and `image` parts, so the type admits nothing else.
    pub content: Vec<ResultContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// A part inside a `tool_result`: `text` or `image`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResultContent {
    Text(TextPart),
    Image(ImagePart),
}

tag_first_deserialize!(ResultContent via ResultContentShape {
    "text" => Text(TextPart),
    "image" => Image(ImagePart),
});

/// `image`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagePart {
    pub id: PartId,
    pub media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Bytes>,
    /// Set instead of `data` when the runner dropped the image to fit an entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omitted_bytes: Option<u64>,
}

/// `file_ref`: a workspace-relative path from `prompt.files`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRefPart {
    pub id: PartId,
    pub path: String,
}

/// The media types a prompt image may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ImageMediaType {
    #[serde(rename = "image/png")]
    Png,
    #[serde(rename = "image/jpeg")]
    Jpeg,
    #[serde(rename = "image/gif")]
    Gif,
    #[serde(rename = "image/webp")]
    Webp,
}

impl ImageMediaType {
    /// The MIME type.
    pub const fn as_str(self) -> &'static str {
        match self {
            ImageMediaType::Png => "image/png",
            ImageMediaType::Jpeg => "image/jpeg",
            ImageMediaType::Gif => "image/gif",
            ImageMediaType::Webp => "image/webp",
        }
    }
}

/// An image attached to a prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInput {
    pub media_type: ImageMediaType,
    pub data: Bytes,
}

/// Token and cost totals (the `usage` of a `SessionSummary`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    #[serde(deserialize_with = "crate::field::finite_f64")]
    pub cost_usd: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_result_content_admits_only_text_and_image() {
        let text = r#"{"type":"tool_result","id":"0193f1a0-5c2e-7b40-9a11-3c5e7d9f0b21","tool_call_id":"c","name":"bash","is_error":false,"content":[{"type":"file_ref","id":"0193f1a0-5c2e-7b40-9a11-3c5e7d9f0b22","path":"a"}]}"#;
        let decoded: Result<Part, _> = serde_json::from_str(text);
        assert!(decoded.is_err(), "a file_ref inside tool_result content");
    }

    #[test]
    fn part_names_match_type_name() {
        let id = PartId::parse("0193f1a0-5c2e-7b40-9a11-3c5e7d9f0b21").expect("uuid7");
        let part = Part::FileRef(FileRefPart {
            id,
            path: "a".into(),
        });
        assert!(Part::TYPE_NAMES.contains(&part.type_name()));
        assert_eq!(part.id(), id);
    }
}
