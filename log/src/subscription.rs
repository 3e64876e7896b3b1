//! A subscription: replay from the log, then tail live, with no gap and no duplicate
//! (PROTOCOL.md 5.1, 5.2), written once over any [`EventLog`].
//!
//! The algorithm, per subscription:
//! 1. Register a live listener, then read the log for offsets above the cursor, in pages.
//! 2. When a read reaches the end, take live entries, skipping every offset at or below the
//!    cursor (they were already read).
//! 3. If the live queue overflows, drop it and go back to 1 from the cursor.
//!
//! Registering before reading is what closes the gap: an entry made durable after registration is
//! queued, and one made durable before it is visible to the read that follows.

use std::collections::VecDeque;
use std::sync::Arc;

use octo_core::{LogEntry, Offset};

use crate::api::{EventLog, LogFilter, ReadError, ReadQuery};
use crate::live::{Listener, ListenerEvent, QueueBound};

/// Entries read from the log per page while catching up.
pub const CATCH_UP_PAGE_ENTRIES: usize = 512;

enum Phase {
    /// Reading pages from the log; the listener collects live entries meanwhile.
    CatchUp,
    /// Caught up: entries come from the listener.
    Live,
}

/// A resumable, ordered, exactly-once stream of a filter's entries.
pub struct Subscription {
    log: Arc<dyn EventLog>,
    filter: LogFilter,
    bound: QueueBound,
    /// Every entry of the filter at or below this offset has been read (returned or buffered).
    cursor: Offset,
    /// The offset of the last entry returned (pair assertion: strictly increasing).
    last_returned: Offset,
    buffer: VecDeque<Arc<LogEntry>>,
    listener: Option<Listener>,
    phase: Phase,
    /// Times the live queue overflowed and the subscription fell back to the log.
    overflows: u64,
}

impl Subscription {
    /// Subscribes to `filter` after `after` (0: from the first entry).
    ///
    /// # Errors
    /// [`ReadError::BeyondHead`] if `after` is beyond the log's head.
    pub fn new(
        log: Arc<dyn EventLog>,
        filter: LogFilter,
        after: Offset,
        bound: QueueBound,
    ) -> Result<Subscription, ReadError> {
        let head = log.head();
        if after > head {
            return Err(ReadError::BeyondHead { after, head });
        }
        let listener = Some(log.listen(filter.clone(), bound));
        Ok(Subscription {
            log,
            filter,
            bound,
            cursor: after,
            last_returned: after,
            buffer: VecDeque::new(),
            listener,
            phase: Phase::CatchUp,
            overflows: 0,
        })
    }

    /// The next entry, in offset order, each exactly once.
    ///
    /// # Errors
    /// [`ReadError`] from the backend; [`ReadError::Closed`] once the log is closed.
    ///
    /// # Cancel safety
    /// Cancel safe: state changes only after each await completes, so a dropped call loses
    /// nothing and the next call picks up where it stood.
    pub async fn next(&mut self) -> Result<Arc<LogEntry>, ReadError> {
        loop {
            if let Some(entry) = self.buffer.pop_front() {
                return Ok(self.hand_out(entry));
            }
            match self.phase {
                Phase::CatchUp => {
                    if self.listener.is_none() {
                        self.listener = Some(self.log.listen(self.filter.clone(), self.bound));
                    }
                    let page = self
                        .log
                        .read(ReadQuery {
                            filter: self.filter.clone(),
                            after: self.cursor,
                            until: None,
                            limit: CATCH_UP_PAGE_ENTRIES,
                        })
                        .await?;
                    for entry in &page.entries {
                        assert!(entry.offset > self.cursor, "log read went backwards");
                        self.cursor = entry.offset;
                    }
                    self.cursor = self.cursor.max(page.scanned_through);
                    self.buffer.extend(page.entries);
                    if page.reached_end {
                        self.phase = Phase::Live;
                    }
                }
                Phase::Live => {
                    let listener = self
                        .listener
                        .as_mut()
                        .expect("a live subscription has a listener");
                    let event = listener.recv().await;
                    if let Some(next) = self.take_live(event) {
                        return next;
                    }
                }
            }
        }
    }

    /// The next entry if it is at hand now (buffered, or queued live), without reading the log
    /// or waiting; `None` means call [`Subscription::next`]. Entries come in the same order, each
    /// once, whichever of the two hands them out.
    ///
    /// # Errors
    /// [`ReadError::Closed`] once the log is closed.
    pub fn try_next(&mut self) -> Option<Result<Arc<LogEntry>, ReadError>> {
        loop {
            if let Some(entry) = self.buffer.pop_front() {
                return Some(Ok(self.hand_out(entry)));
            }
            if matches!(self.phase, Phase::CatchUp) {
                return None;
            }
            let event = self.listener.as_mut()?.try_recv()?;
            if let Some(next) = self.take_live(event) {
                return Some(next);
            }
        }
    }

    /// What a live event means for the caller: an entry or the end to hand out, or `None` to
    /// look again (an entry already read, or an overflow that sends the subscription back to the
    /// log).
    fn take_live(&mut self, event: ListenerEvent) -> Option<Result<Arc<LogEntry>, ReadError>> {
        match event {
            // Already read from the log before going live.
            ListenerEvent::Entry(entry) if entry.offset <= self.cursor => None,
            ListenerEvent::Entry(entry) => {
                self.cursor = entry.offset;
                Some(Ok(self.hand_out(entry)))
            }
            ListenerEvent::Overflowed => {
                self.overflows += 1;
                self.listener = None;
                self.phase = Phase::CatchUp;
                None
            }
            ListenerEvent::Closed => Some(Err(ReadError::Closed)),
        }
    }

    fn hand_out(&mut self, entry: Arc<LogEntry>) -> Arc<LogEntry> {
        assert!(
            entry.offset > self.last_returned,
            "subscription would repeat or reorder offset {} after {}",
            entry.offset,
            self.last_returned
        );
        self.last_returned = entry.offset;
        entry
    }

    /// The offset of the last entry returned (resume after it).
    pub fn last_offset(&self) -> Offset {
        self.last_returned
    }

    /// How often the live queue overflowed and the subscription read the log instead.
    pub fn overflows(&self) -> u64 {
        self.overflows
    }

    /// Whether the subscription has caught up and now tails live.
    pub fn is_live(&self) -> bool {
        matches!(self.phase, Phase::Live) && self.buffer.is_empty()
    }
}
