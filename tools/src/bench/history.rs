//! The projections' benchmarks:
//! - `octo-bench seed`: N sessions of M realistic messages written straight into a data dir's log
//!   (valid entries through the `EventLog`, no model), for benches and the UI's long-session test;
//! - `octo-bench rebuild`: entries/s of each projection rebuilt from offset 0 against a raw fjall
//!   scan of the same log in the same run (`rebuild_ratio`), and search indexing in messages/s;
//! - `octo-bench hstry`: GetMessages p50/p99 through a real gRPC client on a seeded
//!   10,000-message session, a page of 100 and all of it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use octo_core::{Event, MessageId, Offset, PartId, ProducerId, RunId, SessionId, UserId};
use octo_hstry::proto::GetMessagesRequest;
use octo_hstry::proto::read_service_client::ReadServiceClient;
use octo_log::fjall::{FjallConfig, FjallLog};
use octo_log::{EventLog, NewEntry, SeqSpec};
use octo_projections::analytics::Analytics;
use octo_projections::history::History;
use octo_projections::projector::catch_up;
use octo_projections::search::spawn_search;
use octo_projections::sessions::Sessions;
use octo_projections::ui_state::UiState;
use octo_projections::{Projection, ProjectionStore};
use serde_json::json;

/// Arguments of `octo-bench seed`.
#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    /// The data dir to write into (its `log` folder is created or appended to).
    #[arg(long)]
    pub dir: PathBuf,
    /// Sessions to write.
    #[arg(long, default_value_t = 10)]
    pub sessions: usize,
    /// Messages per session (a user prompt and an assistant answer per turn).
    #[arg(long, default_value_t = 1_000)]
    pub messages: usize,
    /// Bytes of text per message.
    #[arg(long, default_value_t = 500)]
    pub text_bytes: usize,
    /// The owner of the sessions (a user id, see `octo users list`).
    #[arg(long, default_value = "u-bench")]
    pub user: String,
}

/// Arguments of `octo-bench rebuild`.
#[derive(Debug, clap::Args)]
pub struct RebuildArgs {
    /// A fresh temporary folder inside it holds the seeded log and the rebuilt projections. Use a
    /// real disk, not tmpfs.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Sessions to seed.
    #[arg(long, default_value_t = 20)]
    pub sessions: usize,
    /// Messages per session.
    #[arg(long, default_value_t = 2_500)]
    pub messages: usize,
    /// The projections to rebuild (comma-separated; default: all).
    #[arg(long, value_delimiter = ',', default_values_t = ["sessions".to_owned(), "ui_state".to_owned(),
        "history".to_owned(), "analytics".to_owned(), "search".to_owned()])]
    pub projections: Vec<String>,
}

/// Arguments of `octo-bench hstry`.
#[derive(Debug, clap::Args)]
pub struct HstryArgs {
    /// A fresh temporary folder inside it holds the seeded data dir.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Messages in the seeded session.
    #[arg(long, default_value_t = 10_000)]
    pub messages: usize,
    /// Seconds to run each measurement.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// The `octo-hstry` server to measure, run as its own process on the seeded data dir
    /// (default: the one beside this binary).
    #[arg(long)]
    pub server: Option<PathBuf>,
}

const WORDS: [&str; 24] = [
    "the",
    "build",
    "fails",
    "because",
    "cargo",
    "cannot",
    "find",
    "src/main.rs",
    "tokio",
    "runtime",
    "workspace",
    "test",
    "passes",
    "after",
    "fixing",
    "std::fs::read",
    "error",
    "handler",
    "session",
    "projection",
    "offset",
    "snapshot",
    "quickly",
    "again",
];

/// Distinct words the seeded text draws from. Ranks follow a Zipf-like law (P(rank <= k) =
/// ln(k + 1) / ln(VOCABULARY)), as in real prose: the words above are the most frequent, a few
/// hundred make up half of any text, and tens of thousands appear now and then. Search indexing
/// meets a realistic term dictionary and realistic repetition.
const VOCABULARY: f64 = 50_000.0;

const SYLLABLES: [&str; 32] = [
    "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ba", "de", "fi", "go", "hu", "ja", "ke", "li",
    "mo", "nu", "pa", "qui", "re", "si", "to", "un", "ver", "wa", "xe", "yo", "zu", "ar", "en",
    "or",
];

/// The word of a rank: one of [`WORDS`], else syllables spelling the rank, some with an English
/// ending (so stemming has work to do).
fn push_word(out: &mut String, rank: usize) {
    if let Some(word) = WORDS.get(rank) {
        out.push_str(word);
        return;
    }
    let mut rest = rank;
    loop {
        out.push_str(SYLLABLES[rest % SYLLABLES.len()]);
        rest /= SYLLABLES.len();
        if rest == 0 {
            break;
        }
    }
    out.push_str(["", "ing", "s", "ed", "ation", ""][rank % 6]);
}

/// Text of about `bytes` bytes, varied by `seed`.
fn text(bytes: usize, seed: usize) -> String {
    let mut out = String::with_capacity(bytes + 32);
    let mut n = (seed as u64).wrapping_mul(2_654_435_761);
    while out.len() < bytes {
        n = n
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let uniform = (n >> 11) as f64 / (1u64 << 53) as f64;
        let rank = VOCABULARY.powf(uniform) as usize - 1;
        push_word(&mut out, rank);
        out.push(' ');
    }
    out
}

fn event(value: serde_json::Value) -> anyhow::Result<Event> {
    serde_json::from_value(value).context("a seeded event")
}

/// Entries per append while seeding.
const SEED_BATCH: usize = 512;

/// Writes `sessions` sessions of `messages` messages each. Returns the session ids.
///
/// # Errors
/// When the log fails.
pub async fn seed(
    log: &dyn EventLog,
    user: &UserId,
    sessions: usize,
    messages: usize,
    text_bytes: usize,
) -> anyhow::Result<Vec<SessionId>> {
    let producer = ProducerId::new("seed:bench")?;
    let mut ids = Vec::with_capacity(sessions);
    let mut batch: Vec<NewEntry> = Vec::with_capacity(SEED_BATCH + 8);
    let base_ms = 1_795_000_000_000i64;
    for s in 0..sessions {
        let session_id = SessionId::new();
        ids.push(session_id);
        let entry = |event: Event| {
            NewEntry::event(
                user.clone(),
                session_id,
                producer.clone(),
                SeqSpec::Next,
                event,
            )
        };
        batch.push(entry(event(
            json!({"type": "session.created", "harness": "pi",
            "workspace": "bench", "title": format!("Seeded session {s}"),
            "model": {"provider": "fake", "model_id": "fake-model"}, "cause": 0}),
        )?));
        for turn in 0..messages.div_ceil(2) {
            let run_id = RunId::new();
            let at = base_ms + (s * messages + turn * 2) as i64 * 1_000;
            batch.push(entry(event(
                json!({"type": "agent.working", "run_id": run_id}),
            )?));
            batch.push(entry(event(json!({"type": "message.created", "message": {
                "id": MessageId::new(), "role": "user", "created_ms": at,
                "parts": [{"type": "text", "id": PartId::new(), "text": text(text_bytes, s * messages + turn)}]}}))?));
            if turn * 2 + 1 < messages {
                let answer = MessageId::new();
                batch.push(entry(event(json!({"type": "stream.message_start", "message_id": answer,
                    "run_id": run_id, "role": "assistant", "provider": "fake", "model_id": "fake-model"}))?));
                batch.push(entry(event(json!({"type": "stream.message_end", "message": {
                    "id": answer, "role": "assistant", "created_ms": at + 1, "completed_ms": at + 900,
                    "provider": "fake", "model_id": "fake-model", "stop_reason": "stop",
                    "parts": [{"type": "text", "id": PartId::new(), "text": text(text_bytes, s * messages + turn + 7)}]}}))?));
                batch.push(entry(event(
                    json!({"type": "usage.recorded", "run_id": run_id,
                    "message_id": answer, "provider": "fake", "model_id": "fake-model",
                    "input_tokens": 120, "output_tokens": 90, "cache_read_tokens": 30,
                    "cache_write_tokens": 0, "cost_usd": 0.0012}),
                )?));
            }
            batch.push(entry(event(
                json!({"type": "agent.idle", "run_id": run_id, "outcome": "completed"}),
            )?));
            if batch.len() >= SEED_BATCH {
                log.append(std::mem::take(&mut batch)).await?;
            }
        }
    }
    if !batch.is_empty() {
        log.append(batch).await?;
    }
    Ok(ids)
}

/// Runs `octo-bench seed`.
///
/// # Errors
/// When the data dir or the log fails.
pub fn run_seed(args: &SeedArgs) -> anyhow::Result<serde_json::Value> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let log: Arc<dyn EventLog> = FjallLog::open(FjallConfig::new(args.dir.join("log")))?;
        let started = Instant::now();
        let user = UserId::new(args.user.clone())?;
        let ids = seed(&*log, &user, args.sessions, args.messages, args.text_bytes).await?;
        let seconds = started.elapsed().as_secs_f64();
        Ok(json!({
            "bench": "seed",
            "dir": args.dir,
            "user": args.user,
            "sessions": ids,
            "messages_per_session": args.messages,
            "entries": log.head().get(),
            "seconds": (seconds * 1000.0).round() / 1000.0,
        }))
    })
}

/// Builds the search index of the whole log in `dir` through the projector (`spawn_search`):
/// the time until its commit reflects the head, and the documents it holds.
async fn index_search(log: &Arc<dyn EventLog>, dir: &Path) -> anyhow::Result<(Duration, u64)> {
    let started = Instant::now();
    let searcher = spawn_search(Arc::clone(log), dir.to_owned()).await?;
    searcher
        .wait_for(log.head(), Duration::from_secs(600))
        .await
        .context("search catching up")?;
    let took = started.elapsed();
    Ok((took, searcher.documents()))
}

/// Rebuilds projection `P` from the log into a fresh store through the projector's own
/// catch-up (pages of the entries `P` folds, each committed, the next read while one is applied).
async fn rebuild<P: Projection + Default>(
    log: &Arc<dyn EventLog>,
    store_dir: &Path,
) -> anyhow::Result<(u64, Duration)> {
    let store = ProjectionStore::open(store_dir)?;
    let keyspace = store.keyspace::<P>()?;
    let projection = Arc::new(P::default());
    let head = log.head();
    let started = Instant::now();
    let applied = catch_up(
        log,
        &store,
        &projection,
        &keyspace,
        Offset::ZERO,
        head,
        |_| {},
    )
    .await?;
    let took = started.elapsed();
    anyhow::ensure!(
        applied == head,
        "{} caught up to {applied} of {head}",
        P::NAME
    );
    Ok((head.get(), took))
}

/// Times each measurement of `octo-bench rebuild` is taken; the fastest counts, for the raw scan
/// and each projection alike.
const RUNS: usize = 3;

/// The fastest of [`RUNS`] rebuilds of `P`, each into a fresh store.
async fn fastest<P: Projection + Default>(
    log: &Arc<dyn EventLog>,
    dir: &Path,
) -> anyhow::Result<(u64, Duration)> {
    let mut best = (0, Duration::MAX);
    for run in 0..RUNS {
        let (n, took) = rebuild::<P>(log, &dir.join(run.to_string())).await?;
        if took < best.1 {
            best = (n, took);
        }
    }
    Ok(best)
}

fn rate(count: u64, took: Duration) -> f64 {
    (count as f64 / took.as_secs_f64()).round()
}

/// Runs `octo-bench rebuild`.
///
/// # Errors
/// When the folder, the log or a projection fails.
pub fn run_rebuild(args: &RebuildArgs) -> anyhow::Result<serde_json::Value> {
    let work = tempfile::tempdir_in(&args.dir).context("a temporary folder in --dir")?;
    let runtime = tokio::runtime::Runtime::new()?;
    let log_dir = work.path().join("log");
    let (entries, messages) = runtime.block_on(async {
        let log: Arc<dyn EventLog> = FjallLog::open(FjallConfig::new(&log_dir))?;
        let user = UserId::new("u-bench")?;
        seed(&*log, &user, args.sessions, args.messages, 500).await?;
        anyhow::Ok((log.head().get(), (args.sessions * args.messages) as u64))
    })?;

    // Raw: every key and value of the log keyspace, straight from fjall, nothing decoded. The
    // fastest of three scans: one scan takes a tenth of a second, and the machine's noise alone
    // moved it by half between runs.
    let raw = {
        let db = fjall::Database::builder(&log_dir).open()?;
        let keyspace = db.keyspace("log", fjall::KeyspaceCreateOptions::default)?;
        let mut fastest = Duration::MAX;
        let mut bytes = 0usize;
        for _ in 0..RUNS {
            let started = Instant::now();
            let mut n = 0u64;
            bytes = 0;
            for guard in keyspace.iter() {
                let (key, value) = guard.into_inner()?;
                bytes += key.len() + value.len();
                n += 1;
            }
            fastest = fastest.min(started.elapsed());
            anyhow::ensure!(n == entries, "the raw scan saw {n} of {entries} entries");
        }
        json!({"entries": entries, "bytes": bytes, "seconds": fastest.as_secs_f64(),
               "entries_per_s": rate(entries, fastest), "runs": RUNS})
    };
    let raw_rate = raw["entries_per_s"].as_f64().unwrap_or(1.0);

    let report = runtime.block_on(async {
        let log: Arc<dyn EventLog> = FjallLog::open(FjallConfig::new(&log_dir))?;
        let mut projections = serde_json::Map::new();
        let mut measure = |name: &str, (n, took): (u64, Duration)| {
            let per_s = rate(n, took);
            projections.insert(
                name.to_owned(),
                json!({"entries": n, "seconds": took.as_secs_f64(), "entries_per_s": per_s,
                       "rebuild_ratio": (per_s / raw_rate * 1000.0).round() / 1000.0}),
            );
        };
        let dir = work.path();
        let wanted = |name: &str| args.projections.iter().any(|p| p == name);
        if wanted("sessions") {
            measure(
                "sessions",
                fastest::<Sessions>(&log, &dir.join("p-sessions")).await?,
            );
        }
        if wanted("ui_state") {
            measure(
                "ui_state",
                fastest::<UiState>(&log, &dir.join("p-ui")).await?,
            );
        }
        if wanted("history") {
            measure(
                "history",
                fastest::<History>(&log, &dir.join("p-history")).await?,
            );
        }
        if wanted("analytics") {
            measure(
                "analytics",
                fastest::<Analytics>(&log, &dir.join("p-analytics")).await?,
            );
        }

        if wanted("search") {
            // Search: the projector's own catch-up (`spawn_search` on a fresh folder, as `octo
            // serve` starts it) until its commit reflects the head, the fastest of three.
            let mut took = Duration::MAX;
            let mut documents = 0;
            for run in 0..RUNS {
                let (run_took, run_documents) =
                    index_search(&log, &dir.join(format!("p-search-{run}"))).await?;
                if run_took < took {
                    (took, documents) = (run_took, run_documents);
                }
            }
            let per_s = rate(entries, took);
            projections.insert(
                "search".to_owned(),
                json!({"entries": entries, "documents": documents, "seconds": took.as_secs_f64(),
                       "entries_per_s": per_s, "messages_per_s": rate(messages, took),
                       "rebuild_ratio": (per_s / raw_rate * 1000.0).round() / 1000.0}),
            );
        }
        anyhow::Ok(json!({
            "bench": "rebuild",
            "seeded": {"sessions": args.sessions, "messages_per_session": args.messages,
                       "entries": entries, "messages": messages},
            "raw_fjall_scan": raw,
            "projections": projections,
        }))
    })?;
    Ok(report)
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000, 3).context("histogram bounds")
}

/// The standalone `octo-hstry` on a data dir, killed on drop.
struct HstryProcess {
    child: std::process::Child,
    addr: String,
}

impl Drop for HstryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `binary` on `data_dir` for `user` and waits for the address it prints.
fn start_hstry(binary: &Path, data_dir: &Path, user: &UserId) -> anyhow::Result<HstryProcess> {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(binary)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--user", user.as_str(), "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut server = HstryProcess {
        child,
        addr: String::new(),
    };
    for line in std::io::BufReader::new(stdout).lines() {
        if let Some(addr) = line?.strip_prefix("hstry gRPC listening on ") {
            server.addr = addr.trim().to_owned();
            return Ok(server);
        }
    }
    anyhow::bail!("{} exited before listening", binary.display())
}

/// Runs `octo-bench hstry`.
///
/// # Errors
/// When the folder, the log, the projections or the server fail.
pub fn run_hstry(args: &HstryArgs) -> anyhow::Result<serde_json::Value> {
    let work = tempfile::tempdir_in(&args.dir).context("a temporary folder in --dir")?;
    let binary = super::fanout::sibling_binary(args.server.as_deref(), "octo-hstry")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let user = UserId::new("u-bench")?;
        let session = {
            let log = FjallLog::open(FjallConfig::new(work.path().join("log")))?;
            seed(&*log, &user, 1, args.messages, 500).await?[0]
        };
        // The server in its own process, as a user runs it: its allocator and threads are not
        // the client's. It builds its projections and search index on start.
        let server = start_hstry(&binary, work.path(), &user)?;
        let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))?
            .connect()
            .await?;
        let mut client = ReadServiceClient::new(channel)
            .max_decoding_message_size(octo_hstry::MESSAGE_BYTES_MAX);
        let mut results = serde_json::Map::new();
        // Warm up: connections, caches, and the search index's background merges settle.
        let warm = Instant::now();
        while warm.elapsed() < Duration::from_secs(2) {
            client
                .get_messages(GetMessagesRequest {
                    conversation_id: session.to_string(),
                    limit: 100,
                    ..Default::default()
                })
                .await?;
        }
        for (name, limit) in [("page_100", 100i64), ("all", 0)] {
            // And this call's own warm-up: a second of it unmeasured (the first whole
            // conversation read of a process grows every buffer on the way).
            let warm = Instant::now();
            while warm.elapsed() < Duration::from_secs(1) {
                client
                    .get_messages(GetMessagesRequest {
                        conversation_id: session.to_string(),
                        limit,
                        ..Default::default()
                    })
                    .await?;
            }
            let mut latencies = histogram()?;
            let mut bytes = 0usize;
            let mut calls = 0u64;
            let started = Instant::now();
            while started.elapsed().as_secs_f64() < args.seconds {
                let at = Instant::now();
                let response = client
                    .get_messages(GetMessagesRequest {
                        conversation_id: session.to_string(),
                        limit,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                latencies.record(u64::try_from(at.elapsed().as_micros()).unwrap_or(u64::MAX))?;
                let expected = if limit > 0 {
                    limit as usize
                } else {
                    args.messages
                };
                anyhow::ensure!(
                    response.messages.len() == expected,
                    "GetMessages returned {} messages, not {expected}",
                    response.messages.len()
                );
                bytes = prost::Message::encoded_len(&response);
                calls += 1;
            }
            results.insert(
                name.to_owned(),
                json!({"calls": calls, "response_bytes": bytes,
                       "p50_ms": latencies.value_at_quantile(0.50) as f64 / 1000.0,
                       "p99_ms": latencies.value_at_quantile(0.99) as f64 / 1000.0,
                       "max_ms": latencies.max() as f64 / 1000.0}),
            );
        }
        drop(server);
        anyhow::Ok(json!({
            "bench": "hstry",
            "messages": args.messages,
            "message_text_bytes": 500,
            "get_messages": results,
        }))
    })
}
