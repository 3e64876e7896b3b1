//! Reads through GraphQL: `sessions list|show`, `search`, `stats`.

use serde_json::{Value, json};

use super::{Ctx, Failure, one_line, session_arg};

const SUMMARY_FIELDS: &str = "id title preview harness workspace runState messageCount updatedMs updatedOffset
  model { provider modelId } parent { sessionId offset } usage { inputTokens outputTokens costUsd }";

/// A table: the header, then the rows, columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = vec![line(header.to_vec())];
    out.extend(
        rows.iter()
            .map(|row| line(row.iter().map(String::as_str).collect())),
    );
    out.join("\n")
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub async fn list(ctx: &Ctx, limit: usize, text_filter: Option<String>) -> Result<(), Failure> {
    let mut rows = Vec::new();
    let mut after: Option<String> = None;
    let mut remaining = limit;
    while remaining > 0 {
        let first = remaining.min(500);
        let data = ctx
            .graphql(
                &format!(
                    "query List($first: Int, $after: String, $filter: SessionFilter) {{
                       sessions(first: $first, after: $after, filter: $filter) {{
                         edges {{ cursor node {{ {SUMMARY_FIELDS} }} }}
                         pageInfo {{ hasNextPage endCursor }}
                       }}
                     }}"
                ),
                json!({"first": first, "after": after, "filter": {"text": text_filter}}),
            )
            .await?;
        let page = &data["sessions"];
        for edge in page["edges"].as_array().into_iter().flatten() {
            let node = &edge["node"];
            ctx.emit(node, String::new);
            rows.push(vec![
                text(&node["id"]),
                text(&node["runState"]).to_lowercase(),
                text(&node["messageCount"]),
                one_line(
                    node["title"]
                        .as_str()
                        .or(node["preview"].as_str())
                        .unwrap_or_default(),
                    60,
                ),
            ]);
        }
        remaining = remaining.saturating_sub(first);
        if page["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    if ctx.format == super::Format::Pretty {
        println!(
            "{}",
            table(&["SESSION", "STATE", "MESSAGES", "TITLE"], &rows)
        );
    }
    Ok(())
}

pub async fn show(ctx: &Ctx, session: &str, last: Option<usize>) -> Result<(), Failure> {
    let session_id = session_arg(session)?;
    let data = ctx
        .graphql(
            &format!(
                "query Show($id: ID!) {{
                   session(id: $id) {{
                     id asOf nextBefore summary {{ {SUMMARY_FIELDS} }}
                     messages {{ id role text createdMs modelId stopReason error }}
                     forks {{ id title }}
                   }}
                 }}"
            ),
            json!({"id": session_id}),
        )
        .await?;
    let session = &data["session"];
    let messages = session["messages"].as_array().cloned().unwrap_or_default();
    let skip = last.map_or(0, |last| messages.len().saturating_sub(last));
    ctx.emit(session, || {
        let summary = &session["summary"];
        let mut out = vec![
            format!(
                "{}  {}",
                text(&summary["id"]),
                summary["title"].as_str().unwrap_or("(untitled)")
            ),
            format!(
                "{} in {}, {} on {}/{}, {} messages, as of offset {}",
                text(&summary["harness"]),
                text(&summary["workspace"]),
                text(&summary["runState"]).to_lowercase(),
                text(&summary["model"]["provider"]),
                text(&summary["model"]["modelId"]),
                text(&summary["messageCount"]),
                text(&session["asOf"])
            ),
        ];
        if summary["parent"].is_object() {
            out.push(format!(
                "forked from {} at offset {}",
                text(&summary["parent"]["sessionId"]),
                text(&summary["parent"]["offset"])
            ));
        }
        for message in &messages[skip..] {
            out.push(String::new());
            out.push(format!("[{}]", text(&message["role"])));
            out.push(text(&message["text"]));
            if let Some(error) = message["error"].as_str() {
                out.push(format!("(error: {error})"));
            }
        }
        out.join("\n")
    });
    Ok(())
}

pub async fn search(ctx: &Ctx, query: &str, limit: usize) -> Result<(), Failure> {
    let data = ctx
        .graphql(
            "query Search($q: String!, $limit: Int) {
               search(query: $q, limit: $limit) {
                 sessionId messageId role snippet createdMs score session { title preview }
               }
             }",
            json!({"q": query, "limit": limit.clamp(1, 100)}),
        )
        .await?;
    let hits = data["search"].as_array().cloned().unwrap_or_default();
    if ctx.format == super::Format::Json {
        for hit in &hits {
            println!("{hit}");
        }
        return Ok(());
    }
    if hits.is_empty() {
        println!("no matches");
    }
    for hit in &hits {
        let snippet = text(&hit["snippet"])
            .replace("<b>", "*")
            .replace("</b>", "*");
        println!(
            "{}  {:<9} {}",
            text(&hit["sessionId"]),
            text(&hit["role"]),
            one_line(&snippet, 100)
        );
    }
    Ok(())
}

pub async fn stats(
    ctx: &Ctx,
    by: &[String],
    from: Option<String>,
    to: Option<String>,
) -> Result<(), Failure> {
    let mut dimensions = Vec::new();
    for dimension in by {
        let dimension = dimension.trim().to_lowercase();
        if !["day", "user", "harness", "provider", "model"].contains(&dimension.as_str()) {
            return Err(Failure::Usage(format!(
                "--by takes day, user, harness, provider or model, got {dimension:?}"
            )));
        }
        dimensions.push(dimension);
    }
    let data = ctx
        .graphql(
            "query Stats($by: [AnalyticsDimension!]!, $from: String, $to: String) {
               analytics(groupBy: $by, from: $from, to: $to) {
                 day user harness provider model inputTokens outputTokens cacheReadTokens
                 cacheWriteTokens costUsd turns toolCalls toolErrors toolMs runMs messages
               }
             }",
            json!({"by": dimensions.iter().map(|d| d.to_uppercase()).collect::<Vec<_>>(),
                   "from": from, "to": to}),
        )
        .await?;
    let rows = data["analytics"].as_array().cloned().unwrap_or_default();
    if ctx.format == super::Format::Json {
        for row in &rows {
            println!("{row}");
        }
        return Ok(());
    }
    let mut header: Vec<&str> = dimensions.iter().map(String::as_str).collect();
    header.extend([
        "input",
        "output",
        "cache r/w",
        "cost $",
        "turns",
        "tools",
        "errors",
        "run s",
    ]);
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let mut cells: Vec<String> = dimensions.iter().map(|d| text(&row[d])).collect();
            cells.extend([
                text(&row["inputTokens"]),
                text(&row["outputTokens"]),
                format!(
                    "{}/{}",
                    text(&row["cacheReadTokens"]),
                    text(&row["cacheWriteTokens"])
                ),
                format!("{:.4}", row["costUsd"].as_f64().unwrap_or(0.0)),
                text(&row["turns"]),
                text(&row["toolCalls"]),
                text(&row["toolErrors"]),
                format!("{:.1}", row["runMs"].as_f64().unwrap_or(0.0) / 1000.0),
            ]);
            cells
        })
        .collect();
    if body.is_empty() {
        println!("no activity in that range");
    } else {
        println!("{}", table(&header, &body));
    }
    Ok(())
}
