//! The dispatcher (ARCHITECTURE.md, "Sessions, runners and harnesses"): it reads runner-handled
//! commands from the log, after they are durable and in offset order, and delivers each once to
//! the runner with the session's [`SessionCtx`]; and it appends what the runner's harnesses
//! report, as the runner's producer with contiguous seqs (PROTOCOL.md 14.3).
//!
//! In local mode the runner lives and dies with the gateway, so at startup, before any client can
//! connect, every command left unsettled by the previous process is failed (`runner_lost`), with
//! the open run's `run.failed` and the running harness's `harness.exited`: a prompt reaches an
//! agent at most once, and visibly so (14.4).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use octo_core::event::{CommandFailed, HarnessExitReason, HarnessExited, RunFailed};
use octo_core::message::Role;
use octo_core::runner::{ForkCtx, RunnerCommand, SessionCtx};
use octo_core::{
    Body, Command, Error, ErrorCode, Event, Kind, LogEntry, Message, Offset, ProducerId, UserId,
};
use octo_log::{AppendError, LogFilter, NewEntry, QueueBound, SeqSpec, Subscription};
use octo_projections::history::History;
use octo_projections::history::conversations::message_text;
use octo_projections::sessions::{SessionRecord, Sessions};
use octo_projections::ui_state::UiState;
use octo_runner::harness::HarnessFactory;
use octo_runner::local::{LocalRunner, SessionEvents};
use tokio::sync::mpsc;

use crate::app::{App, READ_YOUR_WRITES};
use crate::commands::resolve_workspace;

/// Events the harnesses may queue before their output stops being read.
pub const RUNNER_EVENTS_QUEUE: usize = 1024;

/// The runner's producer id for a user's sessions.
pub fn runner_producer(user_id: &UserId) -> ProducerId {
    ProducerId::new(format!("rn-{}", user_id.as_str())).expect("user ids are valid in producer ids")
}

/// Whether the runner handles this command (4.2, "handled by ... R").
fn for_runner(command: &Command) -> bool {
    !matches!(command, Command::SessionRename(_))
}

fn runner_lost(message: &str) -> Error {
    Error::new(ErrorCode::RunnerLost, message)
}

/// Fails what the previous process left unsettled. Returns how many commands it failed.
///
/// # Errors
/// When the projections or the log cannot be read or appended to.
pub async fn settle_at_startup(app: &App) -> anyhow::Result<usize> {
    let head = app.log.head();
    app.ui.wait_for(head, READ_YOUR_WRITES).await?;
    app.sessions.wait_for(head, READ_YOUR_WRITES).await?;
    let mut per_session: BTreeMap<octo_core::SessionId, Vec<Event>> = BTreeMap::new();
    for (session_id, ui) in UiState::all(app.ui.keyspace())? {
        let events = per_session.entry(session_id).or_default();
        if let Some(run) = &ui.open_run {
            events.push(Event::RunFailed(RunFailed {
                run_id: run.run_id,
                error: runner_lost("octo stopped during the run"),
                recoverable: true,
            }));
        }
        if ui.harness_running {
            events.push(Event::HarnessExited(HarnessExited {
                reason: HarnessExitReason::RunnerLost,
                code: None,
                signal: None,
                stderr_tail: None,
                error: Some(runner_lost("octo stopped while the harness ran")),
                cause: None,
            }));
        }
    }
    let unsettled = UiState::unsettled(app.ui.keyspace())?;
    for command in &unsettled {
        per_session
            .entry(command.session_id)
            .or_default()
            .push(Event::CommandFailed(CommandFailed {
                command_id: command.command_id,
                error: runner_lost(
                    "octo stopped before this command settled; it was not run again",
                ),
                cause: command.offset,
            }));
    }
    for (session_id, events) in per_session {
        if events.is_empty() {
            continue;
        }
        let Some(record) = Sessions::get(app.sessions.keyspace(), &session_id)? else {
            tracing::warn!(%session_id, "unsettled work of a session the projection does not know");
            continue;
        };
        let batch = events
            .into_iter()
            .map(|event| {
                NewEntry::event(
                    record.owner.clone(),
                    session_id,
                    app.producer.clone(),
                    SeqSpec::Next,
                    event,
                )
            })
            .collect();
        app.log.append(batch).await?;
    }
    if !unsettled.is_empty() {
        tracing::info!(
            failed = unsettled.len(),
            "failed the commands the previous run left unsettled"
        );
    }
    Ok(unsettled.len())
}

/// What the runner needs to (re)start the harness of `session_id` (whose record is `record`).
/// A fork whose own harness never started gets its nearest ancestor's state (9.3).
async fn session_ctx(
    app: &App,
    session_id: &octo_core::SessionId,
    record: &SessionRecord,
) -> anyhow::Result<SessionCtx> {
    let summary = &record.summary;
    let workspace_root = resolve_workspace(&app.workspaces_root, &summary.workspace)
        .unwrap_or_else(|_| app.workspaces_root.join(&summary.workspace));
    let fork = match (&summary.parent, &record.harness_session_file) {
        (Some(parent), None) => Some(fork_ctx(app, session_id, parent).await?),
        _ => None,
    };
    Ok(SessionCtx {
        harness: summary.harness.clone(),
        workspace_root: workspace_root.display().to_string(),
        model: summary.model.clone(),
        thinking_level: record.thinking_level,
        harness_session_file: record.harness_session_file.clone(),
        fork,
    })
}

/// How a fork's harness starts from its ancestors': the nearest ancestor's harness session file,
/// and the user messages of the view up to the fork point (from the `history` projection).
async fn fork_ctx(
    app: &App,
    session_id: &octo_core::SessionId,
    parent: &octo_core::frame::ParentRef,
) -> anyhow::Result<ForkCtx> {
    let mut ancestor_harness_session_file = None;
    let mut at = Some(parent.session_id);
    while let Some(ancestor) = at {
        let Some(record) = Sessions::get(app.sessions.keyspace(), &ancestor)? else {
            break;
        };
        if record.harness_session_file.is_some() {
            ancestor_harness_session_file = record.harness_session_file;
            break;
        }
        at = record.summary.parent.map(|parent| parent.session_id);
    }
    app.history
        .wait_for(app.log.head(), READ_YOUR_WRITES)
        .await?;
    let snapshot = app.store.snapshot();
    let view = History::view(
        &snapshot,
        app.history.keyspace(),
        app.sessions.keyspace(),
        session_id,
    )?;
    let inherited_users: Vec<&Message> = view
        .iter()
        .filter(|(offset, message)| *offset <= parent.offset && message.role == Role::User)
        .map(|(_, message)| message)
        .collect();
    Ok(ForkCtx {
        ancestor_harness_session_file,
        user_messages_inherited: u32::try_from(inherited_users.len()).unwrap_or(u32::MAX),
        last_inherited_user_text: inherited_users.last().map(|message| message_text(message)),
    })
}

/// Starts the dispatcher: commands after `after` go to `runner`, the runner's events to the log.
pub fn spawn<F: HarnessFactory>(
    app: Arc<App>,
    runner: Arc<LocalRunner<F>>,
    events: mpsc::Receiver<SessionEvents>,
    after: Offset,
) -> anyhow::Result<Dispatcher> {
    let filter = LogFilter {
        kind: Some(Kind::Command),
        ..LogFilter::all()
    };
    let subscription =
        Subscription::new(Arc::clone(&app.log), filter, after, QueueBound::default())?;
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let deliver = tokio::spawn(deliver_commands(Arc::clone(&app), runner, subscription));
    let append = tokio::spawn(append_events(app, events, stopping));
    Ok(Dispatcher {
        deliver,
        append,
        stop,
    })
}

/// The running dispatcher.
pub struct Dispatcher {
    deliver: tokio::task::JoinHandle<()>,
    append: tokio::task::JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Dispatcher {
    /// Stops delivering commands (call before the runner stops its harnesses).
    pub fn stop_delivering(&self) {
        self.deliver.abort();
    }

    /// Appends every event the runner has queued, then stops (call after the runner stopped its
    /// harnesses, so their last events are in the log).
    pub async fn drain(mut self) {
        self.deliver.abort();
        let _ = self.stop.send(true);
        let append = &mut self.append;
        if tokio::time::timeout(Duration::from_secs(10), &mut *append)
            .await
            .is_err()
        {
            tracing::error!("the runner's last events were not appended in 10 s");
            append.abort();
        }
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.deliver.abort();
        self.append.abort();
    }
}

async fn deliver_commands<F: HarnessFactory>(
    app: Arc<App>,
    runner: Arc<LocalRunner<F>>,
    mut subscription: Subscription,
) {
    loop {
        let entry = match subscription.next().await {
            Ok(entry) => entry,
            Err(e) => {
                tracing::error!(error = %e, "the dispatcher lost the log");
                return;
            }
        };
        if let Err(e) = deliver_one(&app, &runner, &entry).await {
            tracing::error!(offset = %entry.offset, error = %e, "a command could not be delivered");
        }
    }
}

async fn deliver_one<F: HarnessFactory>(
    app: &App,
    runner: &LocalRunner<F>,
    entry: &LogEntry,
) -> anyhow::Result<()> {
    let (Body::Command(command), Some(command_id)) = (&entry.body, entry.command_id) else {
        return Ok(());
    };
    if !for_runner(command) {
        return Ok(());
    }
    // A fork is the new session's first command: its harness starts from the source's.
    let session_id = match command {
        Command::Fork(fork) => match fork.new_session_id {
            Some(new_session_id) => new_session_id,
            None => anyhow::bail!("a fork at offset {} has no new_session_id", entry.offset),
        },
        _ => entry.session_id,
    };
    let Some(record) = app.session_record(&session_id).await? else {
        anyhow::bail!("session {session_id} is not in the sessions projection");
    };
    let ctx = session_ctx(app, &session_id, &record).await?;
    runner
        .deliver(
            &entry.user_id,
            RunnerCommand {
                offset: entry.offset,
                session_id,
                command_id,
                body: command.clone(),
                ctx,
            },
        )
        .await;
    Ok(())
}

/// Appends the runner's events in the order they came, each user's with its own producer and
/// contiguous seqs; a failed append is retried with the same seqs (the log skips what it has).
async fn append_events(
    app: Arc<App>,
    mut events: mpsc::Receiver<SessionEvents>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut last_seq: HashMap<ProducerId, u64> = HashMap::new();
    let mut pending: Vec<SessionEvents> = Vec::new();
    loop {
        let stopping = tokio::select! {
            received = events.recv_many(&mut pending, 64) => {
                if received == 0 {
                    return;
                }
                false
            }
            _ = stop.changed() => {
                // Shutting down: what the runner queued last, then no more.
                while let Ok(more) = events.try_recv() {
                    pending.push(more);
                }
                true
            }
        };
        let mut batch = Vec::new();
        for SessionEvents {
            user_id,
            session_id,
            events,
        } in pending.drain(..)
        {
            let producer = runner_producer(&user_id);
            let seq = match last_seq.get(&producer) {
                Some(seq) => *seq,
                None => loop {
                    match app.log.producer_seq(producer.clone()).await {
                        Ok(seq) => break seq,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot read the runner's seq; retrying");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                },
            };
            let mut next = seq;
            for event in events {
                next += 1;
                batch.push(NewEntry::event(
                    user_id.clone(),
                    session_id,
                    producer.clone(),
                    SeqSpec::Exact(next),
                    event,
                ));
            }
            last_seq.insert(producer, next);
        }
        if !batch.is_empty() {
            append_with_retry(&app, batch).await;
        }
        if stopping {
            return;
        }
    }
}

async fn append_with_retry(app: &App, mut batch: Vec<NewEntry>) {
    let mut delay = Duration::from_millis(50);
    loop {
        match app.log.append(batch.clone()).await {
            Ok(_) => return,
            Err(AppendError::TooLarge {
                index,
                len_bytes,
                max_bytes,
            }) => {
                // The runner cuts what it can (PROTOCOL.md 7); what is still too large is
                // replaced, under the same seq, by a notice that says so.
                tracing::error!(index, len_bytes, max_bytes, "a runner event is too large");
                if let Some(entry) = batch.get_mut(index) {
                    entry.body = Body::Event(Event::Notice(octo_core::event::Notice {
                        level: octo_core::event::NoticeLevel::Error,
                        text: format!(
                            "an event of {len_bytes} bytes was over the {max_bytes}-byte entry limit and was dropped"
                        ),
                    }));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot append the runner's events; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
