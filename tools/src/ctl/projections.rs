//! `projections status` (asks the server) and `projections rebuild` (on the data dir, with the
//! server stopped: the projections are derived, so dropping one and folding the log again from
//! offset 0 gives the same state).

use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use octo_core::Offset;
use octo_log::EventLog;
use octo_log::fjall::{FjallConfig, FjallLog};
use octo_projections::analytics::Analytics;
use octo_projections::history::History;
use octo_projections::sessions::Sessions;
use octo_projections::ui_state::UiState;
use octo_projections::{Projection, ProjectionStore, spawn_projector};
use serde_json::json;

use super::read::table;
use super::{Ctx, Failure, Format};

/// Every projection `rebuild` knows, in the order `all` rebuilds them.
pub const NAMES: [&str; 5] = ["sessions", "ui_state", "history", "analytics", "search"];

pub async fn status(ctx: &Ctx) -> Result<(), Failure> {
    let data = ctx
        .graphql(
            "{ head projections { name version applied behind } }",
            json!({}),
        )
        .await?;
    let rows = data["projections"].as_array().cloned().unwrap_or_default();
    if ctx.format == Format::Json {
        for row in &rows {
            println!("{row}");
        }
        return Ok(());
    }
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            vec![
                row["name"].as_str().unwrap_or_default().to_owned(),
                format!("v{}", row["version"]),
                row["applied"].to_string(),
                row["behind"].to_string(),
            ]
        })
        .collect();
    println!("log head: {}", data["head"]);
    println!(
        "{}",
        table(&["PROJECTION", "VERSION", "APPLIED", "BEHIND"], &body)
    );
    Ok(())
}

fn bar(name: &str, head: Offset) -> ProgressBar {
    let bar = ProgressBar::new(head.get());
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix:>10} [{bar:40}] {pos}/{len} entries ({per_sec}, {eta} left)",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(name.to_owned());
    bar
}

/// Rebuilds `P` from offset 0 and waits until it has applied `head`, showing progress.
async fn rebuild_one<P: Projection + Default>(
    log: &Arc<dyn EventLog>,
    store: &ProjectionStore,
    head: Offset,
    show: bool,
) -> Result<(), Failure> {
    store.reset::<P>()?;
    let handle = spawn_projector(Arc::clone(log), store.clone(), P::default()).await?;
    let bar = show.then(|| bar(P::NAME, head));
    while handle.applied() < head {
        if let Some(bar) = &bar {
            bar.set_position(handle.applied().get());
        }
        let _ = handle
            .wait_for(handle.applied().successor(), Duration::from_millis(200))
            .await;
    }
    if let Some(bar) = bar {
        bar.finish();
    }
    Ok(())
}

pub async fn rebuild(ctx: &Ctx, name: &str) -> Result<(), Failure> {
    let names: Vec<&str> = match name {
        "all" => NAMES.to_vec(),
        one if NAMES.contains(&one) => vec![one],
        other => {
            return Err(Failure::Usage(format!(
                "no projection {other:?}: one of {NAMES:?}, or all"
            )));
        }
    };
    let dir = ctx.data_dir()?;
    if !dir.join("log").is_dir() {
        return Err(Failure::Usage(format!(
            "{} holds no Octo log",
            dir.display()
        )));
    }
    let locked = |e: &dyn std::fmt::Display| {
        Failure::Usage(format!(
            "cannot open the data dir {} ({e}); is `octo serve` running? Stop it first",
            dir.display()
        ))
    };
    let log: Arc<dyn EventLog> =
        FjallLog::open(FjallConfig::new(dir.join("log"))).map_err(|e| locked(&e))?;
    let store = ProjectionStore::open(dir.join("projections")).map_err(|e| locked(&e))?;
    let head = log.head();
    let show = ctx.format == Format::Pretty;
    for name in &names {
        let started = std::time::Instant::now();
        match *name {
            "sessions" => rebuild_one::<Sessions>(&log, &store, head, show).await?,
            "ui_state" => rebuild_one::<UiState>(&log, &store, head, show).await?,
            "history" => rebuild_one::<History>(&log, &store, head, show).await?,
            "analytics" => rebuild_one::<Analytics>(&log, &store, head, show).await?,
            _ => {
                let search_dir = dir.join("search");
                if search_dir.exists() {
                    std::fs::remove_dir_all(&search_dir)?;
                }
                let searcher =
                    octo_projections::search::spawn_search(Arc::clone(&log), search_dir).await?;
                let bar = show.then(|| bar("search", head));
                while searcher.applied() < head {
                    if let Some(bar) = &bar {
                        bar.set_position(searcher.applied().get());
                    }
                    let _ = searcher.wait_for(head, Duration::from_millis(200)).await;
                }
                if let Some(bar) = bar {
                    bar.finish();
                }
            }
        }
        if !show {
            println!(
                "{}",
                json!({"projection": name, "applied": head, "ms": started.elapsed().as_millis() as u64})
            );
        }
    }
    Ok(())
}
