//! `octo-proxy`: a loopback TCP forwarder for drop tests. It prints its address, forwards every
//! connection to the target, and cuts every open connection each time a line arrives on stdin.

use std::io::BufRead;
use std::net::SocketAddr;

use clap::Parser;

/// Forwards TCP connections and cuts them all on demand (a line on stdin).
#[derive(Debug, Parser)]
#[command(name = "octo-proxy", version)]
struct Cli {
    /// Where to listen (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to forward.
    #[arg(long)]
    target: SocketAddr,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let proxy = octo_tools::proxy::start(cli.listen, cli.target).await?;
        println!("listening on {}", proxy.addr());
        let (lines, mut receiver) = tokio::sync::mpsc::channel::<()>(16);
        std::thread::spawn(move || {
            for _ in std::io::stdin().lock().lines() {
                if lines.blocking_send(()).is_err() {
                    break;
                }
            }
        });
        while receiver.recv().await.is_some() {
            proxy.cut_all();
            println!("cut");
        }
        anyhow::Ok(())
    })
}
