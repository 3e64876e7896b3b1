//! `octo-bench`: Octo's benchmark binary. Thin: arguments, then a call into `octo_tools::bench`.

use clap::Parser;

/// mimalloc, tuned (`octo_core::alloc`).
#[global_allocator]
static ALLOCATOR: octo_core::alloc::Allocator = octo_core::alloc::Allocator;

fn main() -> anyhow::Result<()> {
    octo_core::alloc::tune();
    let cli = octo_tools::bench::Cli::parse();
    let report = octo_tools::bench::run(cli)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
