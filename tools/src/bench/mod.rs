//! `octo-bench`: measurements of Octo's hot paths, printed as one JSON object.

mod codec;
mod fanout;
mod log;

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
    }
}
