//! The log's contract as executable checks, one async function per guarantee, generic over the
//! backend. Each backend's tests instantiate them all with [`conformance_tests!`], so fjall and
//! JetStream prove the same contract.
//!
//! A [`Backend`] opens the log under test; opening it again after every handle is dropped must
//! give the same log (that is how "survives reopen" is checked).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use octo_core::command::{Fork, Prompt};
use octo_core::event::Notice;
use octo_core::{
    Body, Command, CommandId, Event, Kind, LogEntry, Offset, ProducerId, SessionId, UserId,
};
use rand::{Rng, SeedableRng};

use crate::api::{
    AppendError, BlobHash, EventLog, LogFilter, NewEntry, ReadError, ReadQuery, Receipt, SeqSpec,
    TypePattern,
};
use crate::live::QueueBound;
use crate::subscription::Subscription;

/// Opens the log under test.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Opens the log; after every handle of a previous open is dropped, opens the same log again.
    async fn open(&self) -> Arc<dyn EventLog>;
    /// The backend's `max_entry_bytes`.
    fn entry_bytes_max(&self) -> usize;
}

/// How long a check waits for something that should happen promptly.
const PATIENCE: Duration = Duration::from_secs(20);

/// A test user.
pub fn user(name: &str) -> UserId {
    UserId::new(name).expect("test user names are valid")
}

/// A test producer.
pub fn producer(name: &str) -> ProducerId {
    ProducerId::new(name).expect("test producer names are valid")
}

/// A prompt command from `user` to `session`.
pub fn prompt(
    user_id: &UserId,
    session_id: SessionId,
    command_id: CommandId,
    text: &str,
) -> NewEntry {
    NewEntry::command(
        user_id.clone(),
        session_id,
        producer("gw:test"),
        command_id,
        Command::Prompt(Prompt {
            text: text.to_owned(),
            ..Prompt::default()
        }),
    )
}

/// A notice event, numbered by the writer for the gateway producer.
pub fn notice(user_id: &UserId, session_id: SessionId, text: &str) -> NewEntry {
    NewEntry::event(
        user_id.clone(),
        session_id,
        producer("gw:test"),
        SeqSpec::Next,
        Event::Notice(Notice {
            level: octo_core::event::NoticeLevel::Info,
            text: text.to_owned(),
        }),
    )
}

/// A notice event from a runner with its own seq.
pub fn runner_event(user_id: &UserId, session_id: SessionId, runner: &str, seq: u64) -> NewEntry {
    let mut entry = notice(user_id, session_id, &format!("{runner} #{seq}"));
    entry.producer = producer(runner);
    entry.seq = SeqSpec::Exact(seq);
    entry
}

fn text_of(entry: &LogEntry) -> String {
    match &entry.body {
        Body::Event(Event::Notice(notice)) => notice.text.clone(),
        Body::Command(Command::Prompt(prompt)) => prompt.text.clone(),
        other => format!("<{}>", other.type_name()),
    }
}

async fn append_one(log: &dyn EventLog, entry: NewEntry) -> Offset {
    let receipts = log.append(vec![entry]).await.expect("append succeeds");
    match receipts.as_slice() {
        [Receipt::Appended(offset)] => *offset,
        other => panic!("expected one appended receipt, got {other:?}"),
    }
}

/// Reads every entry of `filter` after `after`, page by page.
pub async fn read_all(log: &dyn EventLog, filter: &LogFilter, after: Offset) -> Vec<Arc<LogEntry>> {
    let mut entries = Vec::new();
    let mut cursor = after;
    loop {
        let page = log
            .read(ReadQuery {
                filter: filter.clone(),
                after: cursor,
                until: None,
                limit: 100,
            })
            .await
            .expect("read succeeds");
        entries.extend(page.entries);
        assert!(
            page.scanned_through >= cursor,
            "a read moved its cursor backwards"
        );
        cursor = page.scanned_through;
        if page.reached_end {
            return entries;
        }
    }
}

fn offsets(entries: &[Arc<LogEntry>]) -> Vec<Offset> {
    entries.iter().map(|entry| entry.offset).collect()
}

async fn next_within(subscription: &mut Subscription) -> Arc<LogEntry> {
    tokio::time::timeout(PATIENCE, subscription.next())
        .await
        .expect("the subscription delivers within the deadline")
        .expect("the subscription does not fail")
}

/// The next entry, taken at random through [`Subscription::try_next`] when it has one at hand,
/// else through [`Subscription::next`]: the two together keep the one order.
async fn next_either(subscription: &mut Subscription, rng: &mut impl Rng) -> Arc<LogEntry> {
    if rng.random_bool(0.5)
        && let Some(entry) = subscription.try_next()
    {
        return entry.expect("the subscription does not fail");
    }
    next_within(subscription).await
}

/// Offsets start at 1, strictly increase, and `head` follows them.
pub async fn offsets_start_at_one_and_increase(backend: &dyn Backend) {
    let log = backend.open().await;
    assert_eq!(log.head(), Offset::ZERO, "an empty log has head 0");
    let alice = user("alice");
    let session_id = SessionId::new();
    let mut previous = Offset::ZERO;
    for n in 0..50 {
        let offset = append_one(&*log, notice(&alice, session_id, &format!("n{n}"))).await;
        if n == 0 {
            assert_eq!(
                offset,
                Offset::new(1).expect("valid"),
                "the first offset is 1"
            );
        }
        assert!(offset > previous, "offset {offset} after {previous}");
        assert_eq!(log.head(), offset, "head is the newest durable offset");
        previous = offset;
    }
    let batch: Vec<_> = (0..10)
        .map(|n| notice(&alice, session_id, &format!("b{n}")))
        .collect();
    let receipts = log.append(batch).await.expect("append succeeds");
    for receipt in receipts {
        let Receipt::Appended(offset) = receipt else {
            panic!("batch entry not appended")
        };
        assert!(offset > previous, "batch offsets increase");
        previous = offset;
    }
    assert_eq!(log.session_head(session_id).await.expect("reads"), previous);
    assert_eq!(
        log.session_head(SessionId::new()).await.expect("reads"),
        Offset::ZERO
    );
}

/// Reads return each entry after `after` exactly once, in order, and filters select exactly.
pub async fn reads_filter_and_page(backend: &dyn Backend) {
    let log = backend.open().await;
    let (alice, bob) = (user("alice"), user("bob"));
    let (s1, s2, s3) = (SessionId::new(), SessionId::new(), SessionId::new());
    let mut expected: Vec<(Offset, UserId, SessionId, Kind, String)> = Vec::new();
    for n in 0..120 {
        let (owner, session_id) = match n % 3 {
            0 => (&alice, s1),
            1 => (&alice, s2),
            _ => (&bob, s3),
        };
        let text = format!("e{n}");
        let (entry, kind) = if n % 5 == 0 {
            (
                prompt(owner, session_id, CommandId::new(), &text),
                Kind::Command,
            )
        } else {
            (notice(owner, session_id, &text), Kind::Event)
        };
        let offset = append_one(&*log, entry).await;
        expected.push((offset, owner.clone(), session_id, kind, text));
    }
    let filters = [
        LogFilter::all(),
        LogFilter::session(s2),
        LogFilter::user(bob.clone()),
        LogFilter {
            kind: Some(Kind::Command),
            ..LogFilter::default()
        },
        LogFilter {
            types: vec![TypePattern::parse("not*")],
            ..LogFilter::user(alice.clone())
        },
        LogFilter {
            types: vec![TypePattern::parse("prompt")],
            ..LogFilter::session(s1)
        },
        LogFilter {
            types: vec![TypePattern::parse("stream.*")],
            ..LogFilter::default()
        },
        LogFilter {
            skip_types: vec![TypePattern::parse("stream.*"), TypePattern::parse("prompt")],
            ..LogFilter::default()
        },
        LogFilter {
            skip_types: vec![TypePattern::parse("not*")],
            ..LogFilter::session(s1)
        },
    ];
    for filter in &filters {
        for after_idx in [0usize, 1, 37, 119, 120] {
            let after = if after_idx == 0 {
                Offset::ZERO
            } else {
                expected[after_idx - 1].0
            };
            let want: Vec<Offset> = expected
                .iter()
                .filter(|(offset, owner, session_id, kind, _)| {
                    *offset > after
                        && filter.matches_parts(
                            *kind,
                            owner.as_str(),
                            session_id,
                            if *kind == Kind::Command {
                                "prompt"
                            } else {
                                "notice"
                            },
                        )
                })
                .map(|(offset, ..)| *offset)
                .collect();
            let got = read_all(&*log, filter, after).await;
            assert_eq!(offsets(&got), want, "filter {filter:?} after {after}");
            for entry in &got {
                let (_, owner, session_id, kind, text) = expected
                    .iter()
                    .find(|e| e.0 == entry.offset)
                    .expect("entry was appended");
                assert_eq!(&entry.user_id, owner);
                assert_eq!(&entry.session_id, session_id);
                assert_eq!(&entry.kind, kind);
                assert_eq!(&text_of(entry), text);
            }
        }
    }
    // `until` bounds a range and `limit` pages it.
    let until = expected[59].0;
    let page = log
        .read(ReadQuery {
            filter: LogFilter::all(),
            after: expected[9].0,
            until: Some(until),
            limit: 1000,
        })
        .await
        .expect("reads");
    assert_eq!(
        offsets(&page.entries),
        expected[10..60].iter().map(|e| e.0).collect::<Vec<_>>()
    );
    assert!(page.reached_end);
    let page = log
        .read(ReadQuery {
            filter: LogFilter::all(),
            after: Offset::ZERO,
            until: None,
            limit: 7,
        })
        .await
        .expect("reads");
    assert_eq!(page.entries.len(), 7);
    assert!(!page.reached_end);
    let beyond = Offset::new(log.head().get() + 1).expect("valid");
    let result = log
        .read(ReadQuery {
            filter: LogFilter::all(),
            after: beyond,
            until: None,
            limit: 1,
        })
        .await;
    assert!(
        matches!(result, Err(ReadError::BeyondHead { .. })),
        "got {result:?}"
    );
}

/// Entries carry what was appended, with writer-assigned seq and non-decreasing `ts_ms` per
/// session.
pub async fn entries_are_stamped(backend: &dyn Backend) {
    let log = backend.open().await;
    let alice = user("alice");
    let session_id = SessionId::new();
    let command_id = CommandId::new();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;
    append_one(&*log, prompt(&alice, session_id, command_id, "hello")).await;
    append_one(&*log, notice(&alice, session_id, "one")).await;
    append_one(&*log, notice(&alice, session_id, "two")).await;
    let entries = read_all(&*log, &LogFilter::session(session_id), Offset::ZERO).await;
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0].kind, Kind::Command);
    assert_eq!(entries[0].command_id, Some(command_id));
    assert_eq!(entries[1].command_id, None);
    let seqs: Vec<u64> = entries.iter().map(|entry| entry.producer.seq).collect();
    assert_eq!(
        seqs[1],
        seqs[0] + 1,
        "the writer numbers the gateway's entries by 1"
    );
    assert_eq!(seqs[2], seqs[1] + 1);
    assert!(
        entries[0].ts_ms >= before - 1000,
        "ts_ms is the append time"
    );
    assert!(
        entries
            .windows(2)
            .all(|pair| pair[0].ts_ms <= pair[1].ts_ms),
        "ts_ms non-decreasing"
    );
}

/// An acked entry survives closing and reopening; offsets continue after the highest.
pub async fn acked_entries_survive_reopen(backend: &dyn Backend) {
    let alice = user("alice");
    let session_id = SessionId::new();
    let mut acked = Vec::new();
    {
        let log = backend.open().await;
        for n in 0..20 {
            acked.push(append_one(&*log, notice(&alice, session_id, &format!("n{n}"))).await);
        }
    }
    let log = backend.open().await;
    let head = *acked.last().expect("appended");
    assert_eq!(log.head(), head, "head survives reopen");
    let entries = read_all(&*log, &LogFilter::all(), Offset::ZERO).await;
    assert_eq!(offsets(&entries), acked);
    let texts: Vec<String> = entries.iter().map(|entry| text_of(entry)).collect();
    assert_eq!(texts, (0..20).map(|n| format!("n{n}")).collect::<Vec<_>>());
    let next = append_one(&*log, notice(&alice, session_id, "after")).await;
    assert!(
        next > head,
        "offsets continue after the highest ({next} after {head})"
    );
}

/// The same `(user, command_id)` twice yields one entry and the first receipt, also across a
/// reopen; the same id from another user is another command; another body is a conflict.
pub async fn commands_are_idempotent(backend: &dyn Backend) {
    let (alice, bob) = (user("alice"), user("bob"));
    let session_id = SessionId::new();
    let command_id = CommandId::new();
    let first;
    {
        let log = backend.open().await;
        first = append_one(&*log, prompt(&alice, session_id, command_id, "hi")).await;
        let head = log.head();
        let again = log
            .append(vec![prompt(&alice, session_id, command_id, "hi")])
            .await;
        assert_eq!(
            again,
            Ok(vec![Receipt::Duplicate {
                offset: first,
                session_id
            }])
        );
        assert_eq!(log.head(), head, "a duplicate appends nothing");
        // Spelling out a default is the same command.
        let mut explicit = prompt(&alice, session_id, command_id, "hi");
        if let Body::Command(Command::Prompt(body)) = &mut explicit.body {
            body.when_busy = Some(octo_core::command::WhenBusy::FollowUp);
        }
        let again = log.append(vec![explicit]).await;
        assert_eq!(
            again,
            Ok(vec![Receipt::Duplicate {
                offset: first,
                session_id
            }])
        );
        let conflict = log
            .append(vec![prompt(&alice, session_id, command_id, "other")])
            .await;
        assert_eq!(
            conflict,
            Err(AppendError::IdempotencyConflict {
                command_id,
                offset: first
            }),
            "another body under the same id is a conflict"
        );
        assert_eq!(log.head(), head, "a conflict appends nothing");
        let other_session = log
            .append(vec![prompt(&alice, SessionId::new(), command_id, "hi")])
            .await;
        assert_eq!(
            other_session,
            Err(AppendError::IdempotencyConflict {
                command_id,
                offset: first
            }),
            "the same id and body sent to another session is a conflict, not that session's duplicate"
        );
        let other_user = append_one(&*log, prompt(&bob, SessionId::new(), command_id, "hi")).await;
        assert!(
            other_user > first,
            "another user's command id is another command"
        );
    }
    let log = backend.open().await;
    let head = log.head();
    let again = log
        .append(vec![prompt(&alice, session_id, command_id, "hi")])
        .await;
    assert_eq!(
        again,
        Ok(vec![Receipt::Duplicate {
            offset: first,
            session_id
        }]),
        "after reopen"
    );
    assert_eq!(log.head(), head);
    let commands = read_all(
        &*log,
        &LogFilter {
            kind: Some(Kind::Command),
            ..LogFilter::user(alice)
        },
        Offset::ZERO,
    )
    .await;
    assert_eq!(offsets(&commands), vec![first], "one entry for the command");
}

/// A duplicate command consumes no producer seq, server-decided fields do not make a conflict,
/// and a duplicate batch skips its derived events too.
pub async fn duplicate_batches_append_nothing(backend: &dyn Backend) {
    let log = backend.open().await;
    let alice = user("alice");
    let source = SessionId::new();
    let command_id = CommandId::new();
    let fork = |new_session_id: SessionId| {
        vec![
            NewEntry::command(
                alice.clone(),
                source,
                producer("gw:test"),
                command_id,
                Command::Fork(Fork {
                    at_offset: Offset::ZERO,
                    title: None,
                    new_session_id: Some(new_session_id),
                }),
            ),
            notice(&alice, new_session_id, "derived"),
        ]
    };
    let receipts = log.append(fork(SessionId::new())).await.expect("appends");
    let [Receipt::Appended(first), Receipt::Appended(derived)] = receipts[..] else {
        panic!("both entries appended: {receipts:?}")
    };
    assert!(derived > first);
    let seq_after_first = log.producer_seq(producer("gw:test")).await.expect("reads");
    let head = log.head();
    // The gateway mints a new session id on each attempt; that is not another body.
    let receipts = log.append(fork(SessionId::new())).await.expect("appends");
    assert_eq!(
        receipts,
        vec![
            Receipt::Duplicate {
                offset: first,
                session_id: source
            },
            Receipt::Skipped
        ]
    );
    assert_eq!(log.head(), head, "nothing appended");
    assert_eq!(
        log.producer_seq(producer("gw:test")).await.expect("reads"),
        seq_after_first,
        "no seq consumed"
    );
    let next = append_one(&*log, notice(&alice, source, "next")).await;
    let entries = read_all(&*log, &LogFilter::all(), head).await;
    assert_eq!(offsets(&entries), vec![next]);
    assert_eq!(
        entries[0].producer.seq,
        seq_after_first + 1,
        "seqs stay contiguous"
    );
}

/// Concurrent sends of one command id produce one entry.
pub async fn concurrent_duplicates_append_once(backend: &dyn Backend) {
    let log = backend.open().await;
    let alice = user("alice");
    let session_id = SessionId::new();
    let command_id = CommandId::new();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let log = Arc::clone(&log);
        let alice = alice.clone();
        tasks.spawn(async move {
            log.append(vec![prompt(&alice, session_id, command_id, "same")])
                .await
        });
    }
    let mut offsets_seen = HashSet::new();
    let mut n_appended = 0;
    while let Some(result) = tasks.join_next().await {
        match result
            .expect("task ran")
            .expect("append succeeds")
            .as_slice()
        {
            [Receipt::Appended(offset)] => {
                n_appended += 1;
                offsets_seen.insert(*offset);
            }
            [Receipt::Duplicate { offset, .. }] => {
                offsets_seen.insert(*offset);
            }
            other => panic!("unexpected receipts {other:?}"),
        }
    }
    assert_eq!(n_appended, 1, "exactly one send appends");
    assert_eq!(offsets_seen.len(), 1, "every send names the same offset");
    assert_eq!(
        read_all(&*log, &LogFilter::all(), Offset::ZERO).await.len(),
        1
    );
}

/// A producer's re-sent seqs are skipped, a gap is refused, and its last seq survives reopen.
pub async fn producer_seqs_dedupe(backend: &dyn Backend) {
    let alice = user("alice");
    let session_id = SessionId::new();
    let runner = "rn-alice";
    {
        let log = backend.open().await;
        assert_eq!(log.producer_seq(producer(runner)).await.expect("reads"), 0);
        let batch: Vec<_> = (1..=3)
            .map(|seq| runner_event(&alice, session_id, runner, seq))
            .collect();
        let receipts = log.append(batch).await.expect("appends");
        assert!(
            receipts.iter().all(|r| matches!(r, Receipt::Appended(_))),
            "{receipts:?}"
        );
        let head = log.head();
        // A re-sent frame 2..=4 after a lost `acked`: 2 and 3 are skipped, 4 appended.
        let batch: Vec<_> = (2..=4)
            .map(|seq| runner_event(&alice, session_id, runner, seq))
            .collect();
        let receipts = log.append(batch).await.expect("appends");
        assert_eq!(receipts[..2], [Receipt::Skipped, Receipt::Skipped]);
        let Receipt::Appended(four) = receipts[2] else {
            panic!("seq 4 appended: {receipts:?}")
        };
        assert!(four > head);
        let gap = log
            .append(vec![runner_event(&alice, session_id, runner, 6)])
            .await;
        assert_eq!(
            gap,
            Err(AppendError::ProducerGap {
                producer: producer(runner),
                expected_seq: 5,
                got_seq: 6
            })
        );
        assert_eq!(log.head(), four, "a gap appends nothing");
    }
    let log = backend.open().await;
    assert_eq!(
        log.producer_seq(producer(runner)).await.expect("reads"),
        4,
        "survives reopen"
    );
    let receipts = log
        .append(vec![runner_event(&alice, session_id, runner, 4)])
        .await;
    assert_eq!(receipts, Ok(vec![Receipt::Skipped]));
    let entries = read_all(&*log, &LogFilter::session(session_id), Offset::ZERO).await;
    let seqs: Vec<u64> = entries.iter().map(|entry| entry.producer.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4], "each seq once");
}

/// Rejected requests sharing a group with accepted ones stage nothing; accepted ones land whole.
pub async fn rejections_in_a_busy_group(backend: &dyn Backend) {
    let log = backend.open().await;
    let alice = user("alice");
    let session_id = SessionId::new();
    let taken = CommandId::new();
    let original = append_one(&*log, prompt(&alice, session_id, taken, "original")).await;
    let runner = "rn-busy";
    append_one(&*log, runner_event(&alice, session_id, runner, 1)).await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..48 {
        let log = Arc::clone(&log);
        let alice = alice.clone();
        tasks.spawn(async move {
            let batch = match n % 4 {
                // Conflicts with the original command.
                0 => vec![prompt(&alice, session_id, taken, &format!("other {n}"))],
                // A gap in the runner's seqs.
                1 => vec![runner_event(&alice, session_id, runner, 5 + n)],
                // Fine: a command with a derived event.
                2 => vec![
                    prompt(&alice, session_id, CommandId::new(), &format!("ok {n}")),
                    notice(&alice, session_id, &format!("derived {n}")),
                ],
                _ => vec![notice(&alice, session_id, &format!("ok {n}"))],
            };
            (n, log.append(batch).await)
        });
    }
    let mut appended = vec![original];
    while let Some(result) = tasks.join_next().await {
        let (n, outcome) = result.expect("task ran");
        match (n % 4, outcome) {
            (0, Err(AppendError::IdempotencyConflict { offset, .. })) => {
                assert_eq!(offset, original)
            }
            (
                1,
                Err(AppendError::ProducerGap {
                    expected_seq: 2, ..
                }),
            ) => {}
            (2 | 3, Ok(receipts)) => {
                for receipt in receipts {
                    let Receipt::Appended(offset) = receipt else {
                        panic!("{receipt:?}")
                    };
                    appended.push(offset);
                }
            }
            (kind, other) => panic!("request kind {kind} got {other:?}"),
        }
    }
    let mut stored: Vec<Offset> = read_all(&*log, &LogFilter::all(), Offset::ZERO)
        .await
        .iter()
        .filter(|entry| entry.producer.id.as_str() != runner)
        .map(|entry| entry.offset)
        .collect();
    stored.sort();
    appended.sort();
    assert_eq!(stored, appended, "exactly the accepted entries are stored");
    assert_eq!(
        log.producer_seq(producer(runner)).await.expect("reads"),
        1,
        "gaps stage nothing"
    );
}

/// Several producers in one batch are numbered each on its own.
pub async fn producers_interleave_in_one_batch(backend: &dyn Backend) {
    let log = backend.open().await;
    let alice = user("alice");
    let session_id = SessionId::new();
    let batch = vec![
        runner_event(&alice, session_id, "rn-a", 1),
        runner_event(&alice, session_id, "rn-b", 1),
        runner_event(&alice, session_id, "rn-a", 2),
        notice(&alice, session_id, "gateway"),
        runner_event(&alice, session_id, "rn-b", 2),
    ];
    let receipts = log.append(batch).await.expect("appends");
    assert!(
        receipts.iter().all(|r| matches!(r, Receipt::Appended(_))),
        "{receipts:?}"
    );
    let entries = read_all(&*log, &LogFilter::session(session_id), Offset::ZERO).await;
    let numbered: Vec<(String, u64)> = entries
        .iter()
        .map(|e| (e.producer.id.to_string(), e.producer.seq))
        .collect();
    assert_eq!(
        numbered,
        vec![
            ("rn-a".to_owned(), 1),
            ("rn-b".to_owned(), 1),
            ("rn-a".to_owned(), 2),
            ("gw:test".to_owned(), 1),
            ("rn-b".to_owned(), 2),
        ]
    );
    assert_eq!(log.producer_seq(producer("rn-a")).await.expect("reads"), 2);
    assert_eq!(log.producer_seq(producer("rn-b")).await.expect("reads"), 2);
    // A command cannot carry its own seq, and seqs start at 1.
    let mut numbered_command = prompt(&alice, session_id, CommandId::new(), "x");
    numbered_command.seq = SeqSpec::Exact(3);
    let result = log.append(vec![numbered_command]).await;
    assert!(
        matches!(result, Err(AppendError::Invalid { .. })),
        "{result:?}"
    );
    let result = log
        .append(vec![runner_event(&alice, session_id, "rn-c", 0)])
        .await;
    assert!(
        matches!(result, Err(AppendError::Invalid { .. })),
        "{result:?}"
    );
}

/// Oversized and malformed appends are refused and change nothing.
pub async fn bad_appends_change_nothing(backend: &dyn Backend) {
    let log = backend.open().await;
    let alice = user("alice");
    let session_id = SessionId::new();
    append_one(&*log, notice(&alice, session_id, "before")).await;
    let head = log.head();
    let limit = backend.entry_bytes_max();
    let big = notice(&alice, session_id, &"x".repeat(limit));
    let result = log
        .append(vec![notice(&alice, session_id, "fine"), big])
        .await;
    assert!(
        matches!(result, Err(AppendError::TooLarge { index: 1, .. })),
        "got {result:?}"
    );
    let result = log.append(Vec::new()).await;
    assert!(
        matches!(result, Err(AppendError::Invalid { .. })),
        "empty batch: {result:?}"
    );
    let mut no_id = prompt(&alice, session_id, CommandId::new(), "x");
    no_id.command_id = None;
    let result = log.append(vec![no_id]).await;
    assert!(
        matches!(result, Err(AppendError::Invalid { .. })),
        "command without id: {result:?}"
    );
    let mut with_id = notice(&alice, session_id, "x");
    with_id.command_id = Some(CommandId::new());
    let result = log.append(vec![with_id]).await;
    assert!(
        matches!(result, Err(AppendError::Invalid { .. })),
        "event with id: {result:?}"
    );
    let second_command = vec![
        notice(&alice, session_id, "x"),
        prompt(&alice, session_id, CommandId::new(), "x"),
    ];
    let result = log.append(second_command).await;
    assert!(
        matches!(result, Err(AppendError::Invalid { index: 1, .. })),
        "command not first: {result:?}"
    );
    let unknown = NewEntry {
        body: Body::Unknown(octo_core::entry::UnknownBody {
            type_name: "future.thing".to_owned(),
        }),
        ..notice(&alice, session_id, "x")
    };
    let result = log.append(vec![unknown]).await;
    assert!(
        matches!(result, Err(AppendError::Invalid { .. })),
        "unknown body: {result:?}"
    );
    assert_eq!(log.head(), head, "nothing appended");
    assert_eq!(
        read_all(&*log, &LogFilter::all(), Offset::ZERO).await.len(),
        1
    );
    // The largest entry that fits is accepted.
    let mut fitting = limit - 400;
    loop {
        match log
            .append(vec![notice(&alice, session_id, &"y".repeat(fitting))])
            .await
        {
            Ok(_) => break,
            Err(AppendError::TooLarge {
                len_bytes,
                max_bytes,
                ..
            }) => fitting -= len_bytes - max_bytes,
            Err(other) => panic!("unexpected {other}"),
        }
    }
}

/// Blobs are stored with their entry, atomically, by content hash.
pub async fn blobs_are_stored_with_their_entry(backend: &dyn Backend) {
    let alice = user("alice");
    let session_id = SessionId::new();
    let payload: Vec<u8> = (0..3_000_000u32).map(|n| (n % 251) as u8).collect();
    let reference = crate::api::blob_ref(&payload);
    let hash = reference.blob;
    assert_eq!(reference.size, payload.len() as u64);
    {
        let log = backend.open().await;
        assert_eq!(log.blob(hash).await.expect("reads"), None);
        let mut entry = notice(&alice, session_id, &format!("attachment {hash}"));
        entry.blobs.push(payload.clone());
        append_one(&*log, entry).await;
    }
    let log = backend.open().await;
    assert_eq!(
        log.blob(hash).await.expect("reads").as_deref(),
        Some(&payload[..]),
        "after reopen"
    );
    assert_eq!(BlobHash::parse(&hash.to_string()), Ok(hash));
}

/// A subscription replays, then tails live, with no gap and no duplicate.
pub async fn subscribe_replays_then_tails(backend: &dyn Backend) {
    let log = backend.open().await;
    let alice = user("alice");
    let (mine, other) = (SessionId::new(), SessionId::new());
    let mut expected = Vec::new();
    for n in 0..30 {
        expected.push(append_one(&*log, notice(&alice, mine, &format!("old{n}"))).await);
        append_one(&*log, notice(&alice, other, "noise")).await;
    }
    let after = expected[9];
    let mut subscription = Subscription::new(
        Arc::clone(&log),
        LogFilter::session(mine),
        after,
        QueueBound::default(),
    )
    .expect("subscribes");
    let writer = {
        let log = Arc::clone(&log);
        let alice = alice.clone();
        tokio::spawn(async move {
            let mut offsets = Vec::new();
            for n in 0..200 {
                offsets.push(append_one(&*log, notice(&alice, mine, &format!("new{n}"))).await);
                append_one(&*log, notice(&alice, other, "noise")).await;
            }
            offsets
        })
    };
    let mut got = Vec::new();
    for _ in 0..(20 + 200) {
        got.push(next_within(&mut subscription).await.offset);
    }
    expected.extend(writer.await.expect("writer ran"));
    assert_eq!(
        got,
        expected[10..].to_vec(),
        "every later entry once, in order"
    );
    assert!(subscription.is_live());
    let result = Subscription::new(
        Arc::clone(&log),
        LogFilter::all(),
        Offset::new(log.head().get() + 1).expect("valid"),
        QueueBound::default(),
    );
    assert!(
        matches!(result, Err(ReadError::BeyondHead { .. })),
        "after beyond head is refused"
    );
}

/// A subscriber with a live queue of one entry falls back to the log and still sees every entry
/// once, in order, while appenders never wait for it: watching the whole log (a queue of its
/// own) and watching one session (a cursor in the session's shared ring).
pub async fn slow_subscriber_catches_up(backend: &dyn Backend) {
    let log = backend.open().await;
    let alice = user("alice");
    let session_id = SessionId::new();
    for filter in [LogFilter::all(), LogFilter::session(session_id)] {
        let mut subscription = Subscription::new(
            Arc::clone(&log),
            filter.clone(),
            log.head(),
            QueueBound::entries(1),
        )
        .expect("subscribes");
        // Go live first, so entries then pile up in the queue of one.
        append_one(&*log, notice(&alice, session_id, "first")).await;
        let first = next_within(&mut subscription).await;
        let mut expected = vec![first.offset];
        // Appends finish while nobody reads the subscription: the queue of one overflows instead
        // of holding them up (a blocked appender would hang here, past the test's deadline).
        for n in 0..300 {
            expected.push(append_one(&*log, notice(&alice, session_id, &format!("n{n}"))).await);
        }
        let mut got = vec![first.offset];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        while got.len() < expected.len() {
            got.push(next_either(&mut subscription, &mut rng).await.offset);
        }
        assert_eq!(got, expected, "{filter:?}: nothing lost, nothing twice");
        assert!(
            subscription.overflows() > 0,
            "{filter:?}: the overflow path ran"
        );
    }
}

/// Several appenders and subscribers that drop and resume at random offsets: every subscriber
/// sees exactly the sequence a full read shows, each entry once.
pub async fn concurrent_appenders_and_resuming_subscribers(backend: &dyn Backend) {
    const APPENDERS: usize = 6;
    const PER_APPENDER: usize = 150;
    const SUBSCRIBERS: usize = 5;
    let log = backend.open().await;
    let alice = user("alice");
    let sessions: Vec<SessionId> = (0..3).map(|_| SessionId::new()).collect();
    let total = APPENDERS * PER_APPENDER;

    let mut subscribers = tokio::task::JoinSet::new();
    for idx in 0..SUBSCRIBERS {
        let log = Arc::clone(&log);
        // Subscriber 0 watches one session; the others watch everything. Subscribers 0 and 1
        // have a live queue of one entry.
        let filter = if idx == 0 {
            LogFilter::session(sessions[0])
        } else {
            LogFilter::all()
        };
        let bound = if idx <= 1 {
            QueueBound::entries(1)
        } else {
            QueueBound::default()
        };
        let expected_count = if idx == 0 {
            APPENDERS * PER_APPENDER.div_ceil(3)
        } else {
            total
        };
        subscribers.spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(idx as u64);
            let mut seen: Vec<Offset> = Vec::new();
            let mut resumes = 0u32;
            while seen.len() < expected_count {
                let after = seen.last().copied().unwrap_or(Offset::ZERO);
                let mut subscription =
                    Subscription::new(Arc::clone(&log), filter.clone(), after, bound)
                        .expect("subscribes at an offset it saw");
                let take = rng.random_range(1..120);
                for _ in 0..take {
                    if seen.len() == expected_count {
                        break;
                    }
                    seen.push(next_either(&mut subscription, &mut rng).await.offset);
                }
                // Drop the subscription and resume from the last offset seen.
                resumes += 1;
            }
            (idx, filter, seen, resumes)
        });
    }
    let mut appenders = tokio::task::JoinSet::new();
    for idx in 0..APPENDERS {
        let log = Arc::clone(&log);
        let alice = alice.clone();
        let sessions = sessions.clone();
        appenders.spawn(async move {
            for n in 0..PER_APPENDER {
                let entry = notice(&alice, sessions[n % 3], &format!("a{idx}-{n}"));
                append_one(&*log, entry).await;
                if n % 17 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        });
    }
    while let Some(result) = appenders.join_next().await {
        result.expect("appender ran");
    }
    let everything = read_all(&*log, &LogFilter::all(), Offset::ZERO).await;
    assert_eq!(everything.len(), total);
    while let Some(result) = subscribers.join_next().await {
        let (idx, filter, seen, resumes) = result.expect("subscriber ran");
        let want: Vec<Offset> = everything
            .iter()
            .filter(|entry| filter.matches(entry))
            .map(|entry| entry.offset)
            .collect();
        assert_eq!(
            seen, want,
            "subscriber {idx} (resumed {resumes} times) saw the full read"
        );
    }
}

/// A gateway-handled command and its derived event go in one append; the event's `cause` is the
/// offset the command got, as read back and as seen live, and a derived entry without a command
/// in front is refused.
pub async fn derived_events_point_at_their_command(backend: &dyn Backend) {
    let log = backend.open().await;
    let alice = user("alice");
    let session_id = SessionId::new();
    let mut listener = log.listen(LogFilter::session(session_id), QueueBound::default());
    // Something before, so the command's offset is not 1.
    append_one(&*log, notice(&alice, SessionId::new(), "before")).await;
    let renamed = |title: &str| {
        Event::SessionRenamed(octo_core::event::SessionRenamed {
            title: title.to_owned(),
            source: octo_core::event::RenameSource::User,
            cause: None,
        })
    };
    let batch = vec![
        NewEntry::command(
            alice.clone(),
            session_id,
            producer("gw:test"),
            CommandId::new(),
            Command::SessionRename(octo_core::command::SessionRename {
                title: "named".to_owned(),
            }),
        ),
        NewEntry::event(
            alice.clone(),
            session_id,
            producer("gw:test"),
            SeqSpec::Next,
            renamed("named"),
        )
        .caused_by_command(),
    ];
    let receipts = log.append(batch).await.expect("appends");
    let [Receipt::Appended(command), Receipt::Appended(_)] = receipts[..] else {
        panic!("both appended: {receipts:?}")
    };
    let entries = read_all(&*log, &LogFilter::session(session_id), Offset::ZERO).await;
    let cause_of = |entry: &LogEntry| match &entry.body {
        Body::Event(event) => event.cause(),
        Body::Command(_) | Body::Unknown(_) => None,
    };
    assert_eq!(cause_of(&entries[1]), Some(command), "as read back");
    for _ in 0..2 {
        let crate::live::ListenerEvent::Entry(entry) = listener.recv().await else {
            panic!("the listener gets both entries")
        };
        if entry.kind == Kind::Event {
            assert_eq!(cause_of(&entry), Some(command), "as seen live");
        }
    }
    let head = log.head();
    let orphan = NewEntry::event(
        alice.clone(),
        session_id,
        producer("gw:test"),
        SeqSpec::Next,
        renamed("orphan"),
    )
    .caused_by_command();
    let refused = log.append(vec![orphan]).await;
    assert!(
        matches!(refused, Err(AppendError::Invalid { .. })),
        "no command to point at: {refused:?}"
    );
    assert_eq!(log.head(), head, "nothing appended");
}

/// `find_command` names exactly the durable commands of a user, with their offset and session.
pub async fn commands_can_be_found(backend: &dyn Backend) {
    let log = backend.open().await;
    let (alice, bob) = (user("alice"), user("bob"));
    let session_id = SessionId::new();
    let command_id = CommandId::new();
    assert_eq!(
        log.find_command(alice.clone(), command_id)
            .await
            .expect("reads"),
        None
    );
    let offset = append_one(&*log, prompt(&alice, session_id, command_id, "find me")).await;
    assert_eq!(
        log.find_command(alice.clone(), command_id)
            .await
            .expect("reads"),
        Some((offset, session_id))
    );
    assert_eq!(
        log.find_command(bob, command_id).await.expect("reads"),
        None,
        "command ids are per user"
    );
    drop(log);
    let log = backend.open().await;
    assert_eq!(
        log.find_command(alice, command_id).await.expect("reads"),
        Some((offset, session_id)),
        "after a reopen"
    );
}

/// Placed appends land in the order they were placed, whoever appends beside them and in
/// whatever order their outcomes are awaited; a re-placed command is a duplicate of the first; a
/// dropped [`PendingAppend`](crate::PendingAppend) still appends; a refused batch is refused at
/// placement and appends nothing.
pub async fn placed_appends_keep_their_order(backend: &dyn Backend) {
    let log = backend.open().await;
    let alice = user("alice");
    let session_id = SessionId::new();
    // Another appender interleaves with the placing one.
    let other = {
        let log = Arc::clone(&log);
        let alice = alice.clone();
        tokio::spawn(async move {
            for i in 0..100 {
                append_one(
                    &*log,
                    notice(&alice, SessionId::new(), &format!("beside {i}")),
                )
                .await;
            }
        })
    };
    let command_ids: Vec<CommandId> = (0..150).map(|_| CommandId::new()).collect();
    let mut pending = Vec::new();
    for (i, command_id) in command_ids.iter().enumerate() {
        let placed = log
            .append_placed(vec![prompt(
                &alice,
                session_id,
                *command_id,
                &format!("placed {i}"),
            )])
            .await
            .expect("placed");
        pending.push(placed);
        if i % 16 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // The first command again, placed last.
    pending.push(
        log.append_placed(vec![prompt(&alice, session_id, command_ids[0], "placed 0")])
            .await
            .expect("placed"),
    );
    let mut receipts = Vec::new();
    while let Some(placed) = pending.pop() {
        receipts.push(placed.await.expect("appended"));
    }
    receipts.reverse();
    other.await.expect("the other appender ran");
    let offsets: Vec<Offset> = receipts[..command_ids.len()]
        .iter()
        .map(|receipts| match receipts.as_slice() {
            [Receipt::Appended(offset)] => *offset,
            other => panic!("expected one appended receipt, got {other:?}"),
        })
        .collect();
    assert!(
        offsets.windows(2).all(|pair| pair[0] < pair[1]),
        "placed appends land in placement order: {offsets:?}"
    );
    assert!(
        matches!(receipts.last().map(Vec::as_slice),
            Some([Receipt::Duplicate { offset, .. }]) if *offset == offsets[0]),
        "a re-placed command is a duplicate of the first: {:?}",
        receipts.last()
    );
    let texts: Vec<String> = read_all(&*log, &LogFilter::session(session_id), Offset::ZERO)
        .await
        .iter()
        .map(|entry| text_of(entry))
        .collect();
    let expected: Vec<String> = (0..command_ids.len())
        .map(|i| format!("placed {i}"))
        .collect();
    assert_eq!(texts, expected);

    // Dropped before it is durable: still appended, before what is appended after it.
    let dropped = log
        .append_placed(vec![notice(&alice, session_id, "dropped")])
        .await
        .expect("placed");
    drop(dropped);
    let after = append_one(&*log, notice(&alice, session_id, "after")).await;
    let tail: Vec<String> = read_all(
        &*log,
        &LogFilter::session(session_id),
        offsets[offsets.len() - 1],
    )
    .await
    .iter()
    .map(|entry| text_of(entry))
    .collect();
    assert_eq!(tail, ["dropped", "after"]);

    // Refused at placement: nothing appended.
    let big = notice(&alice, session_id, &"x".repeat(backend.entry_bytes_max()));
    let refused = log.append_placed(vec![big]).await;
    assert!(
        matches!(refused, Err(AppendError::TooLarge { .. })),
        "got {refused:?}"
    );
    assert_eq!(log.head(), after);
}

/// Every check, in order, against fresh stores from `make`.
pub async fn run_all<B: Backend>(make: impl Fn() -> B) {
    offsets_start_at_one_and_increase(&make()).await;
    reads_filter_and_page(&make()).await;
    entries_are_stamped(&make()).await;
    acked_entries_survive_reopen(&make()).await;
    commands_are_idempotent(&make()).await;
    duplicate_batches_append_nothing(&make()).await;
    concurrent_duplicates_append_once(&make()).await;
    producer_seqs_dedupe(&make()).await;
    rejections_in_a_busy_group(&make()).await;
    producers_interleave_in_one_batch(&make()).await;
    bad_appends_change_nothing(&make()).await;
    blobs_are_stored_with_their_entry(&make()).await;
    derived_events_point_at_their_command(&make()).await;
    commands_can_be_found(&make()).await;
    placed_appends_keep_their_order(&make()).await;
    subscribe_replays_then_tails(&make()).await;
    slow_subscriber_catches_up(&make()).await;
    concurrent_appenders_and_resuming_subscribers(&make()).await;
}

/// One `#[tokio::test]` per check, for a backend made by `$make` (an expression evaluated per
/// test).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            offsets_start_at_one_and_increase,
            reads_filter_and_page,
            entries_are_stamped,
            acked_entries_survive_reopen,
            commands_are_idempotent,
            duplicate_batches_append_nothing,
            concurrent_duplicates_append_once,
            producer_seqs_dedupe,
            rejections_in_a_busy_group,
            producers_interleave_in_one_batch,
            bad_appends_change_nothing,
            blobs_are_stored_with_their_entry,
            derived_events_point_at_their_command,
            commands_can_be_found,
            placed_appends_keep_their_order,
            subscribe_replays_then_tails,
            slow_subscriber_catches_up,
            concurrent_appenders_and_resuming_subscribers
        );
    };
    (@each $make:expr; $($check:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let backend = $make;
                $crate::conformance::$check(&backend).await;
            }
        )*
    };
}
