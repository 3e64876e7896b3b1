//! `log tail` and `replay`: reads of the log over the range of PROTOCOL.md 5.4, with the
//! guarantees of 5.1 when following (every later entry once, in order).

use std::time::Duration;

use octo_core::frame::{AgentServerFrame, ServerFrame};
use octo_core::{LogEntry, Offset};
use octo_log::TypePattern;
use serde_json::{Value, json};

use super::{Ctx, Failure, Format, one_line, session_arg};

/// The longest pause `replay` makes between two entries.
const REPLAY_PAUSE_MAX: Duration = Duration::from_secs(2);

/// One line for an entry: offset, time, session, kind, type and the gist of its body.
pub fn pretty_line(entry: &LogEntry) -> String {
    let body = serde_json::to_value(&entry.body).unwrap_or(Value::Null);
    let gist = ["text", "delta", "title", "name", "reason", "message"]
        .iter()
        .find_map(|key| match &body[*key] {
            Value::String(text) => Some(text.clone()),
            Value::Object(message) => message
                .get("parts")
                .and_then(|parts| parts.as_array())
                .and_then(|parts| parts.iter().find_map(|p| p["text"].as_str()))
                .map(str::to_owned),
            _ => None,
        })
        .or_else(|| body["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let secs = entry.ts_ms.div_euclid(1000);
    let time = format!(
        "{:02}:{:02}:{:02}.{:03}",
        secs.rem_euclid(86_400) / 3600,
        secs.rem_euclid(3600) / 60,
        secs.rem_euclid(60),
        entry.ts_ms.rem_euclid(1000)
    );
    let session = entry.session_id.to_string();
    format!(
        "{:>8}  {time}  {}  {:<7} {:<24} {}",
        entry.offset,
        &session[session.len() - 8..],
        match entry.kind {
            octo_core::Kind::Command => "command",
            octo_core::Kind::Event => "event",
        },
        entry.body.type_name(),
        one_line(&gist, 100)
    )
}

/// A request the server refused: exit 1 with its message and code.
fn refused(error: &octo_core::Error) -> Failure {
    Failure::Refused(format!("{} ({})", error.message, super::wire(&error.code)))
}

fn print(format: Format, entry: &LogEntry) -> Result<(), Failure> {
    match format {
        Format::Json => println!("{}", serde_json::to_string(entry)?),
        Format::Pretty => println!("{}", pretty_line(entry)),
    }
    Ok(())
}

/// Whether an entry passes `--kind` and `--type` (for streams that do not filter server-side).
fn passes(entry: &LogEntry, kind: Option<&str>, types: &[TypePattern]) -> bool {
    let kind_ok = kind.is_none_or(|kind| {
        matches!(
            (kind, entry.kind),
            ("command", octo_core::Kind::Command) | ("event", octo_core::Kind::Event)
        )
    });
    kind_ok && (types.is_empty() || types.iter().any(|t| t.matches(entry.body.type_name())))
}

pub async fn tail(
    ctx: &Ctx,
    follow: bool,
    session: Option<&str>,
    kind: Option<&str>,
    types: &[String],
    after: u64,
) -> Result<(), Failure> {
    let session_id = session.map(session_arg).transpose()?;
    let after = Offset::new(after)?;
    if !follow {
        return page_through(ctx, session_id, kind, types, after).await;
    }
    let patterns: Vec<TypePattern> = types.iter().map(|t| TypePattern::parse(t)).collect();
    let mut client = ctx.connect().await?;
    let request = match session_id {
        Some(session_id) => json!({"ch": "agent", "type": "subscribe", "id": "tail",
            "session_id": session_id, "after": after}),
        None => {
            let mut request =
                json!({"ch": "agent", "type": "subscribe_log", "id": "tail", "after": after});
            if let Some(kind) = kind {
                request["kinds"] = json!([kind]);
            }
            if !types.is_empty() {
                request["types"] = json!(types);
            }
            request
        }
    };
    client.send(&request).await?;
    loop {
        match client.next_frame().await? {
            ServerFrame::Agent(AgentServerFrame::Entry(entry))
                if passes(&entry.entry, kind, &patterns) =>
            {
                print(ctx.format, &entry.entry)?;
            }
            ServerFrame::Agent(AgentServerFrame::Error(e)) => return Err(refused(&e.error)),
            _ => {}
        }
    }
}

/// Everything after `after` up to the head, a page at a time (GraphQL `logEntries`).
async fn page_through(
    ctx: &Ctx,
    session_id: Option<octo_core::SessionId>,
    kind: Option<&str>,
    types: &[String],
    mut after: Offset,
) -> Result<(), Failure> {
    let mut filter = json!({});
    if let Some(session_id) = session_id {
        filter["sessionId"] = json!(session_id);
    }
    if let Some(kind) = kind {
        filter["kind"] = json!(kind.to_uppercase());
    }
    if !types.is_empty() {
        filter["types"] = json!(types);
    }
    loop {
        let data = ctx
            .graphql(
                "query Tail($filter: LogEntryFilter, $after: Offset) {
                   logEntries(filter: $filter, after: $after, limit: 1000) { entries { json } nextAfter }
                 }",
                json!({"filter": filter, "after": after}),
            )
            .await?;
        let page = &data["logEntries"];
        for entry in page["entries"].as_array().into_iter().flatten() {
            let entry: LogEntry = serde_json::from_value(entry["json"].clone())?;
            print(ctx.format, &entry)?;
        }
        match page["nextAfter"].as_u64() {
            Some(next) => after = Offset::new(next)?,
            None => return Ok(()),
        }
    }
}

pub async fn replay(
    ctx: &Ctx,
    session: &str,
    after: Option<u64>,
    until: Option<u64>,
    speed: f64,
) -> Result<(), Failure> {
    if !(speed >= 0.0 && speed.is_finite()) {
        return Err(Failure::Usage("--speed is a number, 0 or more".into()));
    }
    let session_id = session_arg(session)?;
    let mut client = ctx.connect().await?;
    let mut cursor = after.unwrap_or(0);
    let mut previous_ts: Option<i64> = None;
    let mut stdout = std::io::stdout();
    loop {
        client
            .send(&json!({"ch": "agent", "type": "replay", "id": "replay",
                "session_id": session_id, "after": cursor, "until": until, "limit": 1000}))
            .await?;
        let result = loop {
            match client.next_frame().await? {
                ServerFrame::Agent(AgentServerFrame::ReplayResult(result)) => break result,
                ServerFrame::Agent(AgentServerFrame::Error(e)) => return Err(refused(&e.error)),
                _ => {}
            }
        };
        for entry in &result.entries {
            if let (Some(previous), true) = (previous_ts, speed > 0.0) {
                let gap = Duration::from_millis(u64::try_from(entry.ts_ms - previous).unwrap_or(0));
                tokio::time::sleep(gap.div_f64(speed).min(REPLAY_PAUSE_MAX)).await;
            }
            previous_ts = Some(entry.ts_ms);
            match ctx.format {
                Format::Json => println!("{}", serde_json::to_string(entry)?),
                Format::Pretty => super::run::print_playback(&mut stdout, entry)?,
            }
        }
        match result.next_after {
            Some(next) => cursor = next.get(),
            None => {
                if ctx.format == Format::Pretty {
                    println!();
                }
                return Ok(());
            }
        }
    }
}
