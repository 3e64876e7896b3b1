//! The `history` projection: each session's messages as the protocol's [`Message`] (PROTOCOL.md
//! 7), lossless, and the assistant message streaming now as a draft built from its deltas. It
//! serves `snapshot` (5.5): a long session opens with one read and then subscribes after its
//! `as_of`, with the same result as a full replay.
//!
//! A fork's view is its parent's messages up to the fork point, then its own: derived at read time
//! from the parent chain, never copied.
//!
//! Keys:
//! - `m` ++ session id ++ offset -> [`Message`] (msgpack): a completed message, keyed by the offset
//!   of the entry that completed it (`message.created` or `stream.message_end`);
//! - `d` ++ session id -> [`Draft`] (msgpack): the assistant message being streamed;
//! - `F` ++ message offset -> offset (msgpack): where "fork here" on that message forks, by the
//!   rule of PROTOCOL.md 9.2 (a user message: the last entry before its prompt; an assistant
//!   message or a tool result: the terminal event of its run). Offsets are unique across
//!   sessions, so inherited messages of a fork find theirs too;
//! - `L` ++ session id -> offset: the session's newest entry other than a stream delta (a delta
//!   is always inside a run, so never a fork point);
//! - `P` ++ prompt offset -> offset: `L` when the prompt was logged, until its user message;
//! - `R` ++ session id -> [offsets]: the open run's completed assistant and tool messages.

pub mod conversations;
pub mod readable;

use fjall::{Keyspace, Readable};
use octo_core::message::{Part, Role, TextPart, ThinkingPart, ToolCallPart};
use octo_core::{Body, Event, LogEntry, Message, MessageId, Offset, PartId, RunId, SessionId};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::sessions::Sessions;
use crate::store::{StoreError, StoreSnapshot, storage};
use crate::{Projection, Txn};

/// Messages per `snapshot` page.
pub const SNAPSHOT_MESSAGES_MAX: usize = 200;

/// The assistant message being streamed, as its deltas built it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Draft {
    pub run_id: RunId,
    pub message: Message,
    /// Part indexes, parallel to `message.parts` (deltas address parts by index).
    pub indexes: Vec<u32>,
    /// Raw argument text of tool calls so far, parallel to `message.parts` (empty for others).
    pub tool_args: Vec<String>,
}

/// The `history` fold.
#[derive(Debug, Default)]
pub struct History;

fn session_prefix(tag: u8, session_id: &SessionId) -> Vec<u8> {
    let mut key = Vec::with_capacity(25);
    key.push(tag);
    key.extend_from_slice(session_id.as_bytes());
    key
}

pub(crate) fn message_key(session_id: &SessionId, offset: Offset) -> Vec<u8> {
    let mut key = session_prefix(b'm', session_id);
    key.extend_from_slice(&offset.to_be_bytes());
    key
}

fn draft_key(session_id: &SessionId) -> Vec<u8> {
    session_prefix(b'd', session_id)
}

impl Draft {
    /// The part at `index`, created (with `part_id`) by `make` when it is new.
    fn part(&mut self, index: u32, make: impl FnOnce() -> Part) -> usize {
        match self.indexes.iter().position(|i| *i == index) {
            Some(position) => position,
            None => {
                let position = self.indexes.iter().take_while(|i| **i < index).count();
                self.indexes.insert(position, index);
                self.message.parts.insert(position, make());
                self.tool_args.insert(position, String::new());
                position
            }
        }
    }
}

fn text_part(id: PartId) -> Part {
    Part::Text(TextPart {
        id,
        text: String::new(),
        truncated: false,
    })
}

impl Projection for History {
    const NAME: &'static str = "history";
    const VERSION: u32 = 4;

    fn apply(&self, entry: &LogEntry, txn: &mut Txn<'_>) {
        conversations::apply(entry, txn);
        fold_fork_points(entry, txn);
        let Body::Event(event) = &entry.body else {
            return;
        };
        let session_id = &entry.session_id;
        match event {
            Event::MessageCreated(created) => {
                put_message(txn, message_key(session_id, entry.offset), &created.message);
            }
            Event::StreamMessageEnd(end) => {
                put_message(txn, message_key(session_id, entry.offset), &end.message);
                txn.delete(draft_key(session_id));
            }
            Event::StreamMessageStart(start) => {
                let mut message =
                    Message::new(start.message_id, Role::Assistant, Vec::new(), entry.ts_ms);
                message.provider = Some(start.provider.clone());
                message.model_id = Some(start.model_id.clone());
                let draft = Draft {
                    run_id: start.run_id,
                    message,
                    indexes: Vec::new(),
                    tool_args: Vec::new(),
                };
                txn.put_value(draft_key(session_id), &draft);
            }
            Event::StreamTextDelta(delta) => {
                fold_delta(txn, session_id, delta.message_id, |draft| {
                    let at = draft.part(delta.index, || text_part(delta.part_id));
                    if let Part::Text(part) = &mut draft.message.parts[at] {
                        part.text.push_str(&delta.delta);
                    }
                });
            }
            Event::StreamThinkingDelta(delta) => {
                fold_delta(txn, session_id, delta.message_id, |draft| {
                    let at = draft.part(delta.index, || {
                        Part::Thinking(ThinkingPart {
                            id: delta.part_id,
                            text: String::new(),
                            signature: None,
                        })
                    });
                    if let Part::Thinking(part) = &mut draft.message.parts[at] {
                        part.text.push_str(&delta.delta);
                    }
                });
            }
            Event::StreamToolCallDelta(delta) => {
                fold_delta(txn, session_id, delta.message_id, |draft| {
                    let at = draft.part(delta.index, || {
                        Part::ToolCall(ToolCallPart {
                            id: delta.part_id,
                            tool_call_id: String::new(),
                            name: String::new(),
                            input: serde_json::Value::Null,
                        })
                    });
                    draft.tool_args[at].push_str(&delta.delta);
                    if let Part::ToolCall(part) = &mut draft.message.parts[at] {
                        if let Some(id) = &delta.tool_call_id {
                            part.tool_call_id.clone_from(id);
                        }
                        if let Some(name) = &delta.name {
                            part.name.clone_from(name);
                        }
                        // The arguments so far: parsed once they form JSON, else the raw text.
                        part.input =
                            serde_json::from_str(&draft.tool_args[at]).unwrap_or_else(|_| {
                                serde_json::Value::String(draft.tool_args[at].clone())
                            });
                    }
                });
            }
            // A run that ends without its message's end leaves no draft behind.
            Event::AgentIdle(_) | Event::RunFailed(_) | Event::RunTimedOut(_) => {
                txn.delete(draft_key(session_id));
            }
            _ => {}
        }
    }
}

/// Writes a completed message, encoded now: nothing in the batch reads it back, and the entry's
/// message is borrowed, so this spares a copy of it.
fn put_message(txn: &mut Txn<'_>, key: Vec<u8>, message: &Message) {
    match octo_core::codec::to_msgpack(message) {
        Ok(bytes) => txn.put(key, bytes),
        Err(e) => txn.fail(format!("a message does not encode: {e}")),
    }
}

fn offset_key(tag: u8, offset: Offset) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(tag);
    key.extend_from_slice(&offset.to_be_bytes());
    key
}

/// Keeps the `F` table: where "fork here" on each completed message forks (see the module docs).
fn fold_fork_points(entry: &LogEntry, txn: &mut Txn<'_>) {
    let session_id = &entry.session_id;
    let is_delta = matches!(
        &entry.body,
        Body::Event(
            Event::StreamTextDelta(_)
                | Event::StreamThinkingDelta(_)
                | Event::StreamToolCallDelta(_)
        )
    );
    if is_delta {
        return;
    }
    let last_key = session_prefix(b'L', session_id);
    match &entry.body {
        Body::Command(octo_core::Command::Prompt(_)) => {
            if let Some(last) = txn.get_value::<Offset>(&last_key) {
                txn.put_value(offset_key(b'P', entry.offset), &last);
            }
        }
        Body::Event(Event::MessageCreated(created)) => match created.message.role {
            Role::User => {
                if let Some(prompt) = created.cause {
                    let pending = offset_key(b'P', prompt);
                    if let Some(before) = txn.get_value::<Offset>(&pending) {
                        txn.put_value(offset_key(b'F', entry.offset), &before);
                        txn.delete(pending);
                    }
                }
            }
            _ => in_run(txn, session_id, entry.offset),
        },
        Body::Event(Event::StreamMessageEnd(_)) => in_run(txn, session_id, entry.offset),
        // A prompt that failed never gets its user message: forget what it was waiting for.
        Body::Event(Event::CommandFailed(failed)) => txn.delete(offset_key(b'P', failed.cause)),
        Body::Event(Event::AgentIdle(_) | Event::RunFailed(_) | Event::RunTimedOut(_)) => {
            let run_key = session_prefix(b'R', session_id);
            if let Some(messages) = txn.take_value::<Vec<Offset>>(&run_key) {
                for message in messages {
                    txn.put_value(offset_key(b'F', message), &entry.offset);
                }
                txn.delete(run_key);
            }
        }
        _ => {}
    }
    txn.put_value(last_key, &entry.offset);
}

/// A completed assistant or tool message of the open run: it forks at the run's end.
fn in_run(txn: &mut Txn<'_>, session_id: &SessionId, offset: Offset) {
    let run_key = session_prefix(b'R', session_id);
    let mut messages: Vec<Offset> = txn.take_value(&run_key).unwrap_or_default();
    messages.push(offset);
    txn.put_owned(run_key, messages);
}

fn fold_delta(
    txn: &mut Txn<'_>,
    session_id: &SessionId,
    message_id: MessageId,
    fold: impl FnOnce(&mut Draft),
) {
    let key = draft_key(session_id);
    let Some(mut draft) = txn.take_value::<Draft>(&key) else {
        return;
    };
    if draft.message.id == message_id {
        fold(&mut draft);
    }
    txn.put_owned(key, draft);
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::corrupt::<History>(e)
}

/// A stored message and the offset its key carries.
fn stored_message(guard: fjall::Guard) -> Result<(Offset, Message), StoreError> {
    let (offset, value) = stored_bytes(guard)?;
    Ok((offset, StoredMessage(value).decode()?))
}

fn stored_bytes(guard: fjall::Guard) -> Result<(Offset, fjall::Slice), StoreError> {
    let (key, value) = guard.into_inner().map_err(storage)?;
    let offset_bytes: [u8; 8] = key
        .get(17..25)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| corrupt("message key is not 25 bytes"))?;
    let offset = Offset::from_be_bytes(offset_bytes).map_err(corrupt)?;
    Ok((offset, value))
}

/// Ranges [`History::view_stored`] reads a link of a view in, at most.
const VIEW_READ_RANGES: u64 = 8;

/// `first..=last` cut into at most `parts` consecutive ranges of equal span.
fn split_span(first: Offset, last: Offset, parts: u64) -> impl Iterator<Item = (Offset, Offset)> {
    let last = last.max(first);
    let step = (last.get() - first.get()) / parts + 1;
    // Every bound lies within `first..=last`, so each is an offset.
    let offset = move |value: u64| Offset::new(value).unwrap_or(last);
    (first.get()..=last.get())
        .step_by(usize::try_from(step).unwrap_or(usize::MAX))
        .map(move |from| {
            (
                offset(from),
                offset(from.saturating_add(step - 1).min(last.get())),
            )
        })
}

/// A message as stored, not yet decoded: what [`History::view_stored`] returns, so a caller
/// with many can decode them where it likes (in parallel, say).
#[derive(Debug, Clone)]
pub struct StoredMessage(fjall::Slice);

impl StoredMessage {
    /// The message.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when the stored bytes are not a message.
    pub fn decode(&self) -> Result<Message, StoreError> {
        octo_core::codec::from_msgpack(&self.0).map_err(corrupt)
    }
}

/// A page of a session's view, newest last.
#[derive(Debug, Clone, PartialEq)]
pub struct MessagePage {
    /// (offset, message), oldest first.
    pub messages: Vec<(Offset, Message)>,
    /// Pass as `before` for older messages; `None` when there are none.
    pub next_before: Option<Offset>,
}

impl History {
    /// The newest `limit` messages of a session's view with offsets below `before` (all when
    /// `None`), read from one consistent snapshot. The view of a fork continues into its parent's
    /// messages up to the fork offset, recursively.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn page(
        snapshot: &StoreSnapshot,
        history: &Keyspace,
        sessions: &Keyspace,
        session_id: &SessionId,
        before: Option<Offset>,
        limit: usize,
    ) -> Result<MessagePage, StoreError> {
        let mut newest_first: Vec<(Offset, Message)> = Vec::with_capacity(limit + 1);
        // (session, the highest offset of its part of the view)
        let mut link = Some((*session_id, Offset::MAX));
        while let Some((session, upper)) = link.take() {
            let upper = match before {
                Some(before) if before <= upper => match before.get().checked_sub(1) {
                    Some(below) => Offset::new(below).map_err(corrupt)?,
                    None => break,
                },
                _ => upper,
            };
            let from = message_key(&session, Offset::ZERO);
            let to = message_key(&session, upper);
            for guard in snapshot.inner().range(history, from..=to).rev() {
                newest_first.push(stored_message(guard)?);
                if newest_first.len() > limit {
                    break;
                }
            }
            if newest_first.len() > limit {
                break;
            }
            let record = Sessions::get_at(snapshot, sessions, &session)?;
            link = record
                .and_then(|record| record.summary.parent)
                .map(|parent| (parent.session_id, parent.offset));
        }
        let next_before = if newest_first.len() > limit {
            newest_first.truncate(limit);
            newest_first.last().map(|(offset, _)| *offset)
        } else {
            None
        };
        newest_first.reverse();
        Ok(MessagePage {
            messages: newest_first,
            next_before,
        })
    }

    /// Every message of a session's view, oldest first, read with forward scans: the root of
    /// its fork chain up to the first fork point, then each fork's own, as in [`History::page`].
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn view(
        snapshot: &StoreSnapshot,
        history: &Keyspace,
        sessions: &Keyspace,
        session_id: &SessionId,
    ) -> Result<Vec<(Offset, Message)>, StoreError> {
        Self::view_stored(snapshot, history, sessions, session_id)?
            .into_iter()
            .map(|(offset, stored)| Ok((offset, stored.decode()?)))
            .collect()
    }

    /// [`History::view`], each message still as stored.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn view_stored(
        snapshot: &StoreSnapshot,
        history: &Keyspace,
        sessions: &Keyspace,
        session_id: &SessionId,
    ) -> Result<Vec<(Offset, StoredMessage)>, StoreError> {
        // (session, the highest offset of its part of the view), newest link first.
        let mut chain = vec![(*session_id, Offset::MAX)];
        let mut at = *session_id;
        while let Some(parent) =
            Sessions::get_at(snapshot, sessions, &at)?.and_then(|record| record.summary.parent)
        {
            if chain
                .iter()
                .any(|(session, _)| *session == parent.session_id)
            {
                return Err(corrupt("the fork chain loops"));
            }
            chain.push((parent.session_id, parent.offset));
            at = parent.session_id;
        }
        // Each link's keys, cut into ranges of equal offset span and read on every core: one
        // thread reading a 10,000-message view was a third of the time hstry's GetMessages took
        // to build the whole conversation.
        let mut ranges = Vec::new();
        for (session, upper) in chain.iter().rev() {
            let mut keys = snapshot.inner().range(
                history,
                message_key(session, Offset::ZERO)..=message_key(session, *upper),
            );
            let Some(first) = keys.next() else {
                continue;
            };
            let first = stored_bytes(first)?.0;
            let last = match keys.next_back() {
                Some(last) => stored_bytes(last)?.0,
                None => first,
            };
            ranges.extend(
                split_span(first, last, VIEW_READ_RANGES).map(|(from, to)| (*session, from, to)),
            );
        }
        let parts = ranges
            .par_iter()
            .map(|(session, from, to)| {
                snapshot
                    .inner()
                    .range(
                        history,
                        message_key(session, *from)..=message_key(session, *to),
                    )
                    .map(|guard| stored_bytes(guard).map(|(at, value)| (at, StoredMessage(value))))
                    .collect::<Result<Vec<_>, StoreError>>()
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(parts.concat())
    }

    /// Where "fork here" on the message completed at each of `offsets` forks (`None`: not yet,
    /// its run is still open), as of the snapshot.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn fork_points(
        snapshot: &StoreSnapshot,
        history: &Keyspace,
        offsets: &[Offset],
    ) -> Result<Vec<Option<Offset>>, StoreError> {
        offsets
            .iter()
            .map(|offset| {
                match snapshot
                    .inner()
                    .get(history, offset_key(b'F', *offset))
                    .map_err(storage)?
                {
                    None => Ok(None),
                    Some(bytes) => octo_core::codec::from_msgpack(&bytes)
                        .map(Some)
                        .map_err(corrupt),
                }
            })
            .collect()
    }

    /// The assistant message a session is streaming now, as of the snapshot.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn draft(
        snapshot: &StoreSnapshot,
        history: &Keyspace,
        session_id: &SessionId,
    ) -> Result<Option<Draft>, StoreError> {
        match snapshot
            .inner()
            .get(history, draft_key(session_id))
            .map_err(storage)?
        {
            None => Ok(None),
            Some(bytes) => octo_core::codec::from_msgpack(&bytes)
                .map(Some)
                .map_err(corrupt),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_spans_cover_their_range_once_in_order() {
        for (first, last) in [
            (1, 1),
            (1, 2),
            (5, 12),
            (3, 1_000),
            (7, 7 + 8 * 9),
            (1, 1 << 40),
        ] {
            for parts in [1, 2, 8, 9] {
                let spans: Vec<(u64, u64)> = split_span(
                    Offset::new(first).expect("offset"),
                    Offset::new(last).expect("offset"),
                    parts,
                )
                .map(|(from, to)| (from.get(), to.get()))
                .collect();
                assert!(
                    spans.len() as u64 <= parts,
                    "{first}..={last} in {parts}: {spans:?}"
                );
                assert_eq!(spans.first().map(|s| s.0), Some(first));
                assert_eq!(spans.last().map(|s| s.1), Some(last));
                for (from, to) in &spans {
                    assert!(from <= to);
                }
                for pair in spans.windows(2) {
                    assert_eq!(pair[0].1 + 1, pair[1].0, "{spans:?}");
                }
            }
        }
    }
}
