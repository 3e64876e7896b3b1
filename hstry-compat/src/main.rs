//! `octo-hstry`: hstry's gRPC API over an Octo data dir, for drop-in use without `octo serve`
//! (which serves the same API itself). It opens the data dir's log and projections, so it cannot
//! run beside an `octo serve` of the same data dir.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use octo_core::UserId;
use octo_hstry::{Hstry, HstryServer, ServeOptions};
use octo_log::EventLog;
use octo_log::fjall::{FjallConfig, FjallLog};
use octo_projections::history::History;
use octo_projections::search::spawn_search;
use octo_projections::sessions::Sessions;
use octo_projections::{ProjectionStore, spawn_projector};

/// Serve hstry's gRPC API (package hstry.service) from an Octo data dir.
#[derive(Debug, Parser)]
#[command(name = "octo-hstry", version)]
struct Args {
    /// Octo's data dir (the log, the projections, the search index).
    #[arg(long, env = "OCTO_DATA_DIR")]
    data_dir: PathBuf,
    /// The user whose history is served (an id from `octo users list`); hstry's API carries no
    /// credentials, so one listener serves one user.
    #[arg(long, env = "OCTO_HSTRY_USER")]
    user: String,
    /// Loopback address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Also listen on this Unix socket (mode 0600).
    #[arg(long)]
    unix: Option<PathBuf>,
    /// Publish the port the way hstry does, in `$XDG_STATE_HOME/hstry/service.port` (off by
    /// default, so it never fights a real hstry daemon).
    #[arg(long)]
    publish: bool,
    /// This node's id, part of the producer id of hstry writes (`hstry:<node>`).
    #[arg(long, default_value = "local")]
    node_id: String,
}

fn state_home() -> Option<PathBuf> {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state")))
}

/// mimalloc, tuned (`octo_core::alloc`).
#[global_allocator]
static ALLOCATOR: octo_core::alloc::Allocator = octo_core::alloc::Allocator;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    octo_core::alloc::tune();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        anyhow::bail!(
            "--listen {}: hstry's API has no authentication, so it listens on loopback only",
            args.listen
        );
    }
    let user = UserId::new(args.user.clone())?;
    let log: Arc<dyn EventLog> = FjallLog::open(FjallConfig::new(args.data_dir.join("log")))?;
    let store = ProjectionStore::open(args.data_dir.join("projections"))?;
    let sessions = Arc::new(spawn_projector(Arc::clone(&log), store.clone(), Sessions).await?);
    let history = Arc::new(spawn_projector(Arc::clone(&log), store.clone(), History).await?);
    let searcher = spawn_search(Arc::clone(&log), args.data_dir.join("search")).await?;
    let hstry = Arc::new(Hstry::new(
        log,
        store,
        history,
        sessions,
        searcher,
        user,
        &args.node_id,
    )?);
    let server = HstryServer::start(
        hstry,
        ServeOptions {
            listen: args.listen,
            unix: args.unix.clone(),
        },
    )
    .await?;
    println!("hstry gRPC listening on {}", server.addr);
    if args.publish {
        let dir = state_home()
            .ok_or_else(|| anyhow::anyhow!("--publish: neither XDG_STATE_HOME nor HOME is set"))?
            .join("hstry");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("service.port"), server.addr.port().to_string())?;
    }
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
