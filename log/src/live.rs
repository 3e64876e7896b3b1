//! Live fan-out: bounded live queues fed after each sync.
//!
//! The writer publishes every batch once it is durable. Each listener has a bounded queue
//! (entries and bytes, PROTOCOL.md 3.4); publishing never waits: an overflowed queue is dropped,
//! and the subscription behind it goes back to reading the log (PROTOCOL.md 5.2). So a slow
//! subscriber costs appenders nothing and loses nothing.
//!
//! A session's listeners share one [`Ring`] of its recent entries, each with its own cursor: a
//! publish appends an entry once, however many watch the session, and wakes only the listeners
//! that wait. A listener's queue is what lies between its cursor and the ring's head; it
//! overflows when that exceeds its bound, found when it next reads. Listeners of no single
//! session (a log tail, a projector) each have a queue of their own.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use octo_core::limits::{LIVE_QUEUE_BYTES_MAX, LIVE_QUEUE_ENTRIES_MAX};
use octo_core::{LogEntry, SessionId};
use tokio::sync::{Notify, mpsc};

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

/// Entries a ring listener takes per lock: the rest of a burst is read without the lock.
const RING_TAKE_MAX: usize = 64;

/// One session's recent durable entries, shared by its listeners. It keeps no entry that every
/// listener has read, nor more than the largest listener bound holds (a listener that far
/// behind has overflowed anyway).
struct Ring {
    state: Mutex<RingState>,
    /// Wakes the listeners waiting for the next entry.
    arrived: Notify,
}

#[derive(Default)]
struct RingState {
    /// The sequence number (entries ever published to this ring) of `entries[0]`.
    first_seq: u64,
    entries: VecDeque<RingEntry>,
    /// Bytes ever published to this ring, so a listener's queued bytes is one subtraction.
    published_bytes: u64,
    /// Each listener's next sequence number; a listener that is gone holds the only reference.
    cursors: Vec<Arc<AtomicU64>>,
    /// The largest bound among the listeners so far.
    keep: QueueBound,
    closed: bool,
}

struct RingEntry {
    entry: Arc<LogEntry>,
    /// `published_bytes` before this entry.
    bytes_before: u64,
}

impl Ring {
    fn new() -> Ring {
        Ring {
            state: Mutex::new(RingState::default()),
            arrived: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RingState> {
        self.state.lock().expect("ring lock is never poisoned")
    }
}

impl RingState {
    fn head(&self) -> u64 {
        self.first_seq + self.entries.len() as u64
    }

    fn push(&mut self, entry: &Arc<LogEntry>, size_bytes: usize) {
        self.entries.push_back(RingEntry {
            entry: Arc::clone(entry),
            bytes_before: self.published_bytes,
        });
        self.published_bytes += size_bytes as u64;
    }

    /// Forgets what every listener has read, what no bound holds, and gone listeners; whether
    /// any listener is left.
    fn trim(&mut self) -> bool {
        self.cursors.retain(|cursor| Arc::strong_count(cursor) > 1);
        let read_by_all = self
            .cursors
            .iter()
            .map(|cursor| cursor.load(Ordering::Acquire))
            .min()
            .unwrap_or_else(|| self.head());
        while let Some(oldest) = self.entries.front() {
            let held = self.entries.len();
            let bytes = self.published_bytes - oldest.bytes_before;
            let beyond_bounds =
                held > self.keep.entries || (held > 1 && bytes > self.keep.bytes as u64);
            if self.first_seq >= read_by_all && !beyond_bounds {
                break;
            }
            self.entries.pop_front();
            self.first_seq += 1;
        }
        !self.cursors.is_empty()
    }
}

/// A listener's place in its session's ring.
struct RingListener {
    ring: Arc<Ring>,
    /// The next sequence number to read, shared with the ring so it can forget what all read.
    cursor: Arc<AtomicU64>,
    filter: LogFilter,
    bound: QueueBound,
    /// Entries taken from the ring under one lock, not yet handed out.
    taken: VecDeque<Arc<LogEntry>>,
    overflowed: bool,
}

impl RingListener {
    fn try_recv(&mut self) -> Option<ListenerEvent> {
        loop {
            if let Some(entry) = self.taken.pop_front() {
                return Some(ListenerEvent::Entry(entry));
            }
            if self.overflowed {
                return Some(ListenerEvent::Overflowed);
            }
            let state = self.ring.lock();
            let next = self.cursor.load(Ordering::Relaxed);
            let head = state.head();
            if next == head {
                return state.closed.then_some(ListenerEvent::Closed);
            }
            let queued = head - next;
            let overflowed = next < state.first_seq
                || queued > self.bound.entries as u64
                || (queued > 1
                    && state.published_bytes
                        - state.entries[(next - state.first_seq) as usize].bytes_before
                        > self.bound.bytes as u64);
            if overflowed {
                drop(state);
                self.overflowed = true;
                continue;
            }
            let from = (next - state.first_seq) as usize;
            let take = (queued as usize).min(RING_TAKE_MAX);
            self.taken.extend(
                state
                    .entries
                    .range(from..from + take)
                    .filter(|held| self.filter.matches(&held.entry))
                    .map(|held| Arc::clone(&held.entry)),
            );
            self.cursor.store(next + take as u64, Ordering::Release);
        }
    }

    async fn recv(&mut self) -> ListenerEvent {
        loop {
            let ring = Arc::clone(&self.ring);
            let arrived = ring.arrived.notified();
            tokio::pin!(arrived);
            // Registered before looking, so an entry published in between still wakes it.
            arrived.as_mut().enable();
            if let Some(event) = self.try_recv() {
                return event;
            }
            arrived.await;
        }
    }
}

#[derive(Default)]
struct Registry {
    by_session: HashMap<SessionId, Arc<Ring>>,
    unscoped: Vec<Slot>,
    closed: bool,
}

/// The set of live listeners of one log. Backends own one and publish durable entries to it.
#[derive(Default)]
pub struct LiveHub {
    registry: Mutex<Registry>,
}

impl LiveHub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry
            .lock()
            .expect("live registry lock is never poisoned")
    }

    /// Registers a listener. Entries published after this returns are offered to it.
    pub fn listen(&self, filter: LogFilter, bound: QueueBound) -> Listener {
        let bound = QueueBound {
            entries: bound.entries.max(1),
            bytes: bound.bytes,
        };
        let mut registry = self.lock();
        if let Some(session_id) = filter.session_id {
            let ring = if registry.closed {
                // A closed hub's listener reports `Closed` at once.
                let ring = Ring::new();
                ring.lock().closed = true;
                Arc::new(ring)
            } else {
                Arc::clone(
                    registry
                        .by_session
                        .entry(session_id)
                        .or_insert_with(|| Arc::new(Ring::new())),
                )
            };
            let cursor = {
                let mut state = ring.lock();
                let cursor = Arc::new(AtomicU64::new(state.head()));
                state.cursors.push(Arc::clone(&cursor));
                state.keep = QueueBound {
                    entries: state.keep.entries.max(bound.entries),
                    bytes: state.keep.bytes.max(bound.bytes),
                };
                cursor
            };
            return Listener {
                source: Source::Ring(RingListener {
                    ring,
                    cursor,
                    filter,
                    bound,
                    taken: VecDeque::new(),
                    overflowed: false,
                }),
            };
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        let state = Arc::new(ListenerState::default());
        let slot = Slot {
            filter,
            bound,
            sender,
            state: Arc::clone(&state),
        };
        // A closed hub drops the slot here, so the listener reports `Closed` at once.
        if !registry.closed {
            registry.unscoped.push(slot);
        }
        Listener {
            source: Source::Queue(QueueListener { receiver, state }),
        }
    }

    /// Offers durable entries, in offset order, to every matching listener. Never blocks on a
    /// listener. Each listener is offered all of its entries of the batch in one go, so the task
    /// it wakes finds the whole batch queued, not the first entry alone.
    pub fn publish(&self, entries: &[(Arc<LogEntry>, usize)]) {
        let mut arrived = Vec::new();
        {
            let mut registry = self.lock();
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
                    let Some(ring) = by_session.get(&session_id) else {
                        continue;
                    };
                    let mut state = ring.lock();
                    for (entry, size_bytes) in group {
                        state.push(entry, *size_bytes);
                    }
                    let listened = state.trim();
                    drop(state);
                    if listened {
                        arrived.push(Arc::clone(ring));
                    } else {
                        by_session.remove(&session_id);
                    }
                }
            }
            unscoped.retain(|slot| offer_all(slot, entries.iter()));
        }
        for ring in arrived {
            ring.arrived.notify_waiters();
        }
    }

    /// Ends every listener (`Closed`, once it has what was published) and refuses new ones.
    pub fn close(&self) {
        let rings: Vec<Arc<Ring>> = {
            let mut registry = self.lock();
            registry.closed = true;
            registry.unscoped.clear();
            registry.by_session.drain().map(|(_, ring)| ring).collect()
        };
        for ring in rings {
            ring.lock().closed = true;
            ring.arrived.notify_waiters();
        }
    }

    /// How many listeners are registered (for tests and metrics).
    pub fn len(&self) -> usize {
        let registry = self.lock();
        registry.unscoped.len()
            + registry
                .by_session
                .values()
                .map(|ring| {
                    ring.lock()
                        .cursors
                        .iter()
                        .filter(|cursor| Arc::strong_count(cursor) > 1)
                        .count()
                })
                .sum::<usize>()
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
    source: Source,
}

enum Source {
    /// A session's listener: a cursor in the session's shared ring.
    Ring(RingListener),
    /// A listener of no single session: a queue of its own.
    Queue(QueueListener),
}

impl Listener {
    /// The next live entry, or why there is none.
    ///
    /// # Cancel safety
    /// Cancel safe: a dropped call loses nothing.
    pub async fn recv(&mut self) -> ListenerEvent {
        match &mut self.source {
            Source::Ring(ring) => ring.recv().await,
            Source::Queue(queue) => queue.recv().await,
        }
    }

    /// The next live entry if one is queued now; `None` when the queue is empty.
    pub fn try_recv(&mut self) -> Option<ListenerEvent> {
        match &mut self.source {
            Source::Ring(ring) => ring.try_recv(),
            Source::Queue(queue) => queue.try_recv(),
        }
    }
}

struct QueueListener {
    receiver: mpsc::UnboundedReceiver<(Arc<LogEntry>, usize)>,
    state: Arc<ListenerState>,
}

impl QueueListener {
    async fn recv(&mut self) -> ListenerEvent {
        match self.receiver.recv().await {
            Some(queued) => self.taken(queued),
            None => self.ended(),
        }
    }

    fn try_recv(&mut self) -> Option<ListenerEvent> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use octo_core::Offset;

    fn entry(offset: u64, session_id: SessionId, kind: &str) -> (Arc<LogEntry>, usize) {
        let body = match kind {
            "command" => r#"{"type":"session.rename","title":"t"}"#,
            _ => r#"{"type":"session.renamed","title":"t","source":"user"}"#,
        };
        let json = format!(
            r#"{{"offset":{offset},"ts_ms":1795549163000,"user_id":"u1","session_id":"{session_id}","kind":"{kind}","producer":{{"id":"gw:n1","seq":{offset}}},"body":{body}}}"#
        );
        let entry: LogEntry = octo_core::codec::from_json(json.as_bytes()).expect("a valid entry");
        (Arc::new(entry), 100)
    }

    fn offsets(listener: &mut Listener) -> Vec<u64> {
        let mut seen = Vec::new();
        while let Some(event) = listener.try_recv() {
            match event {
                ListenerEvent::Entry(entry) => seen.push(entry.offset.get()),
                other => panic!("not an entry: {other:?}"),
            }
        }
        seen
    }

    fn held(hub: &LiveHub, session_id: SessionId) -> Option<usize> {
        let registry = hub.lock();
        registry
            .by_session
            .get(&session_id)
            .map(|ring| ring.lock().entries.len())
    }

    #[test]
    fn a_sessions_listeners_each_read_every_entry_once_and_the_ring_forgets_what_all_read() {
        let hub = LiveHub::default();
        let (session_id, other) = (SessionId::new(), SessionId::new());
        let mut fast = hub.listen(LogFilter::session(session_id), QueueBound::default());
        let mut slow = hub.listen(LogFilter::session(session_id), QueueBound::default());
        let mut batches = Vec::new();
        for first in (1..=150).step_by(3) {
            let batch: Vec<_> = (first..first + 3)
                .map(|offset| {
                    entry(
                        offset,
                        if offset % 3 == 0 { other } else { session_id },
                        "event",
                    )
                })
                .collect();
            batches.push(batch);
        }
        let want: Vec<u64> = (1..=150).filter(|offset| offset % 3 != 0).collect();
        let mut fast_seen = Vec::new();
        for batch in &batches {
            hub.publish(batch);
            fast_seen.extend(offsets(&mut fast));
        }
        assert_eq!(fast_seen, want);
        assert_eq!(
            held(&hub, session_id),
            Some(want.len()),
            "the slow one has read nothing"
        );
        // More than one take's worth, in order, each once.
        assert_eq!(offsets(&mut slow), want);
        hub.publish(&[entry(151, session_id, "event")]);
        assert_eq!(
            held(&hub, session_id),
            Some(1),
            "what both read is forgotten"
        );
        assert_eq!(offsets(&mut fast), vec![151]);
        assert_eq!(offsets(&mut slow), vec![151]);
        assert_eq!(hub.len(), 2);
        drop(slow);
        drop(fast);
        hub.publish(&[entry(152, session_id, "event")]);
        assert_eq!(
            held(&hub, session_id),
            None,
            "a ring nobody listens to is dropped"
        );
        assert!(hub.is_empty());
    }

    #[test]
    fn a_session_listener_beyond_its_bound_overflows_and_others_do_not() {
        let hub = LiveHub::default();
        let session_id = SessionId::new();
        let mut one = hub.listen(LogFilter::session(session_id), QueueBound::entries(2));
        let mut bytes = hub.listen(
            LogFilter::session(session_id),
            QueueBound {
                entries: 100,
                bytes: 250,
            },
        );
        let mut roomy = hub.listen(LogFilter::session(session_id), QueueBound::default());
        hub.publish(&[entry(1, session_id, "event"), entry(2, session_id, "event")]);
        assert_eq!(offsets(&mut one), vec![1, 2], "two fit a bound of two");
        assert_eq!(offsets(&mut bytes), vec![1, 2], "200 bytes fit 250");
        hub.publish(&[entry(3, session_id, "event")]);
        assert_eq!(offsets(&mut bytes), vec![3]);
        hub.publish(&[
            entry(4, session_id, "event"),
            entry(5, session_id, "event"),
            entry(6, session_id, "event"),
        ]);
        assert!(matches!(one.try_recv(), Some(ListenerEvent::Overflowed)));
        assert!(
            matches!(one.try_recv(), Some(ListenerEvent::Overflowed)),
            "an overflow stays"
        );
        assert!(matches!(bytes.try_recv(), Some(ListenerEvent::Overflowed)));
        assert_eq!(offsets(&mut roomy), vec![1, 2, 3, 4, 5, 6]);
        // One entry is always allowed, whatever its size.
        let mut tiny = hub.listen(
            LogFilter::session(session_id),
            QueueBound {
                entries: 10,
                bytes: 1,
            },
        );
        hub.publish(&[entry(7, session_id, "event")]);
        assert_eq!(offsets(&mut tiny), vec![7]);
    }

    #[test]
    fn a_session_listener_sees_only_its_filter_and_closes_after_what_was_published() {
        let hub = LiveHub::default();
        let session_id = SessionId::new();
        let mut commands = hub.listen(
            LogFilter {
                kind: Some(octo_core::Kind::Command),
                ..LogFilter::session(session_id)
            },
            QueueBound::default(),
        );
        hub.publish(&[
            entry(1, session_id, "event"),
            entry(2, session_id, "command"),
            entry(3, session_id, "event"),
        ]);
        hub.close();
        assert!(
            matches!(commands.try_recv(), Some(ListenerEvent::Entry(e)) if e.offset == Offset::new(2).expect("valid"))
        );
        assert!(matches!(commands.try_recv(), Some(ListenerEvent::Closed)));
        let mut late = hub.listen(LogFilter::session(session_id), QueueBound::default());
        assert!(matches!(late.try_recv(), Some(ListenerEvent::Closed)));
    }

    #[tokio::test]
    async fn a_waiting_session_listener_wakes_for_the_next_entry() {
        let hub = Arc::new(LiveHub::default());
        let session_id = SessionId::new();
        let mut listeners: Vec<Listener> = (0..20)
            .map(|_| hub.listen(LogFilter::session(session_id), QueueBound::default()))
            .collect();
        let waiting: Vec<_> = listeners
            .drain(..)
            .map(|mut listener| {
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    while seen.len() < 50 {
                        match listener.recv().await {
                            ListenerEvent::Entry(entry) => seen.push(entry.offset.get()),
                            other => panic!("not an entry: {other:?}"),
                        }
                    }
                    seen
                })
            })
            .collect();
        for offset in 1..=50 {
            hub.publish(&[entry(offset, session_id, "event")]);
            if offset % 7 == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
        for task in waiting {
            let seen = tokio::time::timeout(std::time::Duration::from_secs(10), task)
                .await
                .expect("woken")
                .expect("ran");
            assert_eq!(seen, (1..=50).collect::<Vec<u64>>());
        }
    }
}
