//! `octo-bench`: Octo's benchmark binary. Thin: arguments, then a call into `octo_tools::bench`.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = octo_tools::bench::Cli::parse();
    let report = octo_tools::bench::run(cli)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
