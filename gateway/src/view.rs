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

/// A subscription as a stream that ends after its first error. Entries already at hand are
/// handed out without a future; only an empty queue (or a log read) waits in one.
pub fn subscription_stream(subscription: Subscription) -> EntryStream {
    Box::pin(SubscriptionStream {
        idle: Some(subscription),
        waiting: None,
    })
}

type NextEntry = (Subscription, Result<Arc<LogEntry>, ReadError>);

struct SubscriptionStream {
    /// The subscription between calls; `None` while `waiting` owns it, or after an error.
    idle: Option<Subscription>,
    waiting: Option<Pin<Box<dyn Future<Output = NextEntry> + Send>>>,
}

impl futures_util::Stream for SubscriptionStream {
    type Item = Result<Arc<LogEntry>, ReadError>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = &mut *self;
        if let Some(mut subscription) = this.idle.take() {
            match subscription.try_next() {
                Some(Ok(entry)) => {
                    this.idle = Some(subscription);
                    return Poll::Ready(Some(Ok(entry)));
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    this.waiting = Some(Box::pin(async move {
                        let next = subscription.next().await;
                        (subscription, next)
                    }));
                }
            }
        }
        let Some(waiting) = this.waiting.as_mut() else {
            return Poll::Ready(None);
        };
        let (subscription, next) = std::task::ready!(waiting.as_mut().poll(cx));
        this.waiting = None;
        if next.is_ok() {
            this.idle = Some(subscription);
        }
        Poll::Ready(Some(next))
    }
}

/// `first`, then `second`, unless `first` ended with an error (which ends both).
struct Chained {
    first: Option<EntryStream>,
    second: Option<EntryStream>,
}

impl futures_util::Stream for Chained {
    type Item = Result<Arc<LogEntry>, ReadError>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        if let Some(first) = self.first.as_mut() {
            match std::task::ready!(first.as_mut().poll_next(cx)) {
                Some(Ok(entry)) => return Poll::Ready(Some(Ok(entry))),
                Some(Err(e)) => {
                    self.first = None;
                    self.second = None;
                    return Poll::Ready(Some(Err(e)));
                }
                None => self.first = None,
            }
        }
        match self.second.as_mut() {
            Some(second) => second.as_mut().poll_next(cx),
            None => Poll::Ready(None),
        }
    }
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
        let own = subscription_stream(own);
        if self.segments.len() == 1 {
            return own;
        }
        let inherited = View {
            segments: self.segments[..self.segments.len() - 1].to_vec(),
        };
        struct State {
            log: Arc<dyn EventLog>,
            inherited: View,
            cursor: Offset,
            buffer: VecDeque<Arc<LogEntry>>,
            done: bool,
        }
        let state = State {
            log,
            inherited,
            cursor: after,
            buffer: VecDeque::new(),
            done: false,
        };
        let inherited = futures_util::stream::unfold(Some(state), |state| async move {
            let mut state = state?;
            loop {
                if let Some(entry) = state.buffer.pop_front() {
                    return Some((Ok(entry), Some(state)));
                }
                if state.done {
                    return None;
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
        });
        Box::pin(Chained {
            first: Some(Box::pin(inherited)),
            second: Some(own),
        })
    }
}
