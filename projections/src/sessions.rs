//! The `sessions` projection: one summary per session (PROTOCOL.md 5.3), the user's listing in
//! `updated_offset` order, and what the runner needs to (re)start a session's harness.
//!
//! A fork's summary is derived from its parent's view at the fork point, never copied: its
//! `message_count` counts the messages of its whole view, its preview is the view's first user
//! message. `usage` counts the session's own entries only (the tokens it spent, not its parent's).
//! Conversations written through hstry's API (`history.*`) are listed here too, read-only.
//!
//! Keys:
//! - `s` ++ session id -> [`SessionRecord`] (msgpack);
//! - `u` ++ user id ++ 0x00 ++ updated offset ++ session id -> empty: the listing order;
//! - `m` ++ session id ++ offset -> empty: the session's own messages, to count a view's prefix;
//! - `h` ++ session id ++ idx -> empty: a written conversation's message idxs, each counted once;
//! - `f` ++ parent id ++ fork id -> empty: the fork tree.

use fjall::Keyspace;
use octo_core::frame::{ParentRef, RunState, SessionSummary};
use octo_core::history::{HistoryRole, TextOrBlob};
use octo_core::message::{Part, Role, ThinkingLevel, Usage};
use octo_core::{Body, Event, Kind, LogEntry, ModelRef, Offset, SessionId, UserId};
use serde::{Deserialize, Serialize};

use crate::store::{StoreError, storage};
use crate::{Projection, Txn};

/// Characters of the first user message shown as a preview.
pub const PREVIEW_CHARS_MAX: usize = 120;

/// Everything the projection keeps about one session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub owner: UserId,
    pub summary: SessionSummary,
    /// The harness's own session file, from its last `harness.started`.
    pub harness_session_file: Option<String>,
    pub thinking_level: Option<ThinkingLevel>,
    /// Messages of the view inherited from the parent (0 for a root session).
    pub inherited_messages: u32,
    /// The view offset of the message the preview comes from.
    pub preview_offset: Option<Offset>,
    /// A conversation written through hstry's API (PROTOCOL.md 6.7): listed like a session, but
    /// only renamed, deleted or forked through commands.
    #[serde(default)]
    pub read_only: bool,
    /// The source session of a `rerun` (its `session.created.rerun_of`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<SessionId>,
}

/// The `sessions` fold.
#[derive(Debug, Default)]
pub struct Sessions;

fn record_key(session_id: &SessionId) -> Vec<u8> {
    let mut key = Vec::with_capacity(17);
    key.push(b's');
    key.extend_from_slice(session_id.as_bytes());
    key
}

fn listing_prefix(user_id: &UserId) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + user_id.as_str().len());
    key.push(b'u');
    key.extend_from_slice(user_id.as_str().as_bytes());
    // User ids hold no control characters, so 0x00 ends the id.
    key.push(0);
    key
}

/// The session a listing key names (its last 16 bytes).
fn listed_session(key: &[u8]) -> Result<SessionId, StoreError> {
    let bytes: [u8; 16] = key
        .get(key.len().saturating_sub(16)..)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| storage("listing key too short"))?;
    SessionId::from_bytes(bytes).map_err(storage)
}

fn listing_key(user_id: &UserId, updated: Offset, session_id: &SessionId) -> Vec<u8> {
    let mut key = listing_prefix(user_id);
    key.extend_from_slice(&updated.to_be_bytes());
    key.extend_from_slice(session_id.as_bytes());
    key
}

fn message_key(session_id: &SessionId, offset: Offset) -> Vec<u8> {
    let mut key = Vec::with_capacity(25);
    key.push(b'm');
    key.extend_from_slice(session_id.as_bytes());
    key.extend_from_slice(&offset.to_be_bytes());
    key
}

/// A fork of `parent`: the fork tree, walked from the root down.
fn child_key(parent: &SessionId, child: &SessionId) -> Vec<u8> {
    let mut key = Vec::with_capacity(33);
    key.push(b'f');
    key.extend_from_slice(parent.as_bytes());
    key.extend_from_slice(child.as_bytes());
    key
}

/// A written conversation's message idx, to count each idx once.
fn written_key(session_id: &SessionId, idx: i32) -> Vec<u8> {
    let mut key = Vec::with_capacity(21);
    key.push(b'h');
    key.extend_from_slice(session_id.as_bytes());
    key.extend_from_slice(&idx.to_be_bytes());
    key
}

fn preview_of(parts: &[Part]) -> String {
    let text: String = parts
        .iter()
        .filter_map(|part| match part {
            Part::Text(text) => Some(text.text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(" ");
    text.chars().take(PREVIEW_CHARS_MAX).collect()
}

/// Messages in a session's view at or below `at`.
fn view_messages(txn: &mut Txn<'_>, record: &SessionRecord, at: Offset) -> u32 {
    let from = message_key(&record.summary.session_id, Offset::ZERO);
    let to = message_key(&record.summary.session_id, at.successor());
    let own = txn.keys_in(&from, &to).len();
    record.inherited_messages + u32::try_from(own).unwrap_or(u32::MAX)
}

fn new_summary(
    entry: &LogEntry,
    harness: &str,
    workspace: &str,
    model: Option<ModelRef>,
    title: Option<String>,
) -> SessionSummary {
    SessionSummary {
        session_id: entry.session_id,
        title,
        preview: String::new(),
        harness: harness.to_owned(),
        workspace: workspace.to_owned(),
        parent: None,
        created_ms: entry.ts_ms,
        updated_ms: entry.ts_ms,
        updated_offset: entry.offset,
        run_state: RunState::Idle,
        model,
        message_count: 0,
        usage: Usage::default(),
        deleted: false,
    }
}

impl Projection for Sessions {
    const NAME: &'static str = "sessions";
    const VERSION: u32 = 3;
    // What `fold_event` leaves alone.
    const SKIPS: &'static [&'static str] = &[
        "stream.message_start",
        "stream.text_delta",
        "stream.thinking_delta",
        "stream.tool_call_delta",
        "retry.*",
        "compact.*",
        "tool.*",
        "input.*",
        "notice",
        "command.failed",
        "history.tag_*",
        "history.attachment_added",
    ];
    const KIND: Option<Kind> = Some(Kind::Event);

    fn apply(&self, entry: &LogEntry, txn: &mut Txn<'_>) {
        let Body::Event(event) = &entry.body else {
            return;
        };
        let key = record_key(&entry.session_id);
        let mut record = match event {
            Event::SessionCreated(created) => SessionRecord {
                owner: entry.user_id.clone(),
                summary: new_summary(
                    entry,
                    &created.harness,
                    &created.workspace,
                    created.model.clone(),
                    created.title.clone(),
                ),
                harness_session_file: None,
                thinking_level: created.thinking_level,
                inherited_messages: 0,
                preview_offset: None,
                read_only: false,
                rerun_of: created.rerun_of,
            },
            Event::SessionForked(forked) => {
                let mut record = SessionRecord {
                    owner: entry.user_id.clone(),
                    summary: new_summary(
                        entry,
                        &forked.harness,
                        &forked.workspace,
                        forked.model.clone(),
                        forked.title.clone(),
                    ),
                    harness_session_file: None,
                    thinking_level: forked.thinking_level,
                    inherited_messages: 0,
                    preview_offset: None,
                    read_only: false,
                    rerun_of: None,
                };
                record.summary.parent = Some(ParentRef {
                    session_id: forked.parent_session_id,
                    offset: forked.parent_offset,
                });
                txn.put(
                    child_key(&forked.parent_session_id, &entry.session_id),
                    Vec::new(),
                );
                if let Some(parent) =
                    txn.get_value::<SessionRecord>(&record_key(&forked.parent_session_id))
                {
                    record.inherited_messages = view_messages(txn, &parent, forked.parent_offset);
                    record.summary.message_count = record.inherited_messages;
                    if parent
                        .preview_offset
                        .is_some_and(|at| at <= forked.parent_offset)
                    {
                        record.summary.preview = parent.summary.preview.clone();
                        record.preview_offset = parent.preview_offset;
                    }
                }
                record
            }
            Event::HistoryConversationUpserted(upserted) => {
                let harness = upserted.harness.as_ref().unwrap_or(&upserted.source_id);
                let model = upserted.model.as_ref().map(|model_id| ModelRef {
                    provider: upserted.provider.clone().unwrap_or_default(),
                    model_id: model_id.clone(),
                });
                match txn.get_value::<SessionRecord>(&key) {
                    Some(mut record) if record.read_only => {
                        // hstry's upsert rules: the title is replaced (cleared when absent), the
                        // workspace only when given.
                        record.summary.title.clone_from(&upserted.title);
                        if let Some(workspace) =
                            upserted.workspace.as_ref().filter(|w| !w.is_empty())
                        {
                            record.summary.workspace.clone_from(workspace);
                        }
                        record.summary.model = model;
                        record.summary.harness.clone_from(harness);
                        record
                    }
                    Some(_) => return,
                    None => SessionRecord {
                        owner: entry.user_id.clone(),
                        summary: new_summary(
                            entry,
                            harness,
                            upserted.workspace.as_deref().unwrap_or_default(),
                            model,
                            upserted.title.clone(),
                        ),
                        harness_session_file: None,
                        thinking_level: None,
                        inherited_messages: 0,
                        preview_offset: None,
                        read_only: true,
                        rerun_of: None,
                    },
                }
            }
            _ => {
                let Some(mut record) = txn.take_value::<SessionRecord>(&key) else {
                    return;
                };
                if !fold_event(entry, event, &mut record, txn) {
                    txn.put_owned(key, record);
                    return;
                }
                record
            }
        };
        // The summary changed: move it in the listing. Folding keeps owner and updated_offset, so
        // the record still names its old listing key; a session created twice (not in a valid
        // log) would have its old record found here too.
        let previous = match event {
            Event::SessionCreated(_) | Event::SessionForked(_) => txn
                .get_value::<SessionRecord>(&key)
                .map(|old| (old.owner, old.summary.updated_offset)),
            _ => Some((record.owner.clone(), record.summary.updated_offset)),
        };
        if let Some((owner, updated_offset)) = previous {
            let old = listing_key(&owner, updated_offset, &entry.session_id);
            // Moved already in this batch: the old key was never committed.
            if updated_offset > txn.committed_through() {
                txn.forget(&old);
            } else {
                txn.delete(old);
            }
        }
        record.summary.updated_offset = entry.offset;
        record.summary.updated_ms = entry.ts_ms;
        txn.put(
            listing_key(&record.owner, entry.offset, &entry.session_id),
            Vec::new(),
        );
        txn.put_owned(key, record);
    }
}

/// Folds an event into an existing record; false when the summary does not change.
fn fold_event(
    entry: &LogEntry,
    event: &Event,
    record: &mut SessionRecord,
    txn: &mut Txn<'_>,
) -> bool {
    let summary = &mut record.summary;
    match event {
        Event::SessionRenamed(renamed) => summary.title = Some(renamed.title.clone()),
        Event::SessionDeleted(_) => summary.deleted = true,
        Event::HarnessStarted(started) => {
            if started.harness_session_file.is_some() {
                record.harness_session_file = started.harness_session_file.clone();
            }
            if let Some(model) = &started.model {
                summary.model = Some(model.clone());
            }
            if started.thinking_level.is_some() {
                record.thinking_level = started.thinking_level;
            }
        }
        Event::HarnessExited(_) => {}
        Event::AgentWorking(_) => summary.run_state = RunState::Working,
        Event::AgentIdle(_) => summary.run_state = RunState::Idle,
        Event::RunFailed(_) | Event::RunTimedOut(_) => summary.run_state = RunState::Error,
        Event::MessageCreated(created) => {
            summary.message_count = summary.message_count.saturating_add(1);
            txn.put(message_key(&entry.session_id, entry.offset), Vec::new());
            if created.message.role == Role::User && record.preview_offset.is_none() {
                record.summary.preview = preview_of(&created.message.parts);
                record.preview_offset = Some(entry.offset);
            }
        }
        Event::StreamMessageEnd(_) => {
            summary.message_count = summary.message_count.saturating_add(1);
            txn.put(message_key(&entry.session_id, entry.offset), Vec::new());
        }
        Event::UsageRecorded(usage) => {
            let total = &mut summary.usage;
            total.input_tokens = total.input_tokens.saturating_add(usage.input_tokens);
            total.output_tokens = total.output_tokens.saturating_add(usage.output_tokens);
            total.cache_read_tokens = total
                .cache_read_tokens
                .saturating_add(usage.cache_read_tokens);
            total.cache_write_tokens = total
                .cache_write_tokens
                .saturating_add(usage.cache_write_tokens);
            total.cost_usd += usage.cost_usd.unwrap_or(0.0);
        }
        Event::HistoryMessageUpserted(upserted) => {
            let key = written_key(&entry.session_id, upserted.idx);
            if txn.get(&key).is_none() {
                summary.message_count = summary.message_count.saturating_add(1);
                txn.put(key, Vec::new());
            }
            if upserted.role == HistoryRole::User
                && let TextOrBlob::Inline(text) = &upserted.content
                && record.preview_offset.is_none()
            {
                record.summary.preview = text.chars().take(PREVIEW_CHARS_MAX).collect();
                record.preview_offset = Some(entry.offset);
            }
        }
        Event::HistoryConversationUpdated(updated) => {
            if updated.title.is_some() {
                summary.title.clone_from(&updated.title);
            }
            if let Some(workspace) = &updated.workspace {
                summary.workspace.clone_from(workspace);
            }
        }
        Event::HistoryConversationTouched(_) => {}
        Event::HistoryConversationDeleted(_) => summary.deleted = true,
        Event::ModelChanged(changed) => {
            summary.model = Some(ModelRef {
                provider: changed.provider.clone(),
                model_id: changed.model_id.clone(),
            });
            record.thinking_level = Some(changed.thinking_level);
        }
        _ => return false,
    }
    true
}

fn decode_record(bytes: &[u8]) -> Result<SessionRecord, StoreError> {
    octo_core::codec::from_msgpack(bytes).map_err(StoreError::corrupt::<Sessions>)
}

impl Sessions {
    /// A session's record, whoever owns it (owner checks are the caller's, see
    /// [`Sessions::owned`]).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn get(
        keyspace: &Keyspace,
        session_id: &SessionId,
    ) -> Result<Option<SessionRecord>, StoreError> {
        match keyspace.get(record_key(session_id)).map_err(storage)? {
            None => Ok(None),
            Some(bytes) => decode_record(&bytes).map(Some),
        }
    }

    /// A session's record as of a [`StoreSnapshot`](crate::store::StoreSnapshot).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn get_at(
        snapshot: &crate::store::StoreSnapshot,
        keyspace: &Keyspace,
        session_id: &SessionId,
    ) -> Result<Option<SessionRecord>, StoreError> {
        use fjall::Readable as _;
        match snapshot
            .inner()
            .get(keyspace, record_key(session_id))
            .map_err(storage)?
        {
            None => Ok(None),
            Some(bytes) => decode_record(&bytes).map(Some),
        }
    }

    /// The forks of `parent` (the fork tree's next level), oldest session id first.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn children(keyspace: &Keyspace, parent: &SessionId) -> Result<Vec<SessionId>, StoreError> {
        let mut prefix = Vec::with_capacity(17);
        prefix.push(b'f');
        prefix.extend_from_slice(parent.as_bytes());
        keyspace
            .prefix(&prefix)
            .map(|guard| {
                let key = guard.key().map_err(storage)?;
                let child: [u8; 16] = key
                    .get(17..33)
                    .and_then(|bytes| bytes.try_into().ok())
                    .ok_or_else(|| StoreError::corrupt::<Sessions>("a fork key is not 33 bytes"))?;
                SessionId::from_bytes(child).map_err(StoreError::corrupt::<Sessions>)
            })
            .collect()
    }

    /// A live session of `user_id`; another user's, a deleted or an unknown session are all
    /// `None` alike (PROTOCOL.md: answered exactly like a session that does not exist).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn owned(
        keyspace: &Keyspace,
        user_id: &UserId,
        session_id: &SessionId,
    ) -> Result<Option<SessionRecord>, StoreError> {
        Ok(Self::get(keyspace, session_id)?
            .filter(|record| &record.owner == user_id && !record.summary.deleted))
    }

    /// Every session made by `rerun` (deleted ones included), for the rerun driver at startup.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn reruns(keyspace: &Keyspace) -> Result<Vec<(SessionId, SessionRecord)>, StoreError> {
        let mut reruns = Vec::new();
        for guard in keyspace.prefix([b's']) {
            let (key, value) = guard.into_inner().map_err(storage)?;
            let record = decode_record(&value)?;
            if record.rerun_of.is_some() {
                let id: [u8; 16] = key
                    .get(1..17)
                    .and_then(|bytes| bytes.try_into().ok())
                    .ok_or_else(|| storage("a record key is not 17 bytes"))?;
                reruns.push((SessionId::from_bytes(id).map_err(storage)?, record));
            }
        }
        Ok(reruns)
    }

    /// The user's live sessions, most recently updated first, strictly below the listing position
    /// `before` (`(updated_offset, session_id)` of the last one seen; `None`: from the newest), at
    /// most `limit`, those that `keep` accepts. Deleted sessions are skipped.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn newest_first(
        keyspace: &Keyspace,
        user_id: &UserId,
        before: Option<(Offset, SessionId)>,
        limit: usize,
        mut keep: impl FnMut(&SessionRecord) -> bool,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let prefix = listing_prefix(user_id);
        let from = prefix.clone();
        let to = match before {
            Some((offset, session_id)) => listing_key(user_id, offset, &session_id),
            None => {
                let mut to = prefix;
                to.extend_from_slice(&[0xff; 25]);
                to
            }
        };
        let mut summaries = Vec::new();
        for guard in keyspace.range(from..to).rev() {
            if summaries.len() >= limit {
                break;
            }
            let session_id = listed_session(&guard.key().map_err(storage)?)?;
            if let Some(record) = Self::get(keyspace, &session_id)?
                && !record.summary.deleted
                && keep(&record)
            {
                summaries.push(record.summary);
            }
        }
        Ok(summaries)
    }

    /// The user's sessions whose summary changed after `after`, ordered by `updated_offset`, at
    /// most `limit` (deleted ones included, flagged, so listings can drop them).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn changed_since(
        keyspace: &Keyspace,
        user_id: &UserId,
        after: Offset,
        limit: usize,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let prefix = listing_prefix(user_id);
        let mut from = prefix.clone();
        from.extend_from_slice(&after.successor().to_be_bytes());
        let mut to = prefix;
        to.extend_from_slice(&[0xff; 25]);
        let mut summaries = Vec::new();
        for guard in keyspace.range(from..to) {
            let session_id = listed_session(&guard.key().map_err(storage)?)?;
            if let Some(record) = Self::get(keyspace, &session_id)? {
                summaries.push(record.summary);
            }
            if summaries.len() >= limit {
                break;
            }
        }
        Ok(summaries)
    }
}
