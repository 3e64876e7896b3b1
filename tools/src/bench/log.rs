//! `octo-bench log`: durable appends per second and append-to-ack latency of the `EventLog` at 1,
//! 16 and 64 concurrent appenders, against raw fjall writing entries of the same encoded size in
//! write batches of 64 with a `SyncData` after each, on the same disk in the same run; then the
//! catch-up speed of a subscription that replays the whole log.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use fjall::{Database, KeyspaceCreateOptions, PersistMode};
use hdrhistogram::Histogram;
use octo_core::event::{Notice, NoticeLevel};
use octo_core::{Event, Offset, ProducerId, SessionId, UserId};
use octo_log::fjall::{FjallConfig, FjallLog};
use octo_log::{EventLog, LogFilter, NewEntry, QueueBound, Receipt, SeqSpec, Subscription};
use serde_json::json;

/// Arguments of `octo-bench log`.
#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// Seconds to run each configuration.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Bytes of text in each entry (an assistant text delta is typically a few hundred).
    #[arg(long, default_value_t = 200)]
    text_bytes: usize,
    /// Appender counts to measure (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16, 64])]
    appenders: Vec<usize>,
    /// Where to put the logs (a fresh temporary folder inside it). Use a real disk, not tmpfs.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
}

/// Entries per raw write batch, as the issue fixes it.
const RAW_BATCH_ENTRIES: usize = 64;

fn sample_entry(text_bytes: usize, session_id: SessionId) -> anyhow::Result<NewEntry> {
    Ok(NewEntry::event(
        UserId::new("bench")?,
        session_id,
        ProducerId::new("gw:bench")?,
        SeqSpec::Next,
        Event::Notice(Notice {
            level: NoticeLevel::Info,
            text: "d".repeat(text_bytes),
        }),
    ))
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000, 3).context("histogram bounds")
}

fn summary(n_entries: u64, elapsed: Duration, latencies_us: &Histogram<u64>) -> serde_json::Value {
    let seconds = elapsed.as_secs_f64();
    json!({
        "entries": n_entries,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "appends_per_s": (n_entries as f64 / seconds).round(),
        "ack_p50_us": latencies_us.value_at_quantile(0.50),
        "ack_p99_us": latencies_us.value_at_quantile(0.99),
        "ack_max_us": latencies_us.max(),
    })
}

/// Raw fjall: values of `entry_bytes`, 64 per write batch, one `SyncData` per batch.
fn raw_fjall(
    path: &std::path::Path,
    entry_bytes: usize,
    run_for: Duration,
) -> anyhow::Result<serde_json::Value> {
    let db = Database::builder(path)
        .manual_journal_persist(true)
        .open()?;
    let keyspace = db.keyspace("raw", KeyspaceCreateOptions::default)?;
    let value = vec![b'r'; entry_bytes];
    let mut latencies_us = histogram()?;
    let mut key = 0u64;
    let started = Instant::now();
    while started.elapsed() < run_for {
        let batch_started = Instant::now();
        let mut batch = db.batch();
        for _ in 0..RAW_BATCH_ENTRIES {
            key += 1;
            batch.insert(&keyspace, key.to_be_bytes(), value.clone());
        }
        batch.commit()?;
        db.persist(PersistMode::SyncData)?;
        let micros = batch_started.elapsed().as_micros() as u64;
        latencies_us.record(micros.max(1))?;
    }
    Ok(summary(key, started.elapsed(), &latencies_us))
}

async fn event_log_appenders(
    log: &Arc<FjallLog>,
    appenders: usize,
    text_bytes: usize,
    run_for: Duration,
) -> anyhow::Result<serde_json::Value> {
    let stats_before = log.stats();
    let started = Instant::now();
    let deadline = started + run_for;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..appenders {
        let log = Arc::clone(log);
        tasks.spawn(async move {
            let session_id = SessionId::new();
            let mut latencies_us = histogram()?;
            let mut n_appended = 0u64;
            while Instant::now() < deadline {
                let entry = sample_entry(text_bytes, session_id)?;
                let append_started = Instant::now();
                let receipts = log.append(vec![entry]).await?;
                anyhow::ensure!(
                    matches!(receipts[..], [Receipt::Appended(_)]),
                    "not appended"
                );
                latencies_us.record((append_started.elapsed().as_micros() as u64).max(1))?;
                n_appended += 1;
            }
            anyhow::Ok((n_appended, latencies_us))
        });
    }
    let mut total = 0u64;
    let mut latencies_us = histogram()?;
    while let Some(result) = tasks.join_next().await {
        let (n_appended, histogram) = result??;
        total += n_appended;
        latencies_us.add(histogram)?;
    }
    let mut figures = summary(total, started.elapsed(), &latencies_us);
    let stats = log.stats();
    let groups = stats.groups_synced - stats_before.groups_synced;
    let entries = stats.entries_synced - stats_before.entries_synced;
    figures["syncs"] = json!(groups);
    let per_sync = |micros: u64| ((micros as f64) / groups.max(1) as f64).round();
    figures["commit_us_per_sync"] =
        json!(per_sync(stats.commit_micros - stats_before.commit_micros));
    figures["sync_us_per_sync"] = json!(per_sync(stats.sync_micros - stats_before.sync_micros));
    figures["index_wait_us_per_sync"] = json!(per_sync(
        stats.index_wait_micros - stats_before.index_wait_micros
    ));
    figures["gather_us_per_sync"] =
        json!(per_sync(stats.gather_micros - stats_before.gather_micros));
    figures["entries_per_sync"] =
        json!((entries as f64 / groups.max(1) as f64 * 10.0).round() / 10.0);
    Ok(figures)
}

async fn catch_up(log: &Arc<FjallLog>) -> anyhow::Result<serde_json::Value> {
    let head = log.head();
    let started = Instant::now();
    let mut subscription = Subscription::new(
        log.clone(),
        LogFilter::all(),
        Offset::ZERO,
        QueueBound::default(),
    )?;
    let mut n_entries = 0u64;
    while subscription.last_offset() < head {
        subscription.next().await?;
        n_entries += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(json!({
        "entries": n_entries,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "entries_per_s": (n_entries as f64 / seconds).round(),
    }))
}

/// Runs the log benchmark.
///
/// # Errors
/// I/O and log failures.
pub fn run(args: &LogArgs) -> anyhow::Result<serde_json::Value> {
    let run_for = Duration::from_secs_f64(args.seconds);
    std::fs::create_dir_all(&args.dir)?;
    let scratch = tempfile::Builder::new()
        .prefix("octo-bench-log-")
        .tempdir_in(&args.dir)
        .with_context(|| format!("creating a scratch folder in {}", args.dir.display()))?;

    // The encoded size of one entry as the log stores it, for the raw baseline.
    let sample = sample_entry(args.text_bytes, SessionId::new())?;
    let entry_bytes = octo_core::codec::to_msgpack(&octo_core::LogEntry {
        offset: Offset::ZERO,
        ts_ms: 0,
        user_id: sample.user_id.clone(),
        session_id: sample.session_id,
        kind: octo_core::Kind::Event,
        producer: octo_core::Producer {
            id: sample.producer.clone(),
            seq: 0,
        },
        command_id: None,
        body: sample.body.clone(),
    })?
    .len();

    let raw = raw_fjall(&scratch.path().join("raw"), entry_bytes, run_for)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let log_path = scratch.path().join("log");
    let (appenders, catch_up) = runtime.block_on(async {
        let log = tokio::task::spawn_blocking(move || FjallLog::open(FjallConfig::new(log_path)))
            .await??;
        let mut appenders = serde_json::Map::new();
        for &n_appenders in &args.appenders {
            let figures = event_log_appenders(&log, n_appenders, args.text_bytes, run_for).await?;
            appenders.insert(n_appenders.to_string(), figures);
        }
        let catch_up = catch_up(&log).await?;
        anyhow::Ok((appenders, catch_up))
    })?;

    let raw_per_s = raw["appends_per_s"].as_f64().unwrap_or(0.0);
    let at_64 = appenders
        .get("64")
        .and_then(|f| f["appends_per_s"].as_f64())
        .unwrap_or(0.0);
    let append_ratio = if raw_per_s > 0.0 {
        at_64 / raw_per_s
    } else {
        0.0
    };
    Ok(json!({
        "bench": "log",
        "entry_bytes": entry_bytes,
        "seconds_per_config": args.seconds,
        "raw_fjall_batch64_syncdata": raw,
        "event_log_by_appenders": appenders,
        "subscribe_catch_up": catch_up,
        "append_ratio": (append_ratio * 1000.0).round() / 1000.0,
    }))
}
