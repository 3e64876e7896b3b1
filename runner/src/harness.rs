//! The `Harness` trait: what the runner asks of one session's agent process, whatever speaks
//! underneath (pi today, opencode next). A harness is started lazily by the first command it is
//! given, turns its native output into canonical events, and reports its own failures as events
//! (PROTOCOL.md 6.2 and 6.3), so the runner never invents state.

use std::future::Future;

use octo_core::event::HarnessExitReason;
use octo_core::runner::SessionCtx;
use octo_core::{Event, SessionId, UserId};

pub use crate::pi::translate::Delivered;

/// One session's harness, supervised.
pub trait Harness: Send + 'static {
    /// Delivers a durable command, starting the process first when it is not running. Returns the
    /// events that happened at once (`harness.started`, or a start failure and the command's
    /// `command.failed`).
    fn deliver(&mut self, delivered: Delivered) -> impl Future<Output = Vec<Event>> + Send;

    /// The next events (translated output, a timeout, the process's exit). Called only while
    /// [`Harness::is_running`]; cancel safe.
    fn next_events(&mut self) -> impl Future<Output = Vec<Event>> + Send;

    /// Whether the process runs now.
    fn is_running(&self) -> bool;

    /// Stops the process (session deleted, runner shutting down) and returns what that ended: the
    /// open run's `run.failed`, failed commands, `harness.exited{reason}`. Nothing when it was not
    /// running.
    fn stop(&mut self, reason: HarnessExitReason) -> impl Future<Output = Vec<Event>> + Send;
}

/// Makes the harness of a session from what the gateway knows about it.
pub trait HarnessFactory: Send + Sync + 'static {
    type Harness: Harness;

    /// The harness for `session_id` of `user_id`, not started yet.
    ///
    /// # Errors
    /// A message for `harness.exited{start_failed}` when the context cannot be honoured (an
    /// unknown harness, a sandbox that cannot be built).
    fn create(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
        ctx: &SessionCtx,
    ) -> Result<Self::Harness, String>;
}
