//! pi's session files read as canonical messages (HARNESSES.md 6), for `octoctl import`: the
//! header, and the messages of the file's current branch (from its last entry back to the root
//! through `parentId`, as pi itself resumes it), mapped as the translator maps them live.
//!
//! Ids are derived from the file's own (session id, entry id), so reading a file twice gives the
//! same messages: a re-import can be recognised as unchanged.

use std::collections::HashMap;

use octo_core::message::{Part, ResultContent, Role, TextPart, ToolResultPart};
use octo_core::{Message, MessageId, ModelRef, Ms, PartId};
use serde_json::Value;

use super::translate::{assistant_parts, result_content};

/// Why a file is not a pi session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("line {line}: not JSON: {detail}")]
    NotJson { line: usize, detail: String },
    #[error("the first line is not a pi session header (`{{\"type\":\"session\",...}}`)")]
    NoHeader,
}

/// A pi session file.
#[derive(Debug, Clone, PartialEq)]
pub struct PiSessionFile {
    /// pi's session id (the header's `id`).
    pub id: String,
    /// The working directory pi ran in.
    pub cwd: String,
    pub created_ms: Ms,
    /// The name pi gave it (`session_info`), if any.
    pub name: Option<String>,
    /// The last model of the branch.
    pub model: Option<ModelRef>,
    /// The current branch's messages, oldest first.
    pub messages: Vec<Message>,
}

/// A v7 id derived from the file and the entry, so every read gives the same one.
fn seed(session: &str, entry: &str, index: u64) -> [u8; 10] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(session.as_bytes());
    hasher.update(&[0]);
    hasher.update(entry.as_bytes());
    hasher.update(&index.to_be_bytes());
    let mut seed = [0u8; 10];
    seed.copy_from_slice(&hasher.finalize().as_bytes()[..10]);
    seed
}

/// Reads a pi session file.
///
/// # Errors
/// [`FileError`] when it is not one.
pub fn read(text: &str) -> Result<PiSessionFile, FileError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let header: Value = match lines.next() {
        Some((n, line)) => serde_json::from_str(line).map_err(|e| FileError::NotJson {
            line: n + 1,
            detail: e.to_string(),
        })?,
        None => return Err(FileError::NoHeader),
    };
    if header["type"] != "session" {
        return Err(FileError::NoHeader);
    }
    let id = header["id"].as_str().unwrap_or_default().to_owned();
    let created_ms = header["timestamp"]
        .as_str()
        .and_then(octo_core::civil::parse_rfc3339)
        .unwrap_or(0);
    let mut entries: Vec<Value> = Vec::new();
    for (n, line) in lines {
        let entry: Value = serde_json::from_str(line).map_err(|e| FileError::NotJson {
            line: n + 1,
            detail: e.to_string(),
        })?;
        entries.push(entry);
    }
    // The current branch: from the last entry back through `parentId`.
    let by_id: HashMap<&str, usize> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e["id"].as_str().map(|id| (id, i)))
        .collect();
    let mut branch = Vec::new();
    let mut at = entries.len().checked_sub(1);
    while let Some(index) = at {
        if branch.contains(&index) {
            break;
        }
        branch.push(index);
        at = entries[index]["parentId"]
            .as_str()
            .and_then(|parent| by_id.get(parent).copied());
    }
    branch.reverse();
    let mut file = PiSessionFile {
        id,
        cwd: header["cwd"].as_str().unwrap_or_default().to_owned(),
        created_ms,
        name: None,
        model: None,
        messages: Vec::new(),
    };
    for index in branch {
        let entry = &entries[index];
        match entry["type"].as_str() {
            Some("session_info") => {
                file.name = entry["name"].as_str().map(str::to_owned);
            }
            Some("model_change") => {
                if let (Some(provider), Some(model_id)) =
                    (entry["provider"].as_str(), entry["modelId"].as_str())
                {
                    file.model = Some(ModelRef {
                        provider: provider.to_owned(),
                        model_id: model_id.to_owned(),
                    });
                }
            }
            Some("message") => {
                if let Some(message) = message(&file.id, entry) {
                    file.messages.push(message);
                }
            }
            _ => {}
        }
    }
    Ok(file)
}

/// One `message` entry as a canonical message (`None` for roles Octo does not keep).
fn message(session: &str, entry: &Value) -> Option<Message> {
    let entry_id = entry["id"].as_str().unwrap_or_default();
    let body = &entry["message"];
    let created_ms = body["timestamp"]
        .as_i64()
        .or_else(|| {
            entry["timestamp"]
                .as_str()
                .and_then(octo_core::civil::parse_rfc3339)
        })
        .unwrap_or(0);
    let stamp = u64::try_from(created_ms).unwrap_or(0);
    let mut next = 0u64;
    let mut part_id = || {
        next += 1;
        PartId::derived(stamp, &seed(session, entry_id, next))
    };
    let id = MessageId::derived(stamp, &seed(session, entry_id, 0));
    let content = body.get("content");
    let (role, parts) = match body["role"].as_str()? {
        "user" => {
            let parts = match content {
                Some(Value::String(text)) => vec![Part::Text(TextPart {
                    id: part_id(),
                    text: text.clone(),
                    truncated: false,
                })],
                other => result_content(other, &mut part_id)
                    .into_iter()
                    .map(|content| match content {
                        ResultContent::Text(text) => Part::Text(text),
                        ResultContent::Image(image) => Part::Image(image),
                    })
                    .collect(),
            };
            (Role::User, parts)
        }
        "assistant" => (Role::Assistant, assistant_parts(content, |_| part_id())),
        "toolResult" => {
            let result = ToolResultPart {
                id: part_id(),
                tool_call_id: body["toolCallId"].as_str().unwrap_or_default().to_owned(),
                name: body["toolName"].as_str().unwrap_or_default().to_owned(),
                is_error: body["isError"].as_bool().unwrap_or(false),
                content: result_content(content, &mut part_id),
                details: body.get("details").filter(|d| !d.is_null()).cloned(),
            };
            (Role::Tool, vec![Part::ToolResult(result)])
        }
        _ => return None,
    };
    let mut message = Message::new(id, role, parts, created_ms);
    if role == Role::Assistant {
        message.provider = body["provider"].as_str().map(str::to_owned);
        message.model_id = body["model"].as_str().map(str::to_owned);
        message.completed_ms = Some(created_ms);
        message.error = body["errorMessage"].as_str().map(str::to_owned);
    }
    Some(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../../tests/fixtures/pi-0.73.1-session.jsonl");
    const FORKED: &str = include_str!("../../tests/fixtures/pi-0.73.1-session-fork.jsonl");

    #[test]
    fn a_real_session_file_reads_as_its_branch_of_messages() {
        let file = read(SAMPLE).expect("a pi session");
        assert_eq!(file.id, "01a21242-9162-72da-90e6-ac8ca43a4da9");
        let roles: Vec<Role> = file.messages.iter().map(|m| m.role).collect();
        assert_eq!(
            &roles[..4],
            [Role::User, Role::Assistant, Role::Tool, Role::Assistant]
        );
        assert!(
            matches!(file.messages[1].parts.last(), Some(Part::ToolCall(call)) if call.name == "bash")
        );
        assert!(
            matches!(&file.messages[2].parts[0], Part::ToolResult(result) if result.tool_call_id == "call_56f109fc")
        );
        // Read twice, the same messages, ids included.
        assert_eq!(read(SAMPLE), Ok(file));
    }

    #[test]
    fn a_forked_file_reads_and_garbage_is_refused() {
        let file = read(FORKED).expect("a pi session");
        assert!(!file.messages.is_empty());
        assert_eq!(read("{\"type\":\"message\"}"), Err(FileError::NoHeader));
        assert!(matches!(
            read("not json"),
            Err(FileError::NotJson { line: 1, .. })
        ));
        assert_eq!(read(""), Err(FileError::NoHeader));
    }
}
