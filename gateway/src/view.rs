//! A session's **view** (PROTOCOL.md 9.1): its own entries, plus, for a fork, its parent's view up
//! to the fork offset, recursively. Inherited entries are never copied: a view is a chain of
//! segments of the log, read one after another. Every offset in a view is unique and increasing,
//! so one cursor (`after`) works over the whole of it.
//!
//! `subscribe`, `replay` and `fork` read views through this module; the projections fold them the
//! same way (`History::view`).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;

use octo_core::{LogEntry, Offset, SessionId};
use octo_log::{EventLog, LogFilter, ReadBatch, ReadError, ReadQuery, Subscription};
use octo_projections::sessions::Sessions;

use crate::app::{App, ReadFailure};

/// Entries of a view read per log read while replaying inherited segments.
const SEGMENT_PAGE: usize = 256;

/// One link of a view: `session_id`'s entries up to `until` (`None`: all of them, live).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub session_id: SessionId,
    pub until: Option<Offset>,
}

/// A session's view as segments, oldest ancestor first; the last is the session itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    segments: Vec<Segment>,
}

/// A stream of a view's entries: replayed, then live.
pub type EntryStream =
    Pin<Box<dyn futures_util::Stream<Item = Result<Arc<LogEntry>, ReadError>> + Send>>;

/// A subscription as a stream that ends after its first error.
pub fn subscription_stream(subscription: Subscription) -> EntryStream {
    Box::pin(futures_util::stream::unfold(
        Some(subscription),
        |state| async move {
            let mut subscription = state?;
            match subscription.next().await {
                Ok(entry) => Some((Ok(entry), Some(subscription))),
                Err(e) => Some((Err(e), None)),
            }
        },
    ))
}

impl View {
    /// The view of `session_id`, from the sessions projection's fork tree.
    ///
    /// # Errors
    /// [`ReadFailure`] when the projection cannot be read or its fork chain is broken.
    pub fn of(app: &App, session_id: SessionId) -> Result<View, ReadFailure> {
        let mut segments = vec![Segment {
            session_id,
            until: None,
        }];
        let mut at = session_id;
        let mut until = Offset::MAX;
        loop {
            let record = Sessions::get(app.sessions.keyspace(), &at)
                .map_err(|e| ReadFailure::Unavailable(e.to_string()))?;
            let Some(parent) = record.and_then(|record| record.summary.parent) else {
                break;
            };
            if segments.iter().any(|s| s.session_id == parent.session_id) {
                return Err(ReadFailure::Unavailable(format!(
                    "the fork chain of {session_id} loops at {}",
                    parent.session_id
                )));
            }
            until = until.min(parent.offset);
            segments.push(Segment {
                session_id: parent.session_id,
                until: Some(until),
            });
            at = parent.session_id;
        }
        segments.reverse();
        Ok(View { segments })
    }

    /// The session whose view this is.
    pub fn session_id(&self) -> SessionId {
        self.segments
            .last()
            .map(|segment| segment.session_id)
            .expect("a view has its own segment")
    }

    /// One page of the view: entries with `after < offset <= until`, oldest first, at most
    /// `limit`. `scanned_through` and `reached_end` mean what they mean for [`ReadBatch`], over
    /// the whole view.
    ///
    /// # Errors
    /// [`ReadError`] from the log.
    pub async fn read(
        &self,
        log: &dyn EventLog,
        after: Offset,
        until: Option<Offset>,
        limit: usize,
    ) -> Result<ReadBatch, ReadError> {
        let limit = limit.max(1);
        let mut page = ReadBatch {
            entries: Vec::new(),
            scanned_through: after,
            reached_end: false,
        };
        for segment in &self.segments {
            let segment_until = match (segment.until, until) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if segment_until.is_some_and(|end| end <= page.scanned_through) {
                continue;
            }
            let batch = log
                .read(ReadQuery {
                    filter: LogFilter::session(segment.session_id),
                    after: page.scanned_through,
                    until: segment_until,
                    limit: limit - page.entries.len(),
                })
                .await?;
            page.entries.extend(batch.entries);
            page.scanned_through = page.scanned_through.max(batch.scanned_through);
            if !batch.reached_end || page.entries.len() >= limit {
                // A full page that ends exactly at `until` has exhausted the range.
                page.reached_end = until.is_some_and(|end| page.scanned_through >= end);
                return Ok(page);
            }
            // This segment is done up to its end: the next starts after it.
            if let Some(end) = segment_until {
                page.scanned_through = page.scanned_through.max(end);
            }
        }
        page.reached_end = true;
        Ok(page)
    }

    /// Every entry of the view after `after`, then the session's own entries live: the inherited
    /// segments are read page by page (they never change), then `own` (a subscription of the
    /// session's own entries from `after`, registered before this call, so nothing is missed).
    pub fn stream(self, log: Arc<dyn EventLog>, after: Offset, own: Subscription) -> EntryStream {
        let inherited = View {
            segments: self.segments[..self.segments.len() - 1].to_vec(),
        };
        struct State {
            log: Arc<dyn EventLog>,
            inherited: View,
            cursor: Offset,
            buffer: VecDeque<Arc<LogEntry>>,
            done: bool,
            own: Subscription,
        }
        let state = State {
            log,
            inherited,
            cursor: after,
            buffer: VecDeque::new(),
            done: false,
            own,
        };
        Box::pin(futures_util::stream::unfold(
            Some(state),
            |state| async move {
                let mut state = state?;
                loop {
                    if let Some(entry) = state.buffer.pop_front() {
                        return Some((Ok(entry), Some(state)));
                    }
                    if state.done || state.inherited.segments.is_empty() {
                        break;
                    }
                    match state
                        .inherited
                        .read(state.log.as_ref(), state.cursor, None, SEGMENT_PAGE)
                        .await
                    {
                        Ok(page) => {
                            state.cursor = page.scanned_through;
                            state.done = page.reached_end;
                            state.buffer.extend(page.entries);
                        }
                        Err(e) => return Some((Err(e), None)),
                    }
                }
                match state.own.next().await {
                    Ok(entry) => Some((Ok(entry), Some(state))),
                    Err(e) => Some((Err(e), None)),
                }
            },
        ))
    }
}
