//! `octo-bench`: Octo's benchmark binary. Thin: arguments, then a call into `octo_tools::bench`.

use clap::Parser;

/// mimalloc: the log, the projections and the codecs allocate many small, short-lived values,
/// and it spends measurably less time on them than the system allocator (`octo-bench rebuild`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = octo_tools::bench::Cli::parse();
    let report = octo_tools::bench::run(cli)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
