//! `fork {session_id, at_offset}` (PROTOCOL.md 9.2): where a fork may start, and what the new
//! session inherits there, read from the source's view in the log itself (the projections may lag;
//! the log at a past offset never changes).

use octo_core::message::{Role, ThinkingLevel};
use octo_core::{Body, Error, ErrorCode, Event, ModelRef, Offset, RunId};
use octo_log::EventLog;

use crate::view::View;

/// Entries read per page while scanning a view up to a fork point.
const SCAN_PAGE: usize = 1000;

/// What the view says as of a fork point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkPoint {
    pub harness: String,
    pub workspace: String,
    pub model: Option<ModelRef>,
    pub thinking_level: Option<ThinkingLevel>,
    /// User messages of the view up to the fork point (`k`, 9.3).
    pub user_messages: u32,
}

/// Why a fork point is refused.
fn refuse(code: ErrorCode, message: String, reference: String) -> Error {
    Error::new(code, message).with_ref(reference)
}

/// The state of `view` as of `at`: `at` must be the offset of one of its entries and not inside a
/// run (between an `agent.working` and its terminal event).
///
/// # Errors
/// `invalid_offset` (ref `at_offset`), `fork_point_in_run` (ref the run id), `unavailable`.
pub async fn fork_point(log: &dyn EventLog, view: &View, at: Offset) -> Result<ForkPoint, Error> {
    let mut point = ForkPoint {
        harness: String::new(),
        workspace: String::new(),
        model: None,
        thinking_level: None,
        user_messages: 0,
    };
    let mut open_run: Option<RunId> = None;
    let mut found = false;
    let mut cursor = Offset::ZERO;
    loop {
        let page = view
            .read(log, cursor, Some(at), SCAN_PAGE)
            .await
            .map_err(|e| Error::new(ErrorCode::Unavailable, format!("{e}; retry")))?;
        for entry in &page.entries {
            found |= entry.offset == at;
            let Body::Event(event) = &entry.body else {
                continue;
            };
            match event {
                Event::SessionCreated(created) => {
                    point.harness.clone_from(&created.harness);
                    point.workspace.clone_from(&created.workspace);
                    point.model.clone_from(&created.model);
                    point.thinking_level = created.thinking_level;
                }
                Event::SessionForked(forked) => {
                    point.harness.clone_from(&forked.harness);
                    point.workspace.clone_from(&forked.workspace);
                    point.model.clone_from(&forked.model);
                    point.thinking_level = forked.thinking_level;
                }
                Event::HarnessStarted(started) => {
                    if started.model.is_some() {
                        point.model.clone_from(&started.model);
                    }
                    if started.thinking_level.is_some() {
                        point.thinking_level = started.thinking_level;
                    }
                }
                Event::ModelChanged(changed) => {
                    point.model = Some(ModelRef {
                        provider: changed.provider.clone(),
                        model_id: changed.model_id.clone(),
                    });
                    point.thinking_level = Some(changed.thinking_level);
                }
                Event::AgentWorking(working) => open_run = Some(working.run_id),
                Event::AgentIdle(_) | Event::RunFailed(_) | Event::RunTimedOut(_) => {
                    open_run = None;
                }
                Event::MessageCreated(created) if created.message.role == Role::User => {
                    point.user_messages += 1;
                }
                _ => {}
            }
        }
        cursor = page.scanned_through;
        if page.reached_end {
            break;
        }
    }
    if !found {
        return Err(refuse(
            ErrorCode::InvalidOffset,
            format!(
                "offset {at} is not an entry of session {}'s view",
                view.session_id()
            ),
            "at_offset".into(),
        ));
    }
    if let Some(run_id) = open_run {
        return Err(refuse(
            ErrorCode::ForkPointInRun,
            format!(
                "offset {at} is inside run {run_id}: fork at the run's end, or before its prompt"
            ),
            run_id.to_string(),
        ));
    }
    Ok(point)
}
