//! `octo-proxy`: a loopback TCP forwarder for drop tests. It prints its address and forwards every
//! connection to the target. Lines on stdin control it: `cut` (or an empty line) cuts every open
//! connection; `down` cuts them and refuses new ones until `up`. Each is answered on stdout.

use std::io::BufRead;
use std::net::SocketAddr;

use clap::Parser;

/// Forwards TCP connections and cuts them all on demand (`cut`, `down`, `up` on stdin).
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
        let (lines, mut receiver) = tokio::sync::mpsc::channel::<String>(16);
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if lines.blocking_send(line).is_err() {
                    break;
                }
            }
        });
        while let Some(line) = receiver.recv().await {
            match line.trim() {
                "" | "cut" => {
                    proxy.cut_all();
                    println!("cut");
                }
                "down" => {
                    proxy.set_down(true);
                    println!("down");
                }
                "up" => {
                    proxy.set_down(false);
                    println!("up");
                }
                other => eprintln!("octo-proxy: unknown control line {other:?} (cut, down, up)"),
            }
        }
        anyhow::Ok(())
    })
}
