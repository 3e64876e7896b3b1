//! A small client of Octo's WebSocket (PROTOCOL.md 3): connect with a bearer token, send frames,
//! read server frames. `octoctl`, the tests and the fan-out bench use it.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use octo_core::Encoding;
use octo_core::frame::{Hello, ServerFrame, SystemServerFrame};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Why the client stopped.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("the connection closed{}", .0.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    Closed(Option<String>),
    #[error("websocket error: {0}")]
    Socket(String),
    #[error("cannot decode a server frame: {0}")]
    Decode(String),
    #[error("timed out waiting for the server")]
    Timeout,
}

/// Bytes read from the socket at a time.
const READ_BUFFER: usize = 16 << 10;

/// One connection.
pub struct Client {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    encoding: Encoding,
    /// The server's `hello`.
    pub hello: Hello,
}

/// `ws://host:port/api/ws` for `http://host:port` (or an already-ws URL).
pub fn ws_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let base = base
        .strip_prefix("http://")
        .map(|rest| format!("ws://{rest}"))
        .or_else(|| {
            base.strip_prefix("https://")
                .map(|rest| format!("wss://{rest}"))
        })
        .unwrap_or_else(|| base.to_owned());
    if base.ends_with("/api/ws") {
        base
    } else {
        format!("{base}/api/ws")
    }
}

impl Client {
    /// Connects to `base` (`http://host:port`) as the owner of `token`, offering `encoding`, and
    /// reads the `hello`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn connect(
        base: &str,
        token: &str,
        encoding: Encoding,
    ) -> Result<Client, ClientError> {
        let mut request = ws_url(base)
            .into_client_request()
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        let headers = request.headers_mut();
        headers.insert(
            "Authorization",
            HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|e| ClientError::Connect(e.to_string()))?,
        );
        headers.insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(encoding.subprotocol()),
        );
        // tungstenite zeroes `read_buffer_size` bytes before every read; its 128 KiB default
        // costs more than the frames a live subscription reads at a time.
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .max_message_size(Some(64 << 20))
            .max_frame_size(Some(64 << 20));
        let (socket, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
            .await
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        let mut client = Client {
            socket,
            encoding,
            hello: placeholder_hello(encoding),
        };
        match client.next_frame().await? {
            ServerFrame::System(SystemServerFrame::Hello(hello)) => client.hello = hello,
            other => {
                return Err(ClientError::Decode(format!(
                    "the first frame is {}, not hello",
                    other.type_name()
                )));
            }
        }
        Ok(client)
    }

    /// Sends a frame given as JSON (re-encoded as msgpack on a msgpack connection).
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn send(&mut self, frame: &serde_json::Value) -> Result<(), ClientError> {
        let message = match self.encoding {
            Encoding::Json => Message::Text(frame.to_string().into()),
            Encoding::Msgpack => Message::Binary(
                rmp_serde::to_vec_named(frame)
                    .map_err(|e| ClientError::Decode(e.to_string()))?
                    .into(),
            ),
        };
        self.send_raw(message).await
    }

    /// Sends a message as is (tests send malformed ones).
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn send_raw(&mut self, message: Message) -> Result<(), ClientError> {
        self.socket
            .send(message)
            .await
            .map_err(|e| ClientError::Socket(e.to_string()))
    }

    /// The next server frame.
    ///
    /// # Errors
    /// [`ClientError`]; `Closed` when the server closed the connection.
    pub async fn next_frame(&mut self) -> Result<ServerFrame, ClientError> {
        loop {
            let message = match self.socket.next().await {
                None => return Err(ClientError::Closed(None)),
                Some(Err(e)) => return Err(ClientError::Socket(e.to_string())),
                Some(Ok(message)) => message,
            };
            let decoded = match &message {
                Message::Text(text) => octo_core::codec::from_json(text.as_bytes()),
                Message::Binary(bytes) => octo_core::codec::from_msgpack(bytes),
                Message::Close(frame) => {
                    return Err(ClientError::Closed(
                        frame
                            .as_ref()
                            .map(|f| format!("{} {}", u16::from(f.code), f.reason)),
                    ));
                }
                _ => continue,
            };
            return decoded.map_err(|e| ClientError::Decode(e.to_string()));
        }
    }

    /// The next server frame within `timeout`.
    ///
    /// # Errors
    /// [`ClientError::Timeout`] and the errors of [`Client::next_frame`].
    pub async fn next_frame_within(
        &mut self,
        timeout: Duration,
    ) -> Result<ServerFrame, ClientError> {
        tokio::time::timeout(timeout, self.next_frame())
            .await
            .map_err(|_| ClientError::Timeout)?
    }

    /// The socket itself, for readers that skip decoding (the fan-out bench).
    pub fn into_raw(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.socket
    }

    /// Closes the connection politely.
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

fn placeholder_hello(encoding: Encoding) -> Hello {
    Hello {
        protocol: octo_core::frame::ProtocolVersion::CURRENT,
        encoding,
        server_version: String::new(),
        demo: false,
        workspaces_root: String::new(),
        connection_id: octo_core::ConnectionId::new(),
        user: octo_core::frame::UserInfo {
            id: octo_core::UserId::new("placeholder").expect("valid"),
            name: String::new(),
        },
        capabilities: Vec::new(),
        harnesses: Vec::new(),
        limits: octo_core::frame::HelloLimits::default(),
    }
}
