//! The server's shared state: the log, the projections the gateway reads, users, and what every
//! connection's `hello` says. One `App` per process, behind an `Arc`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use octo_core::frame::{HarnessInfo, HelloLimits};
use octo_core::{FieldLimits, Offset, ProducerId, SessionId, UserId};
use octo_log::{EventLog, QueueBound};
use octo_projections::ProjectionHandle;
use octo_projections::sessions::{SessionRecord, Sessions};
use octo_projections::ui_state::{SessionUi, UiState};

use crate::users::UserStore;

/// How long a read waits for a projection to catch up with the log (read your writes).
pub const READ_YOUR_WRITES: Duration = Duration::from_secs(10);

/// Shared by every connection.
pub struct App {
    pub log: Arc<dyn EventLog>,
    pub sessions: ProjectionHandle<Sessions>,
    pub ui: ProjectionHandle<UiState>,
    pub users: UserStore,
    /// `gw:<node_id>`.
    pub producer: ProducerId,
    pub demo: bool,
    /// Absolute.
    pub workspaces_root: PathBuf,
    pub harnesses: Vec<HarnessInfo>,
    pub limits: HelloLimits,
    pub field_limits: FieldLimits,
    pub max_frame_bytes: usize,
    pub queue_bound: QueueBound,
    /// Key of the session cookie's MAC.
    pub cookie_key: [u8; 32],
    /// Encoded `entry` frames shared by subscribers.
    pub frames: crate::frames::FrameCache,
    /// Commands to one session are checked and appended one at a time (PROTOCOL.md 4.1).
    session_locks: Mutex<HashMap<SessionId, Arc<tokio::sync::Mutex<()>>>>,
}

/// Why a projection could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ReadFailure {
    /// Retry: the projection is behind or its store failed.
    #[error("{0}")]
    Unavailable(String),
}

impl App {
    /// Assembles the state.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        log: Arc<dyn EventLog>,
        sessions: ProjectionHandle<Sessions>,
        ui: ProjectionHandle<UiState>,
        users: UserStore,
        producer: ProducerId,
        demo: bool,
        workspaces_root: PathBuf,
        harnesses: Vec<HarnessInfo>,
        max_frame_bytes: usize,
        queue_bound: QueueBound,
        cookie_key: [u8; 32],
    ) -> App {
        let limits = HelloLimits {
            max_frame_bytes: max_frame_bytes as u64,
            ..HelloLimits::default()
        };
        App {
            log,
            sessions,
            ui,
            users,
            producer,
            demo,
            workspaces_root,
            harnesses,
            limits,
            field_limits: FieldLimits::default(),
            max_frame_bytes,
            queue_bound,
            cookie_key,
            frames: crate::frames::FrameCache::default(),
            session_locks: Mutex::new(HashMap::new()),
        }
    }

    /// The lock that serialises commands to `session_id`.
    pub fn session_lock(&self, session_id: SessionId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .session_locks
            .lock()
            .expect("the session lock map is never poisoned");
        if locks.len() > 4096 {
            // Drop locks nobody holds, so the map stays as small as the busy sessions.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        Arc::clone(locks.entry(session_id).or_default())
    }

    /// Waits until the sessions projection has applied `offset`.
    async fn sessions_at(&self, offset: Offset) -> Result<(), ReadFailure> {
        self.sessions
            .wait_for(offset, READ_YOUR_WRITES)
            .await
            .map_err(|e| ReadFailure::Unavailable(format!("sessions projection: {e}")))
    }

    /// `user_id`'s live session: another user's, a deleted or an unknown one are all `None`.
    /// When the projection does not know it yet, waits until it has applied the log's head, so
    /// a session is found right after its `session.create` ack.
    ///
    /// # Errors
    /// [`ReadFailure`].
    pub async fn owned_session(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
    ) -> Result<Option<SessionRecord>, ReadFailure> {
        let lookup = || {
            Sessions::owned(self.sessions.keyspace(), user_id, session_id)
                .map_err(|e| ReadFailure::Unavailable(e.to_string()))
        };
        if let Some(record) = lookup()? {
            return Ok(Some(record));
        }
        self.sessions_at(self.log.head()).await?;
        lookup()
    }

    /// A session's record whoever owns it (for the dispatcher), as of the log's head.
    ///
    /// # Errors
    /// [`ReadFailure`].
    pub async fn session_record(
        &self,
        session_id: &SessionId,
    ) -> Result<Option<SessionRecord>, ReadFailure> {
        self.sessions_at(self.log.head()).await?;
        Sessions::get(self.sessions.keyspace(), session_id)
            .map_err(|e| ReadFailure::Unavailable(e.to_string()))
    }

    /// A session's run state, as of its newest entry.
    ///
    /// # Errors
    /// [`ReadFailure`].
    pub async fn session_ui(&self, session_id: &SessionId) -> Result<SessionUi, ReadFailure> {
        let head = self
            .log
            .session_head(*session_id)
            .await
            .map_err(|e| ReadFailure::Unavailable(e.to_string()))?;
        self.ui
            .wait_for(head, READ_YOUR_WRITES)
            .await
            .map_err(|e| ReadFailure::Unavailable(format!("ui_state projection: {e}")))?;
        UiState::get(self.ui.keyspace(), session_id)
            .map_err(|e| ReadFailure::Unavailable(e.to_string()))
    }
}
