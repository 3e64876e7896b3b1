//! The backend-independent surface of the log: what an append carries, what comes back, how reads
//! are filtered, and the [`EventLog`] trait every backend implements.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
pub use octo_core::history::{BlobHash, BlobRef};
use octo_core::{
    Body, Command, CommandId, Event, Kind, LogEntry, Offset, ProducerId, SessionId, UserId,
};

use crate::live::{Listener, QueueBound};

/// How the producer's `seq` of a new entry is chosen (PROTOCOL.md 2.1, 14.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqSpec {
    /// The log's writer assigns the producer's next seq (the gateway and the hstry facade). A
    /// duplicate command consumes none.
    Next,
    /// The producer numbered it (a runner): a seq at or below the last appended one is skipped as
    /// a re-send; one beyond last + 1 is refused ([`AppendError::ProducerGap`]).
    Exact(u64),
}

/// An entry to append; the log assigns its offset, `ts_ms` and (with [`SeqSpec::Next`]) its seq.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub producer: ProducerId,
    pub seq: SeqSpec,
    /// Present exactly for commands: the client's idempotency key.
    pub command_id: Option<CommandId>,
    pub body: Body,
    /// Payloads the body refers to by [`BlobRef`], stored in the same atomic append.
    pub blobs: Vec<Vec<u8>>,
    /// Set this event's `cause` to the offset the batch's command (its first entry) gets: how a
    /// gateway-handled command and its derived event go in one atomic append (PROTOCOL.md 4.1).
    pub caused_by_command: bool,
}

impl NewEntry {
    /// A command from a client, its producer's seq assigned by the writer.
    pub fn command(
        user_id: UserId,
        session_id: SessionId,
        producer: ProducerId,
        command_id: CommandId,
        command: Command,
    ) -> NewEntry {
        NewEntry {
            user_id,
            session_id,
            producer,
            seq: SeqSpec::Next,
            command_id: Some(command_id),
            body: Body::Command(command),
            blobs: Vec::new(),
            caused_by_command: false,
        }
    }

    /// An event.
    pub fn event(
        user_id: UserId,
        session_id: SessionId,
        producer: ProducerId,
        seq: SeqSpec,
        event: Event,
    ) -> NewEntry {
        NewEntry {
            user_id,
            session_id,
            producer,
            seq,
            command_id: None,
            body: Body::Event(event),
            blobs: Vec::new(),
            caused_by_command: false,
        }
    }

    /// This event with its `cause` set, at append, to the offset of the batch's command.
    pub fn caused_by_command(mut self) -> NewEntry {
        self.caused_by_command = true;
        self
    }

    /// The entry's kind, from its body.
    pub fn kind(&self) -> Option<Kind> {
        self.body.kind()
    }
}

/// What happened to one entry of an append, in the order of the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// Durably appended at this offset.
    Appended(Offset),
    /// The command's `(user_id, command_id)` was already in the log with the same body: nothing
    /// was appended; this is the original entry. When a batch's command is a duplicate, the rest
    /// of that batch (its derived events) is not appended either and gets [`Receipt::Skipped`].
    Duplicate {
        offset: Offset,
        session_id: SessionId,
    },
    /// Not appended: a producer seq already appended (a re-sent runner batch), or an entry that
    /// came with a duplicate command.
    Skipped,
}

impl Receipt {
    /// The offset an ack would carry, if any.
    pub fn offset(&self) -> Option<Offset> {
        match self {
            Receipt::Appended(offset) | Receipt::Duplicate { offset, .. } => Some(*offset),
            Receipt::Skipped => None,
        }
    }
}

/// Why an append failed. Nothing of the batch was appended, except possibly after
/// [`AppendError::Unavailable`] (see there).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// Caller error: reject. The entry at `index` is malformed (kind, body and command id disagree,
    /// an unknown body, more than one command in a batch, an empty batch).
    #[error("entry {index} of the batch is invalid: {reason}")]
    Invalid { index: usize, reason: String },
    /// Caller error: reject (`frame_too_large`). The encoded entry is over the limit; large
    /// payloads belong in blobs.
    #[error(
        "entry {index} is {len_bytes} bytes encoded, over the {max_bytes}-byte limit; move large payloads to blobs"
    )]
    TooLarge {
        index: usize,
        len_bytes: usize,
        max_bytes: usize,
    },
    /// Caller error: reject (`idempotency_conflict`). The command id is taken by another body.
    #[error("command {command_id} was already appended at offset {offset} with another body")]
    IdempotencyConflict {
        command_id: CommandId,
        offset: Offset,
    },
    /// Producer error: resend from `expected_seq` (`resume{from_seq}`).
    #[error("producer {producer} sent seq {got_seq}, but the next expected seq is {expected_seq}")]
    ProducerGap {
        producer: ProducerId,
        expected_seq: u64,
        got_seq: u64,
    },
    /// Transient or fatal backend trouble (`unavailable`). After a failed sync the log stays
    /// unavailable until it is reopened, and the outcome of the appends it caught is unknown: they
    /// were never acked nor shown, but the reopened log may hold them. Retrying is safe for
    /// commands (same `command_id`) and for [`SeqSpec::Exact`] events (same seq), which
    /// deduplicate; an event numbered by the writer ([`SeqSpec::Next`]) may then appear twice, so
    /// its producer reconciles against the log after a reopen.
    #[error("the log cannot append now: {reason}")]
    Unavailable { reason: String },
}

/// Why a read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The backend failed to read; retry later.
    #[error("the log cannot be read now: {reason}")]
    Unavailable { reason: String },
    /// A stored entry does not decode or breaks an invariant: a bug or a damaged disk. Stop and
    /// report; the offset names the entry.
    #[error("log entry at offset {offset} is corrupt: {detail}")]
    Corrupt { offset: Offset, detail: String },
    /// Caller error: `after` is beyond the log's head (the cursor belongs to another log).
    #[error("offset {after} is beyond the log head {head}")]
    BeyondHead { after: Offset, head: Offset },
    /// The log was closed while a subscription was live.
    #[error("the log was closed")]
    Closed,
}

/// A body type filter: an exact `type`, or a prefix written `stream.*` (PROTOCOL.md 5.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypePattern {
    Exact(String),
    Prefix(String),
}

impl TypePattern {
    /// Parses `name` or `prefix*`.
    pub fn parse(pattern: &str) -> TypePattern {
        match pattern.strip_suffix('*') {
            Some(prefix) => TypePattern::Prefix(prefix.to_owned()),
            None => TypePattern::Exact(pattern.to_owned()),
        }
    }

    /// Whether a body `type` matches.
    pub fn matches(&self, type_name: &str) -> bool {
        match self {
            TypePattern::Exact(name) => name == type_name,
            TypePattern::Prefix(prefix) => type_name.starts_with(prefix.as_str()),
        }
    }
}

/// Which entries a read or subscription wants. Every set field must match; empty means all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    pub session_id: Option<SessionId>,
    pub user_id: Option<UserId>,
    pub kind: Option<Kind>,
    /// Any of these (none: every type).
    pub types: Vec<TypePattern>,
    /// None of these (readers that fold only some types skip the rest without decoding them).
    pub skip_types: Vec<TypePattern>,
}

impl LogFilter {
    /// Every entry of the log.
    pub fn all() -> LogFilter {
        LogFilter::default()
    }

    /// One session's entries.
    pub fn session(session_id: SessionId) -> LogFilter {
        LogFilter {
            session_id: Some(session_id),
            ..LogFilter::default()
        }
    }

    /// One user's entries.
    pub fn user(user_id: UserId) -> LogFilter {
        LogFilter {
            user_id: Some(user_id),
            ..LogFilter::default()
        }
    }

    /// Whether an entry with these attributes passes.
    pub fn matches_parts(
        &self,
        kind: Kind,
        user_id: &str,
        session_id: &SessionId,
        type_name: &str,
    ) -> bool {
        self.kind.is_none_or(|wanted| wanted == kind)
            && self
                .session_id
                .as_ref()
                .is_none_or(|wanted| wanted == session_id)
            && self
                .user_id
                .as_ref()
                .is_none_or(|wanted| wanted.as_str() == user_id)
            && (self.types.is_empty() || self.types.iter().any(|t| t.matches(type_name)))
            && !self.skip_types.iter().any(|t| t.matches(type_name))
    }

    /// Whether an entry passes.
    pub fn matches(&self, entry: &LogEntry) -> bool {
        self.matches_parts(
            entry.kind,
            entry.user_id.as_str(),
            &entry.session_id,
            entry.body.type_name(),
        )
    }
}

/// A range read: entries of `filter` with `after < offset <= until` (or up to the head).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadQuery {
    pub filter: LogFilter,
    pub after: Offset,
    pub until: Option<Offset>,
    /// At most this many entries (at least 1 is used).
    pub limit: usize,
}

/// One page of a range read.
#[derive(Debug, Clone, Default)]
pub struct ReadBatch {
    /// Matching entries, oldest first.
    pub entries: Vec<Arc<LogEntry>>,
    /// Every matching entry at or below this offset is in `entries` or was before `after`; the next
    /// page starts after it. Filters that match rarely still make progress through it.
    pub scanned_through: Offset,
    /// The read reached the end of its range (`until`, or the head as of the read).
    pub reached_end: bool,
}

/// The hash that names a blob in the content-addressed store.
pub fn blob_hash(bytes: &[u8]) -> BlobHash {
    BlobHash::from_bytes(*blake3::hash(bytes).as_bytes())
}

/// The reference an entry carries in place of a payload stored as a blob (PROTOCOL.md 2.2).
pub fn blob_ref(bytes: &[u8]) -> BlobRef {
    BlobRef {
        blob: blob_hash(bytes),
        size: bytes.len() as u64,
    }
}

/// An append whose place in the log is fixed; awaiting it gives what [`EventLog::append`] would
/// (see [`EventLog::append_placed`]). Dropping it does not withdraw the batch.
pub struct PendingAppend(
    pub Pin<Box<dyn Future<Output = Result<Vec<Receipt>, AppendError>> + Send + 'static>>,
);

impl Future for PendingAppend {
    type Output = Result<Vec<Receipt>, AppendError>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl std::fmt::Debug for PendingAppend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingAppend")
    }
}

/// The log: append, read, listen. Every backend (fjall, JetStream) implements it and passes the
/// conformance suite.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends a batch atomically and returns once it is durable, with one receipt per entry.
    /// A batch holds at most one command, first, followed by the events derived from it; or only
    /// events.
    ///
    /// # Errors
    /// [`AppendError`]; nothing of the batch is appended on error.
    ///
    /// # Cancel safety
    /// Not cancel safe in effect: a dropped call may still append. Retry with the same command id.
    async fn append(&self, batch: Vec<NewEntry>) -> Result<Vec<Receipt>, AppendError>;

    /// [`append`](EventLog::append) in two steps. When this returns `Ok`, the batch's place is
    /// fixed: it lands before every batch whose append starts later, and its receipts (or the
    /// error that appended nothing) come from the returned [`PendingAppend`] once it is durable.
    /// So a caller that must keep a session's appends in order can let the next one start without
    /// waiting for this one's sync, and several share one group commit.
    ///
    /// The default waits for the whole append, which keeps the order and shares nothing.
    ///
    /// # Errors
    /// [`AppendError`] refused before the batch was placed; nothing of it is appended.
    async fn append_placed(&self, batch: Vec<NewEntry>) -> Result<PendingAppend, AppendError> {
        let outcome = self.append(batch).await;
        Ok(PendingAppend(Box::pin(std::future::ready(outcome))))
    }

    /// Reads a range. Only durable entries are returned.
    ///
    /// # Errors
    /// [`ReadError`].
    async fn read(&self, query: ReadQuery) -> Result<ReadBatch, ReadError>;

    /// The offset of the newest durable entry, 0 when empty.
    fn head(&self) -> Offset;

    /// The offset of the newest durable entry of one session, 0 when it has none.
    ///
    /// # Errors
    /// [`ReadError`].
    async fn session_head(&self, session_id: SessionId) -> Result<Offset, ReadError>;

    /// Registers a live listener: every entry of `filter` made durable after this call is queued
    /// to it, until the queue passes `bound` and the listener is marked overflowed.
    fn listen(&self, filter: LogFilter, bound: QueueBound) -> Listener;

    /// A stored blob. A blob is meaningful only through a visible entry that refers to it; callers
    /// reach blobs from entries, after the entry's owner check.
    ///
    /// # Errors
    /// [`ReadError`].
    async fn blob(&self, hash: BlobHash) -> Result<Option<Vec<u8>>, ReadError>;

    /// The last seq appended for a producer, 0 if none (the runner's `welcome.acked_seq`).
    ///
    /// # Errors
    /// [`ReadError`].
    async fn producer_seq(&self, producer: ProducerId) -> Result<u64, ReadError>;

    /// Where `(user_id, command_id)` was durably appended, if it was: the offset and session a
    /// `duplicate` ack repeats. The gateway asks before refusing a command on state, so a re-sent
    /// command whose state has moved on still gets its `duplicate` ack (PROTOCOL.md 4.1).
    ///
    /// # Errors
    /// [`ReadError`].
    async fn find_command(
        &self,
        user_id: UserId,
        command_id: CommandId,
    ) -> Result<Option<(Offset, SessionId)>, ReadError>;
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    #[test]
    fn skipped_types_are_left_out_even_when_wanted() {
        let session_id = SessionId::new();
        let filter = LogFilter {
            types: vec![TypePattern::parse("stream.*")],
            skip_types: vec![TypePattern::parse("stream.text_delta")],
            ..LogFilter::all()
        };
        let passes = |type_name| filter.matches_parts(Kind::Event, "u", &session_id, type_name);
        assert!(passes("stream.message_end"));
        assert!(!passes("stream.text_delta"));
        assert!(!passes("agent.idle"));
        let skip_only = LogFilter {
            skip_types: vec![TypePattern::parse("usage.recorded")],
            ..LogFilter::all()
        };
        assert!(skip_only.matches_parts(Kind::Event, "u", &session_id, "agent.idle"));
        assert!(!skip_only.matches_parts(Kind::Event, "u", &session_id, "usage.recorded"));
    }
}
