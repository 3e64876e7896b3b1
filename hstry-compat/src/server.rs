//! Serving the facade: the three services (64 MiB messages both ways, as hstry) and server
//! reflection (v1 and v1alpha, so grpcurl 1.8 finds them), over cleartext HTTP/2 on loopback TCP
//! and optionally a Unix socket (mode 0600).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};

use crate::proto::read_service_server::ReadServiceServer;
use crate::proto::search_service_server::SearchServiceServer;
use crate::proto::write_service_server::WriteServiceServer;
use crate::{Hstry, MESSAGE_BYTES_MAX, proto};

/// Where to listen.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// A TCP address; hstry listens on loopback only.
    pub listen: SocketAddr,
    /// A Unix socket path, created with mode 0600 (a stale file is replaced).
    pub unix: Option<PathBuf>,
}

/// A running hstry API.
pub struct HstryServer {
    /// The TCP address it listens on.
    pub addr: SocketAddr,
    /// The Unix socket it listens on, if any.
    pub unix: Option<PathBuf>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

fn router(hstry: &Arc<Hstry>) -> anyhow::Result<tonic::transport::server::Router> {
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::DESCRIPTOR_SET)
        .build_v1alpha()?;
    Ok(tonic::transport::Server::builder()
        .add_service(
            SearchServiceServer::new(Arc::clone(hstry))
                .max_decoding_message_size(MESSAGE_BYTES_MAX)
                .max_encoding_message_size(MESSAGE_BYTES_MAX),
        )
        .add_service(
            WriteServiceServer::new(Arc::clone(hstry))
                .max_decoding_message_size(MESSAGE_BYTES_MAX)
                .max_encoding_message_size(MESSAGE_BYTES_MAX),
        )
        .add_service(
            ReadServiceServer::new(Arc::clone(hstry))
                .max_decoding_message_size(MESSAGE_BYTES_MAX)
                .max_encoding_message_size(MESSAGE_BYTES_MAX),
        )
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha))
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

impl HstryServer {
    /// Binds and starts serving.
    ///
    /// # Errors
    /// When a listener cannot be bound.
    pub async fn start(hstry: Arc<Hstry>, options: ServeOptions) -> anyhow::Result<HstryServer> {
        let (stop, stop_rx) = watch::channel(false);
        let listener = tokio::net::TcpListener::bind(options.listen).await?;
        let addr = listener.local_addr()?;
        let mut tasks = Vec::new();
        let tcp = router(&hstry)?;
        let signal = stopped(stop_rx.clone());
        // Replies are small and latency matters: no Nagle delay behind a delayed ACK (40 ms).
        let incoming = TcpListenerStream::new(listener).map(|stream| {
            let stream = stream?;
            stream.set_nodelay(true)?;
            Ok::<_, std::io::Error>(stream)
        });
        tasks.push(tokio::spawn(async move {
            if let Err(e) = tcp.serve_with_incoming_shutdown(incoming, signal).await {
                tracing::error!(error = %e, "the hstry API stopped");
            }
        }));
        if let Some(path) = &options.unix {
            if path.exists() {
                std::fs::remove_file(path)?;
            }
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let listener = tokio::net::UnixListener::bind(path)?;
            {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            }
            let unix = router(&hstry)?;
            let signal = stopped(stop_rx);
            tasks.push(tokio::spawn(async move {
                if let Err(e) = unix
                    .serve_with_incoming_shutdown(UnixListenerStream::new(listener), signal)
                    .await
                {
                    tracing::error!(error = %e, "the hstry API's Unix socket stopped");
                }
            }));
        }
        tracing::info!(%addr, user = %hstry.user(), "hstry gRPC listening on {addr}");
        Ok(HstryServer {
            addr,
            unix: options.unix,
            stop,
            tasks,
        })
    }

    /// Stops listening and waits for the servers to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        if let Some(path) = self.unix {
            let _ = std::fs::remove_file(path);
        }
    }
}
