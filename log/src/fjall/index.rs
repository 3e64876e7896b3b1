//! The session index: `by_session` (session id ++ offset -> the entry's record, a copy), in a
//! fjall database of its own inside the log's folder.
//!
//! The index is derived from `log`, never the other way round, so it is never synced while the
//! log runs: a group's index batch is committed by a thread of its own while the writer syncs the
//! group's `log` batch, and opening the log repairs the index from `log`
//! (see [`SessionIndex::repair`]). That keeps the second copy of every entry out of the sync and off the writer's thread, and a
//! session's entries are still one contiguous range read.
//!
//! Readers never look past the log's synced watermark, so an index batch committed before its
//! group is durable is invisible, exactly like the group's own `log` batch.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, OwnedWriteBatch, PersistMode, Slice};
use octo_core::{Offset, SessionId};

use super::{offset_of_key, session_key};
use crate::record;

/// The index's folder inside the log's.
pub(super) const INDEX_DIR: &str = "by_session";

/// `meta` keys: the offset through which the index holds every entry of `log`, and the keys of
/// the last batch committed (whose group may not have been made durable).
const THROUGH: &[u8] = b"through";
const LAST_BATCH: &[u8] = b"last_batch";

/// Bytes of an index key: session id ++ offset.
const KEY_BYTES: usize = 24;

/// Entries copied from `log` per batch while repairing.
const REPAIR_BATCH_ENTRIES: usize = 4096;

/// What opening did to bring the index level with `log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexRepair {
    /// Entries of the index's last batch that `log` does not hold (their group never became
    /// durable), removed.
    pub removed: u64,
    /// Entries of `log` the index lacked, copied in.
    pub copied: u64,
    /// Whether the index was rebuilt from `log` from the start (a new index, or one too far
    /// ahead of `log` to mend).
    pub rebuilt: bool,
}

pub(super) struct SessionIndex {
    db: Database,
    pub(super) by_session: Keyspace,
    meta: Keyspace,
}

impl SessionIndex {
    /// Opens (or creates) the index in `log_path`.
    pub(super) fn open(log_path: &Path, cache_bytes: u64) -> Result<SessionIndex, fjall::Error> {
        let db = Database::builder(log_path.join(INDEX_DIR))
            .manual_journal_persist(true)
            .cache_size(cache_bytes)
            .open()?;
        let by_session = db.keyspace("by_session", KeyspaceCreateOptions::default)?;
        let meta = db.keyspace("meta", KeyspaceCreateOptions::default)?;
        Ok(SessionIndex {
            db,
            by_session,
            meta,
        })
    }

    fn through(&self) -> Result<Offset, String> {
        match self.meta.get(THROUGH).map_err(|e| e.to_string())? {
            None => Ok(Offset::ZERO),
            Some(bytes) => offset_of_key(&bytes),
        }
    }

    /// A batch of index writes for one group.
    pub(super) fn batch(&self) -> IndexBatch {
        IndexBatch {
            batch: self.db.batch(),
            by_session: self.by_session.clone(),
            meta: self.meta.clone(),
            keys: Vec::new(),
            through: Offset::ZERO,
        }
    }

    /// Brings the index to exactly the entries of `log` through `last` (the log's newest durable
    /// offset) and makes that durable.
    ///
    /// - Behind (its batches were not all written out when the process died): the missing
    ///   entries are copied from `log`.
    /// - Ahead by its last batch (written out while that group's `log` batch was not): the batch's
    ///   entries past `last` are removed; those offsets will name other entries.
    /// - Ahead by more than that cannot happen (a group's index batch is written only once the
    ///   previous group is durable); if it does, the index is rebuilt from `log`.
    pub(super) fn repair(&mut self, log: &Keyspace, last: Offset) -> Result<IndexRepair, String> {
        let mut report = IndexRepair::default();
        let mut through = self.through()?;
        if through == Offset::ZERO && self.by_session.first_key_value().is_some() {
            // Entries without a watermark: not an index this code wrote.
            self.rebuild()?;
        }
        if through > last {
            let keys = self
                .meta
                .get(LAST_BATCH)
                .map_err(|e| e.to_string())?
                .unwrap_or_default();
            let offsets = if keys.len() % KEY_BYTES == 0 {
                keys.chunks(KEY_BYTES)
                    .map(offset_of_key)
                    .collect::<Result<Vec<_>, _>>()?
            } else {
                Vec::new()
            };
            // The last batch must reach down to the log's end, or more than it is ahead.
            if offsets
                .iter()
                .min()
                .is_some_and(|lowest| *lowest <= last.successor())
            {
                let mut batch = self.db.batch();
                for (key, offset) in keys.chunks(KEY_BYTES).zip(&offsets) {
                    if *offset > last {
                        batch.remove(&self.by_session, key.to_vec());
                        report.removed += 1;
                    }
                }
                batch.insert(&self.meta, THROUGH, last.to_be_bytes());
                batch.remove(&self.meta, LAST_BATCH);
                batch.commit().map_err(|e| e.to_string())?;
            } else {
                tracing::warn!(%through, %last, "the session index is ahead of the log by more than one batch; rebuilding it");
                self.rebuild()?;
                report.rebuilt = true;
            }
            through = self.through()?;
        }
        // An empty index (new, or emptied above) is built from the whole log.
        report.rebuilt |= through == Offset::ZERO && last > Offset::ZERO;
        let mut from = through.successor();
        while from <= last {
            let mut batch = self.batch();
            for guard in log.range(from.to_be_bytes()..=last.to_be_bytes()) {
                let (key, record) = guard.into_inner().map_err(|e| e.to_string())?;
                let offset = offset_of_key(&key)?;
                let session_id = record::header(&record)
                    .map_err(|detail| format!("entry {offset}: {detail}"))?
                    .session_id;
                batch.insert(session_id, offset, record);
                if batch.len() >= REPAIR_BATCH_ENTRIES {
                    break;
                }
            }
            if batch.keys.is_empty() {
                break;
            }
            report.copied += batch.len() as u64;
            from = batch.through.successor();
            batch.commit()?;
        }
        self.db
            .persist(PersistMode::SyncAll)
            .map_err(|e| e.to_string())?;
        Ok(report)
    }

    /// Empties the index, so `repair` copies all of `log`.
    fn rebuild(&mut self) -> Result<(), String> {
        let fresh = |db: &Database, name: &str| -> Result<Keyspace, String> {
            db.keyspace(name, KeyspaceCreateOptions::default)
                .map_err(|e| e.to_string())
        };
        self.db
            .delete_keyspace(self.by_session.clone())
            .map_err(|e| e.to_string())?;
        self.db
            .delete_keyspace(self.meta.clone())
            .map_err(|e| e.to_string())?;
        self.by_session = fresh(&self.db, "by_session")?;
        self.meta = fresh(&self.db, "meta")?;
        Ok(())
    }

    /// Syncs what the index holds, so the next open has nothing to repair.
    pub(super) fn persist(&self) -> Result<(), String> {
        self.db
            .persist(PersistMode::SyncAll)
            .map_err(|e| e.to_string())
    }
}

/// One group's index writes.
pub(super) struct IndexBatch {
    batch: OwnedWriteBatch,
    by_session: Keyspace,
    meta: Keyspace,
    /// The keys written, [`KEY_BYTES`] each, recorded with the batch for `repair`.
    keys: Vec<u8>,
    through: Offset,
}

impl IndexBatch {
    pub(super) fn insert(&mut self, session_id: SessionId, offset: Offset, record: Slice) {
        let key = session_key(&session_id, offset);
        self.keys.extend_from_slice(&key);
        self.batch.insert(&self.by_session, key, record);
        self.through = self.through.max(offset);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn len(&self) -> usize {
        self.keys.len() / KEY_BYTES
    }

    /// Commits the entries with the watermark and the batch's keys, atomically.
    fn commit(mut self) -> Result<(), String> {
        self.batch
            .insert(&self.meta, THROUGH, self.through.to_be_bytes());
        self.batch.insert(&self.meta, LAST_BATCH, self.keys);
        self.batch
            .commit()
            .map_err(|e| format!("session index write failed: {e}"))
    }
}

/// The thread that commits index batches, so that a group's index write overlaps its sync.
pub(super) struct IndexWriter {
    jobs: Option<mpsc::SyncSender<IndexBatch>>,
    done: mpsc::Receiver<Result<(), String>>,
    thread: Option<JoinHandle<()>>,
}

impl IndexWriter {
    pub(super) fn start() -> std::io::Result<IndexWriter> {
        let (jobs, job_receiver) = mpsc::sync_channel::<IndexBatch>(1);
        let (done_sender, done) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("octo-log-index".to_owned())
            .spawn(move || {
                while let Ok(batch) = job_receiver.recv() {
                    if done_sender.send(batch.commit()).is_err() {
                        return;
                    }
                }
            })?;
        Ok(IndexWriter {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        })
    }

    /// Starts committing `batch`; [`IndexWriter::wait`] gives the outcome.
    pub(super) fn submit(&self, batch: IndexBatch) -> Result<(), String> {
        self.jobs
            .as_ref()
            .and_then(|jobs| jobs.send(batch).ok())
            .ok_or_else(|| "the session index writer has stopped".to_owned())
    }

    /// The outcome of the batch submitted last.
    pub(super) fn wait(&self) -> Result<(), String> {
        self.done
            .recv()
            .map_err(|_| "the session index writer has stopped".to_owned())?
    }
}

impl Drop for IndexWriter {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the session index writer panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use octo_core::event::{Notice, NoticeLevel};
    use octo_core::{Body, Event, Kind, ProducerId, UserId};

    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        log_db: Database,
        log: Keyspace,
        index: SessionIndex,
        sessions: [SessionId; 2],
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let log_db = Database::builder(dir.path()).open().expect("log db");
        let log = log_db
            .keyspace("log", KeyspaceCreateOptions::default)
            .expect("log keyspace");
        let index = SessionIndex::open(dir.path(), 1 << 20).expect("index opens");
        Fixture {
            _dir: dir,
            log_db,
            log,
            index,
            sessions: [SessionId::new(), SessionId::new()],
        }
    }

    impl Fixture {
        fn session_of(&self, offset: u64) -> SessionId {
            self.sessions[usize::from(offset.is_multiple_of(3))]
        }

        fn record(&self, offset: u64) -> Vec<u8> {
            let body = Body::Event(Event::Notice(Notice {
                level: NoticeLevel::Info,
                text: format!("entry {offset}"),
            }));
            record::encode(
                Kind::Event,
                &UserId::new("alice").expect("user"),
                &self.session_of(offset),
                &ProducerId::new("gw:test").expect("producer"),
                None,
                &body,
            )
            .expect("encodes")
        }

        /// Writes `offsets` to `log` only.
        fn log_entries(&self, offsets: std::ops::RangeInclusive<u64>) {
            let mut batch = self.log_db.batch();
            for offset in offsets {
                batch.insert(&self.log, offset.to_be_bytes(), self.record(offset));
            }
            batch.commit().expect("log batch");
        }

        /// Writes `offsets` to the index as one batch, as the writer's index thread does.
        fn index_batch(&self, offsets: std::ops::RangeInclusive<u64>) {
            let mut batch = self.index.batch();
            for offset in offsets {
                let at = Offset::new(offset).expect("offset");
                batch.insert(
                    self.session_of(offset),
                    at,
                    Slice::from(self.record(offset)),
                );
            }
            batch.commit().expect("index batch");
        }

        /// Every (offset, record) of the index, in key order, checked against `log`'s copy.
        fn indexed(&self) -> Vec<u64> {
            let mut offsets = Vec::new();
            for session_id in self.sessions {
                let range =
                    session_key(&session_id, Offset::ZERO)..=session_key(&session_id, Offset::MAX);
                for guard in self.index.by_session.range(range) {
                    let (key, value) = guard.into_inner().expect("index entry");
                    let offset = offset_of_key(&key).expect("key").get();
                    assert_eq!(
                        self.session_of(offset),
                        session_id,
                        "{offset} in its session"
                    );
                    assert_eq!(&value[..], &self.record(offset)[..], "{offset} is a copy");
                    offsets.push(offset);
                }
            }
            offsets.sort_unstable();
            offsets
        }
    }

    /// Repairs the index through `last` and checks the report (`[removed, copied]`, `rebuilt`)
    /// and that the index then holds exactly the log's entries 1..=`last`.
    fn repaired(f: &mut Fixture, last: u64, [removed, copied]: [u64; 2], rebuilt: bool) {
        let through = Offset::new(last).expect("offset");
        let report = f.index.repair(&f.log, through).expect("repairs");
        let expected = IndexRepair {
            removed,
            copied,
            rebuilt,
        };
        assert_eq!(report, expected, "repair through {last}");
        assert_eq!(f.indexed(), (1..=last).collect::<Vec<_>>());
    }

    #[test]
    fn an_empty_index_is_built_from_the_whole_log() {
        let mut f = fixture();
        f.log_entries(1..=10);
        repaired(&mut f, 10, [0, 10], true);
        // Level with the log: nothing more to do.
        repaired(&mut f, 10, [0, 0], false);
    }

    #[test]
    fn an_index_behind_the_log_gets_the_missing_entries() {
        let mut f = fixture();
        f.log_entries(1..=10);
        f.index_batch(1..=4);
        f.index_batch(5..=6);
        repaired(&mut f, 10, [0, 4], false);
    }

    #[test]
    fn an_index_ahead_by_its_last_batch_loses_what_the_log_lost() {
        let mut f = fixture();
        f.log_entries(1..=10);
        f.index_batch(1..=8);
        f.index_batch(9..=10);
        // The group 11..=12 reached the index's journal, and the process died before the log's
        // batch of it reached the disk.
        f.index_batch(11..=12);
        repaired(&mut f, 10, [2, 0], false);
        // The offsets the index dropped are free for the entries the log gives them next.
        f.log_entries(11..=11);
        repaired(&mut f, 11, [0, 1], false);
    }

    #[test]
    fn an_index_ahead_by_more_than_one_batch_is_rebuilt() {
        let mut f = fixture();
        f.log_entries(1..=6);
        f.index_batch(1..=8);
        f.index_batch(9..=12);
        repaired(&mut f, 6, [0, 6], true);
    }
}
