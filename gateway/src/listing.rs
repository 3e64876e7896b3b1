//! The sessions listing's live part (PROTOCOL.md 5.3): each summary that changes after a cursor,
//! re-queried from the `sessions` projection at most every 250 ms (the newest summary wins). The
//! WebSocket's `subscribe_sessions` and GraphQL's `sessionsChanged` both follow it.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::Stream;
use octo_core::frame::SessionSummary;
use octo_core::limits::SESSIONS_CHUNK_ITEMS_MAX;
use octo_core::{Error, ErrorCode, Offset, UserId};
use octo_projections::sessions::Sessions;

use crate::server::SharedApp;

/// Between two pushes of the sessions listing: at most one summary per session per 250 ms.
pub const SUMMARY_PACE: Duration = Duration::from_millis(250);

fn unavailable(detail: impl std::fmt::Display) -> Error {
    Error::new(ErrorCode::Unavailable, format!("{detail}; retry"))
}

/// The user's summaries changed after `after`, oldest change first, all of them.
///
/// # Errors
/// `unavailable` when the projection cannot be read.
pub async fn changed_since(
    app: &SharedApp,
    user_id: &UserId,
    after: Offset,
) -> Result<Vec<SessionSummary>, Error> {
    app.sessions
        .wait_for(app.log.head(), crate::app::READ_YOUR_WRITES)
        .await
        .map_err(unavailable)?;
    Sessions::changed_since(app.sessions.keyspace(), user_id, after, usize::MAX)
        .map_err(unavailable)
}

/// Every summary of `user_id` that changes after `cursor`, as it changes, forever. Ends after
/// its first error.
pub fn changes(
    app: SharedApp,
    user_id: UserId,
    cursor: Offset,
) -> impl Stream<Item = Result<SessionSummary, Error>> + Send + 'static {
    struct State {
        app: SharedApp,
        user_id: UserId,
        cursor: Offset,
        ready: VecDeque<SessionSummary>,
        failed: bool,
    }
    let state = State {
        app,
        user_id,
        cursor,
        ready: VecDeque::new(),
        failed: false,
    };
    futures_util::stream::unfold(state, |mut state| async move {
        if state.failed {
            return None;
        }
        loop {
            if let Some(summary) = state.ready.pop_front() {
                return Some((Ok(summary), state));
            }
            let changed = Sessions::changed_since(
                state.app.sessions.keyspace(),
                &state.user_id,
                state.cursor,
                SESSIONS_CHUNK_ITEMS_MAX,
            );
            match changed {
                Ok(changed) if !changed.is_empty() => {
                    for summary in &changed {
                        state.cursor = state.cursor.max(summary.updated_offset);
                    }
                    state.ready.extend(changed);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    state.failed = true;
                    return Some((Err(unavailable(e)), state));
                }
            }
            // Nothing new: wait for the projection to move, then let changes gather.
            let applied = state.app.sessions.applied();
            match state
                .app
                .sessions
                .wait_for(applied.successor(), Duration::from_secs(3600))
                .await
            {
                Ok(()) | Err(octo_projections::WaitError::Timeout { .. }) => {}
                Err(e) => {
                    state.failed = true;
                    return Some((Err(unavailable(e)), state));
                }
            }
            tokio::time::sleep(SUMMARY_PACE).await;
        }
    })
}
