//! Client frames (client to server): PROTOCOL.md 3.2, the agent requests of section 5, logged
//! commands (section 4), files (10), terminal (11) and system (12).
//!
//! Serialization is derived and flat; decoding goes through `decode` only, so the error for a bad
//! frame is always the precise one. Limits are not checked here (see `validate`).

use serde::{Deserialize, Serialize};

use crate::bytes::Bytes;
use crate::command::Command;
use crate::entry::Kind;
use crate::field::{is_false, null_as_default};
use crate::frame::Channel;
use crate::frame::decode::ReplyTo;
use crate::ids::{CommandId, Offset, ReqId, SessionId, TerminalId};

/// Any frame a client sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "ch", rename_all = "lowercase")]
pub enum ClientFrame {
    Agent(AgentFrame),
    Files(FilesFrame),
    Terminal(TerminalFrame),
    System(SystemFrame),
}

/// The `agent` channel: logged commands and the subscription and replay requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentFrame {
    Subscribe(Subscribe),
    Unsubscribe(Unsubscribe),
    SubscribeSessions(SubscribeSessions),
    UnsubscribeSessions(UnsubscribeSessions),
    Replay(Replay),
    Snapshot(Snapshot),
    SubscribeLog(SubscribeLog),
    UnsubscribeLog(UnsubscribeLog),
    /// A logged command; its `type` is the command's.
    #[serde(untagged)]
    Command(CommandFrame),
}

impl AgentFrame {
    /// The request `type`s of the agent channel other than commands.
    pub const REQUEST_TYPES: &'static [&'static str] = &[
        "subscribe",
        "unsubscribe",
        "subscribe_sessions",
        "unsubscribe_sessions",
        "replay",
        "snapshot",
        "subscribe_log",
        "unsubscribe_log",
    ];

    /// The `type` on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            AgentFrame::Subscribe(_) => "subscribe",
            AgentFrame::Unsubscribe(_) => "unsubscribe",
            AgentFrame::SubscribeSessions(_) => "subscribe_sessions",
            AgentFrame::UnsubscribeSessions(_) => "unsubscribe_sessions",
            AgentFrame::Replay(_) => "replay",
            AgentFrame::Snapshot(_) => "snapshot",
            AgentFrame::SubscribeLog(_) => "subscribe_log",
            AgentFrame::UnsubscribeLog(_) => "unsubscribe_log",
            AgentFrame::Command(frame) => frame.command.type_name(),
        }
    }
}

/// A logged command as framed: the body plus the envelope ids. On the wire
/// `{ch: "agent", type, ...fields, command_id, session_id?}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandFrame {
    #[serde(flatten)]
    pub command: Command,
    /// The client-chosen idempotency key.
    pub command_id: CommandId,
    /// Absent only for `session.create` (the gateway mints the session).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
}

/// `subscribe`: every entry of the session's view after `after`, then live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribe {
    pub id: ReqId,
    pub session_id: SessionId,
    /// `null` (or 0): from the first entry. Always sent; an absent one reads as `null`.
    #[serde(default)]
    pub after: Option<Offset>,
}

/// `unsubscribe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsubscribe {
    pub id: ReqId,
    pub session_id: SessionId,
}

/// `subscribe_sessions`: the listing of the user's sessions, then live changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeSessions {
    pub id: ReqId,
    #[serde(default)]
    pub after: Option<Offset>,
}

/// `unsubscribe_sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsubscribeSessions {
    pub id: ReqId,
}

/// `replay`: a page of the view with `after < offset <= until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replay {
    pub id: ReqId,
    pub session_id: SessionId,
    #[serde(default)]
    pub after: Option<Offset>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Offset>,
    /// 1..1000, default 200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `snapshot`: the materialised session as of `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: ReqId,
    pub session_id: SessionId,
    /// Default: the projection's current offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Offset>,
    /// Pages older messages: the `next_before` of a previous `snapshot_result`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Offset>,
}

/// `subscribe_log`: every entry of the user's sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeLog {
    pub id: ReqId,
    #[serde(default)]
    pub after: Option<Offset>,
    /// Empty: both kinds.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub kinds: Vec<Kind>,
    /// Body types, prefix match with `*`; empty: all.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub types: Vec<String>,
    /// Admins only: every user's sessions.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_false"
    )]
    pub all_users: bool,
}

/// `unsubscribe_log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsubscribeLog {
    pub id: ReqId,
}

/// A `files` request: `{ch: "files", type, ...fields, id, session_id}`. Paths are
/// workspace-relative.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilesFrame {
    #[serde(flatten)]
    pub request: FilesRequest,
    pub id: ReqId,
    pub session_id: SessionId,
}

/// The operation of a files request; also the `args` of a runner `request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum FilesRequest {
    List(FilesList),
    Stat(FilesStat),
    Read(FilesRead),
    Write(FilesWrite),
    Rename(FilesRename),
    Delete(FilesDelete),
}

impl FilesRequest {
    /// Every files request `type`.
    pub const TYPE_NAMES: &'static [&'static str] =
        &["list", "stat", "read", "write", "rename", "delete"];

    /// The `type` on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            FilesRequest::List(_) => "list",
            FilesRequest::Stat(_) => "stat",
            FilesRequest::Read(_) => "read",
            FilesRequest::Write(_) => "write",
            FilesRequest::Rename(_) => "rename",
            FilesRequest::Delete(_) => "delete",
        }
    }
}

/// `list`: a directory's entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesList {
    pub path: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_false"
    )]
    pub hidden: bool,
}

/// `stat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesStat {
    pub path: String,
}

/// `read`: one chunk of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesRead {
    pub path: String,
    /// Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Up to 512 KiB, default 512 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u32>,
}

/// How a `write` treats an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// Fail with `already_exists`.
    Create,
    /// Replace atomically.
    Overwrite,
    /// Append (chunked uploads).
    Append,
}

/// `write`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesWrite {
    pub path: String,
    pub data: Bytes,
    pub mode: WriteMode,
    /// Create missing parent directories.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_false"
    )]
    pub parents: bool,
}

/// `rename`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesRename {
    pub from: String,
    pub to: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_false"
    )]
    pub overwrite: bool,
}

/// `delete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesDelete {
    pub path: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_false"
    )]
    pub recursive: bool,
}

/// The `terminal` channel, client to server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TerminalFrame {
    Open(TerminalOpen),
    Input(TerminalInput),
    Resize(TerminalResize),
    Close(TerminalClose),
}

impl TerminalFrame {
    /// Every client terminal `type`.
    pub const TYPE_NAMES: &'static [&'static str] = &["open", "input", "resize", "close"];

    /// The `type` on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            TerminalFrame::Open(_) => "open",
            TerminalFrame::Input(_) => "input",
            TerminalFrame::Resize(_) => "resize",
            TerminalFrame::Close(_) => "close",
        }
    }
}

/// A terminal size; the `args` of the runner's `terminal.open`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TerminalSize {
    pub cols: u16,
    pub rows: u16,
}

/// `open`: a shell on a PTY in the session's workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalOpen {
    pub id: ReqId,
    pub session_id: SessionId,
    pub cols: u16,
    pub rows: u16,
}

/// `input`: bytes for the PTY (no reply). Also the runner's `term_input`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalInput {
    pub terminal_id: TerminalId,
    pub data: Bytes,
}

/// `resize` (no reply). Also the runner's `term_resize`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalResize {
    pub terminal_id: TerminalId,
    pub cols: u16,
    pub rows: u16,
}

/// `close`: the shell gets SIGHUP; `exited` follows. Also the runner's `term_close`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalClose {
    pub terminal_id: TerminalId,
}

/// The `system` channel, client to server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SystemFrame {
    Ping(Ping),
}

impl SystemFrame {
    /// Every client system `type`.
    pub const TYPE_NAMES: &'static [&'static str] = &["ping"];

    /// The `type` on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            SystemFrame::Ping(_) => "ping",
        }
    }
}

/// `ping`: answered by `pong`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    pub id: ReqId,
}

impl ClientFrame {
    /// The frame's channel.
    pub fn channel(&self) -> Channel {
        match self {
            ClientFrame::Agent(_) => Channel::Agent,
            ClientFrame::Files(_) => Channel::Files,
            ClientFrame::Terminal(_) => Channel::Terminal,
            ClientFrame::System(_) => Channel::System,
        }
    }

    /// The `type` on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            ClientFrame::Agent(frame) => frame.type_name(),
            ClientFrame::Files(frame) => frame.request.type_name(),
            ClientFrame::Terminal(frame) => frame.type_name(),
            ClientFrame::System(frame) => frame.type_name(),
        }
    }

    /// Every non-command `(channel, type)` a client may send; commands are
    /// [`Command::TYPE_NAMES`] on the agent channel.
    pub fn request_types() -> impl Iterator<Item = (Channel, &'static str)> {
        let agent = AgentFrame::REQUEST_TYPES
            .iter()
            .map(|name| (Channel::Agent, *name));
        let files = FilesRequest::TYPE_NAMES
            .iter()
            .map(|name| (Channel::Files, *name));
        let terminal = TerminalFrame::TYPE_NAMES
            .iter()
            .map(|name| (Channel::Terminal, *name));
        let system = SystemFrame::TYPE_NAMES
            .iter()
            .map(|name| (Channel::System, *name));
        agent.chain(files).chain(terminal).chain(system)
    }

    /// The request id, for frames that get a reply.
    pub fn request_id(&self) -> Option<&ReqId> {
        match self {
            ClientFrame::Agent(frame) => match frame {
                AgentFrame::Subscribe(request) => Some(&request.id),
                AgentFrame::Unsubscribe(request) => Some(&request.id),
                AgentFrame::SubscribeSessions(request) => Some(&request.id),
                AgentFrame::UnsubscribeSessions(request) => Some(&request.id),
                AgentFrame::Replay(request) => Some(&request.id),
                AgentFrame::Snapshot(request) => Some(&request.id),
                AgentFrame::SubscribeLog(request) => Some(&request.id),
                AgentFrame::UnsubscribeLog(request) => Some(&request.id),
                AgentFrame::Command(_) => None,
            },
            ClientFrame::Files(frame) => Some(&frame.id),
            ClientFrame::Terminal(TerminalFrame::Open(open)) => Some(&open.id),
            ClientFrame::Terminal(_) => None,
            ClientFrame::System(SystemFrame::Ping(ping)) => Some(&ping.id),
        }
    }

    /// Where the answer to a rejection of this frame goes (PROTOCOL.md 3.3, 4.1): a rejected `ack`
    /// for commands, an `error` frame on the channel for requests.
    pub fn reply_to(&self) -> ReplyTo {
        let terminal_id = match self {
            ClientFrame::Terminal(TerminalFrame::Input(input)) => Some(input.terminal_id),
            ClientFrame::Terminal(TerminalFrame::Resize(resize)) => Some(resize.terminal_id),
            ClientFrame::Terminal(TerminalFrame::Close(close)) => Some(close.terminal_id),
            _ => None,
        };
        match self {
            ClientFrame::Agent(AgentFrame::Command(frame)) => ReplyTo::Ack {
                command_id: frame.command_id,
            },
            _ => ReplyTo::Request {
                channel: self.channel(),
                id: self.request_id().cloned(),
                terminal_id,
            },
        }
    }
}

impl<'de> Deserialize<'de> for ClientFrame {
    /// Decodes through [`crate::frame::decode_client_frame`]'s rules; the error text is the
    /// [`crate::frame::FrameError`]'s.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = crate::frame::wire_value::WireValue::deserialize(deserializer)?;
        crate::frame::decode::client_frame_from_value(value).map_err(serde::de::Error::custom)
    }
}
