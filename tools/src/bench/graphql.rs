//! `octo-bench graphql`: GraphQL reads against a real `octo serve` (a child on a fresh data dir)
//! holding one seeded session of N realistic messages, over one keep-alive HTTP connection:
//! - `session(id)`: the snapshot shape, the newest 200 messages with their fork points, p50/p99;
//! - `sessions(first: 50)`: the listing's first page, p50/p99;
//! - `logEntries(sessionId, limit: 1000)`: the whole session paged through, entries per second.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use octo_log::EventLog;
use octo_log::fjall::{FjallConfig, FjallLog};
use serde_json::{Value, json};

use super::fanout::start_octo;
use crate::graphql::GraphqlClient;

/// Arguments of `octo-bench graphql`.
#[derive(Debug, clap::Args)]
pub struct GraphqlArgs {
    /// Messages in the seeded session.
    #[arg(long, default_value_t = 10_000)]
    messages: usize,
    /// Other sessions in the listing.
    #[arg(long, default_value_t = 200)]
    sessions: usize,
    /// Seconds per measured query.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// The `octo` binary (default: beside this one).
    #[arg(long)]
    octo: Option<PathBuf>,
    /// Where to put the data dir (a fresh temporary folder inside it). Use a real disk.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
}

fn micros(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

/// Runs `query` repeatedly for `seconds`; (p50 ms, p99 ms, requests).
async fn latency(
    client: &mut GraphqlClient,
    query: &str,
    variables: &Value,
    seconds: f64,
) -> anyhow::Result<(f64, f64, u64)> {
    let mut histogram = Histogram::<u64>::new(3)?;
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < until {
        let started = Instant::now();
        client.request(query, variables.clone()).await?;
        histogram.record(started.elapsed().as_micros() as u64)?;
    }
    Ok((
        micros(&histogram, 0.5),
        micros(&histogram, 0.99),
        histogram.len(),
    ))
}

/// Runs the benchmark.
///
/// # Errors
/// When `octo` cannot start or a query fails.
pub fn run(args: &GraphqlArgs) -> anyhow::Result<Value> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(measure(args))
}

async fn measure(args: &GraphqlArgs) -> anyhow::Result<Value> {
    let binary = super::fanout::sibling_binary(args.octo.as_deref(), "octo")?;
    let (_temp, octo, long) = seeded_octo(&binary, &args.dir, args.sessions, args.messages).await?;
    let mut client = GraphqlClient::connect(&octo.url, &octo.token).await?;
    let id = json!({"id": long});
    let session_query = "query S($id: ID!) { session(id: $id) { asOf nextBefore
        summary { id title messageCount } messages { id role text offset forkOffset } } }";
    let (session_p50, session_p99, session_n) =
        latency(&mut client, session_query, &id, args.seconds).await?;
    let listing_query = "{ sessions(first: 50) { edges { cursor node { id title runState messageCount updatedOffset } } } }";
    let (list_p50, list_p99, list_n) =
        latency(&mut client, listing_query, &json!({}), args.seconds).await?;
    let log_query = "query L($id: ID!, $after: Offset) { logEntries(filter: {sessionId: $id}, after: $after, limit: 1000) {
        entries { offset type json } nextAfter } }";
    let started = Instant::now();
    let mut entries = 0u64;
    let mut passes = 0u64;
    while started.elapsed().as_secs_f64() < args.seconds || passes == 0 {
        let mut after = 0u64;
        loop {
            let data = client
                .request(log_query, json!({"id": long, "after": after}))
                .await?;
            let page = &data["logEntries"];
            entries += page["entries"].as_array().map_or(0, |e| e.len() as u64);
            match page["nextAfter"].as_u64() {
                Some(next) => after = next,
                None => break,
            }
        }
        passes += 1;
    }
    let log_seconds = started.elapsed().as_secs_f64();
    Ok(json!({
        "bench": "graphql",
        "messages": args.messages,
        "sessions": args.sessions + 1,
        "session_200_messages": {"p50_ms": session_p50, "p99_ms": session_p99, "requests": session_n},
        "sessions_first_50": {"p50_ms": list_p50, "p99_ms": list_p99, "requests": list_n},
        "log_entries_paged": {"entries_per_s": entries as f64 / log_seconds, "passes": passes},
    }))
}

/// A real `octo serve` on a fresh data dir in `dir` holding `sessions` sessions of 20 messages
/// and one of `messages` messages (~500 bytes each, `octo-bench seed`), once every projection has
/// applied them. Returns the folder (removed on drop), the server and the long session's id.
///
/// # Errors
/// When octo cannot start, the seeding fails, or the projections take over 10 minutes.
pub(super) async fn seeded_octo(
    binary: &std::path::Path,
    dir: &std::path::Path,
    sessions: usize,
    messages: usize,
) -> anyhow::Result<(tempfile::TempDir, super::fanout::Octo, octo_core::SessionId)> {
    std::fs::create_dir_all(dir)?;
    let temp = tempfile::tempdir_in(dir)?;
    let data_dir = temp.path().join("data");
    let workspaces = temp.path().join("workspaces");

    // Start once to create the user, then seed its sessions while the server is down.
    let user = {
        let octo = start_octo(binary, &data_dir, &workspaces)?;
        let data =
            crate::graphql::request(&octo.url, &octo.token, "{ me { id } }", json!({})).await?;
        data["me"]["id"].as_str().unwrap_or_default().to_owned()
    };
    let _ = std::fs::remove_file(data_dir.join("url"));
    let user = octo_core::UserId::new(&user)?;
    let long = {
        let log: Arc<dyn EventLog> = FjallLog::open(FjallConfig::new(data_dir.join("log")))?;
        super::history::seed(log.as_ref(), &user, sessions, 20, 500).await?;
        let long = super::history::seed(log.as_ref(), &user, 1, messages, 500).await?;
        long.first()
            .copied()
            .ok_or_else(|| anyhow::anyhow!("no session seeded"))?
    };
    let octo = start_octo(binary, &data_dir, &workspaces)?;
    let mut client = GraphqlClient::connect(&octo.url, &octo.token).await?;
    let caught_up_in = Instant::now();
    loop {
        let data = client
            .request("{ projections { behind } }", json!({}))
            .await?;
        let behind: u64 = data["projections"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| p["behind"].as_u64().unwrap_or(0))
            .sum();
        if behind == 0 {
            break;
        }
        anyhow::ensure!(
            caught_up_in.elapsed() < Duration::from_secs(600),
            "the projections did not catch up in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((temp, octo, long))
}
