//! `octo-model`: the scripted model on loopback (OpenAI and Anthropic APIs). Prints its port,
//! optionally writes it to a file, and serves until killed.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use octo_tools::model::{ModelConfig, Turn};

/// A scripted OpenAI/Anthropic-compatible model for tests and the demo.
#[derive(Debug, Parser)]
#[command(name = "octo-model", version)]
struct Cli {
    /// Where to listen (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// A JSON file with the list of turns.
    #[arg(long)]
    script: Option<PathBuf>,
    /// Write the port here once listening (atomically).
    #[arg(long)]
    port_file: Option<PathBuf>,
    /// After the script, answer `echo: <last user text>`.
    #[arg(long)]
    echo: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let turns: Vec<Turn> = match &cli.script {
        Some(path) => serde_json::from_slice(&std::fs::read(path)?)?,
        None => Vec::new(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let config = ModelConfig {
            echo_when_done: cli.echo,
            ..ModelConfig::default()
        };
        let model = octo_tools::model::serve(cli.listen, turns, config).await?;
        if let Some(path) = &cli.port_file {
            let temporary = path.with_extension("tmp");
            std::fs::write(&temporary, model.addr().port().to_string())?;
            std::fs::rename(&temporary, path)?;
        }
        println!("scripted model listening on {}", model.addr());
        std::future::pending::<()>().await;
        anyhow::Ok(())
    })
}
