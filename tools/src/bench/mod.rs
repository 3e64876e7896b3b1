//! `octo-bench`: measurements of Octo's hot paths, printed as one JSON object.

mod codec;
mod fanout;
mod fanout_bare;
mod graphql;
mod history;
mod log;
mod ui;

use clap::{Parser, Subcommand};

/// Octo's benchmarks. Each prints one JSON object on stdout.
#[derive(Debug, Parser)]
#[command(name = "octo-bench", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Bench,
}

/// Which benchmark to run.
#[derive(Debug, Subcommand)]
pub enum Bench {
    /// The event log against raw fjall on the same disk, in the same run.
    Log(log::LogArgs),
    /// Encode and decode speed of the hot-path frames, JSON and msgpack.
    Codec(codec::CodecArgs),
    /// WebSocket fan-out of one session to many subscribers, through a real `octo serve`.
    Fanout(fanout::FanoutArgs),
    /// Writes N sessions of M realistic messages into a data dir's log (no model needed).
    Seed(history::SeedArgs),
    /// Each projection rebuilt from offset 0 against a raw fjall scan of the same log.
    Rebuild(history::RebuildArgs),
    /// hstry's GetMessages through a real gRPC client on a seeded 10,000-message session.
    Hstry(history::HstryArgs),
    /// GraphQL reads (a session, the listing, log pages) against a real `octo serve`.
    Graphql(graphql::GraphqlArgs),
    /// The web UI in Chromium on a seeded long session: open, scroll to the top, frame times.
    Ui(ui::UiArgs),
}

/// Runs the chosen benchmark.
///
/// # Errors
/// Whatever the benchmark hits: an unwritable directory, a failing log.
pub fn run(cli: Cli) -> anyhow::Result<serde_json::Value> {
    match cli.command {
        Bench::Log(args) => log::run(&args),
        Bench::Codec(args) => codec::run(&args),
        Bench::Fanout(args) => fanout::run(&args),
        Bench::Seed(args) => history::run_seed(&args),
        Bench::Rebuild(args) => history::run_rebuild(&args),
        Bench::Hstry(args) => history::run_hstry(&args),
        Bench::Graphql(args) => graphql::run(&args),
        Bench::Ui(args) => ui::run(&args),
    }
}
