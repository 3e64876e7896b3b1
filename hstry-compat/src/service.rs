//! The three services of hstry's API, answered from the log and the projections (HSTRY_API.md 6
//! and 8).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fjall::Keyspace;
use octo_core::history::{
    HistoryAttachmentAdded, HistoryConversationDeleted, HistoryConversationTouched,
    HistoryConversationUpdated, HistoryConversationUpserted, HistoryMessageUpserted,
    HistoryTagAdded, HistoryTagRemoved, TextOrBlob,
};
use octo_core::{
    AttachmentId, Body, Event, LogEntry, MessageId, Offset, ProducerId, SessionId, UserId,
};
use octo_log::{EventLog, LogFilter, NewEntry, ReadQuery, SeqSpec, blob_ref};
use octo_projections::history::History;
use octo_projections::history::conversations::{ConversationRecord, Conversations, Origin};
use octo_projections::sessions::Sessions;
use octo_projections::{ProjectionHandle, ProjectionStore, StoreError, StoreSnapshot, WaitError};
use rayon::prelude::*;
use tonic::{Request, Response, Status};

use crate::content;
use crate::convert;
use crate::proto;
use crate::proto::read_service_server::ReadService;
use crate::proto::search_service_server::SearchService;
use crate::proto::write_service_server::WriteService;
use crate::wire;
use octo_projections::search::{HitFilter, SearchError, SearchQuery, Searcher};

/// Text fields longer than this go to the blob store, so every entry stays under
/// `max_entry_bytes` (PROTOCOL.md 2.2).
pub const INLINE_TEXT_BYTES_MAX: usize = 128 << 10;

/// How long a write waits for the projection to apply it, and a read for it to catch up.
pub const READ_YOUR_WRITES: Duration = Duration::from_secs(10);

/// The facade: one per served user.
pub struct Hstry {
    log: Arc<dyn EventLog>,
    store: ProjectionStore,
    history: Arc<ProjectionHandle<History>>,
    sessions: Arc<ProjectionHandle<Sessions>>,
    searcher: Searcher,
    user: UserId,
    producer: ProducerId,
    /// Writes are checked and appended one at a time, so "is this message unchanged?" and the
    /// append cannot race, and versions are distinct (HSTRY_API.md 8).
    writes: tokio::sync::Mutex<()>,
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

/// A session's messages as hstry returns them, encoded for a `GetMessagesResponse`; the last
/// `limit` when given. A fork's inherited messages get ids of their own (HSTRY_API.md 8).
fn session_messages(
    snapshot: &StoreSnapshot,
    history: &Keyspace,
    sessions: &Keyspace,
    record: &ConversationRecord,
    limit: Option<usize>,
) -> Result<Vec<Vec<u8>>, Status> {
    let total = record.message_count as usize;
    let fork = record.id.as_uuid();
    let convert = |idx: usize, message: &octo_core::Message, buf: &mut Vec<u8>| {
        let id = if idx < record.inherited as usize {
            convert::inherited_message_id(&fork, &message.id.as_uuid())
        } else {
            message.id.as_uuid()
        };
        wire::encode_message_into(
            &convert::session_message(record, message, i32::try_from(idx).unwrap_or(i32::MAX), id),
            buf,
        );
    };
    match limit {
        Some(limit) if limit < total => {
            let page = History::page(snapshot, history, sessions, &record.id, None, limit)
                .map_err(store_failed)?;
            let first_idx = total.saturating_sub(page.messages.len());
            let mut buf = Vec::new();
            for (n, (_, message)) in page.messages.iter().enumerate() {
                convert(first_idx + n, message, &mut buf);
            }
            Ok(vec![buf])
        }
        _ => {
            let stored = History::view_stored(snapshot, history, sessions, &record.id)
                .map_err(store_failed)?;
            let first_idx = total.saturating_sub(stored.len());
            // A run of messages per buffer: thousands of small buffers, made on the pool's
            // threads and freed on another after sending, kept the allocator taking fresh pages
            // for them (runs cut the page faults of `octo-bench hstry` by a quarter).
            stored
                .par_chunks(ENCODED_RUN)
                .enumerate()
                .map(|(chunk, run)| {
                    let mut buf = Vec::new();
                    for (n, (_, stored)) in run.iter().enumerate() {
                        let message = stored.decode().map_err(store_failed)?;
                        convert(first_idx + chunk * ENCODED_RUN + n, &message, &mut buf);
                    }
                    Ok(buf)
                })
                .collect()
        }
    }
}

/// Messages encoded into one buffer of a whole conversation's `GetMessages`.
const ENCODED_RUN: usize = 128;

fn store_failed(e: StoreError) -> Status {
    Status::internal(format!("history projection: {e}"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A selector of GetConversation, GetMessages and GetMessageEvents.
struct Selector<'a> {
    source_id: &'a str,
    external_id: &'a str,
    readable_id: &'a str,
    conversation_id: &'a str,
    workspace: &'a str,
}

/// SQL LIKE as SQLite does it: `%` any run, `_` any one character, ASCII case-insensitive.
fn like(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('%', rest)) => (0..=t.len()).any(|skip| go(rest, &t[skip..])),
            Some(('_', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((c, rest)) => t
                .split_first()
                .is_some_and(|(d, more)| c.eq_ignore_ascii_case(d) && go(rest, more)),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

/// hstry's source filter: the id itself, or any id of its `id-` family.
pub fn source_matches(filter: &str, source_id: &str) -> bool {
    filter.is_empty()
        || source_id == filter
        || source_id
            .strip_prefix(filter)
            .is_some_and(|rest| rest.starts_with('-'))
}

fn workspace_matches(filter: &str, workspace: Option<&str>) -> bool {
    if filter.is_empty() {
        return true;
    }
    let workspace = workspace.unwrap_or_default();
    if filter.contains(['%', '_']) {
        like(filter, workspace)
    } else {
        workspace == filter
    }
}

/// Moves a long text to the blob store.
fn text_or_blob(text: String, blobs: &mut Vec<Vec<u8>>) -> TextOrBlob {
    if text.len() > INLINE_TEXT_BYTES_MAX {
        let reference = blob_ref(text.as_bytes());
        blobs.push(text.into_bytes());
        TextOrBlob::Blob(reference)
    } else {
        TextOrBlob::Inline(text)
    }
}

impl Hstry {
    /// The facade for `user`, appending as `hstry:<node_id>`.
    ///
    /// # Errors
    /// When `node_id` does not make a valid producer id.
    pub fn new(
        log: Arc<dyn EventLog>,
        store: ProjectionStore,
        history: Arc<ProjectionHandle<History>>,
        sessions: Arc<ProjectionHandle<Sessions>>,
        searcher: Searcher,
        user: UserId,
        node_id: &str,
    ) -> anyhow::Result<Hstry> {
        Ok(Hstry {
            log,
            store,
            history,
            sessions,
            searcher,
            user,
            producer: ProducerId::new(format!("hstry:{node_id}"))?,
            writes: tokio::sync::Mutex::new(()),
        })
    }

    /// The user this facade serves.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// Waits until the history projection holds every entry durable now, so a read sees every
    /// acknowledged write (also those made through the WebSocket).
    async fn catch_up(&self) -> Result<(), Status> {
        let head = self.log.head();
        self.history
            .wait_for(head, READ_YOUR_WRITES)
            .await
            .map_err(|e| match e {
                WaitError::Timeout { .. } => Status::unavailable(e.to_string()),
                _ => Status::internal(e.to_string()),
            })
    }

    fn conversations<'a>(&'a self, snapshot: &'a StoreSnapshot) -> Conversations<'a> {
        Conversations {
            snapshot,
            keyspace: self.history.keyspace(),
        }
    }

    fn owned(&self, record: Option<ConversationRecord>) -> Option<ConversationRecord> {
        record.filter(|record| record.owner == self.user)
    }

    /// HSTRY_API.md 6.8: any given identifier matches; source and workspace narrow; ties go to the
    /// UUID, then external id, platform id, readable id, then the most recently updated.
    fn resolve(
        &self,
        conversations: &Conversations<'_>,
        selector: &Selector<'_>,
    ) -> Result<Option<ConversationRecord>, Status> {
        let mut candidates: Vec<(u8, ConversationRecord)> = Vec::new();
        if !selector.conversation_id.is_empty()
            && let Ok(id) = SessionId::parse(selector.conversation_id)
            && let Some(record) = conversations.get(&id).map_err(store_failed)?
        {
            candidates.push((0, record));
        }
        if !selector.external_id.is_empty() {
            for record in conversations
                .by_ident(selector.external_id)
                .map_err(store_failed)?
            {
                let rank = if record.external_id == selector.external_id {
                    1
                } else {
                    2
                };
                candidates.push((rank, record));
            }
        }
        if !selector.readable_id.is_empty() {
            for record in conversations
                .by_readable(selector.readable_id)
                .map_err(store_failed)?
            {
                candidates.push((3, record));
            }
        }
        candidates.retain(|(_, record)| {
            record.owner == self.user
                && (selector.source_id.is_empty() || record.source_id == selector.source_id)
                && (selector.workspace.is_empty()
                    || record.workspace.as_deref() == Some(selector.workspace))
        });
        candidates.sort_by(|(a_rank, a), (b_rank, b)| {
            a_rank
                .cmp(b_rank)
                .then(b.active_ms().cmp(&a.active_ms()))
                .then(a.id.cmp(&b.id))
        });
        Ok(candidates.into_iter().next().map(|(_, record)| record))
    }

    /// Catches up, then resolves a read's selector in one store snapshot (kept for the rest of
    /// the read).
    async fn read_target(
        &self,
        selector: Selector<'_>,
    ) -> Result<(StoreSnapshot, Option<ConversationRecord>), Status> {
        self.catch_up().await?;
        let snapshot = self.store.snapshot();
        let record = self.resolve(&self.conversations(&snapshot), &selector)?;
        Ok((snapshot, record))
    }

    /// The conversation a write names by (source id, external id or platform id).
    fn find_for_write(
        &self,
        conversations: &Conversations<'_>,
        source_id: &str,
        external_id: &str,
    ) -> Result<Option<ConversationRecord>, Status> {
        if let Some(record) = self.owned(
            conversations
                .by_write_key(source_id, external_id)
                .map_err(store_failed)?,
        ) {
            return Ok(Some(record));
        }
        if external_id.is_empty() {
            return Ok(None);
        }
        let mut found: Vec<ConversationRecord> = conversations
            .by_ident(external_id)
            .map_err(store_failed)?
            .into_iter()
            .filter(|record| record.owner == self.user && record.source_id == source_id)
            .collect();
        found.sort_by(|a, b| b.active_ms().cmp(&a.active_ms()).then(a.id.cmp(&b.id)));
        Ok(found.into_iter().next())
    }

    async fn text(&self, text: &TextOrBlob) -> Result<String, Status> {
        match text {
            TextOrBlob::Inline(text) => Ok(text.clone()),
            TextOrBlob::Blob(reference) => {
                let bytes = self
                    .log
                    .blob(reference.blob)
                    .await
                    .map_err(internal)?
                    .ok_or_else(|| {
                        Status::internal(format!("blob {} is missing", reference.blob))
                    })?;
                String::from_utf8(bytes).map_err(internal)
            }
        }
    }

    async fn written(&self, message: &HistoryMessageUpserted) -> Result<proto::Message, Status> {
        let content = self.text(&message.content).await?;
        let parts = self.text(&message.parts_json).await?;
        Ok(convert::written_message(message, content, parts))
    }

    /// A conversation's messages in idx order, encoded for a `GetMessagesResponse`; the last
    /// `limit` when given.
    async fn messages(
        &self,
        snapshot: StoreSnapshot,
        record: &ConversationRecord,
        limit: Option<usize>,
    ) -> Result<Vec<Vec<u8>>, Status> {
        match record.origin {
            Origin::Written => {
                let stored = self
                    .conversations(&snapshot)
                    .written_messages(&record.id, limit)
                    .map_err(store_failed)?;
                let mut messages = Vec::with_capacity(stored.len());
                for message in &stored {
                    messages.push(wire::encode_message(&self.written(message).await?));
                }
                Ok(messages)
            }
            Origin::Session => {
                let history = self.history.keyspace().clone();
                let sessions = self.sessions.keyspace().clone();
                let record = record.clone();
                // A whole view is thousands of messages to decode and convert: off the async
                // workers, on every core.
                tokio::task::spawn_blocking(move || {
                    session_messages(&snapshot, &history, &sessions, &record, limit)
                })
                .await
                .map_err(internal)?
            }
        }
    }

    fn event(&self, session_id: SessionId, event: Event) -> NewEntry {
        NewEntry::event(
            self.user.clone(),
            session_id,
            self.producer.clone(),
            SeqSpec::Next,
            event,
        )
    }

    /// Appends one RPC's entries and waits until the history projection has applied them.
    async fn append(&self, entries: Vec<NewEntry>) -> Result<(), Status> {
        if entries.is_empty() {
            return Ok(());
        }
        let receipts = self.log.append(entries).await.map_err(|e| match e {
            octo_log::AppendError::TooLarge { .. } | octo_log::AppendError::Invalid { .. } => {
                Status::invalid_argument(e.to_string())
            }
            other => Status::unavailable(other.to_string()),
        })?;
        let last = receipts
            .iter()
            .filter_map(octo_log::Receipt::offset)
            .max()
            .unwrap_or(Offset::ZERO);
        self.history
            .wait_for(last, READ_YOUR_WRITES)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))
    }

    /// The entries for messages that are new or changed; unchanged ones are skipped.
    fn message_entries(
        &self,
        conversations: &Conversations<'_>,
        id: SessionId,
        existing: bool,
        messages: Vec<proto::Message>,
    ) -> Result<Vec<NewEntry>, Status> {
        let mut entries = Vec::new();
        // (content, parts, message id) of each idx written earlier in this request.
        let mut earlier: HashMap<i32, (TextOrBlob, TextOrBlob, MessageId)> = HashMap::new();
        for message in messages {
            let mut blobs = Vec::new();
            let parts = content::parts_json(&message.parts_json);
            let stored = content::stored_content(&message.content, &parts);
            let sent_content = (stored != message.content)
                .then(|| text_or_blob(message.content.clone(), &mut blobs));
            let stored = text_or_blob(stored, &mut blobs);
            let parts = text_or_blob(parts, &mut blobs);
            let previous = match earlier.get(&message.idx) {
                Some(previous) => Some(previous.clone()),
                None if existing => conversations
                    .written_message(&id, message.idx)
                    .map_err(store_failed)?
                    .map(|old| (old.content, old.parts_json, old.message_id)),
                None => None,
            };
            let message_id = match previous {
                Some((old_content, old_parts, _))
                    if old_content == stored && old_parts == parts =>
                {
                    continue;
                }
                Some((_, _, message_id)) => message_id,
                None => MessageId::new(),
            };
            earlier.insert(message.idx, (stored.clone(), parts.clone(), message_id));
            let upserted = HistoryMessageUpserted {
                idx: message.idx,
                message_id,
                role: content::role(&message.role),
                content: stored,
                sent_content,
                parts_json: parts,
                created_ms: message.created_at_ms,
                model: message.model,
                provider: message.provider,
                harness: message.harness,
                tokens: message.tokens,
                cost_usd: message.cost_usd.filter(|cost| cost.is_finite()),
                metadata_json: content::metadata_json(&message.metadata_json),
                sender_json: content::sender_json(&message.sender_json),
                client_id: message.client_id,
            };
            let mut entry = self.event(id, Event::HistoryMessageUpserted(upserted));
            entry.blobs = blobs;
            entries.push(entry);
        }
        Ok(entries)
    }

    async fn write_response(
        &self,
        id: SessionId,
        written: usize,
    ) -> Result<(String, i32, u64, u32), Status> {
        let snapshot = self.store.snapshot();
        let record = self
            .conversations(&snapshot)
            .get(&id)
            .map_err(store_failed)?
            .ok_or_else(|| {
                Status::internal("the conversation just written is not in the history")
            })?;
        Ok((
            id.to_string(),
            i32::try_from(written).unwrap_or(i32::MAX),
            record.version,
            record.message_count,
        ))
    }

    /// Takes the write lock and finds the hstry-written conversation a write names by (source
    /// id, external or platform id): NOT_FOUND when none, FAILED_PRECONDITION for an Octo session.
    async fn writable(
        &self,
        source_id: &str,
        external_id: &str,
    ) -> Result<(tokio::sync::MutexGuard<'_, ()>, ConversationRecord), Status> {
        let serial = self.writes.lock().await;
        self.catch_up().await?;
        let snapshot = self.store.snapshot();
        let record = self
            .find_for_write(&self.conversations(&snapshot), source_id, external_id)?
            .ok_or_else(|| Status::not_found("no conversation has that source and external id"))?;
        Hstry::refuse_session(&record)?;
        Ok((serial, record))
    }

    /// Takes the write lock and finds the user's conversation named by a UUID argument:
    /// INVALID_ARGUMENT for a malformed one, `None` for an unknown one.
    async fn by_uuid(
        &self,
        field: &str,
        text: &str,
    ) -> Result<(tokio::sync::MutexGuard<'_, ()>, Option<ConversationRecord>), Status> {
        let uuid = uuid_arg(field, text)?;
        let serial = self.writes.lock().await;
        self.catch_up().await?;
        let snapshot = self.store.snapshot();
        let record = SessionId::from_bytes(*uuid.as_bytes())
            .ok()
            .map(|id| self.conversations(&snapshot).get(&id))
            .transpose()
            .map_err(store_failed)?;
        Ok((serial, self.owned(record.flatten())))
    }

    fn refuse_session(record: &ConversationRecord) -> Result<(), Status> {
        if record.origin == Origin::Session {
            return Err(Status::failed_precondition(format!(
                "conversation {} is an Octo session: it changes only through Octo's own commands",
                record.id
            )));
        }
        Ok(())
    }

    /// The entries of one session at `offsets`, read as a few range reads of its entries.
    async fn read_entries(
        &self,
        session_id: SessionId,
        offsets: &std::collections::BTreeSet<Offset>,
    ) -> Result<HashMap<Offset, Arc<LogEntry>>, Status> {
        let mut found = HashMap::with_capacity(offsets.len());
        let (Some(first), Some(last)) = (offsets.first(), offsets.last()) else {
            return Ok(found);
        };
        let mut after = Offset::new(first.get().saturating_sub(1)).map_err(internal)?;
        loop {
            let batch = self
                .log
                .read(ReadQuery {
                    filter: LogFilter::session(session_id),
                    after,
                    until: Some(*last),
                    limit: 4_096,
                })
                .await
                .map_err(internal)?;
            for entry in batch.entries {
                if offsets.contains(&entry.offset) {
                    found.insert(entry.offset, entry);
                }
            }
            after = batch.scanned_through;
            if batch.reached_end || after >= *last {
                break;
            }
        }
        if found.len() != offsets.len() {
            return Err(Status::internal("a message write is missing from the log"));
        }
        Ok(found)
    }
}

/// The read requests that name a conversation with hstry's five selector fields.
trait Selects {
    fn selector(&self) -> Selector<'_>;
}

macro_rules! selects {
    ($($request:ty),*) => {$(
        impl Selects for $request {
            fn selector(&self) -> Selector<'_> {
                Selector {
                    source_id: &self.source_id,
                    external_id: &self.external_id,
                    readable_id: &self.readable_id,
                    conversation_id: &self.conversation_id,
                    workspace: &self.workspace,
                }
            }
        }
    )*};
}

selects!(
    proto::GetConversationRequest,
    proto::GetMessagesRequest,
    proto::GetMessageEventsRequest
);

/// A UUID of any version, or INVALID_ARGUMENT.
fn uuid_arg(field: &str, text: &str) -> Result<uuid::Uuid, Status> {
    uuid::Uuid::parse_str(text)
        .map_err(|_| Status::invalid_argument(format!("{field} {text:?} is not a UUID")))
}

fn required(field: &str, text: &str) -> Result<(), Status> {
    if text.is_empty() {
        return Err(Status::invalid_argument(format!("{field} is required")));
    }
    Ok(())
}

#[tonic::async_trait]
impl WriteService for Arc<Hstry> {
    async fn write_conversation(
        &self,
        request: Request<proto::WriteConversationRequest>,
    ) -> Result<Response<proto::WriteConversationResponse>, Status> {
        let request = request.into_inner();
        let conversation = request
            .conversation
            .ok_or_else(|| Status::invalid_argument("conversation is required"))?;
        let _serial = self.writes.lock().await;
        self.catch_up().await?;
        let snapshot = self.store.snapshot();
        let conversations = self.conversations(&snapshot);
        let existing = self.owned(
            conversations
                .by_write_key(&conversation.source_id, &conversation.external_id)
                .map_err(store_failed)?,
        );
        if let Some(record) = &existing {
            Hstry::refuse_session(record)?;
        }
        let id = existing
            .as_ref()
            .map_or_else(SessionId::new, |record| record.id);
        let metadata = content::metadata_json(&conversation.metadata_json);
        let from_metadata = serde_json::from_str::<serde_json::Value>(&metadata)
            .ok()
            .and_then(|value| {
                value
                    .get("readableId")
                    .or_else(|| value.get("readable_id"))
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            });
        let readable_id = match conversation
            .readable_id
            .clone()
            .filter(|r| !r.is_empty())
            .or(from_metadata)
        {
            Some(readable) => readable,
            None => match &existing {
                Some(record) => record.readable_id.clone(),
                None => {
                    let mut failed = None;
                    let minted = octo_projections::history::readable::readable_id(
                        id.as_bytes(),
                        |candidate| match conversations.readable_taken(candidate) {
                            Ok(taken) => taken,
                            Err(e) => {
                                failed = Some(e);
                                false
                            }
                        },
                    );
                    if let Some(e) = failed {
                        return Err(store_failed(e));
                    }
                    minted
                }
            },
        };
        let created_ms = if conversation.created_at_ms <= 0 {
            now_ms()
        } else {
            conversation.created_at_ms
        };
        let upserted = HistoryConversationUpserted {
            source_id: conversation.source_id,
            external_id: conversation.external_id,
            readable_id,
            title: conversation.title,
            created_ms,
            updated_ms: conversation.updated_at_ms,
            model: conversation.model,
            provider: conversation.provider,
            workspace: conversation.workspace,
            tokens_in: conversation.tokens_in,
            tokens_out: conversation.tokens_out,
            cost_usd: conversation.cost_usd.filter(|cost| cost.is_finite()),
            metadata_json: metadata,
            harness: conversation.harness,
            platform_id: conversation.platform_id,
            parent_conversation_id: conversation.parent_conversation_id,
            parent_message_idx: conversation.parent_message_idx,
            fork_type: conversation.fork_type,
        };
        let messages =
            self.message_entries(&conversations, id, existing.is_some(), request.messages)?;
        let written = messages.len();
        let mut entries = vec![self.event(id, Event::HistoryConversationUpserted(upserted))];
        entries.extend(messages);
        drop(snapshot);
        self.append(entries).await?;
        let (conversation_id, messages_written, version, message_count) =
            self.write_response(id, written).await?;
        Ok(Response::new(proto::WriteConversationResponse {
            conversation_id,
            messages_written,
            version,
            message_count,
        }))
    }

    async fn append_messages(
        &self,
        request: Request<proto::AppendMessagesRequest>,
    ) -> Result<Response<proto::AppendMessagesResponse>, Status> {
        let request = request.into_inner();
        let _serial = self.writes.lock().await;
        self.catch_up().await?;
        let snapshot = self.store.snapshot();
        let conversations = self.conversations(&snapshot);
        let record = self
            .find_for_write(&conversations, &request.source_id, &request.external_id)?
            .ok_or_else(|| Status::not_found("no conversation has that source and external id"))?;
        Hstry::refuse_session(&record)?;
        let mut entries =
            self.message_entries(&conversations, record.id, true, request.messages)?;
        let written = entries.len();
        if let Some(updated_ms) = request.updated_at_ms {
            entries.push(self.event(
                record.id,
                Event::HistoryConversationTouched(HistoryConversationTouched { updated_ms }),
            ));
        }
        drop(snapshot);
        self.append(entries).await?;
        let (conversation_id, messages_written, version, message_count) =
            self.write_response(record.id, written).await?;
        Ok(Response::new(proto::AppendMessagesResponse {
            conversation_id,
            messages_written,
            version,
            message_count,
        }))
    }

    async fn update_conversation(
        &self,
        request: Request<proto::UpdateConversationRequest>,
    ) -> Result<Response<proto::UpdateConversationResponse>, Status> {
        let request = request.into_inner();
        required("source_id", &request.source_id)?;
        required("external_id", &request.external_id)?;
        let (_serial, record) = self
            .writable(&request.source_id, &request.external_id)
            .await?;
        let updated = HistoryConversationUpdated {
            title: request.title,
            workspace: request.workspace,
            model: request.model,
            provider: request.provider,
            metadata_json: request
                .metadata_json
                .and_then(|text| content::json_document(&text)),
            readable_id: request.readable_id,
            harness: request.harness,
            platform_id: request.platform_id,
            parent_conversation_id: request.parent_conversation_id,
            parent_message_idx: request.parent_message_idx,
            fork_type: request.fork_type,
            updated_ms: now_ms(),
        };
        self.append(vec![
            self.event(record.id, Event::HistoryConversationUpdated(updated)),
        ])
        .await?;
        Ok(Response::new(proto::UpdateConversationResponse {
            conversation_id: record.id.to_string(),
        }))
    }

    async fn delete_conversation(
        &self,
        request: Request<proto::DeleteConversationRequest>,
    ) -> Result<Response<proto::DeleteConversationResponse>, Status> {
        let request = request.into_inner();
        required("source_id", &request.source_id)?;
        required("external_id", &request.external_id)?;
        let (_serial, record) = self
            .writable(&request.source_id, &request.external_id)
            .await?;
        self.append(vec![self.event(
            record.id,
            Event::HistoryConversationDeleted(HistoryConversationDeleted {}),
        )])
        .await?;
        Ok(Response::new(proto::DeleteConversationResponse {
            conversation_id: record.id.to_string(),
        }))
    }

    async fn add_tag(
        &self,
        request: Request<proto::AddTagRequest>,
    ) -> Result<Response<proto::AddTagResponse>, Status> {
        let request = request.into_inner();
        let tag = content::tag(&request.tag);
        let (_serial, record) = self
            .by_uuid("conversation_id", &request.conversation_id)
            .await?;
        let record = record.ok_or_else(|| {
            Status::not_found(format!("no conversation {}", request.conversation_id))
        })?;
        if tag.is_empty() || record.tags.contains(&tag) {
            return Ok(Response::new(proto::AddTagResponse { added: false }));
        }
        self.append(vec![
            self.event(record.id, Event::HistoryTagAdded(HistoryTagAdded { tag })),
        ])
        .await?;
        Ok(Response::new(proto::AddTagResponse { added: true }))
    }

    async fn remove_tag(
        &self,
        request: Request<proto::RemoveTagRequest>,
    ) -> Result<Response<proto::RemoveTagResponse>, Status> {
        let request = request.into_inner();
        let tag = content::tag(&request.tag);
        let (_serial, record) = self
            .by_uuid("conversation_id", &request.conversation_id)
            .await?;
        let Some(record) = record else {
            return Ok(Response::new(proto::RemoveTagResponse { removed: false }));
        };
        if !record.tags.contains(&tag) {
            return Ok(Response::new(proto::RemoveTagResponse { removed: false }));
        }
        self.append(vec![self.event(
            record.id,
            Event::HistoryTagRemoved(HistoryTagRemoved { tag }),
        )])
        .await?;
        Ok(Response::new(proto::RemoveTagResponse { removed: true }))
    }

    async fn upload_attachment(
        &self,
        request: Request<proto::UploadAttachmentRequest>,
    ) -> Result<Response<proto::UploadAttachmentResponse>, Status> {
        let request = request.into_inner();
        let uuid = uuid_arg("message_id", &request.message_id)?;
        let _serial = self.writes.lock().await;
        self.catch_up().await?;
        let snapshot = self.store.snapshot();
        let conversations = self.conversations(&snapshot);
        let location = conversations
            .message_location(uuid.as_bytes())
            .map_err(store_failed)?
            .ok_or_else(|| Status::not_found(format!("no message {uuid}")))?;
        let record = self
            .owned(
                conversations
                    .get(&location.conversation)
                    .map_err(store_failed)?,
            )
            .ok_or_else(|| Status::not_found(format!("no message {uuid}")))?;
        let message_id = MessageId::from_bytes(*uuid.as_bytes())
            .map_err(|_| Status::not_found(format!("no message {uuid}")))?;
        drop(snapshot);
        let attachment_id = AttachmentId::new();
        let added = HistoryAttachmentAdded {
            attachment_id,
            message_id,
            mime_type: request.mime_type,
            filename: request.filename,
            data: blob_ref(&request.data),
        };
        let mut entry = self.event(record.id, Event::HistoryAttachmentAdded(added));
        entry.blobs.push(request.data);
        self.append(vec![entry]).await?;
        Ok(Response::new(proto::UploadAttachmentResponse {
            attachment_id: attachment_id.to_string(),
        }))
    }
}

#[tonic::async_trait]
impl ReadService for Arc<Hstry> {
    async fn get_conversation(
        &self,
        request: Request<proto::GetConversationRequest>,
    ) -> Result<Response<proto::GetConversationResponse>, Status> {
        let r = request.into_inner();
        let (_snapshot, record) = self.read_target(r.selector()).await?;
        Ok(Response::new(proto::GetConversationResponse {
            conversation: record.as_ref().map(convert::conversation),
        }))
    }

    async fn get_messages(
        &self,
        request: Request<proto::GetMessagesRequest>,
    ) -> Result<Response<proto::GetMessagesResponse>, Status> {
        let r = request.into_inner();
        let (snapshot, record) = self.read_target(r.selector()).await?;
        let Some(record) = record else {
            return Ok(Response::new(proto::GetMessagesResponse::default()));
        };
        let limit = (r.limit > 0).then(|| usize::try_from(r.limit).unwrap_or(usize::MAX));
        let messages = self.messages(snapshot, &record, limit).await?;
        Ok(Response::new(proto::GetMessagesResponse::encoded(
            record.id.to_string(),
            messages,
        )))
    }

    async fn get_message_events(
        &self,
        request: Request<proto::GetMessageEventsRequest>,
    ) -> Result<Response<proto::GetMessageEventsResponse>, Status> {
        let r = request.into_inner();
        let (snapshot, record) = self.read_target(r.selector()).await?;
        let conversations = self.conversations(&snapshot);
        let Some(record) = record else {
            return Ok(Response::new(proto::GetMessageEventsResponse::default()));
        };
        let writes = conversations.writes(&record).map_err(store_failed)?;
        drop(snapshot);
        let conversation_id = record.id.to_string();
        let limit = (r.limit > 0).then(|| usize::try_from(r.limit).unwrap_or(usize::MAX));
        let mut events = Vec::new();
        let mut seen: std::collections::HashSet<[u8; 16]> = std::collections::HashSet::new();
        let wanted: std::collections::BTreeSet<Offset> = writes
            .iter()
            .filter(|write| r.after_idx <= 0 || write.idx > r.after_idx)
            .map(|write| write.offset)
            .collect();
        let entries = self.read_entries(record.id, &wanted).await?;
        for write in writes {
            let first = seen.insert(write.message_id);
            if r.after_idx > 0 && write.idx <= r.after_idx {
                continue;
            }
            if limit.is_some_and(|limit| events.len() >= limit) {
                break;
            }
            let entry = entries
                .get(&write.offset)
                .ok_or_else(|| Status::internal("a message write was not read"))?;
            let (message, sent) = match &entry.body {
                Body::Event(Event::HistoryMessageUpserted(upserted)) => {
                    let message = self.written(upserted).await?;
                    let sent = match &upserted.sent_content {
                        Some(sent) => self.text(sent).await?,
                        None => message.content.clone(),
                    };
                    (message, sent)
                }
                Body::Event(Event::MessageCreated(created)) => {
                    let m = convert::session_message(
                        &record,
                        &created.message,
                        write.idx,
                        created.message.id.as_uuid(),
                    );
                    let sent = m.content.clone();
                    (m, sent)
                }
                Body::Event(Event::StreamMessageEnd(end)) => {
                    let m = convert::session_message(
                        &record,
                        &end.message,
                        write.idx,
                        end.message.id.as_uuid(),
                    );
                    let sent = m.content.clone();
                    (m, sent)
                }
                _ => {
                    return Err(Status::internal(format!(
                        "entry {} is not a message write",
                        write.offset
                    )));
                }
            };
            let created_at_ms = message.created_at_ms.unwrap_or(0);
            if r.after_created_at_ms > 0
                && (message.created_at_ms.is_none() || created_at_ms <= r.after_created_at_ms)
            {
                continue;
            }
            let message_uuid = uuid::Uuid::from_bytes(write.message_id);
            let id = if first {
                message_uuid
            } else {
                convert::rewrite_event_id(&message_uuid, write.offset.get())
            };
            events.push(proto::MessageEvent {
                id: id.to_string(),
                conversation_id: conversation_id.clone(),
                idx: write.idx,
                payload_json: convert::event_payload(&conversation_id, &message, &sent),
                created_at_ms,
                metadata_json: message.metadata_json.clone(),
            });
        }
        Ok(Response::new(proto::GetMessageEventsResponse {
            conversation_id,
            events,
        }))
    }

    async fn list_conversations(
        &self,
        request: Request<proto::ListConversationsRequest>,
    ) -> Result<Response<proto::ListConversationsResponse>, Status> {
        let r = request.into_inner();
        self.catch_up().await?;
        let snapshot = self.store.snapshot();
        let mut records: Vec<ConversationRecord> = self
            .conversations(&snapshot)
            .all()
            .map_err(store_failed)?
            .into_iter()
            .filter(|record| {
                record.owner == self.user
                    && source_matches(&r.source_id, &record.source_id)
                    && workspace_matches(&r.workspace, record.workspace.as_deref())
            })
            .collect();
        records.sort_by(|a, b| {
            b.active_ms()
                .cmp(&a.active_ms())
                .then(b.created_ms.cmp(&a.created_ms))
                .then(a.id.cmp(&b.id))
        });
        let offset = usize::try_from(r.offset.max(0)).unwrap_or(usize::MAX);
        let limit = if r.limit > 0 {
            usize::try_from(r.limit).unwrap_or(usize::MAX)
        } else {
            usize::MAX
        };
        let conversations = records
            .iter()
            .skip(offset)
            .take(limit)
            .map(|record| proto::ConversationSummary {
                conversation: Some(convert::conversation(record)),
                message_count: i64::from(record.message_count),
                first_user_message: record
                    .first_user
                    .as_ref()
                    .map(|first| first.content.clone())
                    .unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(proto::ListConversationsResponse {
            conversations,
        }))
    }
}

#[tonic::async_trait]
impl SearchService for Arc<Hstry> {
    async fn search(
        &self,
        request: Request<proto::SearchRequest>,
    ) -> Result<Response<proto::SearchResponse>, Status> {
        let r = request.into_inner();
        let query = SearchQuery::parse(&r.query, r.mode)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.catch_up().await?;
        self.searcher
            .wait_for(self.log.head(), READ_YOUR_WRITES)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let snapshot = self.store.snapshot();
        let conversations = self.conversations(&snapshot);
        let tag = content::tag(&r.tag);
        let mut cache: HashMap<SessionId, Option<ConversationRecord>> = HashMap::new();
        let filter = HitFilter {
            user: self.user.clone(),
            role: (!r.role.is_empty()).then(|| r.role.clone()),
            after_ms: (r.after_ms > 0).then_some(r.after_ms),
            before_ms: (r.before_ms > 0).then_some(r.before_ms),
            titles: false,
        };
        let hits = self.searcher.search(&query, &filter).map_err(|e| match e {
            SearchError::Query(text) => Status::invalid_argument(text),
            other => internal(other),
        })?;
        let mut joined = Vec::new();
        for hit in hits {
            let record = match cache.get(&hit.conversation) {
                Some(known) => known.clone(),
                None => {
                    let record = conversations
                        .get(&hit.conversation)
                        .map_err(store_failed)?
                        .filter(|record| {
                            record.owner == self.user
                                && source_matches(&r.source, &record.source_id)
                                && (r.workspace.is_empty()
                                    || record.workspace.as_deref() == Some(r.workspace.as_str()))
                                && (r.model.is_empty()
                                    || record.model.as_deref() == Some(r.model.as_str()))
                                && (r.harness.is_empty()
                                    || record.harness.as_deref() == Some(r.harness.as_str()))
                                && (tag.is_empty() || record.tags.contains(&tag))
                        });
                    cache.insert(hit.conversation, record.clone());
                    record
                }
            };
            let Some(record) = record else { continue };
            let Ok(message_id) = uuid::Uuid::parse_str(&hit.message_id) else {
                continue;
            };
            let Some(location) = conversations
                .message_location(message_id.as_bytes())
                .map_err(store_failed)?
            else {
                continue;
            };
            joined.push((hit, record, location.idx));
        }
        joined.sort_by(|(a, ra, _), (b, rb, _)| {
            a.score
                .total_cmp(&b.score)
                .then(rb.active_ms().cmp(&ra.active_ms()))
                .then(a.message_id.cmp(&b.message_id))
        });
        let offset = usize::try_from(r.offset.max(0)).unwrap_or(usize::MAX);
        let limit = if r.limit > 0 {
            usize::try_from(r.limit).unwrap_or(usize::MAX)
        } else {
            usize::MAX
        };
        let hits = joined
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|(hit, record, idx)| proto::SearchHit {
                message_id: hit.message_id.clone(),
                conversation_id: record.id.to_string(),
                message_idx: idx,
                role: hit.role.clone(),
                snippet: self.searcher.snippet(&query, &hit.content),
                content: hit.content,
                created_at_ms: hit.created_ms.unwrap_or(0),
                conv_created_at_ms: record.created_ms,
                conv_updated_at_ms: record.updated_ms.unwrap_or(0),
                score: hit.score,
                source_id: record.source_id.clone(),
                external_id: record.external_id.clone(),
                title: record.title.clone().unwrap_or_default(),
                workspace: record.workspace.clone().unwrap_or_default(),
                source_adapter: record.source_id.clone(),
                source_path: String::new(),
                host: String::new(),
                readable_id: record.readable_id.clone(),
            })
            .collect();
        Ok(Response::new(proto::SearchResponse { hits }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_follows_sqlite() {
        assert!(like("/home/%", "/home/ann/x"));
        assert!(like("/HOME/_nn", "/home/ann"));
        assert!(!like("/home/_", "/home/ann"));
        assert!(like("%", ""));
        assert!(!like("a", "b"));
    }

    #[test]
    fn source_families() {
        assert!(source_matches("pi", "pi"));
        assert!(source_matches("pi", "pi-work"));
        assert!(!source_matches("pi", "pix"));
        assert!(source_matches("", "anything"));
    }
}
