//! `GET /api/ws`: the multiplexed WebSocket (PROTOCOL.md 3 to 5 and 12). One reader loop per
//! connection decodes frames and answers them in order; one writer task owns the socket, and with
//! it every session and log subscription of the connection ([`Subscription`]s, polled in the same
//! loop: one wake-up per delivery, no hop between tasks). Each replays from the log and then
//! tails it: every entry after the client's offset once, in order, with no gap between replay and
//! live. A slow socket stops the polling, so the subscriptions fall back to reading the log
//! instead of growing memory (5.2).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use octo_core::frame::{
    AgentFrame, AgentServerFrame, ClientFrame, Hello, Pong, ProtocolVersion, Replay, ReplayResult,
    ServerFrame, SessionSummaryFrame, Sessions as SessionsFrame, Subscribe, SubscribeLog,
    SubscribeSessions, Subscribed, SubscribedLog, SystemFrame, SystemServerFrame, Unsubscribed,
    UnsubscribedLog, UnsubscribedSessions, UserInfo,
};
use octo_core::frame::{Channel, ErrorFrame};
use octo_core::limits::{OUTBOUND_FRAME_BYTES_MAX, SESSIONS_CHUNK_ITEMS_MAX, SOCKET_STALL_MS};
use octo_core::now_ms;
use octo_core::{
    ConnectionId, Encoding, Error, ErrorCode, LogEntry, Offset, ReqId, SessionId, UserId,
    validate_client_frame,
};
use octo_log::{LogFilter, ReadError, Subscription, TypePattern};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::StreamMap;

use crate::auth::{authenticate, unauthorized};
use crate::commands::PendingAck;
use crate::server::SharedApp;
use crate::users::User;
use crate::view::{EntryStream, View};

/// Frames waiting for the socket. Small: subscriptions wait here, not in memory.
pub const OUTBOUND_QUEUE_FRAMES: usize = 64;

/// Commands of one connection placed in the log and not yet acked, at most: a client may send
/// its next commands without waiting for the acks (they share group commits), and past this the
/// socket is not read until acks go out.
pub const COMMANDS_IN_FLIGHT_MAX: usize = 64;

/// How often the server pings; a peer silent for [`PEER_TIMEOUT`] is dropped.
pub const PING_EVERY: Duration = Duration::from_secs(20);

/// See [`PING_EVERY`].
pub const PEER_TIMEOUT: Duration = Duration::from_secs(60);

/// A stream of entries the writer polls: a session's view, or the user's log tail.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Watch {
    Session(SessionId),
    Log(ReqId),
}

/// What the writer task does next.
enum Outbound {
    Frame(Box<ServerFrame>),
    Close(u16, &'static str),
    /// Start (or replace) a watched stream: `subscribed` goes out first, then its entries.
    Watch {
        watch: Watch,
        id: ReqId,
        subscribed: Box<ServerFrame>,
        stream: EntryStream,
    },
    /// Stop a watched stream (no entry of it follows), then send `reply`.
    Unwatch {
        watch: Watch,
        reply: Box<ServerFrame>,
    },
}

impl Outbound {
    fn frame(frame: ServerFrame) -> Outbound {
        Outbound::Frame(Box::new(frame))
    }
}

/// Aborts the task when dropped: a replaced or ended subscription stops at once.
struct TaskGuard(JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The subprotocol to answer with, or the 400 for offers we do not speak.
fn choose_encoding(headers: &HeaderMap) -> Result<Option<Encoding>, Box<Response>> {
    let offered: Vec<&str> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect();
    if offered.is_empty() {
        return Ok(None);
    }
    match offered
        .iter()
        .find_map(|name| Encoding::from_subprotocol(name))
    {
        Some(encoding) => Ok(Some(encoding)),
        None => Err(Box::new(
            (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"code": "unsupported_protocol",
                "supported": [Encoding::Json.subprotocol(), Encoding::Msgpack.subprotocol()]})),
            )
                .into_response(),
        )),
    }
}

/// `GET /api/ws`: authenticates before the upgrade (401 otherwise).
pub async fn upgrade(
    State(app): State<SharedApp>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Some(user) = authenticate(&app, &headers) else {
        return unauthorized();
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let offered = match choose_encoding(&headers) {
        Ok(offered) => offered,
        Err(response) => return *response,
    };
    let encoding = offered.unwrap_or(Encoding::Json);
    let hard_cap = app.max_frame_bytes.saturating_mul(4);
    let mut ws = ws.max_message_size(hard_cap).max_frame_size(hard_cap);
    if let Some(encoding) = offered {
        ws = ws.protocols([encoding.subprotocol()]);
    }
    ws.on_upgrade(move |socket| async move {
        Connection::run(app, user, encoding, socket).await;
    })
}

/// A server frame as a WebSocket message (`None`: it could not be encoded, a bug, logged).
fn to_message(frame: &ServerFrame, encoding: Encoding) -> Option<Message> {
    let message = crate::frames::encode(encoding, frame);
    if message.is_none() {
        tracing::error!(
            frame = frame.type_name(),
            "a server frame could not be encoded"
        );
    }
    message
}

fn close_message(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// Messages written before one flush: a burst goes out in few syscalls.
const WRITE_BATCH_MESSAGES: usize = 64;

/// The writer's state: the socket's next batch and the streams it polls.
struct Writer {
    app: SharedApp,
    encoding: Encoding,
    batch: Vec<Message>,
    streams: StreamMap<Watch, EntryStream>,
    ids: HashMap<Watch, ReqId>,
}

impl Writer {
    fn push_frame(&mut self, frame: &ServerFrame) {
        self.batch.extend(to_message(frame, self.encoding));
    }

    /// Takes one queued item into the batch (or the set of streams).
    fn accept(&mut self, outbound: Outbound) {
        match outbound {
            Outbound::Frame(frame) => self.push_frame(&frame),
            Outbound::Close(code, reason) => self.batch.push(close_message(code, reason)),
            Outbound::Watch {
                watch,
                id,
                subscribed,
                stream,
            } => {
                // Replacing: the old stream is gone before the new `subscribed` is written.
                self.streams.remove(&watch);
                self.push_frame(&subscribed);
                self.ids.insert(watch.clone(), id);
                self.streams.insert(watch, stream);
            }
            Outbound::Unwatch { watch, reply } => {
                self.streams.remove(&watch);
                self.ids.remove(&watch);
                self.push_frame(&reply);
            }
        }
    }

    /// One entry (or the error that ended a stream) into the batch.
    fn deliver(&mut self, watch: Watch, item: Result<Arc<LogEntry>, ReadError>) {
        match item {
            Ok(entry) => {
                let frame_session = match &watch {
                    Watch::Session(session_id) => *session_id,
                    Watch::Log(_) => entry.session_id,
                };
                match self.app.frames.entry(frame_session, &entry, self.encoding) {
                    Some(message) => self.batch.push(message),
                    None => {
                        tracing::error!(offset = %entry.offset, "an entry frame could not be encoded");
                    }
                }
            }
            Err(e) => {
                self.streams.remove(&watch);
                let id = self.ids.remove(&watch);
                self.push_frame(&error_frame(Channel::Agent, id, unavailable(e)));
            }
        }
    }
}

/// Owns the socket's sending half and the connection's subscriptions: encodes, batches writes,
/// pings, and closes on a stall or a silent peer.
async fn write_loop(
    app: SharedApp,
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Outbound>,
    encoding: Encoding,
    last_heard: Arc<AtomicU64>,
    epoch: Instant,
) {
    let stall = Duration::from_millis(SOCKET_STALL_MS);
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut writer = Writer {
        app,
        encoding,
        batch: Vec::with_capacity(WRITE_BATCH_MESSAGES),
        streams: StreamMap::new(),
        ids: HashMap::new(),
    };
    loop {
        tokio::select! {
            next = queue.recv() => match next {
                None => writer.batch.push(close_message(1000, "")),
                Some(outbound) => {
                    writer.accept(outbound);
                    while writer.batch.len() < WRITE_BATCH_MESSAGES {
                        match queue.try_recv() {
                            Ok(outbound) => writer.accept(outbound),
                            Err(_) => break,
                        }
                    }
                }
            },
            Some((watch, item)) = writer.streams.next(), if !writer.streams.is_empty() => {
                writer.deliver(watch, item);
                // Whatever else is ready now goes in the same write.
                while writer.batch.len() < WRITE_BATCH_MESSAGES {
                    match writer.streams.next().now_or_never() {
                        Some(Some((watch, item))) => writer.deliver(watch, item),
                        _ => break,
                    }
                }
            }
            _ = ping.tick() => {
                let silent = (epoch.elapsed().as_millis() as u64)
                    .saturating_sub(last_heard.load(Ordering::Relaxed));
                if silent > PEER_TIMEOUT.as_millis() as u64 {
                    let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close_message(1001, "peer_timeout"))).await;
                    return;
                }
                writer.batch.push(Message::Ping(Vec::new().into()));
            }
        }
        if writer.batch.is_empty() {
            continue;
        }
        let closing = writer
            .batch
            .iter()
            .any(|message| matches!(message, Message::Close(_)));
        let batch = &mut writer.batch;
        let written = async {
            for message in batch.drain(..) {
                sink.feed(message).await?;
            }
            sink.flush().await
        };
        match within(stall, written).await {
            Ok(Ok(())) if !closing => {}
            Ok(_) => return,
            Err(_) => {
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    sink.send(close_message(1008, "too_slow")),
                )
                .await;
                return;
            }
        }
    }
}

/// `future`, given `limit` once it has to wait: a write the socket takes at once, the common
/// case, arms no timer.
async fn within<F: Future>(
    limit: Duration,
    future: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    let mut future = std::pin::pin!(future);
    match std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await {
        Poll::Ready(output) => Ok(output),
        Poll::Pending => tokio::time::timeout(limit, future).await,
    }
}

struct Connection {
    app: SharedApp,
    user: User,
    encoding: Encoding,
    out: mpsc::Sender<Outbound>,
    /// The streams the writer polls for this connection.
    watching: HashSet<Watch>,
    sessions_listing: Option<TaskGuard>,
    /// The acks of commands placed in the log, in the order they came
    /// ([`crate::commands::place`]).
    acks: FuturesOrdered<PendingAck>,
}

fn error_frame(channel: Channel, id: Option<ReqId>, error: Error) -> ServerFrame {
    ServerFrame::error(
        channel,
        ErrorFrame {
            id,
            terminal_id: None,
            error,
        },
    )
}

fn agent(frame: AgentServerFrame) -> ServerFrame {
    ServerFrame::Agent(frame)
}

fn session_not_found(session_id: &SessionId) -> Error {
    Error::new(
        ErrorCode::SessionNotFound,
        "no such session: unknown, deleted, or not yours",
    )
    .with_ref(session_id.to_string())
}

fn beyond_head(after: Offset, head: Offset) -> Error {
    Error::new(
        ErrorCode::InvalidOffset,
        format!(
            "after {after} is beyond the log head {head}: drop local state and subscribe from null"
        ),
    )
    .with_ref("after")
}

fn unavailable(detail: impl std::fmt::Display) -> Error {
    Error::new(ErrorCode::Unavailable, format!("{detail}; retry"))
}

impl Connection {
    async fn run(app: SharedApp, user: User, encoding: Encoding, socket: WebSocket) {
        let connection_id = ConnectionId::new();
        let (sink, mut stream) = socket.split();
        let (out, queue) = mpsc::channel(OUTBOUND_QUEUE_FRAMES);
        let epoch = Instant::now();
        let last_heard = Arc::new(AtomicU64::new(0));
        let writer = tokio::spawn(write_loop(
            Arc::clone(&app),
            sink,
            queue,
            encoding,
            Arc::clone(&last_heard),
            epoch,
        ));
        let mut connection = Connection {
            app,
            user,
            encoding,
            out,
            watching: HashSet::new(),
            sessions_listing: None,
            acks: FuturesOrdered::new(),
        };
        tracing::debug!(%connection_id, user = %connection.user.name, "connected");
        connection.send(connection.hello(connection_id)).await;
        loop {
            // Acks go out in command order as their appends become durable; while too many
            // are on their way, the socket is not read.
            let message = tokio::select! {
                biased;
                Some(ack) = connection.acks.next(), if !connection.acks.is_empty() => {
                    connection.send(agent(AgentServerFrame::Ack(ack))).await;
                    continue;
                }
                message = stream.next(), if connection.acks.len() < COMMANDS_IN_FLIGHT_MAX => message,
            };
            let Some(message) = message else { break };
            last_heard.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
            match message {
                Ok(Message::Text(text)) => {
                    connection.on_frame(text.as_bytes(), Encoding::Json).await;
                }
                Ok(Message::Binary(bytes)) => {
                    connection.on_frame(&bytes, Encoding::Msgpack).await;
                }
                Ok(Message::Close(_)) => break,
                Ok(Message::Ping(_) | Message::Pong(_)) => {}
                Err(e) => {
                    // Over the hard cap (4 x max_frame_bytes): say so, then close 1009.
                    if is_capacity(&e) {
                        connection.send_acks().await;
                        let error = Error::new(
                            ErrorCode::FrameTooLarge,
                            format!(
                                "a message over the hard cap of {} bytes closes the connection",
                                connection.app.max_frame_bytes.saturating_mul(4)
                            ),
                        )
                        .with_ref("max_frame_bytes");
                        connection
                            .send(error_frame(Channel::System, None, error))
                            .await;
                        let _ = connection
                            .out
                            .send(Outbound::Close(1009, "frame_too_large"))
                            .await;
                    }
                    break;
                }
            }
        }
        // The acks of commands already placed, for a peer that closed after sending them.
        let _ = tokio::time::timeout(Duration::from_secs(2), connection.send_acks()).await;
        // Stop every subscription before the writer, so nothing waits on a gone socket.
        connection.sessions_listing = None;
        drop(connection);
        let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
        tracing::debug!(%connection_id, "disconnected");
    }

    fn hello(&self, connection_id: ConnectionId) -> ServerFrame {
        ServerFrame::System(SystemServerFrame::Hello(Hello {
            protocol: ProtocolVersion::CURRENT,
            encoding: self.encoding,
            server_version: env!("CARGO_PKG_VERSION").to_owned(),
            demo: self.app.demo,
            workspaces_root: self.app.workspaces_root.display().to_string(),
            connection_id,
            user: UserInfo {
                id: self.user.id.clone(),
                name: self.user.name.clone(),
            },
            capabilities: Vec::new(),
            harnesses: self.app.harnesses.clone(),
            limits: self.app.limits,
        }))
    }

    async fn send(&self, frame: ServerFrame) {
        let _ = self.out.send(Outbound::frame(frame)).await;
    }

    /// Sends the acks of every command placed so far, as they become durable.
    async fn send_acks(&mut self) {
        while let Some(ack) = self.acks.next().await {
            self.send(agent(AgentServerFrame::Ack(ack))).await;
        }
    }

    fn subscription_count(&self) -> usize {
        self.watching.len() + usize::from(self.sessions_listing.is_some())
    }

    /// `limit_exceeded` unless one more subscription fits (a replacement always fits).
    fn room_for_one_more(&self) -> Result<(), Error> {
        if self.subscription_count() >= self.app.limits.max_subscriptions as usize {
            return Err(Error::new(
                ErrorCode::LimitExceeded,
                format!(
                    "this connection has {} subscriptions, the most allowed; unsubscribe first",
                    self.subscription_count()
                ),
            )
            .with_ref("max_subscriptions"));
        }
        Ok(())
    }

    /// Answers one frame. A command is placed and its ack queued; anything else is answered
    /// once every earlier command's ack has gone out, so replies keep the order of the frames.
    async fn on_frame(&mut self, bytes: &[u8], arrived_as: Encoding) {
        let frame = self.decode(bytes, arrived_as);
        if !matches!(frame, Ok(ClientFrame::Agent(AgentFrame::Command(_)))) {
            self.send_acks().await;
        }
        match frame {
            Ok(frame) => self.dispatch(frame).await,
            Err(reply) => self.send(*reply).await,
        }
    }

    /// A frame decoded and checked, or the error frame that answers it.
    fn decode(&self, bytes: &[u8], arrived_as: Encoding) -> Result<ClientFrame, Box<ServerFrame>> {
        if arrived_as != self.encoding {
            let error = Error::new(
                ErrorCode::MalformedFrame,
                format!(
                    "this connection speaks {}: send {} frames",
                    self.encoding.subprotocol(),
                    if self.encoding == Encoding::Json {
                        "text"
                    } else {
                        "binary"
                    }
                ),
            );
            return Err(Box::new(error_frame(Channel::System, None, error)));
        }
        let frame = octo_core::frame::decode_client_frame_with_limit(
            self.encoding,
            bytes,
            self.app.max_frame_bytes,
        )
        .map_err(|e| Box::new(e.reply_frame()))?;
        if let Err(e) = validate_client_frame(&frame, &self.app.field_limits) {
            return Err(Box::new(frame.reply_to().error_frame(e.to_error())));
        }
        Ok(frame)
    }

    async fn dispatch(&mut self, frame: ClientFrame) {
        let reply_to = frame.reply_to();
        let outcome = match frame {
            // Its ack is queued and goes out from the reader loop, in command order.
            ClientFrame::Agent(AgentFrame::Command(command)) => {
                let placed = crate::commands::place(&self.app, &self.user.id, command).await;
                self.acks.push_back(placed.into_pending());
                Ok(())
            }
            ClientFrame::Agent(AgentFrame::Subscribe(subscribe)) => self.subscribe(subscribe).await,
            ClientFrame::Agent(AgentFrame::Unsubscribe(unsubscribe)) => {
                let reply = agent(AgentServerFrame::Unsubscribed(Unsubscribed {
                    id: unsubscribe.id,
                    session_id: unsubscribe.session_id,
                }));
                self.unwatch(Watch::Session(unsubscribe.session_id), reply)
                    .await;
                Ok(())
            }
            ClientFrame::Agent(AgentFrame::SubscribeSessions(subscribe)) => {
                self.subscribe_sessions(subscribe)
            }
            ClientFrame::Agent(AgentFrame::UnsubscribeSessions(unsubscribe)) => {
                self.sessions_listing = None;
                self.send(agent(AgentServerFrame::UnsubscribedSessions(
                    UnsubscribedSessions { id: unsubscribe.id },
                )))
                .await;
                Ok(())
            }
            ClientFrame::Agent(AgentFrame::Replay(replay)) => self.replay(replay).await,
            ClientFrame::Agent(AgentFrame::SubscribeLog(subscribe)) => {
                self.subscribe_log(subscribe).await
            }
            ClientFrame::Agent(AgentFrame::UnsubscribeLog(unsubscribe)) => {
                let reply = agent(AgentServerFrame::UnsubscribedLog(UnsubscribedLog {
                    id: unsubscribe.id.clone(),
                }));
                self.unwatch(Watch::Log(unsubscribe.id), reply).await;
                Ok(())
            }
            ClientFrame::Agent(AgentFrame::Snapshot(snapshot)) => self.snapshot(snapshot).await,
            ClientFrame::Files(_) => Err(Error::new(
                ErrorCode::Unsupported,
                "the files channel is not offered (see hello.capabilities)",
            )
            .with_ref("files")),
            ClientFrame::Terminal(_) => Err(Error::new(
                ErrorCode::Unsupported,
                "the terminal channel is not offered (see hello.capabilities)",
            )
            .with_ref("terminal")),
            ClientFrame::System(SystemFrame::Ping(ping)) => {
                self.send(ServerFrame::System(SystemServerFrame::Pong(Pong {
                    id: ping.id,
                    ts_ms: now_ms(),
                })))
                .await;
                Ok(())
            }
        };
        if let Err(error) = outcome {
            self.send(reply_to.error_frame(error)).await;
        }
    }

    async fn check_owned(&self, session_id: &SessionId) -> Result<(), Error> {
        match self.app.owned_session(&self.user.id, session_id).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(session_not_found(session_id)),
            Err(e) => Err(unavailable(e)),
        }
    }

    fn check_after(&self, after: Offset) -> Result<(), Error> {
        let head = self.app.log.head();
        if after > head {
            return Err(beyond_head(after, head));
        }
        Ok(())
    }

    /// A subscription of the log from `after` (registered now, so nothing later is missed).
    fn subscription(&self, filter: LogFilter, after: Offset) -> Result<Subscription, Error> {
        Subscription::new(
            Arc::clone(&self.app.log),
            filter,
            after,
            self.app.queue_bound,
        )
        .map_err(|e| match e {
            ReadError::BeyondHead { after, head } => beyond_head(after, head),
            other => unavailable(other),
        })
    }

    async fn subscribe(&mut self, subscribe: Subscribe) -> Result<(), Error> {
        let Subscribe {
            id,
            session_id,
            after,
        } = subscribe;
        let after = after.unwrap_or(Offset::ZERO);
        self.check_owned(&session_id).await?;
        self.check_after(after)?;
        let watch = Watch::Session(session_id);
        if !self.watching.contains(&watch) {
            self.room_for_one_more()?;
        }
        let view = View::of(&self.app, session_id).map_err(unavailable)?;
        let own = self.subscription(LogFilter::session(session_id), after)?;
        let stream = view.stream(Arc::clone(&self.app.log), after, own);
        // The view's head once the subscription listens: everything above it comes live. A
        // view's newest entry is always its own (a fork starts with `session.forked`).
        let head = self
            .app
            .log
            .session_head(session_id)
            .await
            .map_err(unavailable)?;
        let subscribed = agent(AgentServerFrame::Subscribed(Subscribed {
            id: id.clone(),
            session_id,
            head,
        }));
        self.watch(watch, id, subscribed, stream).await;
        Ok(())
    }

    /// Hands a stream to the writer, which sends `subscribed` and then its entries.
    async fn watch(
        &mut self,
        watch: Watch,
        id: ReqId,
        subscribed: ServerFrame,
        stream: EntryStream,
    ) {
        self.watching.insert(watch.clone());
        let _ = self
            .out
            .send(Outbound::Watch {
                watch,
                id,
                subscribed: Box::new(subscribed),
                stream,
            })
            .await;
    }

    /// Stops a subscription (if any), then sends `reply`.
    async fn unwatch(&mut self, watch: Watch, reply: ServerFrame) {
        self.watching.remove(&watch);
        let _ = self
            .out
            .send(Outbound::Unwatch {
                watch,
                reply: Box::new(reply),
            })
            .await;
    }

    fn subscribe_sessions(&mut self, subscribe: SubscribeSessions) -> Result<(), Error> {
        if self.sessions_listing.is_none() {
            self.room_for_one_more()?;
        }
        let after = subscribe.after.unwrap_or(Offset::ZERO);
        self.check_after(after)?;
        self.sessions_listing = None;
        let task = tokio::spawn(stream_listing(
            Arc::clone(&self.app),
            self.out.clone(),
            subscribe.id,
            self.user.id.clone(),
            after,
        ));
        self.sessions_listing = Some(TaskGuard(task));
        Ok(())
    }

    async fn subscribe_log(&mut self, subscribe: SubscribeLog) -> Result<(), Error> {
        if subscribe.all_users {
            return Err(Error::new(
                ErrorCode::Unsupported,
                "all_users is for admins; this server has no admin role yet",
            )
            .with_ref("all_users"));
        }
        let watch = Watch::Log(subscribe.id.clone());
        if !self.watching.contains(&watch) {
            self.room_for_one_more()?;
        }
        let after = subscribe.after.unwrap_or(Offset::ZERO);
        self.check_after(after)?;
        let kind = match subscribe.kinds.as_slice() {
            [only] => Some(*only),
            _ => None,
        };
        let filter = LogFilter {
            session_id: None,
            user_id: Some(self.user.id.clone()),
            kind,
            types: subscribe
                .types
                .iter()
                .map(|t| TypePattern::parse(t))
                .collect(),
            skip_types: Vec::new(),
        };
        let subscription = self.subscription(filter, after)?;
        let subscribed = agent(AgentServerFrame::SubscribedLog(SubscribedLog {
            id: subscribe.id.clone(),
            head: Some(self.app.log.head()),
        }));
        self.watch(
            watch,
            subscribe.id,
            subscribed,
            crate::view::subscription_stream(subscription),
        )
        .await;
        Ok(())
    }

    async fn snapshot(&self, request: octo_core::frame::Snapshot) -> Result<(), Error> {
        self.check_owned(&request.session_id).await?;
        // `at` is a floor: the snapshot is as of at least that offset (read your writes).
        let result = self
            .app
            .snapshot_at(
                request.id,
                request.session_id,
                request.at,
                request.before,
                false,
            )
            .await?;
        self.send(agent(AgentServerFrame::SnapshotResult(result.result)))
            .await;
        Ok(())
    }

    async fn replay(&self, replay: Replay) -> Result<(), Error> {
        let Replay {
            id,
            session_id,
            after,
            until,
            limit,
        } = replay;
        self.check_owned(&session_id).await?;
        let after = after.unwrap_or(Offset::ZERO);
        self.check_after(after)?;
        let limit = limit.unwrap_or(octo_core::limits::REPLAY_LIMIT_DEFAULT) as usize;
        let view = View::of(&self.app, session_id).map_err(unavailable)?;
        let batch = view
            .read(self.app.log.as_ref(), after, until, limit)
            .await
            .map_err(unavailable)?;
        // Stop before the frame would pass the outbound limit, with at least one entry.
        let mut entries = Vec::with_capacity(batch.entries.len());
        let mut bytes = 0usize;
        for entry in &batch.entries {
            let size = octo_core::codec::to_msgpack(&**entry).map_or(0, |b| b.len()) * 2;
            if !entries.is_empty() && bytes + size > OUTBOUND_FRAME_BYTES_MAX {
                break;
            }
            bytes += size;
            entries.push((**entry).clone());
        }
        let all_returned = entries.len() == batch.entries.len();
        let next_after = if all_returned && batch.reached_end {
            None
        } else {
            entries
                .last()
                .map(|entry| entry.offset)
                .or(Some(batch.scanned_through))
        };
        self.send(agent(AgentServerFrame::ReplayResult(ReplayResult {
            id,
            session_id,
            entries,
            next_after,
        })))
        .await;
        Ok(())
    }
}

fn is_capacity(error: &axum::Error) -> bool {
    let text = error.to_string();
    text.contains("Space limit exceeded") || text.contains("capacity") || text.contains("too long")
}

/// The sessions listing (5.3): the summaries changed after `after` in chunks, then each later
/// change as it comes ([`crate::listing::changes`]).
async fn stream_listing(
    app: SharedApp,
    out: mpsc::Sender<Outbound>,
    id: ReqId,
    user_id: UserId,
    after: Offset,
) {
    let fail = |error: Error| {
        let out = out.clone();
        let id = id.clone();
        async move {
            let _ = out
                .send(Outbound::frame(error_frame(
                    Channel::Agent,
                    Some(id),
                    error,
                )))
                .await;
        }
    };
    let head = app.log.head();
    let items = match crate::listing::changed_since(&app, &user_id, after).await {
        Ok(items) => items,
        Err(e) => return fail(e).await,
    };
    let cursor = items
        .iter()
        .map(|summary| summary.updated_offset)
        .fold(after, Offset::max);
    let chunks: Vec<&[octo_core::frame::SessionSummary]> = if items.is_empty() {
        vec![&[]]
    } else {
        items.chunks(SESSIONS_CHUNK_ITEMS_MAX).collect()
    };
    let last = chunks.len() - 1;
    for (index, chunk) in chunks.into_iter().enumerate() {
        let frame = agent(AgentServerFrame::Sessions(SessionsFrame {
            id: id.clone(),
            head,
            items: chunk.to_vec(),
            done: index == last,
        }));
        if out.send(Outbound::frame(frame)).await.is_err() {
            return;
        }
    }
    let changes = crate::listing::changes(Arc::clone(&app), user_id, cursor);
    futures_util::pin_mut!(changes);
    while let Some(change) = changes.next().await {
        match change {
            Ok(summary) => {
                let frame = agent(AgentServerFrame::SessionSummary(SessionSummaryFrame {
                    summary,
                }));
                if out.send(Outbound::frame(frame)).await.is_err() {
                    return;
                }
            }
            Err(e) => return fail(e).await,
        }
    }
}
