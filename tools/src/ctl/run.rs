//! Commands that change things: create, prompt (and follow the run), fork, rerun.

use std::io::Write as _;

use octo_core::frame::{AgentServerFrame, ServerFrame};
use octo_core::message::{Part, ResultContent};
use octo_core::{Body, Event, LogEntry, Offset};
use serde_json::json;

use super::{Ctx, Failure, Format, command, command_id, model_arg, session_arg};
use crate::client::Client;

pub async fn create(
    ctx: &Ctx,
    workspace: &str,
    harness: &str,
    model: Option<&str>,
    title: Option<String>,
) -> Result<(), Failure> {
    let mut frame = json!({"ch": "agent", "type": "session.create",
        "command_id": command_id(), "harness": harness, "workspace": workspace});
    if let Some(model) = model {
        let (provider, model_id) = model_arg(model)?;
        frame["model"] = json!({"provider": provider, "model_id": model_id});
    }
    if let Some(title) = title {
        frame["title"] = json!(title);
    }
    let mut client = ctx.connect().await?;
    let (session_id, offset) = command(&mut client, frame).await?;
    ctx.emit(&json!({"session_id": session_id, "offset": offset}), || {
        session_id.to_string()
    });
    Ok(())
}

pub async fn prompt(ctx: &Ctx, session: &str, text: &str, follow: bool) -> Result<(), Failure> {
    let session_id = session_arg(session)?;
    let mut client = ctx.connect().await?;
    let frame = json!({"ch": "agent", "type": "prompt", "command_id": command_id(),
        "session_id": session_id, "text": text});
    let (session_id, offset) = command(&mut client, frame).await?;
    if !follow {
        ctx.emit(&json!({"session_id": session_id, "offset": offset}), || {
            format!("prompt accepted at offset {offset}")
        });
        return Ok(());
    }
    // Everything from the prompt on: `after` is a bound, not a neighbour.
    let after = offset.get().saturating_sub(1);
    client
        .send(&json!({"ch": "agent", "type": "subscribe", "id": "follow",
            "session_id": session_id, "after": after}))
        .await?;
    follow_run(&mut client, offset, ctx.format).await
}

pub async fn fork(ctx: &Ctx, session: &str, at: u64, title: Option<String>) -> Result<(), Failure> {
    let session_id = session_arg(session)?;
    let mut frame = json!({"ch": "agent", "type": "fork", "command_id": command_id(),
        "session_id": session_id, "at_offset": at});
    if let Some(title) = title {
        frame["title"] = json!(title);
    }
    let mut client = ctx.connect().await?;
    let (fork, offset) = command(&mut client, frame).await?;
    ctx.emit(
        &json!({"session_id": fork, "parent": {"session_id": session_id, "offset": at}, "offset": offset}),
        || fork.to_string(),
    );
    Ok(())
}

/// Where "fork here" on `message` of `session` forks, from the server's `forkOffset`.
pub async fn fork_point(ctx: &Ctx, session: &str, message: &str) -> Result<u64, Failure> {
    let session_id = session_arg(session)?;
    let mut before: Option<u64> = None;
    loop {
        let data = ctx
            .graphql(
                "query Points($id: ID!, $before: Offset) {
                   session(id: $id, before: $before) { nextBefore messages { id forkOffset } }
                 }",
                json!({"id": session_id, "before": before}),
            )
            .await?;
        let session = &data["session"];
        if let Some(found) = session["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["id"] == message)
        {
            return found["forkOffset"].as_u64().ok_or_else(|| {
                Failure::Refused(format!(
                    "message {message} has no fork point yet: its run is still open"
                ))
            });
        }
        match session["nextBefore"].as_u64() {
            Some(next) => before = Some(next),
            None => {
                return Err(Failure::Refused(format!(
                    "no message {message} in session {session_id}"
                )));
            }
        }
    }
}

pub async fn rerun(
    ctx: &Ctx,
    session: &str,
    model: Option<&str>,
    title: Option<String>,
) -> Result<(), Failure> {
    let session_id = session_arg(session)?;
    let model = match model {
        Some(model) => {
            let (provider, model_id) = model_arg(model)?;
            json!({"provider": provider, "modelId": model_id})
        }
        None => serde_json::Value::Null,
    };
    let data = ctx
        .graphql(
            "mutation Rerun($cid: ID!, $sid: ID!, $model: ModelInput, $title: String) {
               rerun(commandId: $cid, sessionId: $sid, model: $model, title: $title) {
                 status sessionId offset error { code message }
               }
             }",
            json!({"cid": command_id(), "sid": session_id, "model": model, "title": title}),
        )
        .await?;
    let ack = &data["rerun"];
    if ack["status"] == "REJECTED" {
        return Err(Failure::Refused(format!(
            "refused: {} ({})",
            ack["error"]["message"].as_str().unwrap_or_default(),
            ack["error"]["code"].as_str().unwrap_or_default()
        )));
    }
    ctx.emit(ack, || {
        ack["sessionId"].as_str().unwrap_or_default().to_owned()
    });
    Ok(())
}

/// Prints the run the prompt at `prompt` started, until it ends.
async fn follow_run(client: &mut Client, prompt: Offset, format: Format) -> Result<(), Failure> {
    let mut stdout = std::io::stdout();
    loop {
        let frame = client.next_frame().await?;
        let entry = match frame {
            ServerFrame::Agent(AgentServerFrame::Entry(entry)) => entry.entry,
            ServerFrame::Agent(AgentServerFrame::Error(e)) => {
                return Err(Failure::Usage(e.error.message));
            }
            _ => continue,
        };
        if format == Format::Json {
            println!("{}", serde_json::to_string(&entry)?);
        } else {
            print_playback(&mut stdout, &entry)?;
        }
        if let Some(outcome) = run_outcome(&entry, prompt) {
            if format == Format::Pretty {
                println!();
            }
            return outcome;
        }
    }
}

/// Whether `entry` ends the followed run, and how.
fn run_outcome(entry: &LogEntry, prompt: Offset) -> Option<Result<(), Failure>> {
    let Body::Event(event) = &entry.body else {
        return None;
    };
    match event {
        Event::AgentIdle(_) => Some(Ok(())),
        Event::RunFailed(failed) => Some(Err(Failure::Refused(format!(
            "the run failed: {}",
            failed.error.message
        )))),
        Event::RunTimedOut(timed_out) => Some(Err(Failure::Refused(format!(
            "the run timed out after {} ms without progress",
            timed_out.limit_ms
        )))),
        Event::CommandFailed(failed) if failed.cause == prompt => Some(Err(Failure::Refused(
            format!("the prompt failed: {}", failed.error.message),
        ))),
        _ => None,
    }
}

/// Renders an entry as the session would play out: prompts, streamed text, tool calls and their
/// output.
pub fn print_playback(out: &mut std::io::Stdout, entry: &LogEntry) -> std::io::Result<()> {
    let event = match &entry.body {
        Body::Command(octo_core::Command::Prompt(prompt)) => {
            writeln!(out, "\n> {}", prompt.text)?;
            return out.flush();
        }
        Body::Event(event) => event,
        _ => return Ok(()),
    };
    match event {
        Event::StreamTextDelta(delta) => write!(out, "{}", delta.delta)?,
        Event::StreamMessageEnd(_) => writeln!(out)?,
        Event::ToolStart(tool) => writeln!(out, "[tool] {} {}", tool.name, tool.input)?,
        Event::ToolEnd(tool) => writeln!(
            out,
            "[tool] {} {} in {} ms",
            tool.name,
            if tool.is_error { "failed" } else { "done" },
            tool.duration_ms
        )?,
        Event::MessageCreated(created) => {
            for part in &created.message.parts {
                if let Part::ToolResult(result) = part {
                    for content in &result.content {
                        if let ResultContent::Text(text) = content {
                            for line in text.text.lines().take(20) {
                                writeln!(out, "  | {line}")?;
                            }
                        }
                    }
                }
            }
        }
        Event::RunFailed(failed) => writeln!(out, "[run failed] {}", failed.error.message)?,
        Event::Notice(notice) => writeln!(out, "[notice] {}", notice.text)?,
        Event::SessionForked(forked) => writeln!(
            out,
            "[forked from {} at {}]",
            forked.parent_session_id, forked.parent_offset
        )?,
        _ => {}
    }
    out.flush()
}
