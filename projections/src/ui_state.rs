//! The `ui_state` projection: per session, the run state of PROTOCOL.md 8 (idle, working, error)
//! derived only from lifecycle events, the open run and its phase, the open input requests, whether
//! its harness runs, and the runner-handled commands not yet settled (4.3).
//!
//! The gateway checks commands against it (`abort` needs an open run, `compact` needs none,
//! `input.respond` an open request) and, at startup, fails every unsettled command (14.4).
//!
//! Keys:
//! - `r` ++ session id -> [`SessionUi`] (msgpack);
//! - `c` ++ command offset -> [`Unsettled`] (msgpack): every unsettled command, in offset order.

use fjall::Keyspace;
use octo_core::frame::{RunPhase, RunState};
use octo_core::{Body, Command, CommandId, Event, Kind, LogEntry, Offset, RunId, SessionId};
use serde::{Deserialize, Serialize};

use crate::store::{StoreError, storage};
use crate::{Projection, Txn};

/// The open run of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRunState {
    pub run_id: RunId,
    /// The offset of its `agent.working`.
    pub started: Offset,
    pub phase: RunPhase,
}

/// What the UI and the gateway's state checks need about one session.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SessionUi {
    pub run_state: RunState,
    pub open_run: Option<OpenRunState>,
    /// Input requests awaiting an answer, oldest first.
    pub open_inputs: Vec<String>,
    /// Between `harness.started` and `harness.exited`: what a lost runner leaves running (14.4).
    #[serde(default)]
    pub harness_running: bool,
}

/// A runner-handled command awaiting its settling event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsettled {
    pub offset: Offset,
    pub session_id: SessionId,
    pub command_id: CommandId,
    /// The command's `type`.
    pub command: String,
}

/// The `ui_state` fold.
#[derive(Debug, Default)]
pub struct UiState;

fn session_key(session_id: &SessionId) -> Vec<u8> {
    let mut key = Vec::with_capacity(17);
    key.push(b'r');
    key.extend_from_slice(session_id.as_bytes());
    key
}

fn command_key(offset: Offset) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(b'c');
    key.extend_from_slice(&offset.to_be_bytes());
    key
}

/// Whether a command of this type waits for a settling event (the "settled by" column of 4.2).
fn needs_settling(command: &Command) -> bool {
    !matches!(command.type_name(), "session.rename" | "session.delete")
}

/// Whether `event` (with `cause` naming the command) settles a command of type `command`.
fn settles(command: &str, event: &Event) -> bool {
    match event {
        Event::CommandFailed(_) => true,
        Event::MessageCreated(_) => command == "prompt",
        Event::AgentIdle(_) => command == "abort",
        Event::ModelChanged(_) => matches!(command, "set_model" | "set_thinking_level"),
        Event::CompactEnd(_) => command == "compact",
        Event::InputResolved(_) => command == "input.respond",
        Event::HarnessStarted(_) | Event::HarnessExited(_) => {
            matches!(command, "session.create" | "fork")
        }
        _ => false,
    }
}

impl Projection for UiState {
    const NAME: &'static str = "ui_state";
    const VERSION: u32 = 2;
    // Neither fold nor settle a command (`fold_event`, `settles`). Exact names for `session.*`:
    // the `session.create` command needs settling.
    const SKIPS: &'static [&'static str] = &[
        "session.created",
        "session.forked",
        "session.renamed",
        "session.deleted",
        "stream.*",
        "usage.recorded",
        "tool.progress",
        "notice",
        "history.*",
    ];

    fn apply(&self, entry: &LogEntry, txn: &mut Txn<'_>) {
        match (&entry.body, entry.kind) {
            (Body::Command(command), Kind::Command) => {
                if needs_settling(command)
                    && let Some(command_id) = entry.command_id
                {
                    let unsettled = Unsettled {
                        offset: entry.offset,
                        session_id: entry.session_id,
                        command_id,
                        command: command.type_name().to_owned(),
                    };
                    txn.put_value(command_key(entry.offset), &unsettled);
                }
            }
            (Body::Event(event), Kind::Event) => {
                if let Some(cause) = event.cause() {
                    let key = command_key(cause);
                    if let Some(unsettled) = txn.get_value::<Unsettled>(&key)
                        && settles(&unsettled.command, event)
                    {
                        txn.delete(key);
                    }
                }
                let key = session_key(&entry.session_id);
                let mut ui: SessionUi = txn.get_value(&key).unwrap_or_default();
                if fold_event(entry, event, &mut ui) {
                    txn.put_value(key, &ui);
                }
            }
            _ => {}
        }
    }
}

/// Folds one event into a session's state; false when nothing changed.
fn fold_event(entry: &LogEntry, event: &Event, ui: &mut SessionUi) -> bool {
    let set_phase = |ui: &mut SessionUi, phase: RunPhase| match &mut ui.open_run {
        Some(run) => {
            run.phase = phase;
            true
        }
        None => false,
    };
    match event {
        Event::AgentWorking(working) => {
            ui.run_state = RunState::Working;
            ui.open_run = Some(OpenRunState {
                run_id: working.run_id,
                started: entry.offset,
                phase: RunPhase::Generating,
            });
            true
        }
        Event::AgentIdle(_) => {
            ui.run_state = RunState::Idle;
            ui.open_run = None;
            ui.open_inputs.clear();
            true
        }
        Event::RunFailed(_) | Event::RunTimedOut(_) => {
            ui.run_state = RunState::Error;
            ui.open_run = None;
            ui.open_inputs.clear();
            true
        }
        Event::ToolStart(tool) => set_phase(
            ui,
            RunPhase::ToolRunning {
                name: tool.name.clone(),
            },
        ),
        Event::CompactStart(_) => set_phase(ui, RunPhase::Compacting),
        Event::RetryStart(_) => set_phase(ui, RunPhase::Retrying),
        Event::ToolEnd(_) | Event::CompactEnd(_) | Event::RetryEnd(_) => {
            set_phase(ui, RunPhase::Generating)
        }
        Event::HarnessStarted(_) => !std::mem::replace(&mut ui.harness_running, true),
        Event::HarnessExited(_) => std::mem::replace(&mut ui.harness_running, false),
        Event::InputRequested(requested) => {
            ui.open_inputs.push(requested.request_id.clone());
            true
        }
        Event::InputResolved(resolved) => {
            let before = ui.open_inputs.len();
            ui.open_inputs.retain(|id| id != &resolved.request_id);
            ui.open_inputs.len() != before
        }
        _ => false,
    }
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::corrupt::<UiState>(e)
}

impl UiState {
    /// A session's state (idle with nothing open if it has none yet).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn get(keyspace: &Keyspace, session_id: &SessionId) -> Result<SessionUi, StoreError> {
        match keyspace.get(session_key(session_id)).map_err(storage)? {
            None => Ok(SessionUi::default()),
            Some(bytes) => octo_core::codec::from_msgpack(&bytes).map_err(corrupt),
        }
    }

    /// A session's state as of a [`StoreSnapshot`](crate::store::StoreSnapshot).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn get_at(
        snapshot: &crate::store::StoreSnapshot,
        keyspace: &Keyspace,
        session_id: &SessionId,
    ) -> Result<SessionUi, StoreError> {
        use fjall::Readable as _;
        match snapshot
            .inner()
            .get(keyspace, session_key(session_id))
            .map_err(storage)?
        {
            None => Ok(SessionUi::default()),
            Some(bytes) => octo_core::codec::from_msgpack(&bytes).map_err(corrupt),
        }
    }

    /// Every session with state, in session id order.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn all(keyspace: &Keyspace) -> Result<Vec<(SessionId, SessionUi)>, StoreError> {
        keyspace
            .prefix([b'r'])
            .map(|guard| {
                let (key, value) = guard.into_inner().map_err(storage)?;
                let id: [u8; 16] = key
                    .get(1..)
                    .and_then(|bytes| bytes.try_into().ok())
                    .ok_or_else(|| corrupt("session key is not 17 bytes"))?;
                let session_id = SessionId::from_bytes(id).map_err(corrupt)?;
                Ok((
                    session_id,
                    octo_core::codec::from_msgpack(&value).map_err(corrupt)?,
                ))
            })
            .collect()
    }

    /// Every unsettled runner-handled command, in offset order.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn unsettled(keyspace: &Keyspace) -> Result<Vec<Unsettled>, StoreError> {
        keyspace
            .prefix([b'c'])
            .map(|guard| {
                let value = guard.value().map_err(storage)?;
                octo_core::codec::from_msgpack(&value).map_err(corrupt)
            })
            .collect()
    }
}
