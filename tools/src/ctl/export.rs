//! `export`: a session as JSONL (every entry of its view, as the log has it) or as one standalone
//! HTML page (its messages, styled inline, no scripts, nothing fetched).

use std::io::Write as _;
use std::path::PathBuf;

use clap::ValueEnum;
use serde_json::{Value, json};

use super::{Ctx, Failure, session_arg};

/// What `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportAs {
    Jsonl,
    Html,
}

pub async fn export(
    ctx: &Ctx,
    session: &str,
    export_as: ExportAs,
    output: Option<PathBuf>,
) -> Result<(), Failure> {
    let session_id = session_arg(session)?;
    let bytes = match export_as {
        ExportAs::Jsonl => jsonl(ctx, session_id).await?,
        ExportAs::Html => html(ctx, session_id).await?.into_bytes(),
    };
    match output {
        Some(path) => {
            std::fs::write(&path, &bytes)
                .map_err(|e| Failure::Usage(format!("cannot write {}: {e}", path.display())))?;
            ctx.emit(
                &json!({"session_id": session_id, "path": path, "bytes": bytes.len()}),
                || format!("wrote {} ({} bytes)", path.display(), bytes.len()),
            );
        }
        None => std::io::stdout().write_all(&bytes)?,
    }
    Ok(())
}

async fn jsonl(ctx: &Ctx, session_id: octo_core::SessionId) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    let mut after = 0u64;
    loop {
        let data = ctx
            .graphql(
                "query Export($id: ID!, $after: Offset) {
                   logEntries(filter: {sessionId: $id}, after: $after, limit: 1000) { entries { json } nextAfter }
                 }",
                json!({"id": session_id, "after": after}),
            )
            .await?;
        let page = &data["logEntries"];
        for entry in page["entries"].as_array().into_iter().flatten() {
            out.extend_from_slice(entry["json"].to_string().as_bytes());
            out.push(b'\n');
        }
        match page["nextAfter"].as_u64() {
            Some(next) => after = next,
            None => return Ok(out),
        }
    }
}

/// Every message of the session, oldest first, paging back through `before`.
async fn all_messages(
    ctx: &Ctx,
    session_id: octo_core::SessionId,
) -> Result<(Value, Vec<Value>), Failure> {
    let mut pages: Vec<Vec<Value>> = Vec::new();
    let mut before: Option<u64> = None;
    let mut summary = Value::Null;
    loop {
        let data = ctx
            .graphql(
                "query Page($id: ID!, $before: Offset) {
                   session(id: $id, before: $before) {
                     asOf nextBefore
                     summary { id title preview harness workspace createdMs model { provider modelId }
                               parent { sessionId offset } usage { inputTokens outputTokens costUsd } }
                     messages { role text parts createdMs modelId provider stopReason error }
                   }
                 }",
                json!({"id": session_id, "before": before}),
            )
            .await?;
        let session = &data["session"];
        if summary.is_null() {
            summary = session["summary"].clone();
            summary["asOf"] = session["asOf"].clone();
        }
        pages.push(session["messages"].as_array().cloned().unwrap_or_default());
        match session["nextBefore"].as_u64() {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    pages.reverse();
    Ok((summary, pages.into_iter().flatten().collect()))
}

/// Text safe inside HTML elements and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;max-width:860px;margin:2em auto;padding:0 1em;color:#1d1d1f;background:#fafafa}\
header{border-bottom:1px solid #ddd;margin-bottom:1.5em}h1{font-size:1.4em;margin:.2em 0}.meta{color:#666;font-size:.9em}\
article{background:#fff;border:1px solid #e3e3e3;border-radius:8px;padding:.8em 1em;margin:.8em 0}\
article.user{background:#eef5ff;border-color:#cfe0ff}article.tool{background:#f6f6f6;font-size:.92em}\
.role{font-size:.75em;text-transform:uppercase;letter-spacing:.06em;color:#888;margin-bottom:.3em}\
pre{white-space:pre-wrap;word-break:break-word;margin:.3em 0;font:13px/1.45 ui-monospace,monospace}\
.text{white-space:pre-wrap}.thinking{color:#777;font-style:italic;white-space:pre-wrap}\
.call{border-left:3px solid #8a6;padding-left:.6em}.error{color:#b00020}";

fn render_part(part: &Value, out: &mut String) {
    match part["type"].as_str() {
        Some("text") => out.push_str(&format!(
            "<div class=\"text\">{}</div>",
            escape(part["text"].as_str().unwrap_or_default())
        )),
        Some("thinking") => out.push_str(&format!(
            "<div class=\"thinking\">{}</div>",
            escape(part["text"].as_str().unwrap_or_default())
        )),
        Some("tool_call") => out.push_str(&format!(
            "<div class=\"call\">tool <b>{}</b><pre>{}</pre></div>",
            escape(part["name"].as_str().unwrap_or_default()),
            escape(&serde_json::to_string_pretty(&part["input"]).unwrap_or_default())
        )),
        Some("tool_result") => {
            let mut text = String::new();
            for content in part["content"].as_array().into_iter().flatten() {
                if let Some(t) = content["text"].as_str() {
                    text.push_str(t);
                }
            }
            let class = if part["is_error"] == true {
                " class=\"error\""
            } else {
                ""
            };
            out.push_str(&format!(
                "<div>result of <b>{}</b><pre{class}>{}</pre></div>",
                escape(part["name"].as_str().unwrap_or_default()),
                escape(&text)
            ));
        }
        Some("image") => out.push_str(&format!(
            "<div class=\"meta\">[image {}]</div>",
            escape(part["media_type"].as_str().unwrap_or_default())
        )),
        Some("file_ref") => out.push_str(&format!(
            "<div class=\"meta\">@{}</div>",
            escape(part["path"].as_str().unwrap_or_default())
        )),
        _ => {}
    }
}

/// The page for a session's summary and messages.
pub fn page(summary: &Value, messages: &[Value]) -> String {
    let title = summary["title"]
        .as_str()
        .or(summary["preview"].as_str())
        .filter(|t| !t.is_empty())
        .unwrap_or("Octo session");
    let mut body = String::new();
    body.push_str(&format!(
        "<header><h1>{}</h1><p class=\"meta\">session {} · {} in {} · {}/{} · {} messages · {} in / {} out tokens · as of offset {}</p></header>\n",
        escape(title),
        escape(summary["id"].as_str().unwrap_or_default()),
        escape(summary["harness"].as_str().unwrap_or_default()),
        escape(summary["workspace"].as_str().unwrap_or_default()),
        escape(summary["model"]["provider"].as_str().unwrap_or_default()),
        escape(summary["model"]["modelId"].as_str().unwrap_or_default()),
        messages.len(),
        summary["usage"]["inputTokens"],
        summary["usage"]["outputTokens"],
        summary["asOf"],
    ));
    for message in messages {
        let role = message["role"].as_str().unwrap_or("message");
        body.push_str(&format!(
            "<article class=\"{}\"><div class=\"role\">{}{}</div>",
            escape(role),
            escape(role),
            message["modelId"]
                .as_str()
                .map(|m| format!(" · {}", escape(m)))
                .unwrap_or_default()
        ));
        for part in message["parts"].as_array().into_iter().flatten() {
            render_part(part, &mut body);
        }
        if let Some(error) = message["error"].as_str() {
            body.push_str(&format!("<div class=\"error\">{}</div>", escape(error)));
        }
        body.push_str("</article>\n");
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>{}</title><style>{STYLE}</style></head>\n<body>\n{body}</body></html>\n",
        escape(title)
    )
}

async fn html(ctx: &Ctx, session_id: octo_core::SessionId) -> Result<String, Failure> {
    let (summary, messages) = all_messages(ctx, session_id).await?;
    Ok(page(&summary, &messages))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_messages_is_text() {
        let summary = json!({"id": "s", "title": "<script>alert(1)</script>"});
        let messages =
            vec![json!({"role": "user", "parts": [{"type": "text", "text": "a < b & \"c\""}]})];
        let page = page(&summary, &messages);
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;"));
        assert!(page.contains("a &lt; b &amp; &quot;c&quot;"));
    }
}
