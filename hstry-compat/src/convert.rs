//! From Octo's records to hstry's wire shapes: conversations, messages (written ones and Octo's
//! own protocol messages), parts JSON, and message event payloads (HSTRY_API.md 4 and 5).

use base64::Engine as _;
use octo_core::Message as OctoMessage;
use octo_core::PartId;
use octo_core::history::HistoryMessageUpserted;
use octo_core::message::{ImagePart, Part, ResultContent, Role};
use octo_projections::history::conversations::{ConversationRecord, message_text};
use serde::Serialize;
use serde_json::{Value, json};

use crate::content;
use crate::proto;

/// A name-based UUID (version 8, RFC 9562) from a purpose and some bytes: the same input always
/// gives the same id, so a rebuild from the log answers with the same ids.
pub fn derived_uuid(purpose: &str, parts: &[&[u8]]) -> uuid::Uuid {
    let mut hasher = blake3::Hasher::new();
    hasher.update(purpose.as_bytes());
    for part in parts {
        hasher.update(part);
    }
    let hash = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash.as_bytes()[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The id a message inherited by a fork has on the hstry surface, where a message id belongs to
/// one conversation (HSTRY_API.md 8).
pub fn inherited_message_id(fork: &uuid::Uuid, message: &uuid::Uuid) -> uuid::Uuid {
    derived_uuid(
        "octo-hstry inherited message",
        &[fork.as_bytes(), message.as_bytes()],
    )
}

/// The id of a message event: the message's own id for the write that created it, a fresh one
/// (derived from the message and the entry's offset) for each rewrite (HSTRY_API.md 5.5).
pub fn rewrite_event_id(message: &uuid::Uuid, offset: u64) -> uuid::Uuid {
    derived_uuid(
        "octo-hstry message event",
        &[message.as_bytes(), &offset.to_be_bytes()],
    )
}

/// A conversation as hstry returns it.
pub fn conversation(record: &ConversationRecord) -> proto::Conversation {
    proto::Conversation {
        source_id: record.source_id.clone(),
        external_id: record.external_id.clone(),
        title: record.title.clone(),
        created_at_ms: record.created_ms,
        updated_at_ms: record.updated_ms,
        model: record.model.clone(),
        // hstry answers "present and empty" for a provider never set (HSTRY_API.md 4.1).
        provider: Some(record.provider.clone().unwrap_or_default()),
        workspace: record.workspace.clone(),
        tokens_in: record.tokens_in,
        tokens_out: record.tokens_out,
        cost_usd: record.cost_usd,
        metadata_json: content::metadata_json(&record.metadata_json),
        harness: record.harness.clone(),
        readable_id: Some(record.readable_id.clone()),
        platform_id: record.platform_id.clone(),
        version: record.version,
        message_count: record.message_count,
        parent_conversation_id: record.parent_conversation_id.clone(),
        parent_message_idx: record.parent_message_idx,
        fork_type: record.fork_type.clone(),
    }
}

/// A written message, its content and parts already read from blobs when they were there.
pub fn written_message(
    message: &HistoryMessageUpserted,
    content: String,
    parts_json: String,
) -> proto::Message {
    proto::Message {
        idx: message.idx,
        role: message.role.as_str().to_owned(),
        content,
        parts_json,
        created_at_ms: message.created_ms,
        model: message.model.clone(),
        tokens: message.tokens,
        cost_usd: message.cost_usd,
        metadata_json: content::metadata_json(&message.metadata_json),
        sender_json: message.sender_json.clone(),
        provider: message.provider.clone(),
        harness: message.harness.clone(),
        client_id: message.client_id.clone(),
        id: Some(message.message_id.to_string()),
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

/// A part as hstry's `parts_json` holds it (HSTRY_API.md 5.1), borrowing from the protocol's
/// part: serialised straight to text, no intermediate JSON tree.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum HstryPart<'a> {
    Text {
        id: &'a PartId,
        text: &'a str,
    },
    Thinking {
        id: &'a PartId,
        text: &'a str,
    },
    ToolCall {
        id: &'a PartId,
        #[serde(rename = "toolCallId")]
        tool_call_id: &'a str,
        name: &'a str,
        input: &'a Value,
    },
    ToolResult {
        id: &'a PartId,
        #[serde(rename = "toolCallId")]
        tool_call_id: &'a str,
        name: &'a str,
        output: Output<'a>,
        #[serde(rename = "isError")]
        is_error: bool,
    },
    Image {
        id: &'a PartId,
        #[serde(rename = "mimeType")]
        mime_type: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<String>,
    },
    FileRef {
        id: &'a PartId,
        uri: &'a str,
    },
    /// A part type newer than this facade: kept visible, as hstry keeps unknown types.
    Other {
        value: Value,
    },
}

/// A tool result's output: its text when it is all text, else its parts.
#[derive(Serialize)]
#[serde(untagged)]
enum Output<'a> {
    Text(String),
    Parts(Vec<HstryPart<'a>>),
}

fn image(image: &ImagePart) -> HstryPart<'_> {
    HstryPart::Image {
        id: &image.id,
        mime_type: &image.media_type,
        source: image.data.as_ref().map(|_| "base64"),
        data: image
            .data
            .as_ref()
            .map(|data| base64::engine::general_purpose::STANDARD.encode(data.0.as_slice())),
    }
}

fn hstry_part(part: &Part) -> HstryPart<'_> {
    match part {
        Part::Text(text) => HstryPart::Text {
            id: &text.id,
            text: &text.text,
        },
        Part::Thinking(thinking) => HstryPart::Thinking {
            id: &thinking.id,
            text: &thinking.text,
        },
        Part::ToolCall(call) => HstryPart::ToolCall {
            id: &call.id,
            tool_call_id: &call.tool_call_id,
            name: &call.name,
            input: &call.input,
        },
        Part::ToolResult(result) => {
            let all_text = result
                .content
                .iter()
                .all(|part| matches!(part, ResultContent::Text(_)));
            let output = if all_text {
                let text: Vec<&str> = result
                    .content
                    .iter()
                    .filter_map(|part| match part {
                        ResultContent::Text(text) => Some(text.text.as_str()),
                        ResultContent::Image(_) => None,
                    })
                    .collect();
                Output::Text(text.join("\n"))
            } else {
                Output::Parts(
                    result
                        .content
                        .iter()
                        .map(|part| match part {
                            ResultContent::Text(text) => HstryPart::Text {
                                id: &text.id,
                                text: &text.text,
                            },
                            ResultContent::Image(part) => image(part),
                        })
                        .collect(),
                )
            };
            HstryPart::ToolResult {
                id: &result.id,
                tool_call_id: &result.tool_call_id,
                name: &result.name,
                output,
                is_error: result.is_error,
            }
        }
        Part::Image(part) => image(part),
        Part::FileRef(file) => HstryPart::FileRef {
            id: &file.id,
            uri: &file.path,
        },
        other => HstryPart::Other {
            value: serde_json::to_value(other).unwrap_or(Value::Null),
        },
    }
}

/// The parts of a protocol message as hstry's `parts_json`.
pub fn parts_json(message: &OctoMessage) -> String {
    let parts: Vec<HstryPart<'_>> = message.parts.iter().map(hstry_part).collect();
    serde_json::to_string(&parts).unwrap_or_else(|_| "[]".to_owned())
}

/// A protocol message as hstry's `Message` at `idx`, with no id (a write lets the facade mint
/// one): what `octoctl import` sends, and the base of [`session_message`].
pub fn hstry_message(message: &OctoMessage, idx: i32, harness: Option<String>) -> proto::Message {
    proto::Message {
        idx,
        role: role_name(message.role).to_owned(),
        content: message_text(message),
        parts_json: parts_json(message),
        created_at_ms: Some(message.created_ms),
        model: message.model_id.clone(),
        tokens: None,
        cost_usd: None,
        metadata_json: "{}".to_owned(),
        sender_json: String::new(),
        provider: message.provider.clone(),
        harness,
        client_id: None,
        id: None,
    }
}

/// One of Octo's own messages as hstry returns it, at `idx` of its conversation, under `id`.
pub fn session_message(
    record: &ConversationRecord,
    message: &OctoMessage,
    idx: i32,
    id: uuid::Uuid,
) -> proto::Message {
    proto::Message {
        id: Some(id.to_string()),
        ..hstry_message(message, idx, record.harness.clone())
    }
}

/// The `payload_json` of a message event (HSTRY_API.md 5.5): the message as written, with the
/// content as sent.
pub fn event_payload(
    conversation_id: &str,
    message: &proto::Message,
    sent_content: &str,
) -> String {
    let parts: Value =
        serde_json::from_str(&message.parts_json).unwrap_or(Value::Array(Vec::new()));
    let metadata: Value = serde_json::from_str(&message.metadata_json).unwrap_or(json!({}));
    let mut payload = json!({
        "id": message.id,
        "conversation_id": conversation_id,
        "idx": message.idx,
        "role": message.role,
        "content": sent_content,
        "parts_json": parts,
        "created_at": message.created_at_ms.map(octo_core::civil::rfc3339_ms),
        "model": message.model,
        "tokens": message.tokens,
        "cost_usd": message.cost_usd,
        "metadata": metadata,
    });
    if let Ok(sender @ Value::Object(_)) = serde_json::from_str::<Value>(&message.sender_json) {
        payload["sender"] = sender;
    }
    for (name, value) in [
        ("provider", &message.provider),
        ("harness", &message.harness),
        ("client_id", &message.client_id),
    ] {
        if let Some(value) = value {
            payload[name] = Value::String(value.clone());
        }
    }
    payload.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_rfc3339_with_milliseconds() {
        assert_eq!(
            octo_core::civil::rfc3339_ms(1_700_000_001_500),
            "2023-11-14T22:13:21.500Z"
        );
        assert_eq!(octo_core::civil::rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            octo_core::civil::rfc3339_ms(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let a = uuid::Uuid::from_bytes([1; 16]);
        let b = uuid::Uuid::from_bytes([2; 16]);
        assert_eq!(inherited_message_id(&a, &b), inherited_message_id(&a, &b));
        assert_ne!(inherited_message_id(&a, &b), inherited_message_id(&b, &a));
        assert_ne!(rewrite_event_id(&a, 1), rewrite_event_id(&a, 2));
        assert_eq!(inherited_message_id(&a, &b).get_version_num(), 8);
    }
}
