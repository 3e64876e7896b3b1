//! hstry's view of the history (HSTRY_API.md section 8): one conversation record per Octo session
//! and per conversation written through hstry's WriteService (`history.*`, PROTOCOL.md 6.7), with
//! the lookups hstry's reads need. Part of the `history` projection, in its keyspace.
//!
//! An Octo session is a conversation whose UUID is the session id; its messages stay where the
//! history keeps them (`m` keys) and get their hstry `idx` from their position in the session's
//! view. A written conversation keeps its messages by `idx`, as the writer chose them.
//!
//! Keys (strings are length-prefixed, so no two (source, external) pairs share a key):
//! - `c` ++ uuid -> [`ConversationRecord`];
//! - `k` ++ str(source_id) ++ str(external_id) -> uuid: the write key (never for an empty external id);
//! - `i` ++ str(id) ++ uuid -> empty: external and platform ids (hstry's any-of lookup);
//! - `r` ++ str(readable id) ++ uuid -> empty;
//! - `h` ++ uuid ++ idx -> [`HistoryMessageUpserted`]: a written conversation's messages;
//! - `e` ++ uuid ++ idx ++ offset -> message uuid: one per effective message write of a written
//!   conversation (GetMessageEvents). A session's writes are its `m` keys, one per message, so
//!   they are not indexed twice;
//! - `w` ++ message uuid -> [`MessageLoc`];
//! - `a` ++ attachment uuid -> [`AttachmentRecord`]; `b` ++ uuid ++ attachment uuid -> empty.

use fjall::{Keyspace, Readable};
use octo_core::history::{
    HistoryAttachmentAdded, HistoryConversationUpdated, HistoryConversationUpserted,
    HistoryMessageUpserted, HistoryRole, TextOrBlob,
};
use octo_core::message::{Part, Role};
use octo_core::{Body, Event, LogEntry, Message, MessageId, Ms, Offset, SessionId, UserId};
use serde::{Deserialize, Serialize};

use super::{History, readable};
use crate::Txn;
use crate::store::{StoreError, StoreSnapshot, storage};

/// Characters of a session's first user message kept for listings.
pub const FIRST_USER_CHARS_MAX: usize = 4_000;

/// Where a conversation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// An Octo session (its messages are the history's `m` keys).
    Session,
    /// Written through hstry's WriteService.
    Written,
}

/// The earliest user message of a conversation, for `first_user_message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstUser {
    pub idx: i32,
    pub content: String,
}

/// Every Conversation field of HSTRY_API.md 4.1, plus what the projection needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationRecord {
    pub id: SessionId,
    pub owner: UserId,
    pub origin: Origin,
    pub source_id: String,
    pub external_id: String,
    pub title: Option<String>,
    pub created_ms: Ms,
    pub updated_ms: Option<Ms>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub workspace: Option<String>,
    pub tokens_in: Option<i64>,
    pub tokens_out: Option<i64>,
    pub cost_usd: Option<f64>,
    pub metadata_json: String,
    pub harness: Option<String>,
    pub readable_id: String,
    pub platform_id: Option<String>,
    pub parent_conversation_id: Option<String>,
    pub parent_message_idx: Option<i32>,
    pub fork_type: Option<String>,
    pub version: u64,
    pub message_count: u32,
    /// Trimmed and lowercased, sorted.
    pub tags: Vec<String>,
    pub first_user: Option<FirstUser>,
    /// Messages of a fork's view inherited from its parent (0 otherwise).
    pub inherited: u32,
}

impl ConversationRecord {
    /// Updated time, falling back to created time (listing order).
    pub fn active_ms(&self) -> Ms {
        self.updated_ms.unwrap_or(self.created_ms)
    }
}

/// Where a message lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageLoc {
    pub conversation: SessionId,
    pub idx: i32,
}

/// An uploaded attachment; its bytes are a blob of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRecord {
    pub conversation: SessionId,
    pub added: HistoryAttachmentAdded,
}

/// One effective message write, for GetMessageEvents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageWrite {
    pub idx: i32,
    /// The entry that wrote it.
    pub offset: Offset,
    /// The message's UUID.
    pub message_id: [u8; 16],
}

fn push_str(key: &mut Vec<u8>, text: &str) {
    let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(text.as_bytes());
}

fn with_id(tag: u8, id: &[u8; 16]) -> Vec<u8> {
    let mut key = Vec::with_capacity(40);
    key.push(tag);
    key.extend_from_slice(id);
    key
}

/// `idx` as bytes that sort like the number.
fn idx_bytes(idx: i32) -> [u8; 4] {
    (u32::from_ne_bytes(idx.to_ne_bytes()) ^ 0x8000_0000).to_be_bytes()
}

fn idx_from(bytes: [u8; 4]) -> i32 {
    i32::from_ne_bytes((u32::from_be_bytes(bytes) ^ 0x8000_0000).to_ne_bytes())
}

fn conversation_key(id: &SessionId) -> Vec<u8> {
    with_id(b'c', id.as_bytes())
}

fn write_key(source_id: &str, external_id: &str) -> Vec<u8> {
    let mut key = vec![b'k'];
    push_str(&mut key, source_id);
    push_str(&mut key, external_id);
    key
}

fn name_prefix(tag: u8, name: &str) -> Vec<u8> {
    let mut key = vec![tag];
    push_str(&mut key, name);
    key
}

fn name_key(tag: u8, name: &str, id: &SessionId) -> Vec<u8> {
    let mut key = name_prefix(tag, name);
    key.extend_from_slice(id.as_bytes());
    key
}

fn message_key(id: &SessionId, idx: i32) -> Vec<u8> {
    let mut key = with_id(b'h', id.as_bytes());
    key.extend_from_slice(&idx_bytes(idx));
    key
}

fn event_key(id: &SessionId, idx: i32, offset: Offset) -> Vec<u8> {
    let mut key = with_id(b'e', id.as_bytes());
    key.extend_from_slice(&idx_bytes(idx));
    key.extend_from_slice(&offset.to_be_bytes());
    key
}

fn location_key(message_id: &[u8; 16]) -> Vec<u8> {
    with_id(b'w', message_id)
}

fn attachment_key(attachment_id: &[u8; 16]) -> Vec<u8> {
    with_id(b'a', attachment_id)
}

fn conversation_attachment_key(id: &SessionId, attachment_id: &[u8; 16]) -> Vec<u8> {
    let mut key = with_id(b'b', id.as_bytes());
    key.extend_from_slice(attachment_id);
    key
}

/// The end of the range of keys starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    vec![u8::MAX; prefix.len() + 1]
}

fn index(txn: &mut Txn<'_>, record: &ConversationRecord) {
    if !record.external_id.is_empty() {
        txn.put(
            write_key(&record.source_id, &record.external_id),
            record.id.as_bytes().to_vec(),
        );
        txn.put(name_key(b'i', &record.external_id, &record.id), Vec::new());
    }
    if let Some(platform) = record.platform_id.as_deref().filter(|p| !p.is_empty()) {
        txn.put(name_key(b'i', platform, &record.id), Vec::new());
    }
    txn.put(name_key(b'r', &record.readable_id, &record.id), Vec::new());
}

fn unindex(txn: &mut Txn<'_>, record: &ConversationRecord) {
    if !record.external_id.is_empty() {
        let key = write_key(&record.source_id, &record.external_id);
        if txn.get(&key).as_deref() == Some(record.id.as_bytes().as_slice()) {
            txn.delete(key);
        }
        txn.delete(name_key(b'i', &record.external_id, &record.id));
    }
    if let Some(platform) = record.platform_id.as_deref().filter(|p| !p.is_empty()) {
        txn.delete(name_key(b'i', platform, &record.id));
    }
    txn.delete(name_key(b'r', &record.readable_id, &record.id));
}

/// Stores `record`, moving its index entries from `old`.
fn save(txn: &mut Txn<'_>, old: Option<&ConversationRecord>, record: &ConversationRecord) {
    if let Some(old) = old {
        unindex(txn, old);
    }
    index(txn, record);
    txn.put_value(conversation_key(&record.id), record);
}

fn load(txn: &mut Txn<'_>, id: &SessionId) -> Option<ConversationRecord> {
    txn.get_value(&conversation_key(id))
}

/// Changes a conversation's record in place (not cloned, not re-indexed: `change` must leave its
/// index fields alone, and must not read the record through `txn`).
fn change_record(
    txn: &mut Txn<'_>,
    id: &SessionId,
    change: impl FnOnce(&mut Txn<'_>, &mut ConversationRecord),
) {
    let key = conversation_key(id);
    let Some(mut record) = txn.take_value::<ConversationRecord>(&key) else {
        return;
    };
    change(txn, &mut record);
    txn.put_owned(key, record);
}

/// A readable id for a new conversation, unique among the stored ones as far as 999 suffixes go.
fn mint_readable(txn: &mut Txn<'_>, id: &SessionId) -> String {
    readable::readable_id(id.as_bytes(), |candidate| {
        let prefix = name_prefix(b'r', candidate);
        !txn.keys_in(&prefix, &prefix_end(&prefix)).is_empty()
    })
}

/// The text of a protocol message as hstry's `content` (and what search indexes): its text parts
/// joined by blank lines, or its thinking when it has no text.
pub fn message_text(message: &Message) -> String {
    let of = |thinking: bool| -> Vec<&str> {
        message
            .parts
            .iter()
            .filter_map(|part| match part {
                Part::Text(text) if !thinking => Some(text.text.as_str()),
                Part::Thinking(part) if thinking => Some(part.text.as_str()),
                _ => None,
            })
            .collect()
    };
    let texts = of(false);
    if texts.is_empty() {
        of(true).join("\n\n")
    } else {
        texts.join("\n\n")
    }
}

fn drop_conversation(txn: &mut Txn<'_>, id: &SessionId) {
    let Some(record) = load(txn, id) else {
        return;
    };
    unindex(txn, &record);
    txn.delete(conversation_key(id));
    for tag in [b'h', b'b'] {
        let prefix = with_id(tag, id.as_bytes());
        for key in txn.keys_in(&prefix, &prefix_end(&prefix)) {
            if tag == b'b'
                && let Some(attachment) = key.get(17..33)
            {
                let mut at = vec![b'a'];
                at.extend_from_slice(attachment);
                txn.delete(at);
            }
            txn.delete(key);
        }
    }
    match record.origin {
        Origin::Written => {
            let prefix = with_id(b'e', id.as_bytes());
            for key in txn.keys_in(&prefix, &prefix_end(&prefix)) {
                if let Some(message_id) = txn.get(&key)
                    && let Ok(message_id) = <[u8; 16]>::try_from(message_id.as_slice())
                {
                    txn.delete(location_key(&message_id));
                }
                txn.delete(key);
            }
        }
        // The session's messages stay (a fork's view still reads them); only their hstry
        // locations go.
        Origin::Session => {
            let prefix = super::session_prefix(b'm', id);
            for key in txn.keys_in(&prefix, &prefix_end(&prefix)) {
                if let Some(bytes) = txn.get(&key)
                    && let Ok(stored) = octo_core::codec::from_msgpack::<MessageIdOnly>(&bytes)
                {
                    txn.delete(location_key(stored.id.as_bytes()));
                }
            }
        }
    }
}

/// Only the id of a stored [`Message`]: decoding it skips the rest.
#[derive(Deserialize)]
struct MessageIdOnly {
    id: MessageId,
}

/// Where a conversation's message (by UUID) lives.
fn locate(txn: &mut Txn<'_>, id: &SessionId, idx: i32, message: [u8; 16]) {
    txn.put_value(
        location_key(&message),
        &MessageLoc {
            conversation: *id,
            idx,
        },
    );
}

/// Folds one entry into the conversations.
pub(super) fn apply(entry: &LogEntry, txn: &mut Txn<'_>) {
    let Body::Event(event) = &entry.body else {
        return;
    };
    let id = &entry.session_id;
    match event {
        Event::SessionCreated(created) => {
            let record = session_record(
                txn,
                entry,
                &created.harness,
                &created.workspace,
                created.model.as_ref(),
                created.title.clone(),
            );
            save(txn, None, &record);
        }
        Event::SessionForked(forked) => {
            let mut record = session_record(
                txn,
                entry,
                &forked.harness,
                &forked.workspace,
                forked.model.as_ref(),
                forked.title.clone(),
            );
            let parent = load(txn, &forked.parent_session_id);
            let own = {
                let from = super::message_key(&forked.parent_session_id, Offset::ZERO);
                let to =
                    super::message_key(&forked.parent_session_id, forked.parent_offset.successor());
                txn.keys_in(&from, &to).len()
            };
            let inherited = parent.as_ref().map_or(0, |parent| parent.inherited)
                + u32::try_from(own).unwrap_or(u32::MAX);
            record.inherited = inherited;
            record.message_count = inherited;
            record.parent_conversation_id = Some(forked.parent_session_id.to_string());
            record.parent_message_idx = Some(i32::try_from(inherited).unwrap_or(i32::MAX));
            record.fork_type = Some("fork".to_owned());
            record.first_user = parent
                .and_then(|parent| parent.first_user)
                .filter(|first| i64::from(first.idx) < i64::from(inherited));
            save(txn, None, &record);
        }
        Event::SessionRenamed(renamed) => update_session(txn, id, entry.ts_ms, |record| {
            record.title = Some(renamed.title.clone());
            record.version += 1;
        }),
        Event::SessionDeleted(_) | Event::HistoryConversationDeleted(_) => {
            drop_conversation(txn, id);
        }
        Event::HarnessStarted(started) => {
            let Some(old) = load(txn, id) else { return };
            let mut record = old.clone();
            if !started.harness_session_id.is_empty() {
                record.external_id.clone_from(&started.harness_session_id);
            }
            if let Some(model) = &started.model {
                record.model = Some(model.model_id.clone());
                record.provider = Some(model.provider.clone());
            }
            if record != old {
                save(txn, Some(&old), &record);
            }
        }
        Event::ModelChanged(changed) => change_record(txn, id, |_, record| {
            record.model = Some(changed.model_id.clone());
            record.provider = Some(changed.provider.clone());
        }),
        Event::UsageRecorded(usage) => change_record(txn, id, |_, record| {
            let add = |total: Option<i64>, more: u64| {
                Some(
                    total
                        .unwrap_or(0)
                        .saturating_add(i64::try_from(more).unwrap_or(i64::MAX)),
                )
            };
            record.tokens_in = add(record.tokens_in, usage.input_tokens);
            record.tokens_out = add(record.tokens_out, usage.output_tokens);
            if let Some(cost) = usage.cost_usd {
                record.cost_usd = Some(record.cost_usd.unwrap_or(0.0) + cost);
            }
        }),
        Event::MessageCreated(created) => session_message(txn, entry, &created.message),
        Event::StreamMessageEnd(end) => session_message(txn, entry, &end.message),
        Event::HistoryConversationUpserted(upserted) => conversation_upserted(txn, entry, upserted),
        Event::HistoryMessageUpserted(upserted) => message_upserted(txn, entry, upserted),
        Event::HistoryConversationTouched(touched) => {
            update_written(txn, id, |record| {
                record.updated_ms = Some(touched.updated_ms);
                record.version += 1;
            });
        }
        Event::HistoryConversationUpdated(updated) => {
            update_written(txn, id, |record| conversation_updated(record, updated));
        }
        Event::HistoryTagAdded(tag) => update_written(txn, id, |record| {
            if let Err(at) = record.tags.binary_search(&tag.tag) {
                record.tags.insert(at, tag.tag.clone());
            }
        }),
        Event::HistoryTagRemoved(tag) => update_written(txn, id, |record| {
            if let Ok(at) = record.tags.binary_search(&tag.tag) {
                record.tags.remove(at);
            }
        }),
        Event::HistoryAttachmentAdded(added) => {
            if load(txn, id).is_none() {
                return;
            }
            let attachment = *added.attachment_id.as_bytes();
            txn.put(conversation_attachment_key(id, &attachment), Vec::new());
            txn.put_value(
                attachment_key(&attachment),
                &AttachmentRecord {
                    conversation: *id,
                    added: added.clone(),
                },
            );
        }
        _ => {}
    }
}

fn session_record(
    txn: &mut Txn<'_>,
    entry: &LogEntry,
    harness: &str,
    workspace: &str,
    model: Option<&octo_core::ModelRef>,
    title: Option<String>,
) -> ConversationRecord {
    let id = entry.session_id;
    ConversationRecord {
        id,
        owner: entry.user_id.clone(),
        origin: Origin::Session,
        source_id: harness.to_owned(),
        external_id: String::new(),
        title,
        created_ms: entry.ts_ms,
        updated_ms: Some(entry.ts_ms),
        model: model.map(|model| model.model_id.clone()),
        provider: model.map(|model| model.provider.clone()),
        workspace: Some(workspace.to_owned()),
        tokens_in: None,
        tokens_out: None,
        cost_usd: None,
        metadata_json: String::new(),
        harness: Some(harness.to_owned()),
        readable_id: mint_readable(txn, &id),
        platform_id: Some(id.to_string()),
        parent_conversation_id: None,
        parent_message_idx: None,
        fork_type: None,
        version: 0,
        message_count: 0,
        tags: Vec::new(),
        first_user: None,
        inherited: 0,
    }
}

fn update_session(
    txn: &mut Txn<'_>,
    id: &SessionId,
    ts_ms: Ms,
    change: impl FnOnce(&mut ConversationRecord),
) {
    change_record(txn, id, |_, record| {
        change(record);
        record.updated_ms = Some(ts_ms);
    });
}

fn update_written(txn: &mut Txn<'_>, id: &SessionId, change: impl FnOnce(&mut ConversationRecord)) {
    let Some(old) = load(txn, id) else { return };
    let mut record = old.clone();
    change(&mut record);
    save(txn, Some(&old), &record);
}

fn session_message(txn: &mut Txn<'_>, entry: &LogEntry, message: &Message) {
    change_record(txn, &entry.session_id, |txn, record| {
        session_message_in(txn, entry, message, record)
    });
}

fn session_message_in(
    txn: &mut Txn<'_>,
    entry: &LogEntry,
    message: &Message,
    record: &mut ConversationRecord,
) {
    let id = &entry.session_id;
    if record.origin != Origin::Session {
        return;
    }
    let idx = i32::try_from(record.message_count).unwrap_or(i32::MAX);
    record.message_count = record.message_count.saturating_add(1);
    record.version += 1;
    record.updated_ms = Some(entry.ts_ms);
    if message.role == Role::User && record.first_user.is_none() {
        record.first_user = Some(FirstUser {
            idx,
            content: message_text(message)
                .chars()
                .take(FIRST_USER_CHARS_MAX)
                .collect(),
        });
    }
    locate(txn, id, idx, *message.id.as_bytes());
}

fn conversation_upserted(
    txn: &mut Txn<'_>,
    entry: &LogEntry,
    upserted: &HistoryConversationUpserted,
) {
    let id = entry.session_id;
    let old = load(txn, &id);
    let mut record = match &old {
        Some(old) => {
            let mut record = old.clone();
            record.version += 1;
            record
        }
        None => ConversationRecord {
            id,
            owner: entry.user_id.clone(),
            origin: Origin::Written,
            source_id: upserted.source_id.clone(),
            external_id: upserted.external_id.clone(),
            title: None,
            created_ms: upserted.created_ms,
            updated_ms: None,
            model: None,
            provider: None,
            workspace: None,
            tokens_in: None,
            tokens_out: None,
            cost_usd: None,
            metadata_json: String::new(),
            harness: None,
            readable_id: String::new(),
            platform_id: None,
            parent_conversation_id: None,
            parent_message_idx: None,
            fork_type: None,
            version: 0,
            message_count: 0,
            tags: Vec::new(),
            first_user: None,
            inherited: 0,
        },
    };
    if record.origin != Origin::Written {
        return;
    }
    // Replaced, cleared when absent.
    record.title.clone_from(&upserted.title);
    record.updated_ms = upserted.updated_ms;
    record.model.clone_from(&upserted.model);
    record.provider.clone_from(&upserted.provider);
    record.tokens_in = upserted.tokens_in;
    record.tokens_out = upserted.tokens_out;
    record.cost_usd = upserted.cost_usd;
    record.metadata_json.clone_from(&upserted.metadata_json);
    // Replaced only when given.
    if let Some(workspace) = upserted.workspace.as_ref().filter(|w| !w.is_empty()) {
        record.workspace = Some(workspace.clone());
    }
    let keep = |field: &mut Option<String>, value: &Option<String>| {
        if value.is_some() {
            field.clone_from(value);
        }
    };
    keep(&mut record.harness, &upserted.harness);
    keep(
        &mut record.parent_conversation_id,
        &upserted.parent_conversation_id,
    );
    keep(&mut record.fork_type, &upserted.fork_type);
    if upserted.parent_message_idx.is_some() {
        record.parent_message_idx = upserted.parent_message_idx;
    }
    if let Some(platform) = upserted.platform_id.as_ref().filter(|p| !p.is_empty()) {
        record.platform_id = Some(platform.clone());
    }
    if !upserted.readable_id.is_empty() {
        record.readable_id.clone_from(&upserted.readable_id);
    }
    save(txn, old.as_ref(), &record);
}

fn conversation_updated(record: &mut ConversationRecord, updated: &HistoryConversationUpdated) {
    let set = |field: &mut Option<String>, value: &Option<String>| {
        if value.is_some() {
            field.clone_from(value);
        }
    };
    set(&mut record.title, &updated.title);
    set(&mut record.workspace, &updated.workspace);
    set(&mut record.model, &updated.model);
    set(&mut record.provider, &updated.provider);
    set(&mut record.harness, &updated.harness);
    set(
        &mut record.parent_conversation_id,
        &updated.parent_conversation_id,
    );
    set(&mut record.fork_type, &updated.fork_type);
    if let Some(metadata) = &updated.metadata_json {
        record.metadata_json.clone_from(metadata);
    }
    if let Some(readable) = updated.readable_id.as_ref().filter(|r| !r.is_empty()) {
        record.readable_id.clone_from(readable);
    }
    if let Some(platform) = updated.platform_id.as_ref().filter(|p| !p.is_empty()) {
        record.platform_id = Some(platform.clone());
    }
    if updated.parent_message_idx.is_some() {
        record.parent_message_idx = updated.parent_message_idx;
    }
    record.updated_ms = Some(updated.updated_ms);
    record.version += 1;
}

fn inline(text: &TextOrBlob) -> Option<&str> {
    match text {
        TextOrBlob::Inline(text) => Some(text),
        TextOrBlob::Blob(_) => None,
    }
}

fn message_upserted(txn: &mut Txn<'_>, entry: &LogEntry, upserted: &HistoryMessageUpserted) {
    let id = &entry.session_id;
    let Some(mut record) = load(txn, id) else {
        return;
    };
    if record.origin != Origin::Written {
        return;
    }
    let key = message_key(id, upserted.idx);
    let stored = match txn.get_value::<HistoryMessageUpserted>(&key) {
        None => {
            record.message_count = record.message_count.saturating_add(1);
            upserted.clone()
        }
        Some(old) => {
            let mut stored = upserted.clone();
            stored.message_id = old.message_id;
            if stored.client_id.is_none() {
                stored.client_id = old.client_id;
            }
            stored
        }
    };
    record.version += 1;
    let user = stored.role == HistoryRole::User;
    txn.put_value(key, &stored);
    match record.first_user.as_ref().map(|first| first.idx) {
        Some(first) if first < stored.idx => {}
        Some(first) if first == stored.idx && !user => record.first_user = first_user_of(txn, id),
        _ if user => {
            record.first_user = Some(FirstUser {
                idx: stored.idx,
                content: inline(&stored.content).unwrap_or_default().to_owned(),
            });
        }
        _ => {}
    }
    let message = *stored.message_id.as_bytes();
    txn.put(event_key(id, stored.idx, entry.offset), message.to_vec());
    locate(txn, id, stored.idx, message);
    txn.put_value(conversation_key(id), &record);
}

fn first_user_of(txn: &mut Txn<'_>, id: &SessionId) -> Option<FirstUser> {
    let prefix = with_id(b'h', id.as_bytes());
    for key in txn.keys_in(&prefix, &prefix_end(&prefix)) {
        if let Some(message) = txn.get_value::<HistoryMessageUpserted>(&key)
            && message.role == HistoryRole::User
        {
            return Some(FirstUser {
                idx: message.idx,
                content: inline(&message.content).unwrap_or_default().to_owned(),
            });
        }
    }
    None
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::corrupt::<History>(e)
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    octo_core::codec::from_msgpack(bytes).map_err(corrupt)
}

fn uuid_tail(key: &[u8]) -> Result<SessionId, StoreError> {
    let bytes: [u8; 16] = key
        .get(key.len().saturating_sub(16)..)
        .and_then(|tail| tail.try_into().ok())
        .ok_or_else(|| corrupt("index key is shorter than a UUID"))?;
    SessionId::from_bytes(bytes).map_err(corrupt)
}

/// Reads of the conversations, each from one consistent snapshot.
pub struct Conversations<'a> {
    pub snapshot: &'a StoreSnapshot,
    pub keyspace: &'a Keyspace,
}

impl Conversations<'_> {
    fn get_raw(&self, key: &[u8]) -> Result<Option<fjall::Slice>, StoreError> {
        self.snapshot
            .inner()
            .get(self.keyspace, key)
            .map_err(storage)
    }

    fn keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        self.snapshot
            .inner()
            .prefix(self.keyspace, prefix)
            .map(|guard| guard.key().map(|key| key.to_vec()).map_err(storage))
            .collect()
    }

    /// The conversation with this UUID.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn get(&self, id: &SessionId) -> Result<Option<ConversationRecord>, StoreError> {
        self.get_raw(&conversation_key(id))?
            .map(|bytes| decode(&bytes))
            .transpose()
    }

    /// The conversation a write with (source, external id) addresses.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn by_write_key(
        &self,
        source_id: &str,
        external_id: &str,
    ) -> Result<Option<ConversationRecord>, StoreError> {
        if external_id.is_empty() {
            return Ok(None);
        }
        let Some(id) = self.get_raw(&write_key(source_id, external_id))? else {
            return Ok(None);
        };
        let id: [u8; 16] = id
            .as_ref()
            .try_into()
            .map_err(|_| corrupt("write key value is not a UUID"))?;
        self.get(&SessionId::from_bytes(id).map_err(corrupt)?)
    }

    /// Conversations whose external id or platform id is `ident`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn by_ident(&self, ident: &str) -> Result<Vec<ConversationRecord>, StoreError> {
        self.by_name(b'i', ident)
    }

    /// Conversations with this readable id.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn by_readable(&self, readable: &str) -> Result<Vec<ConversationRecord>, StoreError> {
        self.by_name(b'r', readable)
    }

    /// Whether some conversation has this readable id.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn readable_taken(&self, readable: &str) -> Result<bool, StoreError> {
        Ok(!self.keys(&name_prefix(b'r', readable))?.is_empty())
    }

    fn by_name(&self, tag: u8, name: &str) -> Result<Vec<ConversationRecord>, StoreError> {
        let prefix = name_prefix(tag, name);
        let mut found = Vec::new();
        for key in self.keys(&prefix)? {
            if key.len() != prefix.len() + 16 {
                continue;
            }
            if let Some(record) = self.get(&uuid_tail(&key)?)? {
                found.push(record);
            }
        }
        Ok(found)
    }

    /// Every conversation.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn all(&self) -> Result<Vec<ConversationRecord>, StoreError> {
        self.snapshot
            .inner()
            .prefix(self.keyspace, [b'c'])
            .map(|guard| {
                let value = guard.value().map_err(storage)?;
                decode(&value)
            })
            .collect()
    }

    /// A written conversation's messages in idx order; only the `last` ones when given.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn written_messages(
        &self,
        id: &SessionId,
        last: Option<usize>,
    ) -> Result<Vec<HistoryMessageUpserted>, StoreError> {
        let scan = self
            .snapshot
            .inner()
            .prefix(self.keyspace, with_id(b'h', id.as_bytes()));
        let decode_one = |guard: fjall::Guard| decode(&guard.value().map_err(storage)?);
        match last {
            None => scan.map(decode_one).collect(),
            Some(last) => {
                let mut newest: Vec<HistoryMessageUpserted> = scan
                    .rev()
                    .take(last)
                    .map(decode_one)
                    .collect::<Result<_, _>>()?;
                newest.reverse();
                Ok(newest)
            }
        }
    }

    /// A written conversation's message at `idx`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn written_message(
        &self,
        id: &SessionId,
        idx: i32,
    ) -> Result<Option<HistoryMessageUpserted>, StoreError> {
        self.get_raw(&message_key(id, idx))?
            .map(|bytes| decode(&bytes))
            .transpose()
    }

    /// Every effective message write of a conversation, by idx then offset.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn writes(&self, record: &ConversationRecord) -> Result<Vec<MessageWrite>, StoreError> {
        let id = &record.id;
        if record.origin == Origin::Session {
            return self.session_writes(record);
        }
        self.snapshot
            .inner()
            .prefix(self.keyspace, with_id(b'e', id.as_bytes()))
            .map(|guard| {
                let (key, value) = guard.into_inner().map_err(storage)?;
                let idx: [u8; 4] = key
                    .get(17..21)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| corrupt("event key too short"))?;
                let offset: [u8; 8] = key
                    .get(21..29)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| corrupt("event key too short"))?;
                let message_id: [u8; 16] = value
                    .as_ref()
                    .try_into()
                    .map_err(|_| corrupt("event value is not a UUID"))?;
                Ok(MessageWrite {
                    idx: idx_from(idx),
                    offset: Offset::from_be_bytes(offset).map_err(corrupt)?,
                    message_id,
                })
            })
            .collect()
    }

    /// A session's writes: its own messages, each written once, after those its view inherits.
    fn session_writes(&self, record: &ConversationRecord) -> Result<Vec<MessageWrite>, StoreError> {
        let first = i64::from(record.inherited);
        self.snapshot
            .inner()
            .prefix(self.keyspace, super::session_prefix(b'm', &record.id))
            .enumerate()
            .map(|(at, guard)| {
                let (offset, bytes) = super::stored_bytes(guard)?;
                let stored: MessageIdOnly = decode(&bytes)?;
                let idx = i64::try_from(at).map_or(i64::MAX, |at| first + at);
                Ok(MessageWrite {
                    idx: i32::try_from(idx).unwrap_or(i32::MAX),
                    offset,
                    message_id: *stored.id.as_bytes(),
                })
            })
            .collect()
    }

    /// Where a message (by UUID) lives.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn message_location(
        &self,
        message_id: &[u8; 16],
    ) -> Result<Option<MessageLoc>, StoreError> {
        self.get_raw(&location_key(message_id))?
            .map(|bytes| decode(&bytes))
            .transpose()
    }

    /// An uploaded attachment.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn attachment(
        &self,
        attachment_id: &[u8; 16],
    ) -> Result<Option<AttachmentRecord>, StoreError> {
        self.get_raw(&attachment_key(attachment_id))?
            .map(|bytes| decode(&bytes))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idx_bytes_sort_like_numbers() {
        let values = [i32::MIN, -5, -1, 0, 1, 2, 255, 256, i32::MAX];
        let encoded: Vec<[u8; 4]> = values.iter().map(|v| idx_bytes(*v)).collect();
        let mut sorted = encoded.clone();
        sorted.sort_unstable();
        assert_eq!(encoded, sorted);
        for value in values {
            assert_eq!(idx_from(idx_bytes(value)), value);
        }
    }

    #[test]
    fn write_keys_are_unambiguous() {
        assert_ne!(write_key("a\0", "b"), write_key("a", "\0b"));
        assert_ne!(write_key("ab", ""), write_key("a", "b"));
    }
}
