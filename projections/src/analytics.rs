//! The `analytics` projection: tokens (input, output, cache read and write), cost, turns, tool
//! calls, run and tool durations and messages, summed per UTC day, user, harness, provider and
//! model. Queries group by any of those over a day range; the buckets are small, so grouping is a
//! scan of the range.
//!
//! Keys:
//! - `b` ++ day (u32) ++ str(user) ++ str(harness) ++ str(provider) ++ str(model) -> [`Totals`];
//! - `s` ++ session id -> [`SessionModel`]: what the session's usage is counted under;
//! - `r` ++ session id -> the open run's start (ms), for its duration.

use fjall::{Keyspace, Readable};
use octo_core::{Body, Event, Kind, LogEntry, Ms, SessionId, UserId};
use serde::{Deserialize, Serialize};

use crate::store::{StoreError, StoreSnapshot, storage};
use crate::{Projection, Txn};

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// Sums of one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub cost_usd: f64,
    /// Runs started.
    pub turns: u64,
    pub tool_calls: u64,
    pub tool_errors: u64,
    /// Time tools ran.
    pub tool_ms: u64,
    /// Time runs took, from `agent.working` to their end.
    pub run_ms: u64,
    /// Completed messages (and messages written through hstry).
    pub messages: u64,
}

impl Totals {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Totals) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.cost_usd += other.cost_usd;
        self.turns += other.turns;
        self.tool_calls += other.tool_calls;
        self.tool_errors += other.tool_errors;
        self.tool_ms += other.tool_ms;
        self.run_ms += other.run_ms;
        self.messages += other.messages;
    }
}

/// What a session's numbers are counted under.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionModel {
    pub harness: String,
    pub provider: String,
    pub model: String,
}

/// A dimension to group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    Day,
    User,
    Harness,
    Provider,
    Model,
}

/// One bucket's key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BucketKey {
    /// Days since 1970-01-01, UTC.
    pub day: u32,
    pub user: String,
    pub harness: String,
    pub provider: String,
    pub model: String,
}

/// A grouped row: the dimensions grouped by are set, the others `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub day: Option<u32>,
    pub user: Option<String>,
    pub harness: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub totals: Totals,
}

/// A row's grouping: (day, user, harness, provider, model), each set when grouped by.
type GroupKey = (
    Option<u32>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The `analytics` fold.
#[derive(Debug, Default)]
pub struct Analytics;

/// The UTC day of a time, as days since the epoch.
pub fn day_of(ms: Ms) -> u32 {
    u32::try_from(ms.div_euclid(DAY_MS).max(0)).unwrap_or(u32::MAX)
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01, UTC).
pub fn date_of_day(day: u32) -> String {
    octo_core::civil::date_text(i64::from(day))
}

/// The day number of a `YYYY-MM-DD` date (`None` if it is not one, or before 1970).
pub fn day_of_date(date: &str) -> Option<u32> {
    octo_core::civil::parse_date(date).and_then(|days| u32::try_from(days).ok())
}

fn push_str(key: &mut Vec<u8>, text: &str) {
    let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(text.as_bytes());
}

fn bucket_key(key: &BucketKey) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(64);
    bytes.push(b'b');
    bytes.extend_from_slice(&key.day.to_be_bytes());
    push_str(&mut bytes, &key.user);
    push_str(&mut bytes, &key.harness);
    push_str(&mut bytes, &key.provider);
    push_str(&mut bytes, &key.model);
    bytes
}

fn read_str<'a>(bytes: &mut &'a [u8]) -> Option<&'a str> {
    let (len, rest) = bytes.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    let (text, rest) = (rest.get(..len)?, rest.get(len..)?);
    *bytes = rest;
    std::str::from_utf8(text).ok()
}

fn parse_bucket_key(bytes: &[u8]) -> Option<BucketKey> {
    let (tag, rest) = bytes.split_first()?;
    if *tag != b'b' {
        return None;
    }
    let (day, mut rest) = rest.split_first_chunk::<4>()?;
    Some(BucketKey {
        day: u32::from_be_bytes(*day),
        user: read_str(&mut rest)?.to_owned(),
        harness: read_str(&mut rest)?.to_owned(),
        provider: read_str(&mut rest)?.to_owned(),
        model: read_str(&mut rest)?.to_owned(),
    })
}

fn session_key(tag: u8, session_id: &SessionId) -> Vec<u8> {
    let mut key = Vec::with_capacity(17);
    key.push(tag);
    key.extend_from_slice(session_id.as_bytes());
    key
}

fn add(
    txn: &mut Txn<'_>,
    entry: &LogEntry,
    model: &SessionModel,
    change: impl FnOnce(&mut Totals),
) {
    let key = bucket_key(&BucketKey {
        day: day_of(entry.ts_ms),
        user: entry.user_id.as_str().to_owned(),
        harness: model.harness.clone(),
        provider: model.provider.clone(),
        model: model.model.clone(),
    });
    let mut totals: Totals = txn.take_value(&key).unwrap_or_default();
    change(&mut totals);
    txn.put_owned(key, totals);
}

fn end_run(txn: &mut Txn<'_>, entry: &LogEntry, model: &SessionModel) {
    let key = session_key(b'r', &entry.session_id);
    if let Some(started) = txn.get_value::<Ms>(&key) {
        txn.delete(key);
        let took = u64::try_from(entry.ts_ms.saturating_sub(started)).unwrap_or(0);
        add(txn, entry, model, |totals| totals.run_ms += took);
    }
}

impl Projection for Analytics {
    const NAME: &'static str = "analytics";
    const VERSION: u32 = 1;
    const SKIPS: &'static [&'static str] = &[
        "session.renamed",
        "session.deleted",
        "harness.exited",
        "retry.*",
        "compact.*",
        "stream.message_start",
        "stream.text_delta",
        "stream.thinking_delta",
        "stream.tool_call_delta",
        "tool.start",
        "tool.progress",
        "input.*",
        "notice",
        "command.failed",
        "history.conversation_touched",
        "history.conversation_updated",
        "history.conversation_deleted",
        "history.tag_*",
        "history.attachment_added",
    ];
    const KIND: Option<Kind> = Some(Kind::Event);

    fn apply(&self, entry: &LogEntry, txn: &mut Txn<'_>) {
        let Body::Event(event) = &entry.body else {
            return;
        };
        let key = session_key(b's', &entry.session_id);
        let mut model: SessionModel = txn.get_value(&key).unwrap_or_default();
        let set_model = |txn: &mut Txn<'_>, model: &SessionModel| txn.put_value(key.clone(), model);
        match event {
            Event::SessionCreated(created) => {
                model.harness.clone_from(&created.harness);
                if let Some(m) = &created.model {
                    model.provider.clone_from(&m.provider);
                    model.model.clone_from(&m.model_id);
                }
                set_model(txn, &model);
            }
            Event::SessionForked(forked) => {
                model.harness.clone_from(&forked.harness);
                if let Some(m) = &forked.model {
                    model.provider.clone_from(&m.provider);
                    model.model.clone_from(&m.model_id);
                }
                set_model(txn, &model);
            }
            Event::HarnessStarted(started) => {
                if let Some(m) = &started.model {
                    model.provider.clone_from(&m.provider);
                    model.model.clone_from(&m.model_id);
                    set_model(txn, &model);
                }
            }
            Event::ModelChanged(changed) => {
                model.provider.clone_from(&changed.provider);
                model.model.clone_from(&changed.model_id);
                set_model(txn, &model);
            }
            Event::HistoryConversationUpserted(upserted) => {
                model.harness = upserted
                    .harness
                    .clone()
                    .unwrap_or_else(|| upserted.source_id.clone());
                model.provider = upserted.provider.clone().unwrap_or_default();
                model.model = upserted.model.clone().unwrap_or_default();
                set_model(txn, &model);
            }
            Event::AgentWorking(_) => {
                txn.put_value(session_key(b'r', &entry.session_id), &entry.ts_ms);
                add(txn, entry, &model, |totals| totals.turns += 1);
            }
            Event::AgentIdle(_) | Event::RunFailed(_) | Event::RunTimedOut(_) => {
                end_run(txn, entry, &model);
            }
            Event::UsageRecorded(usage) => {
                // Counted under the model that answered, which may differ from the session's.
                let answered = SessionModel {
                    harness: model.harness.clone(),
                    provider: usage.provider.clone(),
                    model: usage.model_id.clone(),
                };
                add(txn, entry, &answered, |totals| {
                    totals.input_tokens += usage.input_tokens;
                    totals.output_tokens += usage.output_tokens;
                    totals.cache_read_tokens += usage.cache_read_tokens;
                    totals.cache_write_tokens += usage.cache_write_tokens;
                    totals.cost_usd += usage.cost_usd.unwrap_or(0.0);
                });
            }
            Event::ToolEnd(end) => add(txn, entry, &model, |totals| {
                totals.tool_calls += 1;
                totals.tool_errors += u64::from(end.is_error);
                totals.tool_ms += end.duration_ms;
            }),
            Event::MessageCreated(_) | Event::StreamMessageEnd(_) => {
                add(txn, entry, &model, |totals| totals.messages += 1);
            }
            Event::HistoryMessageUpserted(upserted) => {
                let written = SessionModel {
                    model: upserted
                        .model
                        .clone()
                        .unwrap_or_else(|| model.model.clone()),
                    provider: upserted
                        .provider
                        .clone()
                        .unwrap_or_else(|| model.provider.clone()),
                    harness: upserted
                        .harness
                        .clone()
                        .unwrap_or_else(|| model.harness.clone()),
                };
                add(txn, entry, &written, |totals| {
                    totals.messages += 1;
                    totals.output_tokens +=
                        u64::try_from(upserted.tokens.unwrap_or(0)).unwrap_or(0);
                    totals.cost_usd += upserted.cost_usd.unwrap_or(0.0);
                });
            }
            _ => {}
        }
    }
}

/// A query: a user, an inclusive day range, and the dimensions to group by.
#[derive(Debug, Clone)]
pub struct AnalyticsQuery {
    /// Only this user's numbers (`None`: everyone's, for operators).
    pub user: Option<UserId>,
    pub from_day: u32,
    pub to_day: u32,
    pub group_by: Vec<Dimension>,
}

impl Analytics {
    /// Rows of `query`, ordered by their keys.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn query(
        snapshot: &StoreSnapshot,
        keyspace: &Keyspace,
        query: &AnalyticsQuery,
    ) -> Result<Vec<Row>, StoreError> {
        let mut from = vec![b'b'];
        from.extend_from_slice(&query.from_day.to_be_bytes());
        let mut to = vec![b'b'];
        to.extend_from_slice(&query.to_day.saturating_add(1).to_be_bytes());
        let by = |d: Dimension| query.group_by.contains(&d);
        let mut rows: std::collections::BTreeMap<GroupKey, Totals> =
            std::collections::BTreeMap::new();
        for guard in snapshot.inner().range(keyspace, from..to) {
            let (key, value) = guard.into_inner().map_err(storage)?;
            let bucket = parse_bucket_key(&key)
                .ok_or_else(|| StoreError::corrupt::<Analytics>("a bucket key does not parse"))?;
            if query
                .user
                .as_ref()
                .is_some_and(|user| user.as_str() != bucket.user)
            {
                continue;
            }
            let totals: Totals =
                octo_core::codec::from_msgpack(&value).map_err(StoreError::corrupt::<Analytics>)?;
            let group = (
                by(Dimension::Day).then_some(bucket.day),
                by(Dimension::User).then(|| bucket.user.clone()),
                by(Dimension::Harness).then(|| bucket.harness.clone()),
                by(Dimension::Provider).then(|| bucket.provider.clone()),
                by(Dimension::Model).then(|| bucket.model.clone()),
            );
            rows.entry(group).or_default().add(&totals);
        }
        Ok(rows
            .into_iter()
            .map(|((day, user, harness, provider, model), totals)| Row {
                day,
                user,
                harness,
                provider,
                model,
                totals,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_keys_round_trip_and_sort_by_day() {
        let key = BucketKey {
            day: 20_000,
            user: "u1".into(),
            harness: "pi".into(),
            provider: "fake\0x".into(),
            model: String::new(),
        };
        assert_eq!(parse_bucket_key(&bucket_key(&key)), Some(key.clone()));
        let later = BucketKey {
            day: 20_001,
            ..key.clone()
        };
        assert!(bucket_key(&key) < bucket_key(&later));
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(DAY_MS - 1), 0);
        assert_eq!(day_of(DAY_MS), 1);
    }
}
