//! A loopback TCP forwarder that can cut every connection on demand: the drop tests (a WebSocket
//! cut mid-stream, then resumed) need a real socket failure, and a browser's offline mode does not
//! cut WebSockets.
//!
//! Every accepted connection is piped to the target both ways. [`ProxyHandle::cut_all`] closes
//! every open connection at once (both sides see the socket end); the proxy keeps accepting, so
//! clients reconnect through it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running proxy.
pub struct ProxyHandle {
    addr: SocketAddr,
    cuts: watch::Sender<u64>,
    accepted: Arc<AtomicU64>,
    down: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl ProxyHandle {
    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every connection open now. Later connections are forwarded as before.
    pub fn cut_all(&self) {
        self.cuts.send_modify(|generation| *generation += 1);
    }

    /// Down: cuts every connection and closes new ones at once, as an unreachable server would,
    /// until set up again. Lets a test hold a client offline for as long as it needs.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            self.cut_all();
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        self.task.abort();
        self.cut_all();
    }
}

/// Listens on `listen` (port 0 for any) and forwards to `target`.
///
/// # Errors
/// When `listen` cannot be bound.
pub async fn start(listen: SocketAddr, target: SocketAddr) -> std::io::Result<ProxyHandle> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let (cuts, _) = watch::channel(0u64);
    let accepted = Arc::new(AtomicU64::new(0));
    let down = Arc::new(AtomicBool::new(false));
    let task = {
        let cuts = cuts.clone();
        let accepted = Arc::clone(&accepted);
        let down = Arc::clone(&down);
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                accepted.fetch_add(1, Ordering::Relaxed);
                if down.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut = cuts.subscribe();
                let generation = *cut.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(upstream) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut client, mut upstream) = (client, upstream);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                        _ = cut.wait_for(|now| *now != generation) => {}
                    }
                    // Dropping both sockets here closes them: the cut.
                });
            }
        })
    };
    Ok(ProxyHandle {
        addr,
        cuts,
        accepted,
        down,
        task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut reader, mut writer) = socket.split();
                    let _ = tokio::io::copy(&mut reader, &mut writer).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn forwards_cuts_and_forwards_again() {
        let target = echo_server().await;
        let proxy = start("127.0.0.1:0".parse().expect("addr"), target)
            .await
            .expect("starts");
        let mut first = TcpStream::connect(proxy.addr()).await.expect("connects");
        first.write_all(b"hello").await.expect("writes");
        let mut buffer = [0u8; 5];
        first.read_exact(&mut buffer).await.expect("echo");
        assert_eq!(&buffer, b"hello");

        proxy.cut_all();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            first.read_to_end(&mut rest),
        )
        .await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "the cut ends the connection: {read:?}"
        );

        let mut second = TcpStream::connect(proxy.addr()).await.expect("reconnects");
        second.write_all(b"again").await.expect("writes");
        second.read_exact(&mut buffer).await.expect("echo");
        assert_eq!(&buffer, b"again");
        assert_eq!(proxy.accepted(), 2);
    }
}
