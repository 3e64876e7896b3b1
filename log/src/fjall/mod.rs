//! The fjall backend: the default, embedded log.
//!
//! Layout (ARCHITECTURE.md "The log"), these keyspaces written in one atomic batch per group:
//! - `log`: offset (u64 big-endian) -> record (see `record.rs`);
//! - `command_ids`: user id ++ 0x00 ++ command id -> offset ++ session id ++ blake3 of the body;
//! - `producers`: producer id -> last seq (u64 big-endian);
//! - `blobs`: blake3 -> bytes, for payloads over `max_entry_bytes` (key-value separated);
//!
//! and, in a database of its own in the `by_session` folder, the session index: session id ++
//! offset -> the same record, a copy rather than a pointer, so one session's entries are one
//! contiguous range read. The index is derived from `log`: it is written beside each group's sync
//! and repaired from `log` when the log opens (see `index.rs`).
//!
//! One writer thread owns every write (group commit, see `writer.rs`). Readers run on tokio's
//! blocking pool and never see past the synced watermark (`head`), even though fjall's memtable
//! already holds a group between its commit and its sync: durable before visible.

mod index;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use async_trait::async_trait;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, KvSeparationOptions, PersistMode};
use octo_core::limits::{BLOB_BYTES_MAX, ENTRY_BYTES_MAX};
use octo_core::{Kind, LogEntry, Offset, ProducerId, SessionId, UserId};
use rayon::prelude::*;
use tokio::sync::{mpsc, oneshot};

use crate::api::{
    AppendError, BlobHash, EventLog, LogFilter, NewEntry, PendingAppend, ReadBatch, ReadError,
    ReadQuery, Receipt, SeqSpec,
};
use crate::live::{Listener, LiveHub, QueueBound};
use crate::record;
pub use index::IndexRepair;
use index::SessionIndex;
use writer::{AppendRequest, CommandKey, Prepared};

/// Entries coalesced into one write batch and one sync; bounds ack latency under load.
pub const APPEND_BATCH_ENTRIES_MAX: usize = 1024;

/// Append requests waiting for the writer; past this, appenders wait (backpressure).
pub const APPEND_QUEUE_REQUESTS_MAX: usize = 4096;

/// Entries one read examines at most, so a rarely matching filter cannot stall a reader; the
/// caller continues from `scanned_through`.
pub const READ_SCAN_ENTRIES_MAX: usize = 65_536;

/// Where logs written before the session index had a database of its own kept it.
const LEGACY_BY_SESSION: &str = "by_session";

/// Block cache for reads.
pub const CACHE_BYTES_DEFAULT: u64 = 64 << 20;

/// Settings of a fjall log.
#[derive(Debug, Clone)]
pub struct FjallConfig {
    /// The log's folder (created if missing).
    pub path: PathBuf,
    /// Largest encoded entry (PROTOCOL.md 3.4).
    pub entry_bytes_max: usize,
    /// Largest blob.
    pub blob_bytes_max: usize,
    /// Block cache size.
    pub cache_bytes: u64,
    /// Fault injection for tests.
    #[cfg(feature = "failpoints")]
    pub failpoints: Failpoints,
}

impl FjallConfig {
    /// Defaults for a log at `path`.
    pub fn new(path: impl Into<PathBuf>) -> FjallConfig {
        FjallConfig {
            path: path.into(),
            entry_bytes_max: ENTRY_BYTES_MAX,
            blob_bytes_max: BLOB_BYTES_MAX,
            cache_bytes: CACHE_BYTES_DEFAULT,
            #[cfg(feature = "failpoints")]
            failpoints: Failpoints::default(),
        }
    }
}

/// Switches that make the log fail on purpose, shared between a test and the log it opened.
#[cfg(feature = "failpoints")]
#[derive(Debug, Clone, Default)]
pub struct Failpoints {
    fail_sync: Arc<AtomicBool>,
}

#[cfg(feature = "failpoints")]
impl Failpoints {
    /// Makes every later sync return an error (as a failing disk would) without syncing.
    pub fn fail_syncs(&self) {
        self.fail_sync.store(true, Ordering::SeqCst);
    }

    fn sync_fails(&self) -> bool {
        self.fail_sync.load(Ordering::SeqCst)
    }
}

/// Why a fjall log could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Stop: fjall could not open or recover the folder (permissions, another process holds it,
    /// an unsupported format).
    #[error("cannot open the log at {path}: {source}")]
    Fjall { path: PathBuf, source: fjall::Error },
    /// Stop: the newest stored entry does not decode; the log is damaged.
    #[error("the log at {path} is damaged: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    /// Stop: the session index could not be brought level with the log.
    #[error("cannot repair the session index of the log at {path}: {detail}")]
    Index { path: PathBuf, detail: String },
    /// Stop: the writer thread could not be started.
    #[error("cannot start the log writer: {0}")]
    Thread(std::io::Error),
}

pub(crate) struct Shared {
    db: Database,
    log: Keyspace,
    index: SessionIndex,
    command_ids: Keyspace,
    producers: Keyspace,
    blobs: Keyspace,
    /// The synced watermark: the newest durable offset. Readers never look past it.
    head: AtomicU64,
    /// The last seq of every producer written since open, as of the last sync.
    synced_producer_seqs: Mutex<HashMap<ProducerId, u64>>,
    /// Set when a sync failed or the writer died; appends then fail with `unavailable`.
    poisoned: AtomicBool,
    hub: LiveHub,
    stats: WriterStats,
    config: FjallConfig,
}

/// Counters of the writer, for benchmarks and metrics.
#[derive(Debug, Default)]
struct WriterStats {
    groups_synced: AtomicU64,
    entries_synced: AtomicU64,
    commit_micros: AtomicU64,
    sync_micros: AtomicU64,
    index_wait_micros: AtomicU64,
    gather_micros: AtomicU64,
}

/// A snapshot of the writer's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FjallStats {
    /// Syncs that made at least one entry durable (one per group commit).
    pub groups_synced: u64,
    /// Entries made durable.
    pub entries_synced: u64,
    /// Time spent writing groups to fjall (journal and memtables), in microseconds.
    pub commit_micros: u64,
    /// Time spent in the sync, in microseconds.
    pub sync_micros: u64,
    /// Time spent waiting, after the sync, for the session index's batch, in microseconds.
    pub index_wait_micros: u64,
    /// Time groups spent gathering, from their first request's arrival to their close, in
    /// microseconds.
    pub gather_micros: u64,
}

impl Shared {
    fn head(&self) -> Offset {
        Offset::new(self.head.load(Ordering::Acquire)).expect("the watermark is a valid offset")
    }

    fn sync(&self) -> Result<(), String> {
        #[cfg(feature = "failpoints")]
        if self.config.failpoints.sync_fails() {
            return Err("injected sync failure".to_owned());
        }
        self.db
            .persist(PersistMode::SyncData)
            .map_err(|e| e.to_string())
    }
}

fn session_key(session_id: &SessionId, offset: Offset) -> [u8; 24] {
    let mut key = [0; 24];
    key[..16].copy_from_slice(session_id.as_bytes());
    key[16..].copy_from_slice(&offset.to_be_bytes());
    key
}

fn command_key(user_id: &UserId, command_id: &octo_core::CommandId) -> Vec<u8> {
    let mut key = Vec::with_capacity(user_id.as_str().len() + 17);
    key.extend_from_slice(user_id.as_str().as_bytes());
    // User ids hold no control characters, so 0x00 cannot be part of one.
    key.push(0);
    key.extend_from_slice(command_id.as_bytes());
    key
}

fn offset_of_key(key: &[u8]) -> Result<Offset, String> {
    let tail: [u8; 8] = key
        .get(key.len().saturating_sub(8)..)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| format!("key of {} bytes has no offset", key.len()))?;
    Offset::from_be_bytes(tail).map_err(|e| e.to_string())
}

/// The fjall log. Cheap to share behind an `Arc`; dropping the last handle stops the writer after
/// it has answered every queued append, and closes live listeners.
pub struct FjallLog {
    shared: Arc<Shared>,
    repair: IndexRepair,
    requests: Option<mpsc::Sender<AppendRequest>>,
    writer_thread: Option<JoinHandle<()>>,
}

impl FjallLog {
    /// Opens (or creates) the log and starts its writer. Blocking: call it from a blocking
    /// context (`spawn_blocking`) inside a runtime.
    ///
    /// # Errors
    /// [`OpenError`].
    pub fn open(config: FjallConfig) -> Result<Arc<FjallLog>, OpenError> {
        let path = config.path.clone();
        let fjall_error = |source| OpenError::Fjall {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&path).map_err(|e| fjall_error(fjall::Error::Io(e)))?;
        let db = Database::builder(&path)
            .manual_journal_persist(true)
            .cache_size(config.cache_bytes)
            .open()
            .map_err(fjall_error)?;
        let keyspace = |name: &str, options: fn() -> KeyspaceCreateOptions| {
            db.keyspace(name, options).map_err(fjall_error)
        };
        let log = keyspace("log", KeyspaceCreateOptions::default)?;
        let command_ids = keyspace("command_ids", KeyspaceCreateOptions::default)?;
        let producers = keyspace("producers", KeyspaceCreateOptions::default)?;
        let blobs = keyspace("blobs", || {
            KeyspaceCreateOptions::default()
                .with_kv_separation(Some(KvSeparationOptions::default()))
        })?;
        // Whatever recovery found (including a tail that was written but never acked) is made
        // durable before anyone can see it, so a later power loss cannot take back an offset
        // that a reader was shown.
        db.persist(PersistMode::SyncAll).map_err(fjall_error)?;

        let last = match log.last_key_value() {
            None => Offset::ZERO,
            Some(guard) => {
                let (key, value) = guard.into_inner().map_err(fjall_error)?;
                let offset = offset_of_key(&key).map_err(|detail| OpenError::Corrupt {
                    path: path.clone(),
                    detail,
                })?;
                record::decode(offset, &value).map_err(|detail| OpenError::Corrupt {
                    path: path.clone(),
                    detail: format!("entry {offset}: {detail}"),
                })?;
                offset
            }
        };
        let index_error = |detail: String| OpenError::Index {
            path: path.clone(),
            detail,
        };
        let mut index = SessionIndex::open(&path, config.cache_bytes).map_err(fjall_error)?;
        let repair = index.repair(&log, last).map_err(index_error)?;
        if db.keyspace_exists(LEGACY_BY_SESSION) {
            // Logs written before the index had a database of its own kept it here.
            let legacy = keyspace(LEGACY_BY_SESSION, KeyspaceCreateOptions::default)?;
            db.delete_keyspace(legacy).map_err(fjall_error)?;
        }
        tracing::info!(path = %path.display(), head = %last, ?repair, "log opened");

        let shared = Arc::new(Shared {
            db,
            log,
            index,
            command_ids,
            producers,
            blobs,
            head: AtomicU64::new(last.get()),
            synced_producer_seqs: Mutex::new(HashMap::new()),
            poisoned: AtomicBool::new(false),
            hub: LiveHub::default(),
            stats: WriterStats::default(),
            config,
        });
        let (requests, receiver) = mpsc::channel(APPEND_QUEUE_REQUESTS_MAX);
        let writer = writer::Writer::new(Arc::clone(&shared), last.successor())
            .map_err(OpenError::Thread)?;
        let writer_thread = std::thread::Builder::new()
            .name("octo-log-writer".to_owned())
            .spawn(move || writer.run(receiver))
            .map_err(OpenError::Thread)?;
        Ok(Arc::new(FjallLog {
            shared,
            repair,
            requests: Some(requests),
            writer_thread: Some(writer_thread),
        }))
    }

    /// The folder the log lives in.
    pub fn path(&self) -> &Path {
        &self.shared.config.path
    }

    /// What opening did to bring the session index level with the log.
    pub fn index_repair(&self) -> IndexRepair {
        self.repair
    }

    /// The writer's counters since open.
    pub fn stats(&self) -> FjallStats {
        FjallStats {
            groups_synced: self.shared.stats.groups_synced.load(Ordering::Relaxed),
            entries_synced: self.shared.stats.entries_synced.load(Ordering::Relaxed),
            commit_micros: self.shared.stats.commit_micros.load(Ordering::Relaxed),
            sync_micros: self.shared.stats.sync_micros.load(Ordering::Relaxed),
            index_wait_micros: self.shared.stats.index_wait_micros.load(Ordering::Relaxed),
            gather_micros: self.shared.stats.gather_micros.load(Ordering::Relaxed),
        }
    }

    /// Whether a failed sync has poisoned the writer (appends fail until reopened).
    pub fn is_poisoned(&self) -> bool {
        self.shared.poisoned.load(Ordering::Acquire)
    }

    fn prepare(&self, batch: Vec<NewEntry>) -> Result<Vec<Prepared>, AppendError> {
        if batch.is_empty() {
            return Err(AppendError::Invalid {
                index: 0,
                reason: "the batch is empty".to_owned(),
            });
        }
        let config = &self.shared.config;
        let mut prepared = Vec::with_capacity(batch.len());
        let mut blob_bytes_total = 0usize;
        for (index, entry) in batch.into_iter().enumerate() {
            let invalid = |reason: String| AppendError::Invalid { index, reason };
            let kind = entry.body.kind().ok_or_else(|| {
                invalid(format!("body type {:?} is unknown", entry.body.type_name()))
            })?;
            octo_core::entry::check_shape(kind, entry.command_id.is_some(), &entry.body)
                .map_err(|e| invalid(e.to_string()))?;
            match (kind, entry.seq) {
                (Kind::Command, SeqSpec::Exact(_)) => {
                    return Err(invalid(
                        "a command's seq is assigned by the writer (SeqSpec::Next)".to_owned(),
                    ));
                }
                (_, SeqSpec::Exact(0)) => {
                    return Err(invalid("producer seqs start at 1".to_owned()));
                }
                _ => {}
            }
            if kind == Kind::Command && index != 0 {
                return Err(invalid(
                    "a batch holds at most one command, as its first entry".to_owned(),
                ));
            }
            let record = record::encode(
                kind,
                &entry.user_id,
                &entry.session_id,
                &entry.producer,
                entry.command_id,
                &entry.body,
            )
            .map_err(invalid)?;
            if record.len() > config.entry_bytes_max {
                return Err(AppendError::TooLarge {
                    index,
                    len_bytes: record.len(),
                    max_bytes: config.entry_bytes_max,
                });
            }
            let mut blobs = Vec::with_capacity(entry.blobs.len());
            for blob in entry.blobs {
                if blob.len() > config.blob_bytes_max {
                    return Err(invalid(format!(
                        "a blob of {} bytes is over the {}-byte limit",
                        blob.len(),
                        config.blob_bytes_max
                    )));
                }
                blob_bytes_total += blob.len();
                if blob_bytes_total > config.blob_bytes_max {
                    return Err(invalid(format!(
                        "the batch carries more than {} bytes of blobs; append them in several batches",
                        config.blob_bytes_max
                    )));
                }
                blobs.push((crate::api::blob_hash(&blob), blob));
            }
            let command = match (&entry.body, entry.command_id) {
                (octo_core::Body::Command(command), Some(command_id)) => {
                    let view = octo_core::codec::to_msgpack(&command.idempotency_view())
                        .map_err(|e| invalid(e.to_string()))?;
                    // The same id sent to another session is another command (a conflict), except
                    // for commands whose session the server mints anew on every attempt.
                    let mut hasher = blake3::Hasher::new();
                    hasher.update(&view);
                    if !command.mints_session() {
                        hasher.update(entry.session_id.as_bytes());
                    }
                    Some(CommandKey {
                        key: command_key(&entry.user_id, &command_id),
                        command_id,
                        body_hash: *hasher.finalize().as_bytes(),
                    })
                }
                _ => None,
            };
            let template = LogEntry {
                offset: Offset::ZERO,
                ts_ms: 0,
                user_id: entry.user_id,
                session_id: entry.session_id,
                kind,
                producer: octo_core::Producer {
                    id: entry.producer,
                    seq: 0,
                },
                command_id: entry.command_id,
                body: entry.body,
            };
            if entry.caused_by_command
                && (kind != Kind::Event
                    || prepared
                        .first()
                        .is_none_or(|first: &Prepared| first.command.is_none()))
            {
                return Err(invalid(
                    "only an event after the batch's command can take the command's offset as cause"
                        .to_owned(),
                ));
            }
            prepared.push(Prepared {
                record,
                template,
                seq: entry.seq,
                command,
                blobs,
                caused_by_command: entry.caused_by_command,
            });
        }
        Ok(prepared)
    }
}

impl Drop for FjallLog {
    fn drop(&mut self) {
        // Closing the queue lets the writer answer what is queued and stop; joining it releases
        // the database, so the folder can be opened again at once.
        drop(self.requests.take());
        if let Some(thread) = self.writer_thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the log writer panicked");
        }
        if let Err(reason) = self.shared.index.persist() {
            tracing::warn!(%reason, "the session index was not synced at close; the next open repairs it");
        }
        self.shared.hub.close();
    }
}

fn unavailable(reason: &str) -> AppendError {
    AppendError::Unavailable {
        reason: reason.to_owned(),
    }
}

async fn blocking<T: Send + 'static>(
    job: impl FnOnce() -> Result<T, ReadError> + Send + 'static,
) -> Result<T, ReadError> {
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| ReadError::Unavailable {
            reason: format!("read task failed: {e}"),
        })?
}

fn read_blocking(shared: &Shared, query: &ReadQuery) -> Result<ReadBatch, ReadError> {
    let head = shared.head();
    if query.after > head {
        return Err(ReadError::BeyondHead {
            after: query.after,
            head,
        });
    }
    let upper = query.until.map_or(head, |until| until.min(head));
    let mut batch = ReadBatch {
        entries: Vec::new(),
        scanned_through: query.after,
        reached_end: true,
    };
    if query.after >= upper {
        return Ok(batch);
    }
    let limit = query.limit.max(1);
    let from = query.after.successor();
    let iter = match &query.filter.session_id {
        Some(session_id) => shared
            .index
            .by_session
            .range(session_key(session_id, from)..=session_key(session_id, upper)),
        None => shared.log.range(from.to_be_bytes()..=upper.to_be_bytes()),
    };
    // Scan first (keys and headers only), then decode what the filter kept.
    let mut kept: Vec<(Offset, fjall::Slice)> = Vec::new();
    let mut previous = query.after;
    for (n_scanned, guard) in iter.enumerate() {
        let (key, value) = guard.into_inner().map_err(|e| ReadError::Unavailable {
            reason: e.to_string(),
        })?;
        let offset = offset_of_key(&key).map_err(|detail| ReadError::Corrupt {
            offset: previous,
            detail,
        })?;
        // Pair assertion: offsets strictly increase when written, and again when read.
        assert!(
            offset > previous,
            "log keys out of order: {offset} after {previous}"
        );
        previous = offset;
        let header =
            record::header(&value).map_err(|detail| ReadError::Corrupt { offset, detail })?;
        if query.filter.matches_parts(
            header.kind,
            header.user_id,
            &header.session_id,
            header.type_name,
        ) {
            kept.push((offset, value));
        }
        batch.scanned_through = offset;
        if kept.len() >= limit || n_scanned + 1 >= READ_SCAN_ENTRIES_MAX {
            batch.reached_end = offset >= upper;
            batch.entries = decode_all(&kept)?;
            return Ok(batch);
        }
    }
    batch.scanned_through = upper;
    batch.entries = decode_all(&kept)?;
    Ok(batch)
}

/// Records per read from which decoding is spread over every core.
const PARALLEL_DECODE_MIN: usize = 64;

/// Decodes stored records, in order; a large page on every core (decoding is most of a read).
fn decode_all(records: &[(Offset, fjall::Slice)]) -> Result<Vec<Arc<LogEntry>>, ReadError> {
    let decode = |(offset, value): &(Offset, fjall::Slice)| {
        record::decode(*offset, value)
            .map(Arc::new)
            .map_err(|detail| ReadError::Corrupt {
                offset: *offset,
                detail,
            })
    };
    if records.len() < PARALLEL_DECODE_MIN {
        return records.iter().map(decode).collect();
    }
    records
        .par_iter()
        .with_min_len(PARALLEL_DECODE_MIN / 2)
        .map(decode)
        .collect()
}

#[async_trait]
impl EventLog for FjallLog {
    async fn append(&self, batch: Vec<NewEntry>) -> Result<Vec<Receipt>, AppendError> {
        self.append_placed(batch).await?.await
    }

    async fn append_placed(&self, batch: Vec<NewEntry>) -> Result<PendingAppend, AppendError> {
        if self.is_poisoned() {
            return Err(unavailable("a sync failed earlier; reopen the log"));
        }
        let entries = self.prepare(batch)?;
        let (reply, receipt) = oneshot::channel();
        let requests = self
            .requests
            .as_ref()
            .ok_or_else(|| unavailable("the log is closed"))?;
        // A writer that went away unwound (it poisons the log as it stops, but its unanswered
        // replies may be dropped first): poisoned here too, so whoever sees this error also sees
        // the log refusing appends.
        let stopped = |shared: &Shared, reason: &str| {
            shared.poisoned.store(true, Ordering::Release);
            unavailable(reason)
        };
        // The writer takes requests in the channel's order (its waiting senders queue fairly),
        // so once sent, the batch's place is fixed.
        requests
            .send(AppendRequest { entries, reply })
            .await
            .map_err(|_| stopped(&self.shared, "the log writer has stopped"))?;
        let shared = Arc::clone(&self.shared);
        Ok(PendingAppend(Box::pin(async move {
            receipt
                .await
                .map_err(|_| stopped(&shared, "the log writer stopped before answering"))?
        })))
    }

    async fn read(&self, query: ReadQuery) -> Result<ReadBatch, ReadError> {
        let shared = Arc::clone(&self.shared);
        blocking(move || read_blocking(&shared, &query)).await
    }

    fn head(&self) -> Offset {
        self.shared.head()
    }

    async fn session_head(&self, session_id: SessionId) -> Result<Offset, ReadError> {
        let shared = Arc::clone(&self.shared);
        blocking(move || {
            let head = shared.head();
            let range = session_key(&session_id, Offset::ZERO)..=session_key(&session_id, head);
            match shared.index.by_session.range(range).next_back() {
                None => Ok(Offset::ZERO),
                Some(guard) => {
                    let key = guard.key().map_err(|e| ReadError::Unavailable {
                        reason: e.to_string(),
                    })?;
                    offset_of_key(&key).map_err(|detail| ReadError::Corrupt {
                        offset: head,
                        detail,
                    })
                }
            }
        })
        .await
    }

    fn listen(&self, filter: LogFilter, bound: QueueBound) -> Listener {
        self.shared.hub.listen(filter, bound)
    }

    async fn blob(&self, hash: BlobHash) -> Result<Option<Vec<u8>>, ReadError> {
        let shared = Arc::clone(&self.shared);
        blocking(move || {
            shared
                .blobs
                .get(hash.as_bytes())
                .map(|value| value.map(|bytes| bytes.to_vec()))
                .map_err(|e| ReadError::Unavailable {
                    reason: e.to_string(),
                })
        })
        .await
    }

    async fn producer_seq(&self, producer: ProducerId) -> Result<u64, ReadError> {
        let shared = Arc::clone(&self.shared);
        blocking(move || writer::stored_producer_seq(&shared, &producer)).await
    }

    async fn find_command(
        &self,
        user_id: UserId,
        command_id: octo_core::CommandId,
    ) -> Result<Option<(Offset, SessionId)>, ReadError> {
        let shared = Arc::clone(&self.shared);
        blocking(move || writer::stored_command(&shared, &command_key(&user_id, &command_id))).await
    }
}
