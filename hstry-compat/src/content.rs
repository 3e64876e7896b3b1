//! What hstry does to content on write (HSTRY_API.md section 5): role folding, JSON
//! normalisation, and the rewrite of `content` from parts. Pure functions; the facade applies them
//! before it appends, so the log holds what reads return.

use octo_core::history::HistoryRole;

/// Characters of content above which hstry rewrites it from the parts.
pub const LONG_CONTENT_CHARS: usize = 2_000;
/// Lines of content above which hstry rewrites it from the parts.
pub const LONG_CONTENT_LINES: usize = 80;
/// Characters kept of each part in the digest.
pub const DIGEST_PART_CHARS: usize = 500;
/// The digest stops once it holds about this many characters.
pub const DIGEST_CHARS: usize = 4_000;

/// Folds a role as hstry does (HSTRY_API.md 5.4).
pub fn role(text: &str) -> HistoryRole {
    match text.to_ascii_lowercase().as_str() {
        "user" | "human" => HistoryRole::User,
        "assistant" | "agent" | "ai" | "bot" => HistoryRole::Assistant,
        "system" => HistoryRole::System,
        "tool" | "function" => HistoryRole::Tool,
        _ => HistoryRole::Other,
    }
}

/// `parts_json` as stored: compact, keys sorted; `[]` for anything that is not a JSON array.
pub fn parts_json(text: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value @ serde_json::Value::Array(_)) => value.to_string(),
        _ => "[]".to_owned(),
    }
}

/// A JSON document as stored (compact, keys sorted), or `None` when it is not JSON. `""` is `{}`.
pub fn json_document(text: &str) -> Option<String> {
    if text.trim().is_empty() {
        return Some("{}".to_owned());
    }
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .map(|value| value.to_string())
}

/// `metadata_json` as stored: `{}` when absent or not JSON.
pub fn metadata_json(text: &str) -> String {
    json_document(text).unwrap_or_else(|| "{}".to_owned())
}

/// `sender_json` as stored: a JSON object, or `""` (an unparsable sender is dropped).
pub fn sender_json(text: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value @ serde_json::Value::Object(_)) => value.to_string(),
        _ => String::new(),
    }
}

fn cut(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

/// The digest of a parts array: the trimmed text of `text` and `thinking` parts (and `message` or
/// `text` of `status` and `error` parts), each cut to 500 characters, case-insensitive duplicates
/// dropped, joined by a blank line, stopping once about 4,000 characters are collected.
pub fn digest(parts: &serde_json::Value) -> String {
    let Some(parts) = parts.as_array() else {
        return String::new();
    };
    let mut pieces: Vec<&str> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let mut collected = 0usize;
    for part in parts {
        let field = match part.get("type").and_then(|t| t.as_str()) {
            Some("text" | "thinking") => part.get("text"),
            Some("status" | "error") => part.get("message").or_else(|| part.get("text")),
            _ => None,
        };
        let Some(text) = field.and_then(|t| t.as_str()) else {
            continue;
        };
        let text = cut(text.trim(), DIGEST_PART_CHARS);
        if text.is_empty() {
            continue;
        }
        let folded = text.to_lowercase();
        if seen.contains(&folded) {
            continue;
        }
        seen.push(folded);
        collected += text.chars().count();
        pieces.push(text);
        if collected >= DIGEST_CHARS {
            break;
        }
    }
    pieces.join("\n\n")
}

/// The content hstry stores (HSTRY_API.md 5.3): the digest of the parts when the given content is
/// blank, or long with parts present; the given content otherwise, or when the digest is empty.
pub fn stored_content(content: &str, parts_json: &str) -> String {
    let parts: serde_json::Value =
        serde_json::from_str(parts_json).unwrap_or(serde_json::Value::Null);
    let has_parts = parts.as_array().is_some_and(|parts| !parts.is_empty());
    let long = content.chars().count() > LONG_CONTENT_CHARS
        || content.lines().count() > LONG_CONTENT_LINES;
    if content.trim().is_empty() || (long && has_parts) {
        let digest = digest(&parts);
        if !digest.is_empty() {
            return digest;
        }
    }
    content.to_owned()
}

/// A tag as stored: trimmed, lowercased.
pub fn tag(text: &str) -> String {
    text.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_fold_to_five() {
        assert_eq!(role("Human"), HistoryRole::User);
        assert_eq!(role("BOT"), HistoryRole::Assistant);
        assert_eq!(role("function"), HistoryRole::Tool);
        assert_eq!(role("system"), HistoryRole::System);
        assert_eq!(role("banana"), HistoryRole::Other);
    }

    #[test]
    fn parts_that_are_not_an_array_become_empty() {
        assert_eq!(parts_json("not json"), "[]");
        assert_eq!(parts_json(r#"{"a":1}"#), "[]");
        assert_eq!(
            parts_json(r#"[{"type":"text","id":"p","text":"x"}]"#),
            r#"[{"id":"p","text":"x","type":"text"}]"#
        );
    }

    #[test]
    fn blank_or_long_content_is_rewritten_from_parts() {
        let parts = r#"[{"type":"text","id":"a","text":" hello "},{"type":"thinking","id":"b","text":"HELLO"},{"type":"error","id":"c","message":"boom"}]"#;
        assert_eq!(stored_content("", parts), "hello\n\nboom");
        assert_eq!(stored_content("short", parts), "short");
        let long = "x".repeat(3_000);
        assert_eq!(stored_content(&long, parts), "hello\n\nboom");
        assert_eq!(stored_content(&long, "[]"), long);
        assert_eq!(stored_content("", "[]"), "");
        let many_lines = "l\n".repeat(81);
        assert_eq!(stored_content(&many_lines, parts), "hello\n\nboom");
    }

    #[test]
    fn senders_and_metadata_normalise() {
        assert_eq!(sender_json("nope"), "");
        assert_eq!(
            sender_json(r#"{"type":"user","id":"u","name":"a"}"#),
            r#"{"id":"u","name":"a","type":"user"}"#
        );
        assert_eq!(metadata_json(""), "{}");
        assert_eq!(metadata_json("{oops"), "{}");
        assert_eq!(json_document("{oops"), None);
        assert_eq!(tag("  Bug "), "bug");
    }
}
