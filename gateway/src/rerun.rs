//! The rerun driver: a session made by `rerun` gets its source's prompts, one after another, each
//! once the previous one's run has ended (or the prompt failed).
//!
//! It keeps no state of its own. What was sent is in the log: the `n`-th prompt of a rerun goes
//! with a command id derived from the rerun session and `n`, so a prompt sent twice (a restart
//! between the append and the driver's next look) is a duplicate with no second effect. At
//! startup it looks at every unfinished rerun; then it wakes on the events that can let the next
//! prompt go.

use std::collections::HashMap;
use std::sync::Arc;

use octo_core::command::Prompt;
use octo_core::frame::CommandFrame;
use octo_core::{Body, Command, CommandId, Event, Kind, Offset, SessionId};
use octo_log::{LogFilter, QueueBound, ReadQuery, Subscription, TypePattern};
use octo_projections::sessions::Sessions;

use crate::app::{App, READ_YOUR_WRITES};
use crate::view::View;

/// Entries read per page while counting prompts.
const PAGE: usize = 1000;

/// The command id of the `index`-th prompt of rerun `session_id`: the same on every attempt.
pub fn prompt_command_id(session_id: &SessionId, index: usize) -> CommandId {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"octo rerun prompt");
    hasher.update(session_id.as_bytes());
    hasher.update(&(index as u64).to_be_bytes());
    let mut seed = [0u8; 10];
    seed.copy_from_slice(&hasher.finalize().as_bytes()[..10]);
    CommandId::derived(session_id.timestamp_ms(), &seed)
}

/// Starts the driver.
///
/// # Errors
/// When the log cannot be subscribed to.
pub fn spawn(app: Arc<App>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let head = app.log.head();
    let filter = LogFilter {
        kind: Some(Kind::Event),
        types: [
            "session.created",
            "session.deleted",
            "agent.idle",
            "run.failed",
            "run.timed_out",
            "command.failed",
        ]
        .into_iter()
        .map(TypePattern::parse)
        .collect(),
        ..LogFilter::all()
    };
    let subscription =
        Subscription::new(Arc::clone(&app.log), filter, head, QueueBound::default())?;
    Ok(tokio::spawn(drive(app, subscription, head)))
}

async fn drive(app: Arc<App>, mut subscription: Subscription, head: Offset) {
    // rerun session -> its source
    let mut reruns: HashMap<SessionId, SessionId> = HashMap::new();
    match app.sessions.wait_for(head, READ_YOUR_WRITES).await {
        Ok(()) => match Sessions::reruns(app.sessions.keyspace()) {
            Ok(found) => {
                for (session_id, record) in found {
                    if let (Some(source), false) = (record.rerun_of, record.summary.deleted) {
                        reruns.insert(session_id, source);
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot list the reruns"),
        },
        Err(e) => tracing::error!(error = %e, "the sessions projection is behind"),
    }
    for (session_id, source) in reruns.clone() {
        next_prompt(&app, session_id, source).await;
    }
    loop {
        let entry = match subscription.next().await {
            Ok(entry) => entry,
            Err(e) => {
                tracing::error!(error = %e, "the rerun driver lost the log");
                return;
            }
        };
        let Body::Event(event) = &entry.body else {
            continue;
        };
        match event {
            Event::SessionCreated(created) => {
                if let Some(source) = created.rerun_of {
                    reruns.insert(entry.session_id, source);
                }
            }
            Event::SessionDeleted(_) => {
                reruns.remove(&entry.session_id);
                continue;
            }
            _ => {}
        }
        if let Some(source) = reruns.get(&entry.session_id).copied() {
            next_prompt(&app, entry.session_id, source).await;
        }
    }
}

/// Sends the rerun's next prompt if its previous ones are all done; logs what went wrong.
async fn next_prompt(app: &App, session_id: SessionId, source: SessionId) {
    if let Err(e) = try_next_prompt(app, session_id, source).await {
        tracing::warn!(%session_id, error = %e, "the rerun's next prompt could not be sent");
    }
}

async fn try_next_prompt(
    app: &App,
    session_id: SessionId,
    source: SessionId,
) -> anyhow::Result<()> {
    let Some(record) = app.session_record(&session_id).await? else {
        return Ok(());
    };
    if record.summary.deleted {
        return Ok(());
    }
    let ui = app.session_ui(&session_id).await?;
    if ui.open_run.is_some() {
        return Ok(());
    }
    let (sent, done) = progress(app, session_id).await?;
    if done < sent {
        // A prompt is still queued or running: its run's end wakes the driver again.
        return Ok(());
    }
    let prompts = source_prompts(app, source).await?;
    let Some(prompt) = prompts.into_iter().nth(sent) else {
        return Ok(());
    };
    let frame = CommandFrame {
        command: Command::Prompt(prompt),
        command_id: prompt_command_id(&session_id, sent),
        session_id: Some(session_id),
    };
    let ack = crate::commands::execute(app, &record.owner, frame).await;
    if let Some(error) = ack.error {
        anyhow::bail!("prompt {sent} was refused: {error:?}");
    }
    Ok(())
}

/// (prompts sent to the rerun, prompts done: runs ended plus prompts that failed).
async fn progress(app: &App, session_id: SessionId) -> anyhow::Result<(usize, usize)> {
    let mut prompts: Vec<Offset> = Vec::new();
    let mut done = 0usize;
    let mut after = Offset::ZERO;
    loop {
        let batch = app
            .log
            .read(ReadQuery {
                filter: LogFilter::session(session_id),
                after,
                until: None,
                limit: PAGE,
            })
            .await?;
        for entry in &batch.entries {
            match &entry.body {
                Body::Command(Command::Prompt(_)) => prompts.push(entry.offset),
                Body::Event(Event::AgentIdle(_) | Event::RunFailed(_) | Event::RunTimedOut(_)) => {
                    done += 1;
                }
                Body::Event(Event::CommandFailed(failed)) if prompts.contains(&failed.cause) => {
                    done += 1;
                }
                _ => {}
            }
        }
        after = batch.scanned_through;
        if batch.reached_end {
            return Ok((prompts.len(), done));
        }
    }
}

/// The prompts of `source`'s view, in order.
async fn source_prompts(app: &App, source: SessionId) -> anyhow::Result<Vec<Prompt>> {
    let view = View::of(app, source)?;
    let mut prompts = Vec::new();
    let mut after = Offset::ZERO;
    loop {
        let batch = view.read(app.log.as_ref(), after, None, PAGE).await?;
        for entry in &batch.entries {
            if let Body::Command(Command::Prompt(prompt)) = &entry.body {
                prompts.push(prompt.clone());
            }
        }
        after = batch.scanned_through;
        if batch.reached_end {
            return Ok(prompts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_ids_are_stable_distinct_uuid7() {
        let session = SessionId::new();
        let first = prompt_command_id(&session, 0);
        assert_eq!(first, prompt_command_id(&session, 0));
        assert_ne!(first, prompt_command_id(&session, 1));
        assert_ne!(first, prompt_command_id(&SessionId::new(), 0));
        assert_eq!(first.as_uuid().get_version_num(), 7);
        assert_eq!(CommandId::parse(&first.to_string()), Ok(first));
    }
}
