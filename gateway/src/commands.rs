//! A command from a client, checked and appended: exactly one [`Ack`] per command (PROTOCOL.md
//! 4.1). The order of checks is the protocol's: fields, ownership, then state against the
//! projections, with appends to one session serialised ([`SessionGate`]). Gateway-handled
//! commands go in one atomic append with their derived event. Every path that refuses changes
//! nothing.
//!
//! The WebSocket calls [`execute`]; GraphQL's mutations will call the same function.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use octo_core::command::{Command, Fork, SessionCreate};
use octo_core::event::{
    RenameSource, SessionCreated, SessionDeleted, SessionForked, SessionRenamed,
};
use octo_core::frame::{Ack, AckStatus, CommandFrame};
use octo_core::validate::{is_root, validate_command};
use octo_core::{Error, ErrorCode, Event, Offset, SessionId, UserId};
use octo_log::{AppendError, NewEntry, PendingAppend, Receipt, SeqSpec};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::app::{App, ReadFailure};
use crate::fork::fork_point;
use crate::view::View;

/// The harnesses this server offers.
pub const HARNESSES: [&str; 1] = [octo_runner::pi::factory::PI_HARNESS];

fn rejected(frame: &CommandFrame, error: Error) -> Ack {
    Ack::rejected(frame.command_id, error)
}

fn unavailable(failure: ReadFailure) -> Error {
    Error::new(
        ErrorCode::Unavailable,
        format!("{failure}; retry with the same command_id"),
    )
}

fn conflict(command_id: octo_core::CommandId, offset: Offset) -> Error {
    Error::new(
        ErrorCode::IdempotencyConflict,
        format!("command_id {command_id} was used at offset {offset} for another command"),
    )
    .with_ref(command_id.to_string())
}

fn not_found(session_id: &SessionId) -> Error {
    Error::new(
        ErrorCode::SessionNotFound,
        "no such session: unknown, deleted, or not yours",
    )
    .with_ref(session_id.to_string())
}

/// Orders the commands of one session (PROTOCOL.md 4.1: appends to one session are serialised).
/// A command is checked and placed in the log while it holds its session's gate. One whose checks
/// read nothing the commands before it change ([`waits_for_settled`]) lets the gate go as soon as
/// its append is placed, so a burst of them shares group commits; any other first waits until
/// everything placed before it is durable, and holds the gate until it is durable too.
#[derive(Default)]
pub struct SessionGate {
    /// The newest append let go before it was durable. The log makes appends durable in the
    /// order they were placed, so once it is, every one before it is too.
    in_flight: Option<JoinHandle<()>>,
}

impl SessionGate {
    /// Whether nothing placed through the gate is still on its way to disk.
    pub fn is_settled(&self) -> bool {
        self.in_flight.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits until every append placed through the gate is durable or has failed.
    ///
    /// # Cancel safety
    /// Cancel safe: the append stays the one to wait for.
    async fn settle(&mut self) {
        if let Some(in_flight) = &mut self.in_flight {
            let _ = in_flight.await;
            self.in_flight = None;
        }
    }

    /// Keeps `pending` as the append to settle, awaited by a task of its own so it counts even
    /// when the command's caller goes away; its outcome comes back on the receiver.
    fn place(
        &mut self,
        pending: PendingAppend,
    ) -> oneshot::Receiver<Result<Vec<Receipt>, AppendError>> {
        let (reply, outcome) = oneshot::channel();
        self.in_flight = Some(tokio::spawn(async move {
            let _ = reply.send(pending.await);
        }));
        outcome
    }
}

/// Whether `command`'s checks read what the session's earlier commands change: its state
/// (abort, compact, input.respond), its view (fork), or whether it exists (delete: what comes
/// after it must find the session gone). Prompt, set_model, set_thinking_level and rename are
/// checked only against what no command of the session changes (ownership of a live session,
/// read-only), so they need not wait.
fn waits_for_settled(command: &Command) -> bool {
    // Any command not named here waits: the safe default for one added later.
    !matches!(
        command,
        Command::Prompt(_)
            | Command::SetModel(_)
            | Command::SetThinkingLevel(_)
            | Command::SessionRename(_)
    )
}

/// The ack of a placed command, once its append is durable.
pub type PendingAck = Pin<Box<dyn Future<Output = Ack> + Send + Sync + 'static>>;

/// A command checked and placed in the log: its ack now, or once its append is durable.
pub enum Placed {
    /// Refused, a duplicate, or already durable.
    Done(Ack),
    /// Placed: the ack comes once the append is durable. The append goes on whether or not this
    /// is awaited.
    Pending(PendingAck),
}

impl Placed {
    /// The command's ack, once its append is durable.
    pub fn into_pending(self) -> PendingAck {
        match self {
            Placed::Done(ack) => Box::pin(std::future::ready(ack)),
            Placed::Pending(ack) => ack,
        }
    }
}

/// Checks and appends one command of `user_id`; never fails, the outcome is the ack.
pub async fn execute(app: &App, user_id: &UserId, frame: CommandFrame) -> Ack {
    place(app, user_id, frame).await.into_pending().await
}

/// [`execute`] up to the command's place in the log: once this returns, every command placed
/// after it (any connection's) lands after it, so a connection can place its next command
/// without waiting for this one's sync, and both share a group commit.
pub async fn place(app: &App, user_id: &UserId, frame: CommandFrame) -> Placed {
    match place_or_answer(app, user_id, frame).await {
        Ok(pending) => Placed::Pending(pending),
        Err(ack) => Placed::Done(ack),
    }
}

/// [`place`], with `Err` for an ack that is known already: a refusal, a duplicate, or a
/// command appended in full (creates, forks, and what waits for the session to settle).
async fn place_or_answer(
    app: &App,
    user_id: &UserId,
    frame: CommandFrame,
) -> Result<PendingAck, Ack> {
    if let Err(e) = validate_command(&frame.command, &app.field_limits) {
        return Err(rejected(&frame, e.to_error()));
    }
    if let Command::SessionCreate(create) = &frame.command {
        return Err(
            match create_session(app, user_id, &frame, create, None).await {
                Ok(ack) | Err(ack) => ack,
            },
        );
    }
    let Some(session_id) = frame.session_id else {
        return Err(rejected(
            &frame,
            Error::new(ErrorCode::MissingField, "missing field session_id").with_ref("session_id"),
        ));
    };
    let gate = app.session_gate(session_id);
    let mut gate = gate.lock().await;
    let settled = waits_for_settled(&frame.command);
    if settled {
        gate.settle().await;
    }
    match app.owned_session(user_id, &session_id).await {
        Ok(Some(record))
            if record.read_only
                && !matches!(
                    frame.command,
                    Command::SessionRename(_) | Command::SessionDelete(_)
                ) =>
        {
            return Err(rejected(
                &frame,
                Error::new(
                    ErrorCode::Unsupported,
                    "this session was written through hstry's API: it can be renamed or deleted, not run or forked (no harness holds its context)",
                )
                .with_ref("read_only"),
            ));
        }
        Ok(Some(_)) => {}
        Ok(None) => return Err(rejected(&frame, not_found(&session_id))),
        Err(e) => return Err(rejected(&frame, unavailable(e))),
    }
    if let Command::Fork(fork) = &frame.command {
        return Err(
            match fork_session(app, user_id, &frame, session_id, fork).await {
                Ok(ack) | Err(ack) => ack,
            },
        );
    }
    if let Err(error) = check_state(app, &session_id, &frame.command).await {
        // A re-sent command whose effect already moved the state on is still a duplicate.
        match app
            .log
            .find_command(user_id.clone(), frame.command_id)
            .await
        {
            Ok(Some(_)) => {}
            Ok(None) => return Err(rejected(&frame, error)),
            Err(e) => {
                return Err(rejected(
                    &frame,
                    unavailable(ReadFailure::Unavailable(e.to_string())),
                ));
            }
        }
    }
    let derived = derived_event(&frame.command).map(|event| (session_id, event));
    let batch = command_batch(
        app,
        user_id,
        &frame,
        session_id,
        frame.command.clone(),
        derived,
    );
    if settled {
        return Err(append(app, &frame, session_id, batch).await);
    }
    let outcome = match app.log.append_placed(batch).await {
        Ok(pending) => gate.place(pending),
        Err(e) => return Err(ack_of(&frame, session_id, Err(e))),
    };
    drop(gate);
    Ok(Box::pin(async move {
        let outcome = outcome.await.unwrap_or_else(|_| {
            Err(AppendError::Unavailable {
                reason: "the server stopped before the append was durable".into(),
            })
        });
        ack_of(&frame, session_id, outcome)
    }))
}

/// A command as logged in `session_id`, with the event it derives (if any, in its session) in
/// the same atomic append, its `cause` set to the command's offset (PROTOCOL.md 4.1).
fn command_batch(
    app: &App,
    user_id: &UserId,
    frame: &CommandFrame,
    session_id: SessionId,
    command: Command,
    derived: Option<(SessionId, Event)>,
) -> Vec<NewEntry> {
    let mut batch = vec![NewEntry::command(
        user_id.clone(),
        session_id,
        app.producer.clone(),
        frame.command_id,
        command,
    )];
    if let Some((event_session, event)) = derived {
        batch.push(
            NewEntry::event(
                user_id.clone(),
                event_session,
                app.producer.clone(),
                SeqSpec::Next,
                event,
            )
            .caused_by_command(),
        );
    }
    batch
}

/// The event a gateway-handled command derives (4.2, "handled by G").
fn derived_event(command: &Command) -> Option<Event> {
    match command {
        Command::SessionRename(rename) => Some(Event::SessionRenamed(SessionRenamed {
            title: rename.title.clone(),
            source: RenameSource::User,
            cause: Some(Offset::ZERO),
        })),
        Command::SessionDelete(_) => Some(Event::SessionDeleted(SessionDeleted {
            cause: Offset::ZERO,
        })),
        _ => None,
    }
}

/// The state rules of 4.2, against `ui_state` as of the session's newest entry.
async fn check_state(app: &App, session_id: &SessionId, command: &Command) -> Result<(), Error> {
    let needs_state = matches!(
        command,
        Command::Abort(_) | Command::Compact(_) | Command::InputRespond(_)
    );
    if !needs_state {
        return Ok(());
    }
    let ui = app.session_ui(session_id).await.map_err(unavailable)?;
    match command {
        Command::Abort(_) if ui.open_run.is_none() => Err(Error::new(
            ErrorCode::InvalidState,
            "no run is open: there is nothing to abort",
        )
        .with_ref("idle")),
        Command::Compact(_) if ui.open_run.is_some() => Err(Error::new(
            ErrorCode::InvalidState,
            "a run is open: compact once it ends, or abort it",
        )
        .with_ref("working")),
        Command::InputRespond(respond) if !ui.open_inputs.contains(&respond.request_id) => {
            Err(Error::new(
                ErrorCode::InvalidState,
                "that input request is not open (answered, cancelled, timed out, or unknown)",
            )
            .with_ref(respond.request_id.clone()))
        }
        _ => Ok(()),
    }
}

async fn create_session(
    app: &App,
    user_id: &UserId,
    frame: &CommandFrame,
    create: &SessionCreate,
    rerun_of: Option<SessionId>,
) -> Result<Ack, Ack> {
    if !HARNESSES.contains(&create.harness.as_str()) {
        return Err(rejected(
            frame,
            Error::new(
                ErrorCode::UnknownHarness,
                format!(
                    "no harness {:?}: this server offers {HARNESSES:?}",
                    create.harness
                ),
            )
            .with_ref(create.harness.clone()),
        ));
    }
    resolve_workspace(&app.workspaces_root, &create.workspace)
        .map_err(|error| rejected(frame, error))?;
    let session_id = SessionId::new();
    let created = Event::SessionCreated(SessionCreated {
        harness: create.harness.clone(),
        workspace: create.workspace.clone(),
        model: create.model.clone(),
        thinking_level: create.thinking_level,
        title: create.title.clone(),
        rerun_of,
        cause: Offset::ZERO,
    });
    let batch = command_batch(
        app,
        user_id,
        frame,
        session_id,
        frame.command.clone(),
        Some((session_id, created)),
    );
    Ok(append(app, frame, session_id, batch).await)
}

/// `rerun`: a new session like `source` (its harness and workspace) on `model` (default: the
/// source's), whose `session.created` records `rerun_of`; the rerun driver ([`crate::rerun`])
/// then sends it the source's prompts one after another. The command logged is the
/// `session.create` it amounts to, so a re-sent `command_id` is a duplicate like any create.
pub async fn rerun(
    app: &App,
    user_id: &UserId,
    command_id: octo_core::CommandId,
    source: SessionId,
    model: Option<octo_core::ModelRef>,
    title: Option<String>,
) -> Ack {
    let record = match app.owned_session(user_id, &source).await {
        Ok(Some(record)) => record,
        Ok(None) => return Ack::rejected(command_id, not_found(&source)),
        Err(e) => return Ack::rejected(command_id, unavailable(e)),
    };
    if record.read_only {
        return Ack::rejected(
            command_id,
            Error::new(
                ErrorCode::Unsupported,
                "this session was written through hstry's API: it has no prompts to run again",
            )
            .with_ref("read_only"),
        );
    }
    let summary = record.summary;
    let title = title.or_else(|| summary.title.as_ref().map(|t| format!("Rerun of {t}")));
    let create = SessionCreate {
        harness: summary.harness,
        workspace: summary.workspace,
        model: model.or(summary.model),
        thinking_level: record.thinking_level,
        title: title.map(|t| t.chars().take(200).collect()),
    };
    let frame = CommandFrame {
        command: Command::SessionCreate(create.clone()),
        command_id,
        session_id: None,
    };
    if let Err(e) = validate_command(&frame.command, &app.field_limits) {
        return rejected(&frame, e.to_error());
    }
    match create_session(app, user_id, &frame, &create, Some(source)).await {
        Ok(ack) | Err(ack) => ack,
    }
}

/// A fork of `source` at `fork.at_offset` (PROTOCOL.md 9.2): the `fork` command in the source and
/// `session.forked`, the new session's first entry, in one atomic append. The ack carries the new
/// session's id, also when it repeats a duplicate.
async fn fork_session(
    app: &App,
    user_id: &UserId,
    frame: &CommandFrame,
    source: SessionId,
    fork: &Fork,
) -> Result<Ack, Ack> {
    // A re-sent fork is answered from the log before anything is checked again.
    if let Some(ack) = duplicate_fork(app, user_id, frame).await? {
        return Ok(ack);
    }
    let head = app.log.head();
    if fork.at_offset > head {
        return Err(rejected(
            frame,
            Error::new(
                ErrorCode::InvalidOffset,
                format!("at_offset {} is beyond the log head {head}", fork.at_offset),
            )
            .with_ref("at_offset"),
        ));
    }
    let view = View::of(app, source).map_err(|e| rejected(frame, unavailable(e)))?;
    let point = fork_point(app.log.as_ref(), &view, fork.at_offset)
        .await
        .map_err(|error| rejected(frame, error))?;
    if !HARNESSES.contains(&point.harness.as_str()) {
        return Err(rejected(
            frame,
            Error::new(
                ErrorCode::Unsupported,
                format!("the harness {:?} cannot fork here", point.harness),
            )
            .with_ref("fork"),
        ));
    }
    let new_session_id = SessionId::new();
    let command = Command::Fork(Fork {
        new_session_id: Some(new_session_id),
        ..fork.clone()
    });
    let forked = Event::SessionForked(SessionForked {
        parent_session_id: source,
        parent_offset: fork.at_offset,
        harness: point.harness,
        workspace: point.workspace,
        model: point.model,
        thinking_level: point.thinking_level,
        title: fork.title.clone(),
        user_messages_inherited: point.user_messages,
        cause: Offset::ZERO,
    });
    let batch = command_batch(
        app,
        user_id,
        frame,
        source,
        command,
        Some((new_session_id, forked)),
    );
    let ack = append(app, frame, new_session_id, batch).await;
    if ack.status == AckStatus::Duplicate {
        // Appended concurrently under the same id: answer with the fork it made.
        if let Some(ack) = duplicate_fork(app, user_id, frame).await? {
            return Ok(ack);
        }
    }
    Ok(ack)
}

/// The ack of a fork whose `command_id` is already in the log: `duplicate`, with the session that
/// fork made (or `idempotency_conflict` when the id names another command).
async fn duplicate_fork(
    app: &App,
    user_id: &UserId,
    frame: &CommandFrame,
) -> Result<Option<Ack>, Ack> {
    let read_failed = |e: octo_log::ReadError| {
        rejected(frame, unavailable(ReadFailure::Unavailable(e.to_string())))
    };
    let Some((offset, _)) = app
        .log
        .find_command(user_id.clone(), frame.command_id)
        .await
        .map_err(read_failed)?
    else {
        return Ok(None);
    };
    let batch = app
        .log
        .read(octo_log::ReadQuery {
            filter: octo_log::LogFilter::user(user_id.clone()),
            after: Offset::new(offset.get().saturating_sub(1)).unwrap_or(Offset::ZERO),
            until: Some(offset),
            limit: 1,
        })
        .await
        .map_err(read_failed)?;
    let original = batch.entries.first().map(|entry| &entry.body);
    let same = |logged: &Command| logged.idempotency_view() == frame.command.idempotency_view();
    match original {
        Some(octo_core::Body::Command(
            logged @ Command::Fork(Fork {
                new_session_id: Some(new_session_id),
                ..
            }),
        )) if same(logged) && Some(batch.entries[0].session_id) == frame.session_id => {
            Ok(Some(Ack {
                command_id: frame.command_id,
                status: AckStatus::Duplicate,
                offset: Some(offset),
                session_id: Some(*new_session_id),
                error: None,
            }))
        }
        _ => Err(rejected(frame, conflict(frame.command_id, offset))),
    }
}

/// The absolute workspace of `relative` under `root`: it must exist, be a directory, and stay
/// under the root once symlinks are resolved.
///
/// # Errors
/// `path_outside_root`, `not_found`, `not_a_directory` (the path as sent in `ref`).
pub fn resolve_workspace(root: &Path, relative: &str) -> Result<PathBuf, Error> {
    let error = |code: ErrorCode, message: &str| {
        Error::new(code, format!("workspace {relative:?} {message}")).with_ref(relative.to_owned())
    };
    let joined = if is_root(relative) {
        root.to_path_buf()
    } else {
        root.join(relative)
    };
    let resolved = match joined.canonicalize() {
        Ok(path) => path,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(error(
                ErrorCode::NotFound,
                "does not exist under the workspaces root",
            ));
        }
        Err(e) => return Err(error(ErrorCode::IoError, &format!("cannot be read: {e}"))),
    };
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    if !resolved.starts_with(&root) {
        return Err(error(
            ErrorCode::PathOutsideRoot,
            "leads outside the workspaces root through a symlink",
        ));
    }
    if !resolved.is_dir() {
        return Err(error(ErrorCode::NotADirectory, "is not a directory"));
    }
    Ok(resolved)
}

async fn append(
    app: &App,
    frame: &CommandFrame,
    session_id: SessionId,
    batch: Vec<NewEntry>,
) -> Ack {
    ack_of(frame, session_id, app.log.append(batch).await)
}

/// The ack of a command whose append in `session_id` ended with `outcome`.
fn ack_of(
    frame: &CommandFrame,
    session_id: SessionId,
    outcome: Result<Vec<Receipt>, AppendError>,
) -> Ack {
    match outcome {
        Ok(receipts) => match receipts.first() {
            Some(Receipt::Appended(offset)) => Ack {
                command_id: frame.command_id,
                status: AckStatus::Accepted,
                offset: Some(*offset),
                session_id: Some(session_id),
                error: None,
            },
            Some(Receipt::Duplicate { offset, session_id }) => Ack {
                command_id: frame.command_id,
                status: AckStatus::Duplicate,
                offset: Some(*offset),
                session_id: Some(*session_id),
                error: None,
            },
            other => {
                tracing::error!(
                    ?other,
                    "a command append returned no receipt for the command"
                );
                rejected(
                    frame,
                    Error::new(ErrorCode::Internal, "the log gave no receipt"),
                )
            }
        },
        Err(AppendError::IdempotencyConflict { command_id, offset }) => {
            rejected(frame, conflict(command_id, offset))
        }
        Err(AppendError::TooLarge { max_bytes, .. }) => rejected(
            frame,
            Error::new(
                ErrorCode::FrameTooLarge,
                format!("the command is over max_entry_bytes ({max_bytes} bytes) once logged"),
            )
            .with_ref("max_entry_bytes"),
        ),
        Err(AppendError::Unavailable { reason }) => rejected(
            frame,
            Error::new(
                ErrorCode::Unavailable,
                format!("the log cannot append now ({reason}); retry with the same command_id"),
            ),
        ),
        Err(e) => {
            tracing::error!(error = %e, "a command append was refused");
            rejected(
                frame,
                Error::new(ErrorCode::Internal, "the log refused the command"),
            )
        }
    }
}
