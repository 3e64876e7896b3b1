//! The server's shared state: the log, the projections the gateway reads, users, and what every
//! connection's `hello` says. One `App` per process, behind an `Arc`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use octo_core::frame::{HarnessInfo, HelloLimits};
use octo_core::{FieldLimits, Offset, ProducerId, SessionId, UserId};
use octo_log::{EventLog, QueueBound};
use octo_projections::analytics::Analytics;
use octo_projections::history::History;
use octo_projections::search::Searcher;
use octo_projections::sessions::{SessionRecord, Sessions};
use octo_projections::ui_state::{SessionUi, UiState};
use octo_projections::{ProjectionHandle, ProjectionStore};

use crate::commands::SessionGate;
use crate::users::UserStore;

/// How long a read waits for a projection to catch up with the log (read your writes).
pub const READ_YOUR_WRITES: Duration = Duration::from_secs(10);

/// Shared by every connection.
pub struct App {
    pub log: Arc<dyn EventLog>,
    pub sessions: Arc<ProjectionHandle<Sessions>>,
    pub ui: ProjectionHandle<UiState>,
    pub history: Arc<ProjectionHandle<History>>,
    pub analytics: Arc<ProjectionHandle<Analytics>>,
    pub searcher: Searcher,
    /// The projections' store, for reads that must be consistent across them.
    pub store: ProjectionStore,
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
    /// Commands to one session are checked and placed in the log one at a time (PROTOCOL.md 4.1).
    session_gates: Mutex<HashMap<SessionId, Arc<tokio::sync::Mutex<SessionGate>>>>,
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
        sessions: Arc<ProjectionHandle<Sessions>>,
        ui: ProjectionHandle<UiState>,
        history: Arc<ProjectionHandle<History>>,
        analytics: Arc<ProjectionHandle<Analytics>>,
        searcher: Searcher,
        store: ProjectionStore,
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
            history,
            analytics,
            searcher,
            store,
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
            session_gates: Mutex::new(HashMap::new()),
        }
    }

    /// The gate that orders commands to `session_id`.
    pub fn session_gate(&self, session_id: SessionId) -> Arc<tokio::sync::Mutex<SessionGate>> {
        let mut gates = self
            .session_gates
            .lock()
            .expect("the session gate map is never poisoned");
        if gates.len() > 4096 {
            // Drop the gates nobody holds and nothing is in flight through, so the map stays as
            // small as the busy sessions.
            gates.retain(|_, gate| {
                Arc::strong_count(gate) > 1
                    || gate.try_lock().map_or(true, |gate| !gate.is_settled())
            });
        }
        Arc::clone(gates.entry(session_id).or_default())
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

/// A session as of one read of the projections: the `snapshot` frame, and per message the
/// offset that completed it and (when asked) where "fork here" on it forks.
#[derive(Debug, Clone)]
pub struct Materialised {
    pub result: octo_core::frame::SnapshotResult,
    /// Parallel to `result.messages`.
    pub offsets: Vec<Offset>,
    /// Parallel to `result.messages` when asked for, else empty.
    pub fork_points: Vec<Option<Offset>>,
}

impl App {
    /// [`App::snapshot`] once the projections have applied at least `at` (default: the log's
    /// head), so a snapshot reads the caller's own writes.
    ///
    /// # Errors
    /// `invalid_offset` (ref `at`) beyond the head; as [`App::snapshot`].
    pub async fn snapshot_at(
        &self,
        id: octo_core::ReqId,
        session_id: SessionId,
        at: Option<Offset>,
        before: Option<Offset>,
        fork_points: bool,
    ) -> Result<Materialised, octo_core::Error> {
        use octo_core::{Error, ErrorCode};
        let head = self.log.head();
        let at = match at {
            Some(at) if at > head => {
                return Err(Error::new(
                    ErrorCode::InvalidOffset,
                    format!("at {at} is beyond the log head {head}"),
                )
                .with_ref("at"));
            }
            Some(at) => at,
            None => head,
        };
        let unavailable = |e: octo_projections::WaitError| {
            Error::new(ErrorCode::Unavailable, format!("{e}; retry"))
        };
        self.history
            .wait_for(at, READ_YOUR_WRITES)
            .await
            .map_err(unavailable)?;
        self.ui
            .wait_for(at, READ_YOUR_WRITES)
            .await
            .map_err(unavailable)?;
        self.sessions
            .wait_for(at, READ_YOUR_WRITES)
            .await
            .map_err(unavailable)?;
        self.snapshot(id, session_id, before, fork_points)
    }

    /// The materialised session for `snapshot` (PROTOCOL.md 5.5): completed messages (the newest
    /// 200 below `before`), the open run with its draft, and the summary, from one consistent read
    /// of the projections. `as_of` is the `history` projection's applied offset in that read: the
    /// messages and the draft are exactly as of it (the summary and the run's phase are at least
    /// as new), so `subscribe{after: as_of}` continues it with nothing missed and nothing twice.
    ///
    /// # Errors
    /// `session_not_found` (the caller has checked ownership; a race with a delete), `unavailable`.
    pub fn snapshot(
        &self,
        id: octo_core::ReqId,
        session_id: SessionId,
        before: Option<Offset>,
        fork_points: bool,
    ) -> Result<Materialised, octo_core::Error> {
        use octo_core::{Error, ErrorCode};
        let failed = |e: octo_projections::StoreError| {
            Error::new(
                ErrorCode::Unavailable,
                format!("cannot read the projections: {e}; retry"),
            )
        };
        let snapshot = self.store.snapshot();
        let as_of = snapshot.applied::<History>().map_err(failed)?;
        let record = Sessions::get_at(&snapshot, self.sessions.keyspace(), &session_id)
            .map_err(failed)?
            .ok_or_else(|| {
                Error::new(ErrorCode::SessionNotFound, "no such session")
                    .with_ref(session_id.to_string())
            })?;
        let page = History::page(
            &snapshot,
            self.history.keyspace(),
            self.sessions.keyspace(),
            &session_id,
            before,
            octo_projections::history::SNAPSHOT_MESSAGES_MAX,
        )
        .map_err(failed)?;
        let ui = UiState::get_at(&snapshot, self.ui.keyspace(), &session_id).map_err(failed)?;
        let draft =
            History::draft(&snapshot, self.history.keyspace(), &session_id).map_err(failed)?;
        let open_run = match (ui.open_run, draft) {
            (Some(run), draft) => Some(octo_core::frame::OpenRun {
                run_id: run.run_id,
                draft: draft.filter(|d| d.run_id == run.run_id).map(|d| d.message),
                phase: run.phase,
            }),
            (None, Some(draft)) => Some(octo_core::frame::OpenRun {
                run_id: draft.run_id,
                draft: Some(draft.message),
                phase: octo_core::frame::RunPhase::Generating,
            }),
            (None, None) => None,
        };
        let offsets: Vec<Offset> = page.messages.iter().map(|(offset, _)| *offset).collect();
        let fork_points = if fork_points {
            History::fork_points(&snapshot, self.history.keyspace(), &offsets).map_err(failed)?
        } else {
            Vec::new()
        };
        Ok(Materialised {
            result: octo_core::frame::SnapshotResult {
                id,
                session_id,
                as_of,
                summary: record.summary,
                messages: page
                    .messages
                    .into_iter()
                    .map(|(_, message)| message)
                    .collect(),
                open_run,
                next_before: page.next_before,
            },
            offsets,
            fork_points,
        })
    }
}
