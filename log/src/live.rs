//! Live fan-out: bounded per-listener queues fed after each sync.
//!
//! The writer publishes every batch once it is durable. Each listener has its own bounded queue
//! (entries and bytes, PROTOCOL.md 3.4); publishing never waits: a full queue marks its listener
//! overflowed and drops it, and the subscription behind it goes back to reading the log
//! (PROTOCOL.md 5.2). So a slow subscriber costs appenders nothing and loses nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use octo_core::limits::{LIVE_QUEUE_BYTES_MAX, LIVE_QUEUE_ENTRIES_MAX};
use octo_core::{LogEntry, SessionId};
use tokio::sync::mpsc;

use crate::api::LogFilter;

/// The bound of one live queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueBound {
    /// At least 1.
    pub entries: usize,
    /// Encoded bytes queued; one entry is always allowed, whatever its size.
    pub bytes: usize,
}

impl Default for QueueBound {
    fn default() -> QueueBound {
        QueueBound {
            entries: LIVE_QUEUE_ENTRIES_MAX,
            bytes: LIVE_QUEUE_BYTES_MAX,
        }
    }
}

impl QueueBound {
    /// A bound of `entries` entries (at least 1) and the default byte bound.
    pub fn entries(entries: usize) -> QueueBound {
        QueueBound {
            entries: entries.max(1),
            ..QueueBound::default()
        }
    }
}

#[derive(Default)]
struct ListenerState {
    overflowed: AtomicBool,
    queued_bytes: AtomicUsize,
    /// Entries queued: the queue is unbounded underneath and bounded by these counts, so a
    /// delivery takes no semaphore on either side (a fan-out makes a million a second).
    queued_entries: AtomicUsize,
}

struct Slot {
    filter: LogFilter,
    bound: QueueBound,
    sender: mpsc::UnboundedSender<(Arc<LogEntry>, usize)>,
    state: Arc<ListenerState>,
}

enum Delivery {
    Queued,
    /// Remove the slot: its queue overflowed or its listener is gone.
    Drop,
}

impl Slot {
    fn offer(&self, entry: &Arc<LogEntry>, size_bytes: usize) -> Delivery {
        if !self.filter.matches(entry) {
            return Delivery::Queued;
        }
        // Adds happen only here, under the registry lock, so the counts read now can only have
        // gone down by the time the entry is queued.
        let queued = self.state.queued_bytes.load(Ordering::Acquire);
        let full = self.state.queued_entries.load(Ordering::Acquire) >= self.bound.entries;
        if full || (queued > 0 && queued + size_bytes > self.bound.bytes) {
            self.state.overflowed.store(true, Ordering::Release);
            return Delivery::Drop;
        }
        // Counted before the receiver can see the entry, so its subtractions never underflow.
        self.state
            .queued_bytes
            .fetch_add(size_bytes, Ordering::AcqRel);
        self.state.queued_entries.fetch_add(1, Ordering::AcqRel);
        match self.sender.send((Arc::clone(entry), size_bytes)) {
            Ok(()) => Delivery::Queued,
            Err(_) => Delivery::Drop,
        }
    }
}

#[derive(Default)]
struct Registry {
    by_session: HashMap<SessionId, Vec<Slot>>,
    unscoped: Vec<Slot>,
    closed: bool,
}

/// The set of live listeners of one log. Backends own one and publish durable entries to it.
#[derive(Default)]
pub struct LiveHub {
    registry: Mutex<Registry>,
}

impl LiveHub {
    /// Registers a listener. Entries published after this returns are offered to it.
    pub fn listen(&self, filter: LogFilter, bound: QueueBound) -> Listener {
        let bound = QueueBound {
            entries: bound.entries.max(1),
            bytes: bound.bytes,
        };
        let (sender, receiver) = mpsc::unbounded_channel();
        let state = Arc::new(ListenerState::default());
        let slot = Slot {
            filter,
            bound,
            sender,
            state: Arc::clone(&state),
        };
        let mut registry = self
            .registry
            .lock()
            .expect("live registry lock is never poisoned");
        if !registry.closed {
            match slot.filter.session_id {
                Some(session_id) => registry
                    .by_session
                    .entry(session_id)
                    .or_default()
                    .push(slot),
                None => registry.unscoped.push(slot),
            }
        }
        // A closed hub drops the slot here, so the listener reports `Closed` at once.
        Listener { receiver, state }
    }

    /// Offers durable entries, in offset order, to every matching listener. Never blocks on a
    /// listener. Each listener is offered all of its entries of the batch in one go, so the task
    /// it wakes finds the whole batch queued, not the first entry alone.
    pub fn publish(&self, entries: &[(Arc<LogEntry>, usize)]) {
        let mut registry = self
            .registry
            .lock()
            .expect("live registry lock is never poisoned");
        let Registry {
            by_session,
            unscoped,
            ..
        } = &mut *registry;
        if !by_session.is_empty() {
            // Each session's entries, in offset order (a stable sort keeps it).
            let mut order: Vec<&(Arc<LogEntry>, usize)> = entries.iter().collect();
            order.sort_by_key(|(entry, _)| entry.session_id);
            for group in order.chunk_by(|(a, _), (b, _)| a.session_id == b.session_id) {
                let session_id = group[0].0.session_id;
                let Some(slots) = by_session.get_mut(&session_id) else {
                    continue;
                };
                slots.retain(|slot| offer_all(slot, group.iter().copied()));
                if slots.is_empty() {
                    by_session.remove(&session_id);
                }
            }
        }
        unscoped.retain(|slot| offer_all(slot, entries.iter()));
    }

    /// Ends every listener (`Closed`) and refuses new ones.
    pub fn close(&self) {
        let mut registry = self
            .registry
            .lock()
            .expect("live registry lock is never poisoned");
        registry.closed = true;
        registry.by_session.clear();
        registry.unscoped.clear();
    }

    /// How many listeners are registered (for tests and metrics).
    pub fn len(&self) -> usize {
        let registry = self
            .registry
            .lock()
            .expect("live registry lock is never poisoned");
        registry.unscoped.len() + registry.by_session.values().map(Vec::len).sum::<usize>()
    }

    /// Whether no listener is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Offers `entries` to `slot` in order; whether the slot is still live.
fn offer_all<'a>(
    slot: &Slot,
    mut entries: impl Iterator<Item = &'a (Arc<LogEntry>, usize)>,
) -> bool {
    entries.all(|(entry, size_bytes)| matches!(slot.offer(entry, *size_bytes), Delivery::Queued))
}

/// What a listener receives next.
#[derive(Debug)]
pub enum ListenerEvent {
    /// The next durable entry of the filter, in offset order.
    Entry(Arc<LogEntry>),
    /// The queue overflowed and was dropped; read the log from the last offset seen.
    Overflowed,
    /// The log was closed.
    Closed,
}

/// The receiving end of a live queue.
pub struct Listener {
    receiver: mpsc::UnboundedReceiver<(Arc<LogEntry>, usize)>,
    state: Arc<ListenerState>,
}

impl Listener {
    /// The next live entry, or why there is none.
    ///
    /// # Cancel safety
    /// Cancel safe: a dropped call loses nothing.
    pub async fn recv(&mut self) -> ListenerEvent {
        match self.receiver.recv().await {
            Some(queued) => self.taken(queued),
            None => self.ended(),
        }
    }

    /// The next live entry if one is queued now; `None` when the queue is empty.
    pub fn try_recv(&mut self) -> Option<ListenerEvent> {
        match self.receiver.try_recv() {
            Ok(queued) => Some(self.taken(queued)),
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => Some(self.ended()),
        }
    }

    /// An entry taken from the queue, its bytes no longer counted.
    fn taken(&self, (entry, size_bytes): (Arc<LogEntry>, usize)) -> ListenerEvent {
        self.state
            .queued_bytes
            .fetch_sub(size_bytes, Ordering::AcqRel);
        self.state.queued_entries.fetch_sub(1, Ordering::AcqRel);
        ListenerEvent::Entry(entry)
    }

    /// Why the queue ended.
    fn ended(&self) -> ListenerEvent {
        if self.state.overflowed.load(Ordering::Acquire) {
            ListenerEvent::Overflowed
        } else {
            ListenerEvent::Closed
        }
    }
}
