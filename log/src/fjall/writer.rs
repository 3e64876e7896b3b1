//! The only code that appends: one thread, group commit.
//!
//! The writer takes every queued request up to [`APPEND_BATCH_ENTRIES_MAX`] entries, decides each
//! one (duplicate command, producer seq, offsets, timestamps), writes the whole group as one fjall
//! batch, syncs once, moves the synced watermark, and only then answers and publishes. The group's
//! session index batch is committed by the index thread meanwhile, and waited for before the
//! watermark moves. A request is atomic: all its entries or none. A failed commit or sync answers
//! the whole group `unavailable` and poisons the log; it refuses appends until it is reopened.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fjall::OwnedWriteBatch;
use octo_core::{CommandId, LogEntry, Ms, Offset, ProducerId, SessionId};
use tokio::sync::{mpsc, oneshot};

use super::index::{IndexBatch, IndexWriter};
use super::{APPEND_BATCH_ENTRIES_MAX, Shared};
use crate::api::{AppendError, BlobHash, ReadError, Receipt, SeqSpec};
use crate::record;

/// A command's idempotency key and the hash of its client view.
pub(super) struct CommandKey {
    pub key: Vec<u8>,
    pub command_id: CommandId,
    pub body_hash: [u8; 32],
}

/// One entry, encoded by its appender; the writer fills offset, `ts_ms` and seq.
pub(super) struct Prepared {
    pub record: Vec<u8>,
    pub template: LogEntry,
    pub seq: SeqSpec,
    pub command: Option<CommandKey>,
    pub blobs: Vec<(BlobHash, Vec<u8>)>,
    /// Its body's `cause` is the offset of the request's command.
    pub caused_by_command: bool,
}

/// What an append request is answered: a receipt per entry, or why none was appended.
pub(super) type Outcome = Result<Vec<Receipt>, AppendError>;

/// Where the answer goes.
pub(super) type Reply = oneshot::Sender<Outcome>;

pub(super) struct AppendRequest {
    pub entries: Vec<Prepared>,
    pub reply: Reply,
}

impl AppendRequest {
    fn size_bytes(&self) -> usize {
        self.entries
            .iter()
            .map(|entry| {
                entry.record.len() + entry.blobs.iter().map(|(_, b)| b.len()).sum::<usize>()
            })
            .sum()
    }
}

/// Bytes one group may hold (records and blobs); a group stops gathering past it, so a burst of
/// large hstry writes cannot build a batch of gigabytes.
const GROUP_BYTES_MAX: usize = 64 << 20;

/// Where a command id already points: its offset, session and body hash.
#[derive(Clone, Copy)]
struct CommandRecord {
    offset: Offset,
    session_id: SessionId,
    body_hash: [u8; 32],
}

impl CommandRecord {
    fn to_bytes(self) -> [u8; 56] {
        let mut bytes = [0; 56];
        bytes[..8].copy_from_slice(&self.offset.to_be_bytes());
        bytes[8..24].copy_from_slice(self.session_id.as_bytes());
        bytes[24..].copy_from_slice(&self.body_hash);
        bytes
    }

    fn from_bytes(bytes: &[u8]) -> Option<CommandRecord> {
        let offset = Offset::from_be_bytes(bytes.get(..8)?.try_into().ok()?).ok()?;
        let session_id = SessionId::from_bytes(bytes.get(8..24)?.try_into().ok()?).ok()?;
        let body_hash = bytes.get(24..56)?.try_into().ok()?;
        Some(CommandRecord {
            offset,
            session_id,
            body_hash,
        })
    }
}

fn read_producer_seq(shared: &Shared, producer: &ProducerId) -> Result<u64, ReadError> {
    let stored = shared
        .producers
        .get(producer.as_str().as_bytes())
        .map_err(|e| ReadError::Unavailable {
            reason: e.to_string(),
        })?;
    match stored {
        None => Ok(0),
        Some(bytes) => {
            let bytes: [u8; 8] = bytes.as_ref().try_into().map_err(|_| ReadError::Corrupt {
                offset: Offset::ZERO,
                detail: format!("producer {producer} has a seq of {} bytes", bytes.len()),
            })?;
            Ok(u64::from_be_bytes(bytes))
        }
    }
}

/// The last seq of a producer as of the last sync, for readers (`welcome.acked_seq`).
///
/// The synced map holds every producer the writer has touched since open, and the writer puts a
/// producer there (under the same lock) before it stages any write for it. So a producer missing
/// from the map has no write in flight, and its stored value, read while holding the lock, is
/// durable: open synced everything it found.
/// A command's stored offset and session, if durable (the synced head covers it).
pub(super) fn stored_command(
    shared: &Shared,
    key: &[u8],
) -> Result<Option<(Offset, SessionId)>, ReadError> {
    let stored = shared
        .command_ids
        .get(key)
        .map_err(|e| ReadError::Unavailable {
            reason: e.to_string(),
        })?;
    let Some(bytes) = stored else {
        return Ok(None);
    };
    let record = CommandRecord::from_bytes(&bytes).ok_or_else(|| ReadError::Corrupt {
        offset: shared.head(),
        detail: format!("command id record of {} bytes is damaged", bytes.len()),
    })?;
    Ok((record.offset <= shared.head()).then_some((record.offset, record.session_id)))
}

pub(super) fn stored_producer_seq(
    shared: &Shared,
    producer: &ProducerId,
) -> Result<u64, ReadError> {
    let synced = shared
        .synced_producer_seqs
        .lock()
        .expect("lock is never poisoned");
    match synced.get(producer) {
        Some(seq) => Ok(*seq),
        None => read_producer_seq(shared, producer),
    }
}

/// The last seq of a producer for the writer's decisions, entering it into the synced map first
/// (see [`stored_producer_seq`]).
fn producer_seq_for_write(shared: &Shared, producer: &ProducerId) -> Result<u64, ReadError> {
    let mut synced = shared
        .synced_producer_seqs
        .lock()
        .expect("lock is never poisoned");
    if let Some(seq) = synced.get(producer) {
        return Ok(*seq);
    }
    let seq = read_producer_seq(shared, producer)?;
    synced.insert(producer.clone(), seq);
    Ok(seq)
}

/// What the group decided so far, not yet durable.
#[derive(Default)]
struct Staged {
    commands: HashMap<Vec<u8>, CommandRecord>,
    producers: HashMap<ProducerId, u64>,
    session_ts: HashMap<SessionId, Ms>,
}

/// A group being gathered: its requests decided and staged, nothing written yet.
struct Group {
    batch: OwnedWriteBatch,
    index_batch: IndexBatch,
    staged: Staged,
    published: Vec<(Arc<LogEntry>, usize)>,
    /// Each request's reply and what it will be told once the group is durable.
    requests: Vec<(Reply, Outcome)>,
    n_entries: usize,
    n_bytes: usize,
    /// The clock for the whole group's timestamps.
    now: Ms,
    offset_before: Offset,
}

impl Group {
    fn new(shared: &Shared, offset_before: Offset) -> Group {
        Group {
            batch: shared.db.batch(),
            index_batch: shared.index.batch(),
            staged: Staged::default(),
            published: Vec::new(),
            requests: Vec::with_capacity(64),
            n_entries: 0,
            n_bytes: 0,
            now: now_ms(),
            offset_before,
        }
    }

    fn is_full(&self) -> bool {
        self.n_entries >= APPEND_BATCH_ENTRIES_MAX || self.n_bytes >= GROUP_BYTES_MAX
    }
}

/// Longest a group waits for the appenders the previous groups answered; a lone appender never
/// waits (its previous group had one request).
const GROUP_GATHER_WAIT_MAX: Duration = Duration::from_micros(250);

/// How often a gathering group looks for more requests. Sleeping, not spinning, leaves the CPU to
/// the appenders it is waiting for (on two cores that is the difference).
const GROUP_GATHER_POLL: Duration = Duration::from_micros(20);

/// Sessions whose last timestamp is kept in memory; past this the cache is cleared and refilled
/// from the log on demand.
const SESSION_TS_CACHE_MAX: usize = 65_536;

pub(super) struct Writer {
    shared: Arc<Shared>,
    index_writer: IndexWriter,
    next_offset: Offset,
    session_ts: HashMap<SessionId, Ms>,
}

/// Poisons the log if the writer thread unwinds, so appenders see `unavailable` instead of
/// waiting forever.
struct PoisonOnPanic<'a>(&'a Shared);

impl Drop for PoisonOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!("the log writer panicked; the log refuses appends until reopened");
            self.0.poisoned.store(true, Ordering::Release);
        }
    }
}

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

fn now_ms() -> Ms {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            Ms::try_from(elapsed.as_millis()).unwrap_or(Ms::MAX)
        })
}

impl Writer {
    pub(super) fn new(shared: Arc<Shared>, next_offset: Offset) -> std::io::Result<Writer> {
        Ok(Writer {
            shared,
            index_writer: IndexWriter::start()?,
            next_offset,
            session_ts: HashMap::new(),
        })
    }

    pub(super) fn run(mut self, mut requests: mpsc::Receiver<AppendRequest>) {
        let shared = Arc::clone(&self.shared);
        let _guard = PoisonOnPanic(&shared);
        // The appenders answered by the last two groups are expected back; waiting briefly for
        // them keeps groups full instead of syncing the first few stragglers alone.
        let mut recent_group_sizes = [1usize; 2];
        while let Some(first) = requests.blocking_recv() {
            // Each request is decided and staged as it arrives, so the work of a group is done
            // while its stragglers are still on their way; only commit and sync remain after.
            let gather_started = Instant::now();
            let mut group = Group::new(&shared, self.next_offset);
            self.add(&mut group, first);
            let expected = recent_group_sizes[0].max(recent_group_sizes[1]);
            let deadline = Instant::now() + GROUP_GATHER_WAIT_MAX;
            loop {
                while !group.is_full() {
                    let Ok(next) = requests.try_recv() else { break };
                    self.add(&mut group, next);
                }
                if group.requests.len() >= expected || group.is_full() || Instant::now() >= deadline
                {
                    break;
                }
                std::thread::sleep(GROUP_GATHER_POLL);
            }
            recent_group_sizes = [recent_group_sizes[1], group.requests.len()];
            shared
                .stats
                .gather_micros
                .fetch_add(micros(gather_started.elapsed()), Ordering::Relaxed);
            if let Err(reason) = self.finish(group) {
                tracing::error!(%reason, "log write failed; the log refuses appends until reopened");
                return;
            }
        }
    }

    /// Decides and stages one request into the group.
    fn add(&mut self, group: &mut Group, mut request: AppendRequest) {
        group.n_entries += request.entries.len();
        group.n_bytes += request.size_bytes();
        let entries = std::mem::take(&mut request.entries);
        let outcome = self.stage(entries, group);
        group.requests.push((request.reply, outcome));
    }

    /// Writes, syncs and answers one group. A failed commit or sync poisons the log, answers
    /// every request of the group `unavailable` and returns the reason.
    fn finish(&mut self, group: Group) -> Result<(), String> {
        let Group {
            mut batch,
            index_batch,
            mut staged,
            published,
            requests,
            offset_before,
            ..
        } = group;
        let shared = Arc::clone(&self.shared);
        let n_appended = published.len() as u64;
        assert_eq!(
            self.next_offset.get(),
            offset_before.get() + n_appended,
            "offsets skipped"
        );

        if let Some((last, _)) = published.last() {
            for (producer, seq) in &staged.producers {
                batch.insert(
                    &shared.producers,
                    producer.as_str().as_bytes(),
                    seq.to_be_bytes(),
                );
            }
            match self.write_durably(batch, index_batch) {
                Ok(()) => {}
                Err(reason) => {
                    // Poisoned before anyone hears of the failure, so an appender that sees
                    // `unavailable` also sees the log refusing appends.
                    shared.poisoned.store(true, Ordering::Release);
                    let error = AppendError::Unavailable {
                        reason: reason.clone(),
                    };
                    for (reply, _) in requests {
                        // The appender may have gone away; nothing to do then.
                        let _ = reply.send(Err(error.clone()));
                    }
                    return Err(reason);
                }
            }
            // Durable from here on: move the watermark, then answer, then publish.
            let previous_head = shared.head.swap(last.offset.get(), Ordering::AcqRel);
            shared.stats.groups_synced.fetch_add(1, Ordering::Relaxed);
            shared
                .stats
                .entries_synced
                .fetch_add(n_appended, Ordering::Relaxed);
            assert!(
                previous_head < offset_before.get(),
                "watermark ran ahead of the writer"
            );
            shared
                .synced_producer_seqs
                .lock()
                .expect("lock is never poisoned")
                .extend(staged.producers.drain());
            if self.session_ts.len() + staged.session_ts.len() > SESSION_TS_CACHE_MAX {
                self.session_ts.clear();
            }
            self.session_ts.extend(staged.session_ts.drain());
        }
        for (reply, outcome) in requests {
            let _ = reply.send(outcome);
        }
        if !published.is_empty() {
            shared.hub.publish(&published);
        }
        Ok(())
    }

    /// Decides one request and stages its writes. A rejection (duplicate, conflict, gap, or a
    /// failed read while deciding) stages nothing and leaves the writer healthy.
    fn stage(&mut self, mut entries: Vec<Prepared>, group: &mut Group) -> Outcome {
        let Group {
            batch,
            index_batch,
            staged,
            published,
            now,
            ..
        } = group;
        let now = *now;
        let shared = Arc::clone(&self.shared);
        let unreadable = |reason: String| AppendError::Unavailable {
            reason: format!("cannot read the log's state: {reason}"),
        };

        // Decide everything first, so a rejected request stages nothing.
        if let Some(command) = entries.first().and_then(|entry| entry.command.as_ref())
            && let Some(existing) = self
                .lookup_command(staged, &command.key)
                .map_err(unreadable)?
        {
            if existing.body_hash != command.body_hash {
                return Err(AppendError::IdempotencyConflict {
                    command_id: command.command_id,
                    offset: existing.offset,
                });
            }
            let mut receipts = vec![Receipt::Skipped; entries.len()];
            receipts[0] = Receipt::Duplicate {
                offset: existing.offset,
                session_id: existing.session_id,
            };
            return Ok(receipts);
        }
        // Per entry: its seq and ts_ms, or `None` for a re-sent seq.
        let mut decisions: Vec<Option<(u64, Ms)>> = Vec::with_capacity(entries.len());
        let mut request_seqs: HashMap<&ProducerId, u64> = HashMap::new();
        let mut request_ts: HashMap<SessionId, Ms> = HashMap::new();
        for entry in &entries {
            let producer = &entry.template.producer.id;
            let last_seq = match request_seqs
                .get(producer)
                .or_else(|| staged.producers.get(producer))
            {
                Some(seq) => *seq,
                None => producer_seq_for_write(&shared, producer)
                    .map_err(|e| unreadable(e.to_string()))?,
            };
            let seq = match entry.seq {
                SeqSpec::Next => last_seq + 1,
                SeqSpec::Exact(seq) if seq <= last_seq => {
                    decisions.push(None);
                    continue;
                }
                SeqSpec::Exact(seq) if seq == last_seq + 1 => seq,
                SeqSpec::Exact(seq) => {
                    return Err(AppendError::ProducerGap {
                        producer: producer.clone(),
                        expected_seq: last_seq + 1,
                        got_seq: seq,
                    });
                }
            };
            request_seqs.insert(producer, seq);
            let session_id = entry.template.session_id;
            let last_ts = match request_ts.get(&session_id) {
                Some(ts) => *ts,
                None => self
                    .session_last_ts(staged, &session_id)
                    .map_err(unreadable)?,
            };
            // Clamped so a session's timestamps never go back when the clock does.
            let ts_ms = now.max(last_ts);
            request_ts.insert(session_id, ts_ms);
            decisions.push(Some((seq, ts_ms)));
        }

        // Stage: nothing below can fail.
        let mut receipts = Vec::with_capacity(entries.len());
        let mut command_appended = None;
        for (mut entry, decision) in entries.drain(..).zip(decisions) {
            let Some((seq, ts_ms)) = decision else {
                receipts.push(Receipt::Skipped);
                continue;
            };
            let offset = self.next_offset;
            self.next_offset = offset.successor();
            let session_id = entry.template.session_id;
            if entry.caused_by_command
                && let Some((_, command_offset, _)) = &command_appended
            {
                set_cause(&mut entry, *command_offset);
            }
            record::patch(&mut entry.record, ts_ms, seq);
            staged.session_ts.insert(session_id, ts_ms);
            staged
                .producers
                .insert(entry.template.producer.id.clone(), seq);
            let size_bytes = entry.record.len();
            // One buffer shared by the log and its session index.
            let record = fjall::Slice::from(entry.record);
            batch.insert(&shared.log, offset.to_be_bytes(), record.clone());
            index_batch.insert(session_id, offset, record);
            for (hash, bytes) in entry.blobs {
                batch.insert(&shared.blobs, *hash.as_bytes(), bytes);
            }
            if let Some(command) = entry.command.take() {
                command_appended = Some((command, offset, session_id));
            }
            let mut appended = entry.template;
            appended.offset = offset;
            appended.ts_ms = ts_ms;
            appended.producer.seq = seq;
            published.push((Arc::new(appended), size_bytes));
            receipts.push(Receipt::Appended(offset));
        }
        if let Some((command, offset, session_id)) = command_appended {
            let record = CommandRecord {
                offset,
                session_id,
                body_hash: command.body_hash,
            };
            batch.insert(&shared.command_ids, command.key.clone(), record.to_bytes());
            staged.commands.insert(command.key, record);
        }
        Ok(receipts)
    }

    /// Commits the group's batch and syncs it while the index thread commits the group's session
    /// index batch; returns once both are done.
    fn write_durably(&self, batch: OwnedWriteBatch, index_batch: IndexBatch) -> Result<(), String> {
        let stats = &self.shared.stats;
        let indexing = if index_batch.is_empty() {
            Ok(false)
        } else {
            self.index_writer.submit(index_batch).map(|()| true)
        };
        let commit_started = Instant::now();
        let written = batch
            .commit()
            .map_err(|e| format!("write failed: {e}"))
            .and_then(|()| {
                let sync_started = Instant::now();
                stats
                    .commit_micros
                    .fetch_add(micros(sync_started - commit_started), Ordering::Relaxed);
                let synced = self.shared.sync().map_err(|e| format!("sync failed: {e}"));
                stats
                    .sync_micros
                    .fetch_add(micros(sync_started.elapsed()), Ordering::Relaxed);
                synced
            });
        // Waited for whatever happened above, so the next group's outcome is its own.
        let wait_started = Instant::now();
        let indexed = match indexing {
            Ok(true) => self.index_writer.wait(),
            Ok(false) => Ok(()),
            Err(reason) => Err(reason),
        };
        stats
            .index_wait_micros
            .fetch_add(micros(wait_started.elapsed()), Ordering::Relaxed);
        written?;
        indexed
    }

    fn lookup_command(&self, staged: &Staged, key: &[u8]) -> Result<Option<CommandRecord>, String> {
        if let Some(record) = staged.commands.get(key) {
            return Ok(Some(*record));
        }
        let stored = self
            .shared
            .command_ids
            .get(key)
            .map_err(|e| e.to_string())?;
        match stored {
            None => Ok(None),
            Some(bytes) => CommandRecord::from_bytes(&bytes)
                .map(Some)
                .ok_or_else(|| format!("command id record of {} bytes is damaged", bytes.len())),
        }
    }

    fn session_last_ts(&self, staged: &Staged, session_id: &SessionId) -> Result<Ms, String> {
        if let Some(ts) = staged
            .session_ts
            .get(session_id)
            .or_else(|| self.session_ts.get(session_id))
        {
            return Ok(*ts);
        }
        let range = super::session_key(session_id, Offset::ZERO)
            ..=super::session_key(session_id, Offset::MAX);
        match self.shared.index.by_session.range(range).next_back() {
            None => Ok(Ms::MIN),
            Some(guard) => {
                let value = guard.value().map_err(|e| e.to_string())?;
                Ok(record::header(&value)?.ts_ms)
            }
        }
    }
}

/// Points an event's `cause` at its batch's command and re-encodes its record (checked at
/// prepare: the body is an event and its encoding succeeded once, with the same shape).
fn set_cause(entry: &mut Prepared, cause: Offset) {
    let octo_core::Body::Event(event) = &mut entry.template.body else {
        return;
    };
    if !event.set_cause(cause) {
        return;
    }
    let template = &entry.template;
    if let Ok(encoded) = record::encode(
        template.kind,
        &template.user_id,
        &template.session_id,
        &template.producer.id,
        template.command_id,
        &template.body,
    ) {
        entry.record = encoded;
    }
}
