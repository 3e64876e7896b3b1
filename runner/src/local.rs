//! The local runner: the runner inside `octo` (ARCHITECTURE.md, "Modes: local"). It owns one task
//! per session with a harness; each task takes that session's commands in offset order and sends
//! the harness's events, in order, to one bounded channel that the gateway appends from.
//!
//! The runner keeps no durable state (PROTOCOL.md 14.1): a command is delivered once, and what the
//! harness does with it comes back only as events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use octo_core::event::{CommandFailed, HarnessExitReason, HarnessExited};
use octo_core::runner::RunnerCommand;
use octo_core::{Command, Error, ErrorCode, Event, Offset, SessionId, UserId};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::harness::{Harness, HarnessFactory};
use crate::pi::translate::Delivered;

/// Commands waiting for one session's task.
pub const SESSION_QUEUE_COMMANDS: usize = 256;

/// Events of one session, in the order the harness produced them.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionEvents {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub events: Vec<Event>,
}

struct Shared {
    sessions: Mutex<HashMap<SessionId, mpsc::Sender<RunnerCommand>>>,
}

/// The runner inside the gateway process.
pub struct LocalRunner<F: HarnessFactory> {
    factory: Arc<F>,
    shared: Arc<Shared>,
    events: mpsc::Sender<SessionEvents>,
    tasks: tokio::sync::Mutex<JoinSet<()>>,
}

impl<F: HarnessFactory> LocalRunner<F> {
    /// A runner whose harnesses' events go to `events` (bounded: a full channel stops the
    /// harnesses' output being read, it never drops it).
    pub fn new(factory: F, events: mpsc::Sender<SessionEvents>) -> LocalRunner<F> {
        LocalRunner {
            factory: Arc::new(factory),
            shared: Arc::new(Shared {
                sessions: Mutex::new(HashMap::new()),
            }),
            events,
            tasks: tokio::sync::Mutex::new(JoinSet::new()),
        }
    }

    /// How many sessions have a task (a harness running or starting).
    pub fn active_sessions(&self) -> usize {
        self.lock_sessions().len()
    }

    fn lock_sessions(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<SessionId, mpsc::Sender<RunnerCommand>>> {
        self.shared
            .sessions
            .lock()
            .expect("the sessions lock is never poisoned")
    }

    /// Delivers a durable, runner-handled command of `user_id`'s session.
    pub async fn deliver(&self, user_id: &UserId, command: RunnerCommand) {
        let session_id = command.session_id;
        let existing = self.lock_sessions().get(&session_id).cloned();
        if let Some(sender) = existing {
            match sender.send(command).await {
                Ok(()) => return,
                // The task ended (its harness was stopped) between the lookup and the send.
                Err(mpsc::error::SendError(command)) => {
                    self.lock_sessions().remove(&session_id);
                    return Box::pin(self.deliver(user_id, command)).await;
                }
            }
        }
        if matches!(command.body, Command::SessionDelete(_)) {
            // Nothing runs for this session: nothing to stop.
            return;
        }
        let harness = match self.factory.create(user_id, &session_id, &command.ctx) {
            Ok(harness) => harness,
            Err(message) => {
                let events = start_failed(&command, message);
                let _ = self
                    .events
                    .send(SessionEvents {
                        user_id: user_id.clone(),
                        session_id,
                        events,
                    })
                    .await;
                return;
            }
        };
        let (sender, receiver) = mpsc::channel(SESSION_QUEUE_COMMANDS);
        // The queue is new and empty: this send cannot wait.
        let _ = sender.try_send(command);
        self.lock_sessions().insert(session_id, sender);
        let task = run_session(
            harness,
            user_id.clone(),
            session_id,
            receiver,
            self.events.clone(),
            Arc::clone(&self.shared),
        );
        self.tasks.lock().await.spawn(task);
    }

    /// Stops every harness (`harness.exited{runner_shutdown}`) and waits for their last events.
    pub async fn shutdown(&self) {
        self.lock_sessions().clear();
        let mut tasks = self.tasks.lock().await;
        while tasks.join_next().await.is_some() {}
    }
}

/// What a command that could not start its harness settles to.
fn start_failed(command: &RunnerCommand, message: String) -> Vec<Event> {
    let error = Error::new(ErrorCode::HarnessStartFailed, message);
    let mut events = Vec::with_capacity(2);
    if !command.body.starts_harness() {
        events.push(Event::CommandFailed(CommandFailed {
            command_id: command.command_id,
            error: error.clone(),
            cause: command.offset,
        }));
    }
    events.push(Event::HarnessExited(HarnessExited {
        reason: HarnessExitReason::StartFailed,
        code: None,
        signal: None,
        stderr_tail: None,
        error: Some(error),
        cause: Some(command.offset),
    }));
    events
}

async fn run_session<H: Harness>(
    mut harness: H,
    user_id: UserId,
    session_id: SessionId,
    mut commands: mpsc::Receiver<RunnerCommand>,
    events: mpsc::Sender<SessionEvents>,
    shared: Arc<Shared>,
) {
    let send = |batch: Vec<Event>| {
        let events = events.clone();
        let user_id = user_id.clone();
        async move {
            if batch.is_empty() {
                return true;
            }
            events
                .send(SessionEvents {
                    user_id,
                    session_id,
                    events: batch,
                })
                .await
                .is_ok()
        }
    };
    // The runner ignores a command at or below the highest offset it has seen (14.4).
    let mut highest = Offset::ZERO;
    loop {
        tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else {
                    send(harness.stop(HarnessExitReason::RunnerShutdown).await).await;
                    return;
                };
                if command.offset <= highest {
                    continue;
                }
                highest = command.offset;
                if matches!(command.body, Command::SessionDelete(_)) {
                    let mut stopped = harness.stop(HarnessExitReason::Deleted).await;
                    for event in &mut stopped {
                        if let Event::HarnessExited(exited) = event {
                            exited.cause = Some(command.offset);
                        }
                    }
                    shared
                        .sessions
                        .lock()
                        .expect("the sessions lock is never poisoned")
                        .remove(&session_id);
                    send(stopped).await;
                    return;
                }
                let delivered = Delivered {
                    offset: command.offset,
                    command_id: command.command_id,
                    command: command.body,
                };
                if !send(harness.deliver(delivered).await).await {
                    return;
                }
            }
            batch = harness.next_events(), if harness.is_running() => {
                if !send(batch).await {
                    return;
                }
            }
        }
    }
}
