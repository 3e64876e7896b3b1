//! The projections' folds: given entries, then the state; and the property that matters most:
//! applying a random valid log incrementally, with crashes (uncommitted work dropped) and reopens
//! at random points, yields exactly the state of one rebuild from offset 0.

use std::sync::Arc;
use std::time::Duration;

use octo_core::frame::{RunPhase, RunState};
use octo_core::{
    Body, Command, CommandId, Event, Kind, LogEntry, MessageId, Offset, PartId, Producer,
    ProducerId, RunId, SessionId, UserId,
};
use octo_projections::analytics::{Analytics, AnalyticsQuery, Dimension};
use octo_projections::history::History;
use octo_projections::sessions::Sessions;
use octo_projections::ui_state::UiState;
use octo_projections::{Projection, ProjectionStore, StoreError, Txn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

fn event(value: serde_json::Value) -> Event {
    serde_json::from_value(value).expect("test events are valid")
}

fn command(value: serde_json::Value) -> Command {
    serde_json::from_value(value).expect("test commands are valid")
}

/// Builds a log: offsets from 1, a clock that only moves forward.
struct LogBuilder {
    entries: Vec<LogEntry>,
    seq: u64,
    /// Some turns break off mid-stream (random logs only; the fixed tests want whole turns).
    breaks: bool,
}

impl LogBuilder {
    fn new() -> LogBuilder {
        LogBuilder {
            entries: Vec::new(),
            seq: 0,
            breaks: false,
        }
    }

    fn next_offset(&self) -> Offset {
        Offset::new(self.entries.len() as u64 + 1).expect("small")
    }

    fn push(
        &mut self,
        user: &str,
        session_id: SessionId,
        body: Body,
        command_id: Option<CommandId>,
    ) -> Offset {
        let offset = self.next_offset();
        self.seq += 1;
        self.entries.push(LogEntry {
            offset,
            ts_ms: 1_795_549_163_000 + offset.get() as i64 * 7,
            user_id: UserId::new(user).expect("valid"),
            session_id,
            kind: if command_id.is_some() {
                Kind::Command
            } else {
                Kind::Event
            },
            producer: Producer {
                id: ProducerId::new("gw:test").expect("valid"),
                seq: self.seq,
            },
            command_id,
            body,
        });
        offset
    }

    fn event(&mut self, user: &str, session_id: SessionId, value: serde_json::Value) -> Offset {
        self.push(user, session_id, Body::Event(event(value)), None)
    }

    fn command(
        &mut self,
        user: &str,
        session_id: SessionId,
        value: serde_json::Value,
    ) -> (Offset, CommandId) {
        let command_id = CommandId::new();
        (
            self.push(
                user,
                session_id,
                Body::Command(command(value)),
                Some(command_id),
            ),
            command_id,
        )
    }

    fn create(&mut self, user: &str) -> SessionId {
        let session_id = SessionId::new();
        let (cause, _) = self.command(
            user,
            session_id,
            json!({"type": "session.create", "harness": "pi", "workspace": "w"}),
        );
        self.event(
            user,
            session_id,
            json!({"type": "session.created", "harness": "pi", "workspace": "w",
            "model": {"provider": "fake", "model_id": "m1"}, "cause": cause}),
        );
        self.event(user, session_id, json!({"type": "harness.started", "harness": "pi", "version": "0.73.1",
            "pid": 42, "harness_session_id": "h", "harness_session_file": "/s/h.jsonl", "resumed": false, "cause": cause}));
        session_id
    }

    /// Forks `parent` at `at` into a new session (the command and its `session.forked`).
    fn fork(&mut self, user: &str, parent: SessionId, at: Offset, inherited: u32) -> SessionId {
        let child = SessionId::new();
        let (cause, _) = self.command(
            user,
            parent,
            json!({"type": "fork", "at_offset": at, "new_session_id": child}),
        );
        self.event(
            user,
            child,
            json!({"type": "session.forked", "parent_session_id": parent, "parent_offset": at,
            "harness": "pi", "workspace": "w", "user_messages_inherited": inherited, "cause": cause}),
        );
        child
    }

    /// A whole prompt turn: the prompt, a run with a tool call, usage, and the run's end.
    fn turn(&mut self, user: &str, session_id: SessionId, text: &str, rng: &mut StdRng) {
        let (cause, command_id) =
            self.command(user, session_id, json!({"type": "prompt", "text": text}));
        let run_id = RunId::new();
        self.event(
            user,
            session_id,
            json!({"type": "agent.working", "run_id": run_id, "cause": cause}),
        );
        self.event(user, session_id, json!({"type": "message.created", "command_id": command_id, "cause": cause,
            "message": {"id": MessageId::new(), "role": "user", "created_ms": 1, "parts": [{"type": "text", "id": PartId::new(), "text": text}]}}));
        if rng.random_bool(0.5) {
            self.event(user, session_id, json!({"type": "tool.start", "tool_call_id": "c1", "name": "bash", "input": {"command": "ls"}}));
            if rng.random_bool(0.3) {
                self.event(
                    user,
                    session_id,
                    json!({"type": "tool.progress", "tool_call_id": "c1", "text": "hi\n"}),
                );
            }
            if rng.random_bool(0.3) {
                self.event(user, session_id, json!({"type": "input.requested", "request_id": "q1", "kind": "confirm", "title": "ok?"}));
                if rng.random_bool(0.5) {
                    let (cause, _) = self.command(
                        user,
                        session_id,
                        json!({"type": "input.respond", "request_id": "q1", "value": "yes"}),
                    );
                    self.event(user, session_id, json!({"type": "input.resolved", "request_id": "q1", "outcome": "answered", "cause": cause}));
                }
            }
            self.event(user, session_id, json!({"type": "tool.end", "tool_call_id": "c1", "name": "bash", "is_error": false, "duration_ms": 3}));
        }
        let message_id = MessageId::new();
        self.event(
            user,
            session_id,
            json!({"type": "stream.message_start", "message_id": message_id, "run_id": run_id,
            "role": "assistant", "provider": "fake", "model_id": "m1"}),
        );
        let part_id = PartId::new();
        for i in 0..rng.random_range(0..3) {
            self.event(
                user,
                session_id,
                json!({"type": "stream.text_delta", "message_id": message_id,
                "part_id": part_id, "index": 0, "delta": format!("d{i} ")}),
            );
        }
        if rng.random_bool(0.2) {
            self.event(user, session_id, json!({"type": "retry.start", "run_id": run_id, "attempt": 1, "max_attempts": 3, "delay_ms": 20, "error": "overloaded"}));
            self.event(
                user,
                session_id,
                json!({"type": "retry.end", "run_id": run_id, "attempt": 1, "success": true}),
            );
        }
        if rng.random_bool(0.3) {
            self.event(
                user,
                session_id,
                json!({"type": "stream.thinking_delta", "message_id": message_id,
                "part_id": PartId::new(), "index": 2, "delta": "hmm"}),
            );
        }
        if rng.random_bool(0.2) {
            self.event(
                user,
                session_id,
                json!({"type": "notice", "level": "warning", "text": "slow"}),
            );
        }
        if rng.random_bool(0.3) {
            self.event(user, session_id, json!({"type": "stream.tool_call_delta", "message_id": message_id,
                "part_id": PartId::new(), "index": 1, "delta": "{\"command\":", "tool_call_id": "c9", "name": "bash"}));
        }
        if self.breaks && rng.random_bool(0.15) {
            // The stream breaks off: the run fails before the message ends.
            self.event(
                user,
                session_id,
                json!({"type": "run.failed", "run_id": run_id,
                "error": {"code": "harness_exited", "message": "gone"}, "recoverable": true}),
            );
            return;
        }
        self.event(
            user,
            session_id,
            json!({"type": "stream.message_end", "message": {"id": message_id, "role": "assistant",
            "created_ms": 2, "parts": [{"type": "text", "id": PartId::new(), "text": "done"}]}}),
        );
        self.event(user, session_id, json!({"type": "usage.recorded", "run_id": run_id, "message_id": message_id, "provider": "fake",
            "model_id": "m1", "input_tokens": 10, "output_tokens": 5, "cache_read_tokens": 1, "cache_write_tokens": 0, "cost_usd": 0.25}));
        match rng.random_range(0..5) {
            0 => self.event(
                user,
                session_id,
                json!({"type": "run.failed", "run_id": run_id,
                "error": {"code": "provider_error", "message": "500"}, "recoverable": true}),
            ),
            1 => self.event(
                user,
                session_id,
                json!({"type": "run.timed_out", "run_id": run_id, "limit": "no_progress", "limit_ms": 50}),
            ),
            _ => self.event(
                user,
                session_id,
                json!({"type": "agent.idle", "run_id": run_id, "outcome": "completed"}),
            ),
        };
    }
}

/// A conversation written through hstry's API.
struct Written {
    user: String,
    id: SessionId,
    message_ids: Vec<MessageId>,
}

impl LogBuilder {
    /// One hstry write: a new conversation with messages, or on an existing one an upsert, new and
    /// rewritten messages, a touch, an update, tags, or a delete (PROTOCOL.md 6.7).
    fn hstry(&mut self, written: &mut Vec<Written>, user: &str, step: usize, rng: &mut StdRng) {
        let message = |idx: usize, id: MessageId, text: String| {
            json!({"type": "history.message_upserted", "idx": idx, "message_id": id,
                "role": if idx.is_multiple_of(2) { "user" } else { "assistant" }, "content": text,
                "parts_json": "[]", "created_ms": 1_700_000_000_000i64 + idx as i64,
                "metadata_json": "{}", "sender_json": ""})
        };
        if written.is_empty() || rng.random_bool(0.3) {
            let id = SessionId::new();
            self.event(user, id, json!({"type": "history.conversation_upserted", "source_id": "pi",
                "external_id": format!("x{step}"), "readable_id": "", "created_ms": 1_700_000_000_000i64,
                "title": format!("written {step}"), "workspace": "/w", "metadata_json": "{}"}));
            let mut message_ids = Vec::new();
            for idx in 0..rng.random_range(0..4) {
                let message_id = MessageId::new();
                self.event(
                    user,
                    id,
                    message(idx, message_id, format!("hstry text {step} {idx}")),
                );
                message_ids.push(message_id);
            }
            written.push(Written {
                user: user.to_owned(),
                id,
                message_ids,
            });
            return;
        }
        let at = rng.random_range(0..written.len());
        let (owner, id) = (written[at].user.clone(), written[at].id);
        match rng.random_range(0..6) {
            0 => {
                let idx = written[at].message_ids.len();
                let message_id = MessageId::new();
                self.event(
                    &owner,
                    id,
                    message(idx, message_id, format!("appended {step}")),
                );
                written[at].message_ids.push(message_id);
            }
            1 if !written[at].message_ids.is_empty() => {
                let idx = rng.random_range(0..written[at].message_ids.len());
                let message_id = written[at].message_ids[idx];
                self.event(
                    &owner,
                    id,
                    message(idx, message_id, format!("rewritten {step}")),
                );
            }
            2 => {
                self.event(
                    &owner,
                    id,
                    json!({"type": "history.conversation_updated",
                    "title": format!("updated {step}"), "platform_id": format!("p{step}"),
                    "updated_ms": 1_700_000_500_000i64 + step as i64}),
                );
            }
            3 => {
                let tag = if rng.random_bool(0.5) { "bug" } else { "idea" };
                let kind = if rng.random_bool(0.7) {
                    "history.tag_added"
                } else {
                    "history.tag_removed"
                };
                self.event(&owner, id, json!({"type": kind, "tag": tag}));
            }
            4 => {
                self.event(
                    &owner,
                    id,
                    json!({"type": "history.conversation_touched",
                    "updated_ms": 1_700_000_900_000i64 + step as i64}),
                );
            }
            _ if rng.random_bool(0.3) => {
                self.event(&owner, id, json!({"type": "history.conversation_deleted"}));
                written.remove(at);
            }
            _ => {
                self.event(
                    &owner,
                    id,
                    json!({"type": "history.conversation_upserted", "source_id": "pi",
                    "external_id": "", "readable_id": format!("r{step}"), "created_ms": 5,
                    "model": "m9", "metadata_json": "{\"k\":1}"}),
                );
            }
        }
    }
}

/// A random but valid log: sessions of two users with turns, renames, model changes, forks,
/// failed commands and deletions, and conversations written through hstry's API.
fn random_log(seed: u64, n_steps: usize) -> Vec<LogEntry> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut log = LogBuilder::new();
    log.breaks = true;
    let mut sessions: Vec<(String, SessionId)> = Vec::new();
    let mut written: Vec<Written> = Vec::new();
    for step in 0..n_steps {
        let user = if rng.random_bool(0.7) { "alice" } else { "bob" }.to_owned();
        if rng.random_bool(0.15) {
            log.hstry(&mut written, &user, step, &mut rng);
            continue;
        }
        if sessions.is_empty() || rng.random_bool(0.1) {
            let session_id = log.create(&user);
            sessions.push((user, session_id));
            continue;
        }
        let (owner, session_id) = sessions[rng.random_range(0..sessions.len())].clone();
        match rng.random_range(0..10) {
            0 => {
                let (cause, _) = log.command(
                    &owner,
                    session_id,
                    json!({"type": "session.rename", "title": format!("t{step}")}),
                );
                log.event(&owner, session_id, json!({"type": "session.renamed", "title": format!("t{step}"), "source": "user", "cause": cause}));
            }
            1 => {
                let (cause, _) = log.command(
                    &owner,
                    session_id,
                    json!({"type": "set_model", "provider": "fake", "model_id": "m2"}),
                );
                log.event(&owner, session_id, json!({"type": "model.changed", "provider": "fake", "model_id": "m2", "thinking_level": "low", "cause": cause}));
            }
            2 => {
                let (cause, command_id) =
                    log.command(&owner, session_id, json!({"type": "compact"}));
                if rng.random_bool(0.5) {
                    log.event(
                        &owner,
                        session_id,
                        json!({"type": "command.failed", "command_id": command_id, "cause": cause,
                        "error": {"code": "runner_lost", "message": "lost"}}),
                    );
                } else {
                    let run_id = RunId::new();
                    log.event(
                        &owner,
                        session_id,
                        json!({"type": "agent.working", "run_id": run_id, "cause": cause}),
                    );
                    log.event(
                        &owner,
                        session_id,
                        json!({"type": "compact.start", "run_id": run_id, "reason": "manual"}),
                    );
                    log.event(
                        &owner,
                        session_id,
                        json!({"type": "compact.end", "run_id": run_id, "ok": true,
                        "will_retry": false, "summary": "s", "tokens_before": 100, "cause": cause}),
                    );
                    log.event(
                        &owner,
                        session_id,
                        json!({"type": "agent.idle", "run_id": run_id, "outcome": "completed"}),
                    );
                }
            }
            3 => {
                // Fork at the newest entry of the source (between runs in this generator).
                let at = Offset::new(log.entries.len() as u64).expect("small");
                let child = log.fork(&owner, session_id, at, 0);
                sessions.push((owner, child));
            }
            4 if rng.random_bool(0.3) => {
                // The harness goes away and comes back.
                log.event(
                    &owner,
                    session_id,
                    json!({"type": "harness.exited", "reason": "crashed", "code": 1,
                    "error": {"code": "harness_exited", "message": "pi exited with code 1"}}),
                );
                log.event(&owner, session_id, json!({"type": "harness.started", "harness": "pi", "version": "0.73.1",
                    "pid": 43, "harness_session_id": "h", "harness_session_file": "/s/h.jsonl", "resumed": true}));
            }
            5 if rng.random_bool(0.2) => {
                let (cause, _) = log.command(&owner, session_id, json!({"type": "session.delete"}));
                log.event(
                    &owner,
                    session_id,
                    json!({"type": "session.deleted", "cause": cause}),
                );
            }
            _ => log.turn(&owner, session_id, &format!("prompt {step}"), &mut rng),
        }
    }
    log.entries
}

struct Stores {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl Stores {
    fn new() -> Stores {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("projections");
        Stores { _dir: dir, path }
    }

    fn open(&self) -> ProjectionStore {
        ProjectionStore::open(&self.path).expect("store opens")
    }
}

/// A fresh fjall log in `dir`.
fn open_log(dir: &std::path::Path) -> Arc<dyn octo_log::EventLog> {
    octo_log::fjall::FjallLog::open(octo_log::fjall::FjallConfig::new(dir.join("log")))
        .expect("log opens")
}

/// Appends `entries` again (the log assigns offsets and seqs), in batches of up to 64 with a
/// command only first in one, as the log takes them.
async fn append_all(log: &Arc<dyn octo_log::EventLog>, entries: Vec<LogEntry>) {
    let mut batches: Vec<Vec<octo_log::NewEntry>> = Vec::new();
    for entry in entries {
        let is_command = matches!(entry.body, Body::Command(_));
        let new = octo_log::NewEntry {
            user_id: entry.user_id,
            session_id: entry.session_id,
            producer: entry.producer.id,
            seq: octo_log::SeqSpec::Next,
            command_id: entry.command_id,
            body: entry.body,
            blobs: Vec::new(),
            caused_by_command: false,
        };
        match batches.last_mut() {
            Some(batch) if !is_command && batch.len() < 64 => batch.push(new),
            _ => batches.push(vec![new]),
        }
    }
    for batch in batches {
        log.append(batch).await.expect("appends");
    }
}

/// Every entry of the log.
async fn read_all(log: &Arc<dyn octo_log::EventLog>) -> Vec<Arc<LogEntry>> {
    log.read(octo_log::ReadQuery {
        filter: octo_log::LogFilter::all(),
        after: Offset::ZERO,
        until: None,
        limit: 100_000,
    })
    .await
    .expect("reads")
    .entries
}

/// A rebuild from offset 0 as the projector catches up: the entries of the types the projection
/// skips are left out (so a wrong `SKIPS` makes it differ from [`incremental`], which applies
/// every entry, as the live path does).
fn rebuild<P: Projection>(projection: &P, entries: &[LogEntry]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let stores = Stores::new();
    let store = stores.open();
    let keyspace = store.keyspace::<P>().expect("keyspace");
    let filter = octo_projections::projector::filter_of::<P>();
    store
        .apply_through(
            projection,
            &keyspace,
            entries.iter().filter(|entry| filter.matches(entry)),
            entries.last().map(|entry| entry.offset),
        )
        .expect("applies");
    ProjectionStore::dump(&keyspace).expect("dumps")
}

/// Applies in random chunks; between chunks the store is sometimes reopened, and sometimes a
/// chunk is "crashed": applied into a transaction that is never committed.
fn incremental<P: Projection>(
    projection: &P,
    entries: &[LogEntry],
    seed: u64,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9e37_79b9);
    let stores = Stores::new();
    let mut store = stores.open();
    let mut next = 0usize;
    while next < entries.len() {
        let end = (next + rng.random_range(1..40)).min(entries.len());
        let keyspace = store.keyspace::<P>().expect("keyspace");
        if rng.random_bool(0.15) {
            // A crash mid-batch: the entries are folded into a transaction that is never
            // committed, and the process goes away; the applied offset is unchanged.
            store.apply_uncommitted(projection, &keyspace, &entries[next..end]);
            drop(keyspace);
            store = stores.open_after_drop(store);
            continue;
        }
        let applied = store.applied::<P>().expect("applied");
        let resume_at = entries
            .iter()
            .position(|e| e.offset > applied)
            .unwrap_or(entries.len());
        assert_eq!(
            resume_at, next,
            "the store resumes exactly after what it committed"
        );
        store
            .apply(projection, &keyspace, &entries[next..end])
            .expect("applies");
        next = end;
        drop(keyspace);
        if rng.random_bool(0.2) {
            store = stores.open_after_drop(store);
        }
    }
    let keyspace = store.keyspace::<P>().expect("keyspace");
    ProjectionStore::dump(&keyspace).expect("dumps")
}

impl Stores {
    fn open_after_drop(&self, store: ProjectionStore) -> ProjectionStore {
        drop(store);
        self.open()
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    #[test]
    fn rebuild_equals_incremental_with_crashes(seed in proptest::prelude::any::<u64>(), n_steps in 1usize..120) {
        let entries = random_log(seed, n_steps);
        proptest::prop_assert_eq!(rebuild(&Sessions, &entries), incremental(&Sessions, &entries, seed));
        proptest::prop_assert_eq!(rebuild(&UiState, &entries), incremental(&UiState, &entries, seed));
        proptest::prop_assert_eq!(rebuild(&History, &entries), incremental(&History, &entries, seed));
        proptest::prop_assert_eq!(rebuild(&Analytics, &entries), incremental(&Analytics, &entries, seed));
    }
}

/// `catch_up` itself, over a real log of several pages, against one batch of everything.
#[tokio::test]
async fn catch_up_over_pages_equals_one_batch() {
    use octo_projections::projector::{APPLY_BATCH_ENTRIES_MAX, catch_up};

    async fn caught_up<P: Projection>(
        log: &Arc<dyn octo_log::EventLog>,
        projection: P,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        let stores = Stores::new();
        let store = stores.open();
        let keyspace = store.keyspace::<P>().expect("keyspace");
        let mut seen = Vec::new();
        let head = log.head();
        let applied = catch_up(
            log,
            &store,
            &Arc::new(projection),
            &keyspace,
            Offset::ZERO,
            head,
            |offset| seen.push(offset),
        )
        .await
        .expect("catches up");
        assert_eq!(applied, head);
        assert!(seen.len() > 2, "several pages: {seen:?}");
        assert!(seen.windows(2).all(|pair| pair[0] < pair[1]), "in order");
        assert_eq!(store.applied::<P>().expect("applied"), head);
        ProjectionStore::dump(&keyspace).expect("dumps")
    }

    for seed in 0..2u64 {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = open_log(dir.path());
        let entries = random_log(seed, 700);
        append_all(&log, entries).await;
        let written = read_all(&log).await;
        assert!(
            written.len() > 3 * APPLY_BATCH_ENTRIES_MAX,
            "{} entries",
            written.len()
        );
        let written: Vec<LogEntry> = written.iter().map(|entry| (**entry).clone()).collect();
        assert_eq!(
            caught_up(&log, Sessions).await,
            rebuild(&Sessions, &written),
            "seed {seed}"
        );
        assert_eq!(
            caught_up(&log, UiState).await,
            rebuild(&UiState, &written),
            "seed {seed}"
        );
        assert_eq!(
            caught_up(&log, History).await,
            rebuild(&History, &written),
            "seed {seed}"
        );
        assert_eq!(
            caught_up(&log, Analytics).await,
            rebuild(&Analytics, &written),
            "seed {seed}"
        );
    }
}

/// A fold that fails in the middle of a catch-up: the error comes back at once (the pages read
/// ahead are dropped, the reader stops), and the pages committed before it stay.
#[tokio::test]
async fn catch_up_stops_at_a_failing_fold_and_keeps_what_it_committed() {
    use octo_projections::projector::{APPLY_BATCH_ENTRIES_MAX, CatchUpError, catch_up};

    /// Counts entries; the entry at `fails_at` finds a value that does not decode.
    struct FailsAt(Offset);
    impl Projection for FailsAt {
        const NAME: &'static str = "fails_at";
        const VERSION: u32 = 1;
        fn apply(&self, entry: &LogEntry, txn: &mut Txn<'_>) {
            let seen = txn.get_value::<u64>(b"seen").unwrap_or(0);
            txn.put_value(b"seen".to_vec(), &(seen + 1));
            if entry.offset == self.0 {
                txn.put(b"bad".to_vec(), vec![0xc1]);
                let _: Option<u64> = txn.get_value(b"bad");
            }
        }
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let log = open_log(dir.path());
    append_all(&log, random_log(3, 700)).await;
    let head = log.head();
    assert!(head.get() > 4 * APPLY_BATCH_ENTRIES_MAX as u64, "{head}");
    // In the third page.
    let fails_at = Offset::new(2 * APPLY_BATCH_ENTRIES_MAX as u64 + 7).expect("offset");
    let stores = Stores::new();
    let store = stores.open();
    let keyspace = store.keyspace::<FailsAt>().expect("keyspace");
    let mut seen = Vec::new();
    let caught = tokio::time::timeout(
        Duration::from_secs(30),
        catch_up(
            &log,
            &store,
            &Arc::new(FailsAt(fails_at)),
            &keyspace,
            Offset::ZERO,
            head,
            |offset| seen.push(offset),
        ),
    )
    .await
    .expect("returns, not hangs");
    assert!(
        matches!(caught, Err(CatchUpError::Store(StoreError::Corrupt { .. }))),
        "{caught:?}"
    );
    let applied = store.applied::<FailsAt>().expect("applied");
    assert_eq!(seen.last().copied().unwrap_or(Offset::ZERO), applied);
    assert_eq!(applied.get(), 2 * APPLY_BATCH_ENTRIES_MAX as u64);
    let counted: u64 = ProjectionStore::dump(&keyspace)
        .expect("dumps")
        .iter()
        .find(|(key, _)| key == b"seen")
        .map(|(_, value)| octo_core::codec::from_msgpack(value).expect("decodes"))
        .expect("a count");
    assert_eq!(counted, applied.get(), "only the committed pages' entries");
}

fn applied_store(entries: &[LogEntry]) -> (Stores, ProjectionStore) {
    let stores = Stores::new();
    let store = stores.open();
    let keyspace = store.keyspace::<Sessions>().expect("keyspace");
    store.apply(&Sessions, &keyspace, entries).expect("applies");
    let keyspace = store.keyspace::<UiState>().expect("keyspace");
    store.apply(&UiState, &keyspace, entries).expect("applies");
    (stores, store)
}

#[test]
fn summaries_follow_the_session() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut log = LogBuilder::new();
    let alice = UserId::new("alice").expect("valid");
    let session_id = log.create("alice");
    let other = log.create("bob");
    log.turn("alice", session_id, "Run `echo hi` and tell me the output, please, with a very long preview text that goes well past one hundred and twenty characters", &mut rng);
    log.turn("alice", session_id, "again", &mut rng);
    let (stores, store) = applied_store(&log.entries);
    let keyspace = store.keyspace::<Sessions>().expect("keyspace");
    let record = Sessions::owned(&keyspace, &alice, &session_id)
        .expect("reads")
        .expect("alice owns it");
    let summary = &record.summary;
    assert_eq!(
        summary.message_count, 4,
        "two user and two assistant messages"
    );
    assert_eq!(summary.preview.chars().count(), 120);
    assert!(summary.preview.starts_with("Run `echo hi`"));
    assert_eq!(summary.usage.input_tokens, 20);
    assert_eq!(summary.usage.cost_usd, 0.5);
    assert_eq!(
        summary.model.as_ref().map(|m| m.model_id.as_str()),
        Some("m1")
    );
    assert_eq!(record.harness_session_file.as_deref(), Some("/s/h.jsonl"));
    assert_eq!(summary.created_ms, log.entries[1].ts_ms);
    let last_change = log
        .entries
        .iter()
        .rev()
        .find(|e| e.session_id == session_id)
        .expect("entries");
    assert_eq!(summary.updated_offset, last_change.offset);
    assert!(
        Sessions::owned(&keyspace, &alice, &other)
            .expect("reads")
            .is_none(),
        "bob's session is not alice's"
    );
    let listing = Sessions::changed_since(&keyspace, &alice, Offset::ZERO, 100).expect("reads");
    assert_eq!(listing.len(), 1, "alice sees only her session");
    let listing =
        Sessions::changed_since(&keyspace, &alice, summary.updated_offset, 100).expect("reads");
    assert!(
        listing.is_empty(),
        "nothing changed after the newest offset"
    );
    drop(stores);
}

#[test]
fn forks_derive_their_view_from_the_parent() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut log = LogBuilder::new();
    let alice = UserId::new("alice").expect("valid");
    let parent = log.create("alice");
    log.turn("alice", parent, "first question", &mut rng);
    let at = Offset::new(log.entries.len() as u64).expect("small");
    log.turn("alice", parent, "second question", &mut rng);
    let child = log.fork("alice", parent, at, 1);
    log.turn("alice", child, "forked question", &mut rng);
    let (_stores, store) = applied_store(&log.entries);
    let keyspace = store.keyspace::<Sessions>().expect("keyspace");
    let child_summary = Sessions::owned(&keyspace, &alice, &child)
        .expect("reads")
        .expect("exists")
        .summary;
    assert_eq!(
        child_summary.message_count,
        2 + 2,
        "the parent's first turn plus its own"
    );
    assert_eq!(
        child_summary.preview, "first question",
        "the view's first user message"
    );
    assert_eq!(
        child_summary.parent.map(|p| (p.session_id, p.offset)),
        Some((parent, at))
    );
    assert_eq!(child_summary.usage.input_tokens, 10, "only its own usage");
    let parent_summary = Sessions::owned(&keyspace, &alice, &parent)
        .expect("reads")
        .expect("exists")
        .summary;
    assert_eq!(
        parent_summary.message_count, 4,
        "the parent is unchanged by its fork"
    );
    assert_eq!(
        Sessions::children(&keyspace, &parent).expect("reads"),
        [child],
        "the fork tree"
    );
    assert!(
        Sessions::children(&keyspace, &child)
            .expect("reads")
            .is_empty()
    );
}

#[test]
fn deleted_sessions_are_not_found_but_listed_as_deleted() {
    let mut log = LogBuilder::new();
    let alice = UserId::new("alice").expect("valid");
    let session_id = log.create("alice");
    let (cause, _) = log.command("alice", session_id, json!({"type": "session.delete"}));
    log.event(
        "alice",
        session_id,
        json!({"type": "session.deleted", "cause": cause}),
    );
    let (_stores, store) = applied_store(&log.entries);
    let keyspace = store.keyspace::<Sessions>().expect("keyspace");
    assert!(
        Sessions::owned(&keyspace, &alice, &session_id)
            .expect("reads")
            .is_none()
    );
    let listing = Sessions::changed_since(&keyspace, &alice, Offset::ZERO, 10).expect("reads");
    assert!(listing.len() == 1 && listing[0].deleted, "{listing:?}");
}

#[test]
fn run_state_phase_and_settlement() {
    let mut log = LogBuilder::new();
    let session_id = log.create("alice");
    let (prompt, prompt_id) =
        log.command("alice", session_id, json!({"type": "prompt", "text": "hi"}));
    let (rename, _) = log.command(
        "alice",
        session_id,
        json!({"type": "session.rename", "title": "x"}),
    );
    let run_id = RunId::new();
    log.event(
        "alice",
        session_id,
        json!({"type": "agent.working", "run_id": run_id, "cause": prompt}),
    );
    log.event(
        "alice",
        session_id,
        json!({"type": "tool.start", "tool_call_id": "c", "name": "bash", "input": {}}),
    );
    log.event(
        "alice",
        session_id,
        json!({"type": "input.requested", "request_id": "q7", "kind": "confirm", "title": "ok?"}),
    );
    let (abort, _) = log.command("alice", session_id, json!({"type": "abort"}));

    let (_stores, store) = applied_store(&log.entries);
    let keyspace = store.keyspace::<UiState>().expect("keyspace");
    let ui = UiState::get(&keyspace, &session_id).expect("reads");
    assert_eq!(ui.run_state, RunState::Working);
    let open = ui.open_run.expect("a run is open");
    assert_eq!(open.run_id, run_id);
    assert_eq!(
        open.phase,
        RunPhase::ToolRunning {
            name: "bash".into()
        }
    );
    assert_eq!(ui.open_inputs, vec!["q7".to_owned()]);
    let unsettled: Vec<_> = UiState::unsettled(&keyspace)
        .expect("reads")
        .iter()
        .map(|u| (u.offset, u.command.clone()))
        .collect();
    // session.create is settled by harness.started; session.rename needs no settling.
    assert_eq!(
        unsettled,
        vec![(prompt, "prompt".to_owned()), (abort, "abort".to_owned())]
    );
    assert!(!unsettled.iter().any(|(offset, _)| *offset == rename));

    log.event(
        "alice",
        session_id,
        json!({"type": "message.created", "command_id": prompt_id, "cause": prompt,
        "message": {"id": MessageId::new(), "role": "user", "created_ms": 1, "parts": []}}),
    );
    log.event(
        "alice",
        session_id,
        json!({"type": "agent.idle", "run_id": run_id, "outcome": "aborted", "cause": abort}),
    );
    let (_stores, store) = applied_store(&log.entries);
    let keyspace = store.keyspace::<UiState>().expect("keyspace");
    let ui = UiState::get(&keyspace, &session_id).expect("reads");
    assert_eq!(ui.run_state, RunState::Idle);
    assert!(ui.open_run.is_none() && ui.open_inputs.is_empty());
    assert!(
        UiState::unsettled(&keyspace).expect("reads").is_empty(),
        "both settled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projector_follows_the_log_and_resumes() {
    use octo_log::fjall::{FjallConfig, FjallLog};
    use octo_log::{EventLog, NewEntry, SeqSpec};
    let dir = tempfile::tempdir().expect("temp dir");
    let config = FjallConfig::new(dir.path().join("log"));
    let log: Arc<dyn EventLog> = tokio::task::spawn_blocking(move || FjallLog::open(config))
        .await
        .expect("ran")
        .expect("opens");
    let store_path = dir.path().join("projections");
    let store = ProjectionStore::open(&store_path).expect("opens");
    let alice = UserId::new("alice").expect("valid");
    let mut rng = StdRng::seed_from_u64(3);
    let mut built = LogBuilder::new();
    let session_id = built.create("alice");
    built.turn("alice", session_id, "hello", &mut rng);
    let append_all = |entries: Vec<LogEntry>| {
        let log = Arc::clone(&log);
        async move {
            let mut last = Offset::ZERO;
            for entry in entries {
                let seq = SeqSpec::Next;
                let new = NewEntry {
                    user_id: entry.user_id,
                    session_id: entry.session_id,
                    producer: entry.producer.id,
                    seq,
                    command_id: entry.command_id,
                    body: entry.body,
                    blobs: Vec::new(),
                    caused_by_command: false,
                };
                let receipts = log.append(vec![new]).await.expect("appends");
                last = receipts[0].offset().expect("appended");
            }
            last
        }
    };
    let last = append_all(built.entries.clone()).await;
    let handle = octo_projections::spawn_projector(Arc::clone(&log), store.clone(), Sessions)
        .await
        .expect("starts");
    handle
        .wait_for(last, Duration::from_secs(20))
        .await
        .expect("catches up");
    let summary = Sessions::owned(handle.keyspace(), &alice, &session_id)
        .expect("reads")
        .expect("exists")
        .summary;
    assert_eq!(summary.message_count, 2);
    drop(handle);

    // New entries while no projector runs; a new one resumes from the stored offset.
    let mut more = LogBuilder::new();
    more.turn("alice", session_id, "more", &mut rng);
    let last = append_all(more.entries).await;
    let handle = octo_projections::spawn_projector(Arc::clone(&log), store, Sessions)
        .await
        .expect("starts");
    handle
        .wait_for(last, Duration::from_secs(20))
        .await
        .expect("catches up");
    let summary = Sessions::owned(handle.keyspace(), &alice, &session_id)
        .expect("reads")
        .expect("exists")
        .summary;
    assert_eq!(
        summary.message_count, 4,
        "each message counted once across the restart"
    );
    let beyond = Offset::new(last.get() + 1000).expect("valid");
    let waited = handle.wait_for(beyond, Duration::from_millis(50)).await;
    assert!(
        matches!(waited, Err(octo_projections::WaitError::Timeout { .. })),
        "{waited:?}"
    );
}

#[test]
fn history_builds_drafts_and_pages_a_forked_view() {
    let mut log = LogBuilder::new();
    let mut rng = StdRng::seed_from_u64(7);
    let parent = log.create("alice");
    for i in 0..3 {
        log.turn("alice", parent, &format!("question {i}"), &mut rng);
    }
    // A fork at the parent's newest entry, then a turn of its own.
    let at = Offset::new(log.entries.len() as u64).expect("small");
    let child = log.fork("alice", parent, at, 3);
    log.turn("alice", parent, "after the fork, parent only", &mut rng);
    // The child streams: a draft with text and a tool call whose arguments are still arriving.
    let (cause, _) = log.command(
        "alice",
        child,
        json!({"type": "prompt", "text": "child question"}),
    );
    let run_id = RunId::new();
    log.event(
        "alice",
        child,
        json!({"type": "agent.working", "run_id": run_id, "cause": cause}),
    );
    let message_id = MessageId::new();
    let (text_part, tool_part) = (PartId::new(), PartId::new());
    log.event(
        "alice",
        child,
        json!({"type": "stream.message_start", "message_id": message_id, "run_id": run_id,
        "role": "assistant", "provider": "fake", "model_id": "m1"}),
    );
    for delta in ["Hel", "lo"] {
        log.event("alice", child, json!({"type": "stream.text_delta", "message_id": message_id, "part_id": text_part, "index": 0, "delta": delta}));
    }
    log.event(
        "alice",
        child,
        json!({"type": "stream.tool_call_delta", "message_id": message_id, "part_id": tool_part,
        "index": 1, "delta": "{\"command\": \"l", "tool_call_id": "c1", "name": "bash"}),
    );
    log.event(
        "alice",
        child,
        json!({"type": "stream.tool_call_delta", "message_id": message_id, "part_id": tool_part,
        "index": 1, "delta": "s\"}"}),
    );

    let stores = Stores::new();
    let store = stores.open();
    let history = store.keyspace::<History>().expect("keyspace");
    store
        .apply(&History, &history, &log.entries)
        .expect("applies");
    let sessions = store.keyspace::<Sessions>().expect("keyspace");
    store
        .apply(&Sessions, &sessions, &log.entries)
        .expect("applies");
    let snapshot = store.snapshot();
    assert_eq!(
        snapshot.applied::<History>().expect("reads").get(),
        log.entries.len() as u64
    );

    let draft = History::draft(&snapshot, &history, &child)
        .expect("reads")
        .expect("a draft");
    assert_eq!(draft.run_id, run_id);
    assert_eq!(draft.message.id, message_id);
    match &draft.message.parts[..] {
        [octo_core::Part::Text(text), octo_core::Part::ToolCall(call)] => {
            assert_eq!((text.id, text.text.as_str()), (text_part, "Hello"));
            assert_eq!(
                (call.id, call.tool_call_id.as_str(), call.name.as_str()),
                (tool_part, "c1", "bash")
            );
            assert_eq!(call.input, json!({"command": "ls"}));
        }
        other => panic!("text then tool call: {other:?}"),
    }

    // The child's view: the parent's messages up to the fork, then its own (the user message of
    // its prompt is not in this log: the draft is its only own content so far).
    let page = History::page(&snapshot, &history, &sessions, &child, None, 200).expect("reads");
    let parent_page =
        History::page(&snapshot, &history, &sessions, &parent, None, 200).expect("reads");
    assert!(
        page.messages.iter().all(|(offset, _)| *offset <= at),
        "inherited up to the fork"
    );
    assert_eq!(
        parent_page.messages.len(),
        page.messages.len() + 2,
        "the parent went on after the fork"
    );
    assert_eq!(
        page.messages[..],
        parent_page.messages[..page.messages.len()]
    );
    // Paging: two at a time, oldest first within a page, back to the start.
    let mut before = None;
    let mut paged = Vec::new();
    loop {
        let page = History::page(&snapshot, &history, &sessions, &child, before, 2).expect("reads");
        assert!(page.messages.len() <= 2);
        paged.splice(0..0, page.messages.clone());
        match page.next_before {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    let whole = History::page(&snapshot, &history, &sessions, &child, None, 200).expect("reads");
    assert_eq!(paged, whole.messages);
    // A whole view, read in ranges on every core, is what the pages show.
    for session in [child, parent] {
        let view = History::view(&snapshot, &history, &sessions, &session).expect("reads");
        let page =
            History::page(&snapshot, &history, &sessions, &session, None, 200).expect("reads");
        assert_eq!(view, page.messages);
    }
}

#[test]
fn hstry_message_writes_of_sessions_are_their_messages() {
    use octo_projections::history::conversations::Conversations;
    let mut log = LogBuilder::new();
    let mut rng = StdRng::seed_from_u64(11);
    let parent = log.create("alice");
    for i in 0..3 {
        log.turn("alice", parent, &format!("question {i}"), &mut rng);
    }
    let at = Offset::new(log.entries.len() as u64).expect("small");
    let child = log.fork("alice", parent, at, 3);
    log.turn("alice", child, "the child's own question", &mut rng);
    let before_delete = log.entries.len();
    let (cause, _) = log.command("alice", parent, json!({"type": "session.delete"}));
    log.event(
        "alice",
        parent,
        json!({"type": "session.deleted", "cause": cause}),
    );

    let stores = Stores::new();
    let store = stores.open();
    let history = store.keyspace::<History>().expect("keyspace");
    let sessions = store.keyspace::<Sessions>().expect("keyspace");
    store
        .apply(&History, &history, &log.entries[..before_delete])
        .expect("applies");
    store
        .apply(&Sessions, &sessions, &log.entries[..before_delete])
        .expect("applies");
    let snapshot = store.snapshot();
    let conversations = Conversations {
        snapshot: &snapshot,
        keyspace: &history,
    };
    let mut parent_ids = Vec::new();
    for session in [parent, child] {
        let record = conversations
            .get(&session)
            .expect("reads")
            .expect("a conversation");
        let writes = conversations.writes(&record).expect("reads");
        let view = History::page(&snapshot, &history, &sessions, &session, None, 200)
            .expect("reads")
            .messages;
        // The view's own messages (a fork inherits the rest) are the writes, one each, in order.
        let own = &view[view.len() - writes.len()..];
        // A fork's own messages follow the ones it inherits (0 for the parent).
        let first = record.inherited as i32;
        assert_eq!(
            record.message_count as usize,
            first as usize + writes.len(),
            "every message counted once"
        );
        for (n, (write, (offset, message))) in writes.iter().zip(own).enumerate() {
            assert_eq!(write.idx, first + n as i32);
            assert_eq!(write.offset, *offset);
            assert_eq!(write.message_id, *message.id.as_bytes());
            let location = conversations
                .message_location(&write.message_id)
                .expect("reads")
                .expect("located");
            assert_eq!((location.conversation, location.idx), (session, write.idx));
        }
        if session == parent {
            assert_eq!(writes.len(), view.len());
            parent_ids = writes.iter().map(|write| write.message_id).collect();
        } else {
            assert!(record.inherited > 0 && !writes.is_empty());
        }
    }
    assert!(!parent_ids.is_empty());

    // Deleting the parent drops where its messages were, not the messages its fork still reads.
    store
        .apply(&History, &history, &log.entries[before_delete..])
        .expect("applies");
    store
        .apply(&Sessions, &sessions, &log.entries[before_delete..])
        .expect("applies");
    let snapshot = store.snapshot();
    let conversations = Conversations {
        snapshot: &snapshot,
        keyspace: &history,
    };
    for id in &parent_ids {
        assert_eq!(conversations.message_location(id).expect("reads"), None);
    }
    let child_view = History::page(&snapshot, &history, &sessions, &child, None, 200)
        .expect("reads")
        .messages;
    assert!(
        child_view.len() > 1,
        "the fork still reads its inherited messages"
    );
}

/// What search finds for a fixed set of queries and both users: (query, user, message id,
/// conversation, role, content), sorted. Scores are left out: BM25 statistics count documents
/// that deletes have not yet merged away, so they depend on segment history, not on the log.
fn search_answers(
    index: &octo_projections::search::SearchIndex,
) -> Vec<(String, String, String, String, String, String)> {
    search_answers_of(|query, filter| index.search(query, filter))
}

type Found = Result<Vec<octo_projections::search::Hit>, octo_projections::search::SearchError>;

fn search_answers_of(
    search: impl Fn(
        &octo_projections::search::SearchQuery,
        &octo_projections::search::HitFilter,
    ) -> Found,
) -> Vec<(String, String, String, String, String, String)> {
    use octo_projections::search::{HitFilter, SearchQuery};
    let mut answers = Vec::new();
    for query in [
        "prompt",
        "done",
        "hstry",
        "rewritten",
        "appended",
        "text*",
        "d0",
        "updated",
        "written",
        "t1*",
    ] {
        for user in ["alice", "bob"] {
            let parsed = SearchQuery::parse(query, 0).expect("query parses");
            let filter = HitFilter {
                user: UserId::new(user).expect("valid"),
                role: None,
                after_ms: None,
                before_ms: None,
                titles: true,
            };
            for hit in search(&parsed, &filter).expect("searches") {
                answers.push((
                    query.to_owned(),
                    user.to_owned(),
                    hit.message_id,
                    hit.conversation.to_string(),
                    hit.role,
                    hit.content,
                ));
            }
        }
    }
    answers.sort();
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_rebuild_equals_incremental_with_crashes() {
    use octo_projections::search::{SearchIndex, apply_entries, apply_entries_uncommitted};
    let dir = tempfile::tempdir().expect("temp dir");
    // The folds read blobs through the log; these logs have none, so an empty log serves.
    let log = open_log(dir.path());
    for seed in 0..6u64 {
        let entries: Vec<Arc<LogEntry>> = random_log(seed, 150).into_iter().map(Arc::new).collect();
        let rebuilt_dir = dir.path().join(format!("rebuilt-{seed}"));
        let rebuilt = SearchIndex::open(&rebuilt_dir).expect("opens");
        apply_entries(&*log, &rebuilt, &entries)
            .await
            .expect("applies");

        let mut rng = StdRng::seed_from_u64(seed);
        let incremental_dir = dir.path().join(format!("incremental-{seed}"));
        let mut index = SearchIndex::open(&incremental_dir).expect("opens");
        let mut next = 0usize;
        while next < entries.len() {
            let end = (next + rng.random_range(1..40)).min(entries.len());
            if rng.random_bool(0.2) {
                apply_entries_uncommitted(&*log, &index, &entries[next..end])
                    .await
                    .expect("stages");
                drop(index);
                index = SearchIndex::open(&incremental_dir).expect("reopens");
                let committed = index.committed().expect("committed");
                next = entries
                    .iter()
                    .position(|e| e.offset > committed)
                    .unwrap_or(entries.len());
                continue;
            }
            apply_entries(&*log, &index, &entries[next..end])
                .await
                .expect("applies");
            next = end;
        }
        let answers = search_answers(&rebuilt);
        assert!(
            !answers.is_empty(),
            "seed {seed}: the queries find something"
        );
        assert_eq!(answers, search_answers(&index), "seed {seed}");
    }
}

/// The projector's catch-up (only the indexed types read, pages staged and committed rarely) and
/// its live follow give what applying every entry gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_projector_catch_up_equals_applying_every_entry() {
    use octo_projections::search::{SearchIndex, apply_entries, spawn_search};
    for seed in 0..3u64 {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = open_log(dir.path());
        let entries = random_log(seed, 150);
        let half = entries.len() / 2;
        append_all(&log, entries[..half].to_vec()).await;
        let searcher = spawn_search(Arc::clone(&log), dir.path().join("search"))
            .await
            .expect("starts");
        // The second half while it catches up or follows.
        append_all(&log, entries[half..].to_vec()).await;
        searcher
            .wait_for(log.head(), Duration::from_secs(20))
            .await
            .expect("catches up");
        let written = read_all(&log).await;
        let every = SearchIndex::open(&dir.path().join("every")).expect("opens");
        apply_entries(&*log, &every, &written)
            .await
            .expect("applies");
        let answers = search_answers(&every);
        assert!(
            !answers.is_empty(),
            "seed {seed}: the queries find something"
        );
        assert_eq!(
            answers,
            search_answers_of(|query, filter| searcher.search(query, filter)),
            "seed {seed}"
        );
    }
}

#[test]
fn analytics_sums_usage_turns_tools_and_time_per_model_and_day() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut log = LogBuilder::new();
    let session = log.create("alice");
    for n in 0..3 {
        log.turn("alice", session, &format!("turn {n}"), &mut rng);
    }
    let other = log.create("bob");
    log.turn("bob", other, "hello", &mut rng);
    let entries = log.entries;
    let stores = Stores::new();
    let store = stores.open();
    let keyspace = store.keyspace::<Analytics>().expect("keyspace");
    store
        .apply(&Analytics, &keyspace, &entries)
        .expect("applies");
    let tools = entries
        .iter()
        .filter(|e| {
            e.user_id.as_str() == "alice" && matches!(e.body, Body::Event(Event::ToolEnd(_)))
        })
        .count() as u64;
    let day = octo_projections::analytics::day_of(entries[0].ts_ms);
    let rows = octo_projections::analytics::Analytics::query(
        &store.snapshot(),
        &keyspace,
        &AnalyticsQuery {
            user: Some(UserId::new("alice").expect("valid")),
            from_day: day,
            to_day: day,
            group_by: vec![Dimension::Model, Dimension::Day],
        },
    )
    .expect("queries");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row.model.as_deref(), Some("m1"));
    assert_eq!(row.day, Some(day));
    assert_eq!(row.user, None, "not grouped by user");
    assert_eq!(row.totals.turns, 3);
    assert_eq!(row.totals.input_tokens, 30);
    assert_eq!(row.totals.output_tokens, 15);
    assert_eq!(row.totals.cache_read_tokens, 3);
    assert!((row.totals.cost_usd - 0.75).abs() < 1e-9);
    assert_eq!(row.totals.tool_calls, tools);
    assert_eq!(row.totals.messages, 6, "three prompts, three answers");
    assert!(row.totals.run_ms > 0);
    let everyone = octo_projections::analytics::Analytics::query(
        &store.snapshot(),
        &keyspace,
        &AnalyticsQuery {
            user: None,
            from_day: day,
            to_day: day,
            group_by: vec![Dimension::User],
        },
    )
    .expect("queries");
    let users: Vec<Option<String>> = everyone.iter().map(|r| r.user.clone()).collect();
    assert_eq!(users, [Some("alice".to_owned()), Some("bob".to_owned())]);
    let none = octo_projections::analytics::Analytics::query(
        &store.snapshot(),
        &keyspace,
        &AnalyticsQuery {
            user: None,
            from_day: day + 1,
            to_day: day + 9,
            group_by: vec![],
        },
    )
    .expect("queries");
    assert!(none.is_empty(), "nothing on later days");
}

/// A projection counting entries, in two versions of one name.
struct Counter<const V: u32>;

impl<const V: u32> Projection for Counter<V> {
    const NAME: &'static str = "counter";
    const VERSION: u32 = V;

    fn apply(&self, entry: &LogEntry, txn: &mut octo_projections::Txn<'_>) {
        let n: u64 = txn.get_value(b"n").unwrap_or(0);
        txn.put_value(b"n".to_vec(), &(n + entry.offset.get() * u64::from(V)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_rebuilds_beside_the_old_and_swaps_in_once_caught_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = open_log(dir.path());
    let user = UserId::new("alice").expect("valid");
    let session = SessionId::new();
    for n in 0..5 {
        log.append(vec![octo_log::NewEntry::event(
            user.clone(),
            session,
            ProducerId::new("gw:test").expect("valid"),
            octo_log::SeqSpec::Next,
            event(json!({"type": "notice", "level": "info", "text": format!("n{n}")})),
        )])
        .await
        .expect("appends");
    }
    let store = ProjectionStore::open(dir.path().join("projections")).expect("opens");
    let v1 = octo_projections::spawn_projector(Arc::clone(&log), store.clone(), Counter::<1>)
        .await
        .expect("v1");
    v1.wait_for(log.head(), Duration::from_secs(10))
        .await
        .expect("v1 caught up");
    drop(v1);
    // Version 2 starts from offset 0 in a keyspace of its own; version 1's stays until then.
    let v2_keyspace = store.keyspace::<Counter<2>>().expect("keyspace");
    assert!(
        ProjectionStore::dump(&v2_keyspace)
            .expect("dumps")
            .is_empty()
    );
    assert_eq!(
        store.applied::<Counter<2>>().expect("applied"),
        Offset::ZERO
    );
    assert_eq!(store.applied::<Counter<1>>().expect("applied"), log.head());
    let v2 = octo_projections::spawn_projector(Arc::clone(&log), store.clone(), Counter::<2>)
        .await
        .expect("v2");
    v2.wait_for(log.head(), Duration::from_secs(10))
        .await
        .expect("v2 caught up");
    let rebuilt = ProjectionStore::dump(v2.keyspace()).expect("dumps");
    let total: u64 = octo_core::codec::from_msgpack(&rebuilt[0].1).expect("a number");
    assert_eq!(
        total,
        2 * (1 + 2 + 3 + 4 + 5),
        "every entry applied once by version 2"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.applied::<Counter<1>>().expect("applied") != Offset::ZERO {
        assert!(std::time::Instant::now() < deadline, "version 1 is retired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_commits_are_spaced_while_changes_stream_in() {
    use octo_projections::search::{COMMIT_INTERVAL, spawn_search};
    let dir = tempfile::tempdir().expect("temp dir");
    let log = open_log(dir.path());
    let searcher = spawn_search(Arc::clone(&log), dir.path().join("search"))
        .await
        .expect("starts");
    let user = UserId::new("alice").expect("valid");
    let session = SessionId::new();
    let rename = |n: usize| {
        octo_log::NewEntry::event(
            user.clone(),
            session,
            ProducerId::new("gw:test").expect("valid"),
            octo_log::SeqSpec::Next,
            event(
                json!({"type": "session.renamed", "title": format!("title {n}"), "source": "user"}),
            ),
        )
    };
    // Forty title changes, each its own batch, over at least 400 ms.
    let started = std::time::Instant::now();
    for n in 0..40 {
        log.append(vec![rename(n)]).await.expect("appends");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let streamed = started.elapsed();
    searcher
        .wait_for(log.head(), Duration::from_secs(20))
        .await
        .expect("a waiting reader gets every change");
    let commits = searcher.commits();
    // One commit at the start, one per interval while they streamed, one for the reader.
    let most = 2 + streamed.as_millis() / COMMIT_INTERVAL.as_millis();
    assert!(
        commits >= 1 && u128::from(commits) <= most,
        "{commits} commits for 40 batches over {streamed:?} (at most {most})"
    );

    // A change right after a commit is held for the interval, unless a reader waits for it.
    log.append(vec![rename(40)]).await.expect("appends");
    searcher
        .wait_for(log.head(), Duration::from_secs(20))
        .await
        .expect("the held change is committed for the reader");
    assert_eq!(searcher.commits(), commits + 1);
}
