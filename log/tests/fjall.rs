//! The fjall backend against the conformance suite, plus what only a real process and a real disk
//! can show: acks wait for the sync (a failing sync acks nothing), and acked entries survive
//! `kill -9`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use octo_core::{CommandId, Offset, SessionId};
use octo_log::conformance::{Backend, notice, prompt, read_all, user};
use octo_log::fjall::{FjallConfig, FjallLog};
use octo_log::{AppendError, EventLog, LogFilter, Receipt};
use rand::Rng;

struct FjallBackend {
    _dir: tempfile::TempDir,
    config: FjallConfig,
}

impl FjallBackend {
    fn new() -> FjallBackend {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = FjallConfig::new(dir.path().join("log"));
        // A small limit keeps the oversize checks cheap.
        config.entry_bytes_max = 64 << 10;
        FjallBackend { _dir: dir, config }
    }
}

async fn open(config: FjallConfig) -> Arc<FjallLog> {
    tokio::task::spawn_blocking(move || FjallLog::open(config))
        .await
        .expect("open task ran")
        .expect("log opens")
}

#[async_trait]
impl Backend for FjallBackend {
    async fn open(&self) -> Arc<dyn EventLog> {
        open(self.config.clone()).await
    }

    fn entry_bytes_max(&self) -> usize {
        self.config.entry_bytes_max
    }
}

octo_log::conformance_tests!(FjallBackend::new());

/// A failing sync acks nothing: every acked offset is covered by the synced watermark when the ack
/// arrives, the appends caught by the failure get `unavailable`, the writer is poisoned, and what
/// readers see is exactly what was acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_wait_for_the_sync() {
    let backend = FjallBackend::new();
    let failpoints = backend.config.failpoints.clone();
    let log = open(backend.config.clone()).await;
    let alice = user("alice");
    let session_id = SessionId::new();
    let mut subscription = octo_log::Subscription::new(
        log.clone(),
        LogFilter::all(),
        Offset::ZERO,
        octo_log::QueueBound::default(),
    )
    .expect("subscribes");

    let n_acked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut appenders = tokio::task::JoinSet::new();
    for idx in 0..16 {
        let log = Arc::clone(&log);
        let alice = alice.clone();
        let n_acked = Arc::clone(&n_acked);
        appenders.spawn(async move {
            let mut acked = Vec::new();
            for n in 0.. {
                let command_id = CommandId::new();
                match log
                    .append(vec![prompt(
                        &alice,
                        session_id,
                        command_id,
                        &format!("{idx}-{n}"),
                    )])
                    .await
                {
                    Ok(receipts) => {
                        let [Receipt::Appended(offset)] = receipts[..] else {
                            panic!("{receipts:?}")
                        };
                        // The watermark moves before any ack of its group is sent.
                        assert!(
                            offset <= log.head(),
                            "ack {offset} beyond the synced head {}",
                            log.head()
                        );
                        acked.push((offset, command_id));
                        n_acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(AppendError::Unavailable { .. }) => {
                        // Whoever hears of the failure finds the log already refusing appends.
                        assert!(log.is_poisoned(), "unavailable before the log is poisoned");
                        return acked;
                    }
                    Err(other) => panic!("unexpected error {other}"),
                }
            }
            unreachable!()
        });
    }
    // Fail the syncs at a random point after some progress, however slow the machine is.
    let progress = rand::rng().random_range(100..400);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while n_acked.load(std::sync::atomic::Ordering::Relaxed) < progress {
        assert!(
            std::time::Instant::now() < deadline,
            "no progress before the failure"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    failpoints.fail_syncs();
    let mut acked = BTreeMap::new();
    while let Some(result) = appenders.join_next().await {
        for (offset, command_id) in result.expect("appender ran") {
            assert!(
                acked.insert(offset, command_id).is_none(),
                "offset {offset} acked twice"
            );
        }
    }
    assert!(
        acked.len() > 16,
        "the appenders made progress before the failure ({})",
        acked.len()
    );
    assert!(log.is_poisoned(), "a failed sync poisons the writer");
    let head = log.head();
    assert_eq!(
        acked.keys().next_back().copied(),
        Some(head),
        "the newest ack is the head"
    );
    let later = log.append(vec![notice(&alice, session_id, "after")]).await;
    assert!(
        matches!(later, Err(AppendError::Unavailable { .. })),
        "poisoned: {later:?}"
    );

    // Readers and subscribers see exactly the acked entries, though the failed group sits in
    // fjall's memtable.
    let visible = read_all(&*log, &LogFilter::all(), Offset::ZERO).await;
    let visible: Vec<_> = visible
        .iter()
        .map(|entry| (entry.offset, entry.command_id.expect("commands")))
        .collect();
    assert_eq!(
        visible,
        acked.iter().map(|(o, c)| (*o, *c)).collect::<Vec<_>>()
    );
    for offset in acked.keys() {
        let entry = tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await
            .expect("delivered")
            .expect("no error");
        assert_eq!(entry.offset, *offset);
    }
    let extra = tokio::time::timeout(Duration::from_millis(300), subscription.next()).await;
    assert!(extra.is_err(), "nothing unsynced is delivered: {extra:?}");
    drop(subscription);
    drop(log);

    // Reopened without the failure: every ack is there, appends work and continue above them.
    let mut config = backend.config.clone();
    config.failpoints = Default::default();
    let log = open(config).await;
    let stored = read_all(&*log, &LogFilter::all(), Offset::ZERO).await;
    let stored: BTreeMap<_, _> = stored.iter().map(|e| (e.offset, e.command_id)).collect();
    for (offset, command_id) in &acked {
        assert_eq!(
            stored.get(offset),
            Some(&Some(*command_id)),
            "acked entry {offset} survives"
        );
    }
    let receipts = log
        .append(vec![notice(&alice, session_id, "reopened")])
        .await
        .expect("appends");
    let [Receipt::Appended(next)] = receipts[..] else {
        panic!("{receipts:?}")
    };
    assert!(
        next > *stored.keys().next_back().expect("entries"),
        "offsets are never reused"
    );
}

/// A runner's seq is reported (for `welcome.acked_seq`) only once it is durable: a first write
/// of a producer caught by a failing sync leaves its reported seq where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_seq_is_reported_only_when_durable() {
    let backend = FjallBackend::new();
    let log = open(backend.config.clone()).await;
    let alice = user("alice");
    let session_id = SessionId::new();
    let runner = octo_log::conformance::producer("rn-first");
    let receipts = log
        .append(vec![octo_log::conformance::runner_event(
            &alice, session_id, "rn-other", 1,
        )])
        .await
        .expect("appends");
    assert!(matches!(receipts[..], [Receipt::Appended(_)]));
    backend.config.failpoints.fail_syncs();
    let caught = log
        .append(vec![octo_log::conformance::runner_event(
            &alice, session_id, "rn-first", 1,
        )])
        .await;
    assert!(
        matches!(caught, Err(AppendError::Unavailable { .. })),
        "{caught:?}"
    );
    assert_eq!(
        log.producer_seq(runner.clone()).await.expect("reads"),
        0,
        "unsynced seq hidden"
    );
    assert_eq!(
        log.producer_seq(octo_log::conformance::producer("rn-other"))
            .await
            .expect("reads"),
        1
    );
    let visible = read_all(&*log, &LogFilter::all(), Offset::ZERO).await;
    assert_eq!(visible.len(), 1, "only the synced entry is visible");
}

const CHILD_ENV: &str = "OCTO_LOG_KILL9_CHILD_DIR";

/// Not a test on its own: the child process of `kill9_loses_no_acked_entry`. It appends from 8
/// tasks and prints `ACK <offset> <command_id>` after each ack, until it is killed.
#[test]
fn kill9_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let log = open(FjallConfig::new(dir)).await;
        let alice = user("alice");
        let mut tasks = tokio::task::JoinSet::new();
        for idx in 0..8 {
            let log = Arc::clone(&log);
            let alice = alice.clone();
            tasks.spawn(async move {
                let session_id = SessionId::new();
                for n in 0u64.. {
                    let command_id = CommandId::new();
                    let entry = prompt(&alice, session_id, command_id, &format!("{idx}-{n}"));
                    let receipts = log.append(vec![entry]).await.expect("append succeeds");
                    let [Receipt::Appended(offset)] = receipts[..] else {
                        panic!("{receipts:?}")
                    };
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {offset} {command_id}").expect("stdout");
                    out.flush().expect("stdout");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    });
}

/// A log written while the session index was a keyspace of the main database opens with the
/// index rebuilt from `log` in its own database, and the old keyspace is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_with_the_old_index_layout_opens_with_its_index_rebuilt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("log");
    let alice = user("alice");
    let sessions = [SessionId::new(), SessionId::new()];
    {
        let log = open(FjallConfig::new(&path)).await;
        for n in 0..30 {
            log.append(vec![notice(&alice, sessions[n % 2], &format!("n{n}"))])
                .await
                .expect("appends");
        }
    }
    // The old layout: no index folder, a `by_session` keyspace in the main database.
    std::fs::remove_dir_all(path.join("by_session")).expect("index folder removed");
    {
        let db = fjall::Database::builder(&path).open().expect("main db");
        let legacy = db
            .keyspace("by_session", fjall::KeyspaceCreateOptions::default)
            .expect("legacy keyspace");
        legacy
            .insert([0u8; 24], b"stale".to_vec())
            .expect("stale entry");
        db.persist(fjall::PersistMode::SyncAll).expect("synced");
    }
    let log = open(FjallConfig::new(&path)).await;
    let repair = log.index_repair();
    assert!(repair.rebuilt, "{repair:?}");
    assert_eq!(repair.copied, 30);
    for (i, session_id) in sessions.iter().enumerate() {
        let entries = read_all(&*log, &LogFilter::session(*session_id), Offset::ZERO).await;
        let offsets: Vec<u64> = entries.iter().map(|entry| entry.offset.get()).collect();
        let expected: Vec<u64> = (1..=30).filter(|o| (o - 1) % 2 == i as u64).collect();
        assert_eq!(offsets, expected);
    }
    drop(log);
    let db = fjall::Database::builder(&path).open().expect("main db");
    assert!(
        !db.keyspace_exists("by_session"),
        "the old keyspace is deleted"
    );
    drop(db);
    // Opened again, the index is level with the log: nothing to repair.
    let log = open(FjallConfig::new(&path)).await;
    assert_eq!(log.index_repair(), octo_log::fjall::IndexRepair::default());
}

/// A child appends concurrently and prints each acked offset; it is killed with SIGKILL at random
/// moments, 20 times. After each kill the log reopens with every acked entry at its offset, no
/// offset ever names two entries, and new appends continue above the highest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_loses_no_acked_entry() {
    const ROUNDS: usize = 20;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("log");
    let exe = std::env::current_exe().expect("test binary path");
    let mut ever_acked: BTreeMap<Offset, CommandId> = BTreeMap::new();
    let mut rng = rand::rng();
    let mut total_acked_before_kill = 0usize;
    let mut index_repairs = Vec::new();
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "kill9_child",
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("child starts");
        let stdout = child.stdout.take().expect("piped");
        let (first_ack_tx, first_ack_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest may print `test kill9_child ... ` without a newline before the first ack.
                let Some(at) = line.find("ACK ") else {
                    continue;
                };
                let mut words = line[at..].split_whitespace().skip(1);
                let offset: u64 = words.next().and_then(|w| w.parse().ok()).expect("offset");
                let command_id: CommandId = words.next().and_then(|w| w.parse().ok()).expect("id");
                if acks.is_empty() {
                    let _ = first_ack_tx.send(());
                }
                acks.push((Offset::new(offset).expect("valid"), command_id));
            }
            acks
        });
        first_ack_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the child acks something");
        std::thread::sleep(Duration::from_millis(rng.random_range(0..120)));
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("child reaped");
        assert!(!status.success(), "the child was killed");
        let acks = reader.join().expect("reader ran");
        total_acked_before_kill += acks.len();

        let log = open(FjallConfig::new(&path)).await;
        index_repairs.push(log.index_repair());
        let all = read_all(&*log, &LogFilter::all(), Offset::ZERO).await;
        // The session index, repaired at open, holds exactly the log's entries of each session.
        let mut sessions: BTreeMap<SessionId, Vec<Offset>> = BTreeMap::new();
        for entry in &all {
            sessions
                .entry(entry.session_id)
                .or_default()
                .push(entry.offset);
        }
        for (session_id, offsets) in &sessions {
            let by_session = read_all(&*log, &LogFilter::session(*session_id), Offset::ZERO).await;
            let indexed: Vec<Offset> = by_session.iter().map(|entry| entry.offset).collect();
            assert_eq!(
                &indexed, offsets,
                "round {round}: session {session_id} indexed"
            );
        }
        let stored: BTreeMap<Offset, Option<CommandId>> = all
            .iter()
            .map(|entry| (entry.offset, entry.command_id))
            .collect();
        for (offset, command_id) in &acks {
            assert_eq!(
                stored.get(offset),
                Some(&Some(*command_id)),
                "round {round}: acked {offset} is stored"
            );
            if let Some(previous) = ever_acked.insert(*offset, *command_id) {
                assert_eq!(
                    previous, *command_id,
                    "round {round}: offset {offset} reused"
                );
            }
        }
        for (offset, command_id) in &ever_acked {
            assert_eq!(
                stored.get(offset),
                Some(&Some(*command_id)),
                "round {round}: earlier ack {offset} kept"
            );
        }
        let highest = *stored.keys().next_back().expect("entries");
        assert_eq!(log.head(), highest);
        let command_id = CommandId::new();
        let receipts = log
            .append(vec![prompt(
                &user("alice"),
                SessionId::new(),
                command_id,
                "parent",
            )])
            .await
            .expect("appends after reopen");
        let [Receipt::Appended(next)] = receipts[..] else {
            panic!("{receipts:?}")
        };
        assert!(
            next > highest,
            "round {round}: {next} continues above {highest}"
        );
        ever_acked.insert(next, command_id);
    }
    assert!(
        total_acked_before_kill > ROUNDS,
        "children acked entries before being killed"
    );
    // The index's journal is never synced, and a kill loses what it had not yet written out: the
    // repair at open is what kept the session reads above exact.
    assert!(
        index_repairs.iter().any(|repair| repair.copied > 0),
        "a kill left the session index behind at least once: {index_repairs:?}"
    );
}
