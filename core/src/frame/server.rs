//! Server frames (server to client): PROTOCOL.md 3.3, 5, 10, 11 and 12, and the records they carry
//! (`SessionSummary`, `HarnessInfo`, `FileEntry`, the `hello` limits).
//!
//! Derived serde, nested tags: `ch` outside, `type` inside, fields flat. The server builds these;
//! clients and tests decode them. Nothing here decides when a frame is sent.

use serde::{Deserialize, Serialize};

use crate::bytes::Bytes;
use crate::codec::Encoding;
use crate::entry::LogEntry;
use crate::error::Error;
use crate::field::null_as_default;
use crate::frame::Channel;
use crate::ids::{
    CommandId, ConnectionId, Ms, Offset, ReqId, RunId, SessionId, TerminalId, UserId,
};
use crate::limits;
use crate::message::{Message, ModelRef, ThinkingLevel, Usage};

/// Any frame the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ch", rename_all = "lowercase")]
#[allow(
    clippy::large_enum_variant,
    reason = "frames are short-lived values encoded once; boxing would only add allocations"
)]
pub enum ServerFrame {
    Agent(AgentServerFrame),
    Files(FilesServerFrame),
    Terminal(TerminalServerFrame),
    System(SystemServerFrame),
}

impl ServerFrame {
    /// The frame's channel.
    pub fn channel(&self) -> Channel {
        match self {
            ServerFrame::Agent(_) => Channel::Agent,
            ServerFrame::Files(_) => Channel::Files,
            ServerFrame::Terminal(_) => Channel::Terminal,
            ServerFrame::System(_) => Channel::System,
        }
    }

    /// The `type` on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            ServerFrame::Agent(frame) => frame.type_name(),
            ServerFrame::Files(frame) => frame.type_name(),
            ServerFrame::Terminal(frame) => frame.type_name(),
            ServerFrame::System(frame) => frame.type_name(),
        }
    }

    /// Every `(channel, type)` the server sends.
    pub fn types() -> impl Iterator<Item = (Channel, &'static str)> {
        let agent = AgentServerFrame::TYPE_NAMES
            .iter()
            .map(|name| (Channel::Agent, *name));
        let files = FilesServerFrame::TYPE_NAMES
            .iter()
            .map(|name| (Channel::Files, *name));
        let terminal = TerminalServerFrame::TYPE_NAMES
            .iter()
            .map(|name| (Channel::Terminal, *name));
        let system = SystemServerFrame::TYPE_NAMES
            .iter()
            .map(|name| (Channel::System, *name));
        agent.chain(files).chain(terminal).chain(system)
    }

    /// An `error` frame on `channel`.
    pub fn error(channel: Channel, frame: ErrorFrame) -> ServerFrame {
        match channel {
            Channel::Agent => ServerFrame::Agent(AgentServerFrame::Error(frame)),
            Channel::Files => ServerFrame::Files(FilesServerFrame::Error(frame)),
            Channel::Terminal => ServerFrame::Terminal(TerminalServerFrame::Error(frame)),
            Channel::System => ServerFrame::System(SystemServerFrame::Error(frame)),
        }
    }
}

/// The `agent` channel, server to client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentServerFrame {
    Ack(Ack),
    Subscribed(Subscribed),
    Entry(EntryFrame),
    Unsubscribed(Unsubscribed),
    Sessions(Sessions),
    SessionSummary(SessionSummaryFrame),
    UnsubscribedSessions(UnsubscribedSessions),
    ReplayResult(ReplayResult),
    SnapshotResult(SnapshotResult),
    SubscribedLog(SubscribedLog),
    UnsubscribedLog(UnsubscribedLog),
    Error(ErrorFrame),
}

impl AgentServerFrame {
    /// Every agent `type` the server sends.
    pub const TYPE_NAMES: &'static [&'static str] = &[
        "ack",
        "subscribed",
        "entry",
        "unsubscribed",
        "sessions",
        "session_summary",
        "unsubscribed_sessions",
        "replay_result",
        "snapshot_result",
        "subscribed_log",
        "unsubscribed_log",
        "error",
    ];

    /// The `type` on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            AgentServerFrame::Ack(_) => "ack",
            AgentServerFrame::Subscribed(_) => "subscribed",
            AgentServerFrame::Entry(_) => "entry",
            AgentServerFrame::Unsubscribed(_) => "unsubscribed",
            AgentServerFrame::Sessions(_) => "sessions",
            AgentServerFrame::SessionSummary(_) => "session_summary",
            AgentServerFrame::UnsubscribedSessions(_) => "unsubscribed_sessions",
            AgentServerFrame::ReplayResult(_) => "replay_result",
            AgentServerFrame::SnapshotResult(_) => "snapshot_result",
            AgentServerFrame::SubscribedLog(_) => "subscribed_log",
            AgentServerFrame::UnsubscribedLog(_) => "unsubscribed_log",
            AgentServerFrame::Error(_) => "error",
        }
    }
}

/// The outcome of one command frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckStatus {
    /// Validated and durably appended at `offset`.
    Accepted,
    /// Already in the log with the same body; `offset` and `session_id` repeat the stored ones.
    Duplicate,
    /// Nothing appended; `error` says why. The `command_id` may be sent again.
    Rejected,
}

/// `ack`: exactly one per command frame received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub command_id: CommandId,
    pub status: AckStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<Offset>,
    /// The entry's session (the new one for `session.create` and `fork`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Error>,
}

impl Ack {
    /// A `rejected` ack carrying `error`.
    pub fn rejected(command_id: CommandId, error: Error) -> Ack {
        Ack {
            command_id,
            status: AckStatus::Rejected,
            offset: None,
            session_id: None,
            error: Some(error),
        }
    }
}

/// `subscribed`: the subscription started; the client has caught up once it has seen `head`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribed {
    pub id: ReqId,
    pub session_id: SessionId,
    pub head: Offset,
}

/// `entry`: a replayed or live entry. `session_id` is the subscribed session (an inherited entry
/// of a fork keeps its parent's `entry.session_id`), or the entry's own for `subscribe_log`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryFrame {
    pub session_id: SessionId,
    pub entry: LogEntry,
}

/// `unsubscribed`: no `entry` for that subscription follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsubscribed {
    pub id: ReqId,
    pub session_id: SessionId,
}

/// `sessions`: one chunk (at most 500 items) of the reply to `subscribe_sessions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sessions {
    pub id: ReqId,
    pub head: Offset,
    pub items: Vec<SessionSummary>,
    pub done: bool,
}

/// `session_summary`: a live listing change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionSummaryFrame {
    pub summary: SessionSummary,
}

/// `unsubscribed_sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsubscribedSessions {
    pub id: ReqId,
}

/// `replay_result`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayResult {
    pub id: ReqId,
    pub session_id: SessionId,
    pub entries: Vec<LogEntry>,
    /// The last offset returned, or `null` when the range is exhausted.
    #[serde(default)]
    pub next_after: Option<Offset>,
}

/// `snapshot_result`: the materialised session as of `as_of`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotResult {
    pub id: ReqId,
    pub session_id: SessionId,
    pub as_of: Offset,
    pub summary: SessionSummary,
    /// Completed messages, the newest 200, oldest first.
    pub messages: Vec<Message>,
    #[serde(default)]
    pub open_run: Option<OpenRun>,
    /// Pass as `before` to page older messages; `null` when there are none.
    #[serde(default)]
    pub next_before: Option<Offset>,
}

/// The open run of a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenRun {
    pub run_id: RunId,
    /// The assistant message being streamed, built from its deltas.
    #[serde(default)]
    pub draft: Option<Message>,
    pub phase: RunPhase,
}

/// The phase of an open run (PROTOCOL.md 8), derived, never an event: a map tagged by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunPhase {
    /// Between `tool.start` and `tool.end`.
    ToolRunning { name: String },
    /// Between `compact.start` and `compact.end`.
    Compacting,
    /// Between `retry.start` and `retry.end`.
    Retrying,
    /// Otherwise.
    Generating,
}

/// `subscribed_log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribedLog {
    pub id: ReqId,
    /// The newest offset of the user's log when the subscription started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<Offset>,
}

/// `unsubscribed_log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsubscribedLog {
    pub id: ReqId,
}

/// `error`: a request failed (or, on `system`, a frame that could not be attributed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<ReqId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal_id: Option<TerminalId>,
    pub error: Error,
}

/// Where a session was forked from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ParentRef {
    pub session_id: SessionId,
    pub offset: Offset,
}

/// The run state of a session (PROTOCOL.md 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    #[default]
    Idle,
    Working,
    Error,
}

/// One session in the listing (PROTOCOL.md 5.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionSummary {
    pub session_id: SessionId,
    #[serde(default)]
    pub title: Option<String>,
    /// The first 120 characters of the first user message.
    pub preview: String,
    pub harness: String,
    pub workspace: String,
    #[serde(default)]
    pub parent: Option<ParentRef>,
    pub created_ms: Ms,
    pub updated_ms: Ms,
    pub updated_offset: Offset,
    pub run_state: RunState,
    #[serde(default)]
    pub model: Option<ModelRef>,
    pub message_count: u32,
    pub usage: Usage,
    pub deleted: bool,
}

/// The `files` channel, server to client: one reply per request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FilesServerFrame {
    ListResult(Reply<ListResult>),
    StatResult(Reply<StatResult>),
    ReadResult(Reply<ReadResult>),
    WriteResult(Reply<WriteResult>),
    RenameResult(Reply<RenameResult>),
    DeleteResult(Reply<DeleteResult>),
    Error(ErrorFrame),
}

impl FilesServerFrame {
    /// Every files `type` the server sends.
    pub const TYPE_NAMES: &'static [&'static str] = &[
        "list_result",
        "stat_result",
        "read_result",
        "write_result",
        "rename_result",
        "delete_result",
        "error",
    ];

    /// The `type` on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            FilesServerFrame::ListResult(_) => "list_result",
            FilesServerFrame::StatResult(_) => "stat_result",
            FilesServerFrame::ReadResult(_) => "read_result",
            FilesServerFrame::WriteResult(_) => "write_result",
            FilesServerFrame::RenameResult(_) => "rename_result",
            FilesServerFrame::DeleteResult(_) => "delete_result",
            FilesServerFrame::Error(_) => "error",
        }
    }
}

/// A reply to the request `id`: `{id, ...result}` on the wire. The result without `id` is what the
/// runner sends in its `reply` (section 14.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply<T> {
    pub id: ReqId,
    #[serde(flatten)]
    pub result: T,
}

/// What kind of file an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Other,
}

/// One file or directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub path: String,
    pub kind: FileKind,
    pub size: u64,
    pub mtime_ms: Ms,
    pub mode: u32,
}

/// `list_result`: directories first, then by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListResult {
    pub path: String,
    pub entries: Vec<FileEntry>,
    /// More than 10 000 entries.
    pub truncated: bool,
}

/// `stat_result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatResult {
    pub entry: FileEntry,
}

/// `read_result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadResult {
    pub path: String,
    pub offset: u64,
    pub data: Bytes,
    /// The whole file's size.
    pub size: u64,
    pub eof: bool,
}

/// `write_result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteResult {
    pub path: String,
    /// The size after the write.
    pub size: u64,
}

/// `rename_result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenameResult {
    pub from: String,
    pub to: String,
}

/// `delete_result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteResult {
    pub path: String,
}

/// The `terminal` channel, server to client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TerminalServerFrame {
    Opened(Reply<Opened>),
    Output(TerminalOutput),
    Exited(TerminalExited),
    Error(ErrorFrame),
}

impl TerminalServerFrame {
    /// Every terminal `type` the server sends.
    pub const TYPE_NAMES: &'static [&'static str] = &["opened", "output", "exited", "error"];

    /// The `type` on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            TerminalServerFrame::Opened(_) => "opened",
            TerminalServerFrame::Output(_) => "output",
            TerminalServerFrame::Exited(_) => "exited",
            TerminalServerFrame::Error(_) => "error",
        }
    }
}

/// `opened`: the reply to `open`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opened {
    pub terminal_id: TerminalId,
}

/// `output`: PTY bytes. Also the runner's `term_output`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalOutput {
    pub terminal_id: TerminalId,
    pub data: Bytes,
}

/// `exited`: the shell ended. Also the runner's `term_exit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalExited {
    pub terminal_id: TerminalId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
}

/// The `system` channel, server to client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SystemServerFrame {
    Hello(Hello),
    Pong(Pong),
    Harnesses(HarnessesFrame),
    Error(ErrorFrame),
}

impl SystemServerFrame {
    /// Every system `type` the server sends.
    pub const TYPE_NAMES: &'static [&'static str] = &["hello", "pong", "harnesses", "error"];

    /// The `type` on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            SystemServerFrame::Hello(_) => "hello",
            SystemServerFrame::Pong(_) => "pong",
            SystemServerFrame::Harnesses(_) => "harnesses",
            SystemServerFrame::Error(_) => "error",
        }
    }
}

/// `{major, minor}` of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProtocolVersion {
    pub major: u32,
    pub minor: u32,
}

impl ProtocolVersion {
    /// The version this crate implements.
    pub const CURRENT: ProtocolVersion = ProtocolVersion { major: 1, minor: 0 };
}

/// The authenticated user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub id: UserId,
    pub name: String,
}

/// The client-relevant limits, repeated in `hello`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloLimits {
    pub max_frame_bytes: u64,
    pub max_entry_bytes: u64,
    pub max_subscriptions: u32,
    pub max_terminals: u32,
    pub max_prompt_bytes: u64,
    pub max_images: u32,
    pub read_chunk_bytes: u64,
}

impl Default for HelloLimits {
    /// The defaults of [`crate::limits`] (small constants, so the casts are lossless).
    fn default() -> HelloLimits {
        HelloLimits {
            max_frame_bytes: limits::FRAME_BYTES_MAX as u64,
            max_entry_bytes: limits::ENTRY_BYTES_MAX as u64,
            max_subscriptions: limits::SUBSCRIPTIONS_PER_CONNECTION_MAX as u32,
            max_terminals: limits::TERMINALS_PER_CONNECTION_MAX as u32,
            max_prompt_bytes: limits::PROMPT_TEXT_BYTES_MAX as u64,
            max_images: limits::PROMPT_IMAGES_MAX as u32,
            read_chunk_bytes: limits::READ_CHUNK_BYTES_MAX as u64,
        }
    }
}

/// `hello`: the first server frame of a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: ProtocolVersion,
    pub encoding: Encoding,
    pub server_version: String,
    /// True when harnesses talk to the built-in scripted model.
    #[serde(default)]
    pub demo: bool,
    /// Absolute; `session.create.workspace` is relative to it.
    pub workspaces_root: String,
    pub connection_id: ConnectionId,
    pub user: UserInfo,
    /// `files`, `terminal`, each listed only when available.
    #[serde(default, deserialize_with = "null_as_default")]
    pub capabilities: Vec<String>,
    pub harnesses: Vec<HarnessInfo>,
    pub limits: HelloLimits,
}

/// `pong`: the reply to `ping`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    pub id: ReqId,
    pub ts_ms: Ms,
}

/// `harnesses`: the user's runner connected with a list that differs from the one in `hello`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HarnessesFrame {
    pub harnesses: Vec<HarnessInfo>,
}

/// A harness the user's runner offers. Capabilities are strings so that a newer runner's
/// additions pass through: `images`, `steer`, `follow_up`, `compact`, `fork`, `thinking`,
/// `input_requests`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HarnessInfo {
    pub name: String,
    pub version: String,
    pub available: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub capabilities: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub models: Vec<ModelInfo>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub thinking_levels: Vec<ThinkingLevel>,
}

/// A model a harness offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub provider: String,
    pub model_id: String,
    pub name: String,
    pub context_window: u32,
    pub max_output_tokens: u32,
    pub reasoning: bool,
    pub images: bool,
}
