//! Where projections keep their state: one fjall database beside the log, a keyspace per
//! projection version, and a `meta` keyspace with each one's applied offset.
//!
//! Projections are derived data, so their batches are not synced: a crash loses at most recent
//! progress, and since state and applied offset are written in one atomic batch, the projector
//! re-applies from the last committed offset. Nothing is lost, nothing applied twice.

use std::any::Any;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use fjall::{Database, Keyspace, KeyspaceCreateOptions};
use octo_core::Offset;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Projection;

/// Why the projection store failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Stop: fjall failed (disk, permissions, another process holds the folder).
    #[error("projection store at {path}: {detail}")]
    Storage { path: PathBuf, detail: String },
    /// Stop: stored state does not decode (a bug, or a version bump that was forgotten).
    #[error("projection {projection}: stored state is damaged: {detail}")]
    Corrupt { projection: String, detail: String },
}

/// One stored key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// The projections' database.
#[derive(Clone)]
pub struct ProjectionStore {
    db: Database,
    meta: Keyspace,
    path: PathBuf,
}

fn keyspace_name<P: Projection>() -> String {
    format!("{}.v{}", P::NAME, P::VERSION)
}

impl ProjectionStore {
    /// Opens (or creates) the store. Blocking.
    ///
    /// # Errors
    /// [`StoreError::Storage`].
    pub fn open(path: impl AsRef<Path>) -> Result<ProjectionStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let storage = |e: fjall::Error| StoreError::Storage {
            path: path.clone(),
            detail: e.to_string(),
        };
        std::fs::create_dir_all(&path).map_err(|e| StoreError::Storage {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let db = Database::builder(&path).open().map_err(storage)?;
        let meta = db
            .keyspace("meta", KeyspaceCreateOptions::default)
            .map_err(storage)?;
        Ok(ProjectionStore { db, meta, path })
    }

    fn storage(&self, e: &impl std::fmt::Display) -> StoreError {
        StoreError::Storage {
            path: self.path.clone(),
            detail: e.to_string(),
        }
    }

    /// The keyspace of a projection's current version, created empty if new: the projection
    /// rebuilds from offset 0 into it. Keyspaces of older versions stay until
    /// [`ProjectionStore::retire_older`] swaps them out once the new one has caught up.
    ///
    /// # Errors
    /// [`StoreError::Storage`].
    pub fn keyspace<P: Projection>(&self) -> Result<Keyspace, StoreError> {
        self.db
            .keyspace(&keyspace_name::<P>(), KeyspaceCreateOptions::default)
            .map_err(|e| self.storage(&e))
    }

    /// Drops the keyspaces of a projection's older versions: called once the current version
    /// has caught up with the log, so until then an older binary could still open its own.
    ///
    /// # Errors
    /// [`StoreError::Storage`].
    pub fn retire_older<P: Projection>(&self) -> Result<(), StoreError> {
        let name = keyspace_name::<P>();
        let prefix = format!("{}.v", P::NAME);
        for old in self.db.list_keyspace_names() {
            let old: &str = old.as_ref();
            if old.starts_with(&prefix) && old != name {
                tracing::info!(
                    projection = P::NAME,
                    old,
                    "dropping an older projection version"
                );
                let handle = self
                    .db
                    .keyspace(old, KeyspaceCreateOptions::default)
                    .map_err(|e| self.storage(&e))?;
                self.db
                    .delete_keyspace(handle)
                    .map_err(|e| self.storage(&e))?;
                self.meta.remove(old).map_err(|e| self.storage(&e))?;
            }
        }
        Ok(())
    }

    /// Drops a projection's current state and applied offset, so its projector rebuilds it from
    /// offset 0 (`octoctl projections rebuild`, with the server stopped).
    ///
    /// # Errors
    /// [`StoreError::Storage`].
    pub fn reset<P: Projection>(&self) -> Result<(), StoreError> {
        let name = keyspace_name::<P>();
        let handle = self.keyspace::<P>()?;
        self.db
            .delete_keyspace(handle)
            .map_err(|e| self.storage(&e))?;
        self.meta.remove(name).map_err(|e| self.storage(&e))?;
        Ok(())
    }

    /// A consistent read of every projection's state and applied offset at one moment.
    pub fn snapshot(&self) -> StoreSnapshot {
        StoreSnapshot {
            inner: self.db.snapshot(),
            meta: self.meta.clone(),
        }
    }

    /// The offset a projection has applied (0: nothing).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn applied<P: Projection>(&self) -> Result<Offset, StoreError> {
        let stored = self
            .meta
            .get(keyspace_name::<P>())
            .map_err(|e| self.storage(&e))?;
        match stored {
            None => Ok(Offset::ZERO),
            Some(bytes) => {
                let corrupt = || StoreError::Corrupt {
                    projection: P::NAME.to_owned(),
                    detail: "applied offset is not 8 bytes".to_owned(),
                };
                let raw: [u8; 8] = bytes.as_ref().try_into().map_err(|_| corrupt())?;
                Offset::from_be_bytes(raw).map_err(|_| corrupt())
            }
        }
    }

    /// Applies `entries` (in offset order, all above the applied offset) to a projection and
    /// commits state and applied offset in one atomic batch.
    ///
    /// # Errors
    /// [`StoreError`]; nothing is committed then.
    ///
    /// # Panics
    /// If the entries are not above the applied offset and increasing: the caller's bug.
    pub fn apply<'e, P: Projection>(
        &self,
        projection: &P,
        keyspace: &Keyspace,
        entries: impl IntoIterator<Item = &'e octo_core::LogEntry>,
    ) -> Result<Offset, StoreError> {
        self.apply_through(projection, keyspace, entries, None)
    }

    /// As [`ProjectionStore::apply`], and with `through` the applied offset becomes at least
    /// that: the log was read up to it and held nothing else for this projection (entries of
    /// types it does not fold, skipped unread).
    ///
    /// # Errors
    /// [`StoreError`]; nothing is committed then.
    ///
    /// # Panics
    /// If the entries are not above the applied offset and increasing, or one is above
    /// `through`: the caller's bug.
    pub fn apply_through<'e, P: Projection>(
        &self,
        projection: &P,
        keyspace: &Keyspace,
        entries: impl IntoIterator<Item = &'e octo_core::LogEntry>,
        through: Option<Offset>,
    ) -> Result<Offset, StoreError> {
        let mut applied = self.applied::<P>()?;
        let mut txn = Txn::new(keyspace, applied);
        for entry in entries {
            assert!(
                entry.offset > applied,
                "entry {} applied after {applied}",
                entry.offset
            );
            assert!(
                through.is_none_or(|through| entry.offset <= through),
                "entry {} applied in a batch through {through:?}",
                entry.offset
            );
            projection.apply(entry, &mut txn);
            applied = entry.offset;
        }
        if let Some(through) = through {
            applied = applied.max(through);
        }
        if let Some(detail) = txn.error.take() {
            return Err(StoreError::Corrupt {
                projection: P::NAME.to_owned(),
                detail,
            });
        }
        let mut batch = self.db.batch();
        for (key, value) in txn.pending.drain() {
            match value {
                Pending::Bytes(value) => batch.insert(keyspace, key, value),
                Pending::Value { value, encode } => match encode(value.as_ref()) {
                    Ok(bytes) => batch.insert(keyspace, key, bytes),
                    Err(detail) => {
                        return Err(StoreError::Corrupt {
                            projection: P::NAME.to_owned(),
                            detail,
                        });
                    }
                },
                // Read, decoded and kept, not changed: nothing to write.
                Pending::Clean(_) => {}
                // A key written and deleted within the batch (a listing entry that moved
                // twice) never reached the keyspace: no tombstone for it.
                Pending::Deleted => {
                    if keyspace.contains_key(&key).map_err(|e| self.storage(&e))? {
                        batch.remove(keyspace, key);
                    }
                }
            }
        }
        batch.insert(&self.meta, keyspace_name::<P>(), applied.to_be_bytes());
        batch.commit().map_err(|e| self.storage(&e))?;
        Ok(applied)
    }

    /// Folds `entries` into a transaction and drops it without committing: what a crash in the
    /// middle of a batch leaves behind (nothing). For crash tests.
    #[doc(hidden)]
    pub fn apply_uncommitted<'e, P: Projection>(
        &self,
        projection: &P,
        keyspace: &Keyspace,
        entries: impl IntoIterator<Item = &'e octo_core::LogEntry>,
    ) {
        let Ok(applied) = self.applied::<P>() else {
            return;
        };
        let mut txn = Txn::new(keyspace, applied);
        for entry in entries {
            projection.apply(entry, &mut txn);
        }
    }

    /// Every key and value of a projection's state, for tests and diagnostics.
    ///
    /// # Errors
    /// [`StoreError::Storage`].
    pub fn dump(keyspace: &Keyspace) -> Result<Vec<KeyValue>, StoreError> {
        keyspace
            .iter()
            .map(|guard| {
                guard
                    .into_inner()
                    .map(|(key, value)| (key.to_vec(), value.to_vec()))
                    .map_err(|e| StoreError::Storage {
                        path: PathBuf::new(),
                        detail: e.to_string(),
                    })
            })
            .collect()
    }
}

/// A value written in a transaction. Typed values stay decoded until the commit, so a record
/// that many entries of one batch update (a session's summary, a streaming draft) is decoded and
/// encoded once per batch, not once per entry.
enum Pending {
    Bytes(Vec<u8>),
    Value {
        value: Box<dyn Any + Send>,
        encode: fn(&dyn Any) -> Result<Vec<u8>, String>,
    },
    /// A committed value this transaction read and decoded, kept so the next read of it (a
    /// session's model, read for every entry of the session) neither looks it up nor decodes it
    /// again. Never written.
    Clean(Box<dyn Any + Send>),
    Deleted,
}

fn encode_as<T: Serialize + 'static>(value: &dyn Any) -> Result<Vec<u8>, String> {
    let value = value
        .downcast_ref::<T>()
        .ok_or_else(|| "a pending value changed type".to_owned())?;
    octo_core::codec::to_msgpack(value).map_err(|e| format!("value does not encode: {e}"))
}

/// A projection's view of its state while it applies entries: reads see its own writes.
///
/// The writes wait in a hash map: a page folds a few thousand of them, their keys share long
/// prefixes (a tag and a session id), and an ordered map spent more time comparing keys than the
/// folds spent folding. Only the rare range scan ([`Txn::keys_in`]) needs an order, and sorts.
pub struct Txn<'a> {
    keyspace: &'a Keyspace,
    /// The applied offset the committed state is at.
    committed: Offset,
    pending: PendingMap,
    error: Option<String>,
}

type PendingMap = HashMap<Vec<u8>, Pending, foldhash::fast::RandomState>;

/// Writes a transaction makes room for at the start (a page of entries makes a few thousand).
const PENDING_CAPACITY: usize = 4_096;
/// A map that grew past this (one huge batch) is not kept for the next transaction.
const PENDING_KEPT_MAX: usize = 65_536;

thread_local! {
    /// The last transaction's emptied map, for the next one on this thread: a map with room
    /// for a page is a few hundred KiB, and allocating it fresh per page cost a tenth of a
    /// small projection's time in page faults.
    static SPARE_PENDING: std::cell::RefCell<Option<PendingMap>> =
        const { std::cell::RefCell::new(None) };
}

impl<'a> Txn<'a> {
    pub(crate) fn new(keyspace: &'a Keyspace, committed: Offset) -> Txn<'a> {
        Txn {
            keyspace,
            committed,
            pending: SPARE_PENDING
                .with(|spare| spare.borrow_mut().take())
                .unwrap_or_else(|| {
                    HashMap::with_capacity_and_hasher(PENDING_CAPACITY, Default::default())
                }),
            error: None,
        }
    }

    /// The offset the committed state has applied: a key made from a higher offset (an entry
    /// of this batch) can only have been written by this transaction.
    pub fn committed_through(&self) -> Offset {
        self.committed
    }

    pub(crate) fn fail(&mut self, detail: String) {
        if self.error.is_none() {
            self.error = Some(detail);
        }
    }

    /// The value at `key`, as written by this transaction or committed before.
    pub fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        match self.pending.get(key) {
            Some(Pending::Bytes(bytes)) => return Some(bytes.clone()),
            Some(Pending::Deleted) => return None,
            Some(Pending::Value { value, encode }) => {
                return match encode(value.as_ref()) {
                    Ok(bytes) => Some(bytes),
                    Err(detail) => {
                        self.fail(detail);
                        None
                    }
                };
            }
            Some(Pending::Clean(_)) | None => {}
        }
        match self.keyspace.get(key) {
            Ok(value) => value.map(|bytes| bytes.to_vec()),
            Err(e) => {
                self.fail(format!("read failed: {e}"));
                None
            }
        }
    }

    /// Writes `value` at `key`.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.pending.insert(key, Pending::Bytes(value));
    }

    /// Removes `key`.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.pending.insert(key, Pending::Deleted);
    }

    /// Removes `key`, which this transaction wrote and was never committed (the caller knows,
    /// see [`Txn::committed_through`]): the write is dropped, with nothing to look up or delete
    /// in the keyspace at the commit.
    pub fn forget(&mut self, key: &[u8]) {
        self.pending.remove(key);
    }

    /// Decodes the msgpack value at `key` (or clones it, when this transaction wrote it or
    /// read it before).
    pub fn get_value<T: DeserializeOwned + Serialize + Clone + Send + 'static>(
        &mut self,
        key: &[u8],
    ) -> Option<T> {
        match self.pending.get(key) {
            Some(Pending::Value { value, .. } | Pending::Clean(value)) => {
                if let Some(value) = value.downcast_ref::<T>() {
                    return Some(value.clone());
                }
                self.decode_at(key)
            }
            Some(Pending::Bytes(_) | Pending::Deleted) => self.decode_at(key),
            None => {
                let value: T = self.decode_at(key)?;
                self.pending
                    .insert(key.to_vec(), Pending::Clean(Box::new(value.clone())));
                Some(value)
            }
        }
    }

    /// Writes `value` at `key`; it is encoded as msgpack when the transaction commits.
    pub fn put_value<T: Serialize + Clone + Send + 'static>(&mut self, key: Vec<u8>, value: &T) {
        self.put_owned(key, value.clone());
    }

    /// As [`Txn::put_value`], taking the value instead of cloning it.
    pub fn put_owned<T: Serialize + Send + 'static>(&mut self, key: Vec<u8>, value: T) {
        self.pending.insert(
            key,
            Pending::Value {
                value: Box::new(value),
                encode: encode_as::<T>,
            },
        );
    }

    /// The value at `key` to change and then write back with [`Txn::put_owned`]: moved out of
    /// this transaction when it wrote or read it (no clone), else decoded. Until it is put
    /// back, reads of `key` in this transaction see the value as committed, so put it back,
    /// changed or not, before anything else reads it.
    pub fn take_value<T: DeserializeOwned + Serialize + Send + 'static>(
        &mut self,
        key: &[u8],
    ) -> Option<T> {
        if let Some(Pending::Value { value, .. } | Pending::Clean(value)) = self.pending.get(key)
            && value.is::<T>()
            && let Some(Pending::Value { value, .. } | Pending::Clean(value)) =
                self.pending.remove(key)
            && let Ok(value) = value.downcast::<T>()
        {
            return Some(*value);
        }
        self.decode_at(key)
    }

    /// The value at `key` decoded from its bytes (written here or committed).
    fn decode_at<T: DeserializeOwned>(&mut self, key: &[u8]) -> Option<T> {
        let bytes = self.get(key)?;
        match octo_core::codec::from_msgpack(&bytes) {
            Ok(value) => Some(value),
            Err(e) => {
                self.fail(format!("value does not decode: {e}"));
                None
            }
        }
    }

    /// Keys in `[from, to)`, committed or written here, not deleted here, in order.
    pub fn keys_in(&mut self, from: &[u8], to: &[u8]) -> Vec<Vec<u8>> {
        let mut keys = BTreeSet::new();
        for guard in self.keyspace.range(from..to) {
            match guard.key() {
                Ok(key) => {
                    keys.insert(key.to_vec());
                }
                Err(e) => {
                    self.fail(format!("scan failed: {e}"));
                    return Vec::new();
                }
            }
        }
        let in_range = |key: &[u8]| from <= key && key < to;
        for (key, value) in &self.pending {
            if !in_range(key) {
                continue;
            }
            match value {
                Pending::Deleted => keys.remove(key),
                Pending::Bytes(_) | Pending::Value { .. } | Pending::Clean(_) => {
                    keys.insert(key.clone())
                }
            };
        }
        keys.into_iter().collect()
    }
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        let mut pending = std::mem::take(&mut self.pending);
        if pending.capacity() <= PENDING_KEPT_MAX {
            pending.clear();
            SPARE_PENDING.with(|spare| *spare.borrow_mut() = Some(pending));
        }
    }
}

/// Every projection's state and applied offset at one moment (a fjall snapshot): what one read
/// that must be consistent across projections uses (`snapshot` of PROTOCOL.md 5.5).
pub struct StoreSnapshot {
    inner: fjall::Snapshot,
    meta: Keyspace,
}

impl StoreSnapshot {
    /// The fjall snapshot, for reads of a projection's keyspace.
    pub fn inner(&self) -> &fjall::Snapshot {
        &self.inner
    }

    /// The offset a projection had applied at the snapshot.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn applied<P: Projection>(&self) -> Result<Offset, StoreError> {
        use fjall::Readable as _;
        let corrupt = |detail: String| StoreError::Corrupt {
            projection: P::NAME.to_owned(),
            detail,
        };
        match self
            .inner
            .get(&self.meta, keyspace_name::<P>())
            .map_err(|e| corrupt(e.to_string()))?
        {
            None => Ok(Offset::ZERO),
            Some(bytes) => {
                let raw: [u8; 8] = bytes
                    .as_ref()
                    .try_into()
                    .map_err(|_| corrupt("applied offset is not 8 bytes".to_owned()))?;
                Offset::from_be_bytes(raw).map_err(|e| corrupt(e.to_string()))
            }
        }
    }
}

/// A failure of the store's storage, for the projections' read functions.
pub(crate) fn storage(e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage {
        path: PathBuf::new(),
        detail: e.to_string(),
    }
}

impl StoreError {
    /// State of projection `P` that does not decode.
    pub(crate) fn corrupt<P: Projection>(e: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            projection: P::NAME.to_owned(),
            detail: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(keyspace: &Keyspace, entries: &[(&[u8], &[u8])]) {
        for (key, value) in entries {
            keyspace.insert(*key, *value).expect("writes");
        }
    }

    #[test]
    fn reads_kept_decoded_are_never_written_and_never_stale() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = ProjectionStore::open(dir.path()).expect("opens");
        let keyspace = store
            .db
            .keyspace("t", KeyspaceCreateOptions::default)
            .expect("keyspace");
        let seven = octo_core::codec::to_msgpack(&7u64).expect("encodes");
        committed(&keyspace, &[(b"a", &seven), (b"b", &seven)]);

        let mut txn = Txn::new(&keyspace, Offset::ZERO);
        assert_eq!(txn.get_value::<u64>(b"a"), Some(7));
        assert!(matches!(
            txn.pending.get(&b"a"[..]),
            Some(Pending::Clean(_))
        ));
        // Read again from the kept value; the raw bytes are still the committed ones.
        assert_eq!(txn.get_value::<u64>(b"a"), Some(7));
        assert_eq!(txn.get(b"a"), Some(seven.clone()));
        // Taken and put back changed: the change is written.
        let mut a: u64 = txn.take_value(b"a").expect("present");
        a += 1;
        txn.put_owned(b"a".to_vec(), a);
        assert_eq!(txn.get_value::<u64>(b"a"), Some(8));
        // Read only: kept, and nothing to write.
        assert_eq!(txn.get_value::<u64>(b"b"), Some(7));
        assert_eq!(txn.get_value::<u64>(b"missing"), None);
        // A write after a read wins.
        txn.put_value(b"b".to_vec(), &9u64);
        assert_eq!(txn.get_value::<u64>(b"b"), Some(9));
        txn.delete(b"b".to_vec());
        assert_eq!(txn.get_value::<u64>(b"b"), None);
        assert_eq!(
            txn.keys_in(b"a", b"c"),
            vec![b"a".to_vec()],
            "a deleted key is not listed, a read one is"
        );

        let mut txn = Txn::new(&keyspace, Offset::ZERO);
        assert_eq!(txn.get_value::<u64>(b"a"), Some(7));
        let pending: Vec<bool> = txn
            .pending
            .values()
            .map(|p| matches!(p, Pending::Clean(_)))
            .collect();
        assert_eq!(pending, [true], "a read is kept, not pending as a write");
    }
}
