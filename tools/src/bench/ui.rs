//! `octo-bench ui` (by hand, not in CI): the web UI in Debian's Chromium (Playwright) against a real
//! `octo serve` holding a session seeded with `octo-bench seed` (10,000 messages by default):
//! - `open_ms`: from a click on the session in the sidebar until its newest message is visible;
//! - `load_ms`: from a cold page load of the session's URL until its newest message is visible;
//! - `scroll_top_ms`: from the start of scrolling up until the oldest message is visible (older
//!   pages load as the list nears its top);
//! - `frame_p50_ms`, `frame_p99_ms`: frame times while the list is flung through.
//!
//! Each is the median of `--runs` runs. The browser work lives in `frontend/e2e/bench-ui.mjs`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;
use serde_json::Value;

/// Arguments of `octo-bench ui`.
#[derive(Debug, clap::Args)]
pub struct UiArgs {
    /// Messages in the seeded session.
    #[arg(long, default_value_t = 10_000)]
    messages: usize,
    /// Other sessions in the listing.
    #[arg(long, default_value_t = 20)]
    sessions: usize,
    /// Runs of each measurement (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Chromium (Debian's package).
    #[arg(long, env = "CHROMIUM", default_value = "/usr/bin/chromium")]
    chromium: PathBuf,
    /// The `octo` binary (default: beside this one). It serves `frontend/dist`: build it first.
    #[arg(long)]
    octo: Option<PathBuf>,
    /// Where to put the data dir (a fresh temporary folder inside it).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
}

/// Runs the benchmark.
///
/// # Errors
/// When the UI is not built, octo cannot start, or the browser script fails.
pub fn run(args: &UiArgs) -> anyhow::Result<Value> {
    let frontend = crate::find_frontend()
        .context("no built web UI: run `npm run build --prefix frontend` first")?;
    let script = frontend
        .parent()
        .map(|dir| dir.join("e2e/bench-ui.mjs"))
        .context("frontend/dist has no parent")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let binary = super::fanout::sibling_binary(args.octo.as_deref(), "octo")?;
        let (_temp, octo, session) =
            super::graphql::seeded_octo(&binary, &args.dir, args.sessions, args.messages).await?;
        let output = Command::new("node")
            .arg(&script)
            .args([
                "--url",
                &octo.url,
                "--token",
                &octo.token,
                "--session",
                &session.to_string(),
                "--runs",
                &args.runs.to_string(),
            ])
            .env("CHROMIUM", &args.chromium)
            .output()
            .with_context(|| format!("cannot run node {}", script.display()))?;
        anyhow::ensure!(
            output.status.success(),
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let mut figures: Value = serde_json::from_slice(&output.stdout)
            .with_context(|| String::from_utf8_lossy(&output.stdout).into_owned())?;
        figures["bench"] = "ui".into();
        figures["messages"] = args.messages.into();
        Ok(figures)
    })
}
