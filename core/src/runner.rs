//! The runner link (PROTOCOL.md 14): the messages between the gateway and a per-user runner, the
//! `SessionCtx` a runner needs to (re)start a harness, and the link's length-prefixed framing.
//!
//! Pure values and byte framing only: no sockets, no timers. Sequencing (`seq`, `acked`,
//! `resume`), delivery and fencing are the gateway's and the runner's; these types only carry
//! them. The link is msgpack only.

use serde::{Deserialize, Serialize};

use crate::codec::{self, DecodeError, EncodeError};
use crate::command::Command;
use crate::error::Error;
use crate::event::Event;
use crate::frame::{
    DeleteResult, FilesDelete, FilesList, FilesRead, FilesRename, FilesRequest, FilesServerFrame,
    FilesStat, FilesWrite, HarnessInfo, ListResult, Opened, ReadResult, RenameResult, Reply,
    ServerFrame, StatResult, TerminalClose, TerminalExited, TerminalInput, TerminalOutput,
    TerminalResize, TerminalServerFrame, TerminalSize, WriteResult,
};
use crate::ids::{BootId, CommandId, Offset, ProducerId, ReqId, SessionId, UserId};
use crate::limits::RUNNER_FRAME_BYTES_MAX;
use crate::message::{ModelRef, ThinkingLevel};

/// The link protocol version both sides send (`proto`).
pub const RUNNER_PROTO: u32 = 1;

/// Length of the big-endian length prefix of each link frame.
pub const LINK_HEADER_BYTES: usize = 4;

/// What the runner needs to (re)start a session's harness, taken from the session projection at
/// send time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCtx {
    pub harness: String,
    /// Absolute.
    pub workspace_root: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_level: Option<ThinkingLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harness_session_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork: Option<ForkCtx>,
}

/// How to start a fork's harness from its nearest ancestor's (PROTOCOL.md 9.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkCtx {
    /// The nearest ancestor's harness session file, from its last `harness.started` (none when
    /// no ancestor's harness ever started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ancestor_harness_session_file: Option<String>,
    /// `k`: the user messages of the view up to the fork point.
    pub user_messages_inherited: u32,
    /// The text of the view's k-th user message: the harness's item `k - 1` must start with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_inherited_user_text: Option<String>,
}

/// Messages the runner sends to the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunnerToGateway {
    Hello(RunnerHello),
    Events(RunnerEvents),
    Reply(RunnerReply),
    TermOutput(TerminalOutput),
    TermExit(TerminalExited),
    Ping(LinkPing),
    Pong(LinkPing),
}

impl RunnerToGateway {
    /// Every `type` the runner sends.
    pub const TYPE_NAMES: &'static [&'static str] = &[
        "hello",
        "events",
        "reply",
        "term_output",
        "term_exit",
        "ping",
        "pong",
    ];

    /// The `type` on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            RunnerToGateway::Hello(_) => "hello",
            RunnerToGateway::Events(_) => "events",
            RunnerToGateway::Reply(_) => "reply",
            RunnerToGateway::TermOutput(_) => "term_output",
            RunnerToGateway::TermExit(_) => "term_exit",
            RunnerToGateway::Ping(_) => "ping",
            RunnerToGateway::Pong(_) => "pong",
        }
    }
}

/// Messages the gateway sends to the runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum GatewayToRunner {
    Welcome(Welcome),
    Command(RunnerCommand),
    Acked(Acked),
    Resume(Resume),
    Request(RunnerRequest),
    TermInput(TerminalInput),
    TermResize(TerminalResize),
    TermClose(TerminalClose),
    Ping(LinkPing),
    Pong(LinkPing),
    Bye(Bye),
}

impl GatewayToRunner {
    /// Every `type` the gateway sends.
    pub const TYPE_NAMES: &'static [&'static str] = &[
        "welcome",
        "command",
        "acked",
        "resume",
        "request",
        "term_input",
        "term_resize",
        "term_close",
        "ping",
        "pong",
        "bye",
    ];

    /// The `type` on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            GatewayToRunner::Welcome(_) => "welcome",
            GatewayToRunner::Command(_) => "command",
            GatewayToRunner::Acked(_) => "acked",
            GatewayToRunner::Resume(_) => "resume",
            GatewayToRunner::Request(_) => "request",
            GatewayToRunner::TermInput(_) => "term_input",
            GatewayToRunner::TermResize(_) => "term_resize",
            GatewayToRunner::TermClose(_) => "term_close",
            GatewayToRunner::Ping(_) => "ping",
            GatewayToRunner::Pong(_) => "pong",
            GatewayToRunner::Bye(_) => "bye",
        }
    }
}

/// `hello`: the runner speaks first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerHello {
    pub proto: u32,
    /// The runner's producer id for the events it appends.
    pub runner_id: ProducerId,
    /// New per process start.
    pub boot_id: BootId,
    pub version: String,
    pub harnesses: Vec<HarnessInfo>,
    /// The highest command offset received in this boot.
    #[serde(default)]
    pub resume_after: Option<Offset>,
}

/// `welcome`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub proto: u32,
    pub user_id: UserId,
    /// The last seq appended for this `runner_id`, 0 if none.
    pub acked_seq: u64,
}

/// `command`: a durable, runner-handled command, in offset order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunnerCommand {
    pub offset: Offset,
    pub session_id: SessionId,
    pub command_id: CommandId,
    /// As logged.
    pub body: Command,
    pub ctx: SessionCtx,
}

/// `events`: at most 256 events, in seq order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunnerEvents {
    pub events: Vec<RunnerEvent>,
}

/// One event going up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunnerEvent {
    pub seq: u64,
    pub session_id: SessionId,
    pub body: Event,
}

/// `acked`: everything up to `seq` is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acked {
    pub seq: u64,
}

/// `resume`: a gap was refused; resend from `from_seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    pub from_seq: u64,
}

/// `request`: a files or terminal request, run as the session's user.
/// On the wire `{type: "request", req, session_id, ctx, op, args}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerRequest {
    pub req: u32,
    pub session_id: SessionId,
    pub ctx: SessionCtx,
    #[serde(flatten)]
    pub op: RunnerOp,
}

/// The operation of a runner `request`: `op` names it, `args` holds the channel request's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", content = "args")]
pub enum RunnerOp {
    #[serde(rename = "files.list")]
    FilesList(FilesList),
    #[serde(rename = "files.stat")]
    FilesStat(FilesStat),
    #[serde(rename = "files.read")]
    FilesRead(FilesRead),
    #[serde(rename = "files.write")]
    FilesWrite(FilesWrite),
    #[serde(rename = "files.rename")]
    FilesRename(FilesRename),
    #[serde(rename = "files.delete")]
    FilesDelete(FilesDelete),
    #[serde(rename = "terminal.open")]
    TerminalOpen(TerminalSize),
}

impl RunnerOp {
    /// Every `op`.
    pub const OP_NAMES: &'static [&'static str] = &[
        "files.list",
        "files.stat",
        "files.read",
        "files.write",
        "files.rename",
        "files.delete",
        "terminal.open",
    ];
}

impl From<FilesRequest> for RunnerOp {
    fn from(request: FilesRequest) -> RunnerOp {
        match request {
            FilesRequest::List(args) => RunnerOp::FilesList(args),
            FilesRequest::Stat(args) => RunnerOp::FilesStat(args),
            FilesRequest::Read(args) => RunnerOp::FilesRead(args),
            FilesRequest::Write(args) => RunnerOp::FilesWrite(args),
            FilesRequest::Rename(args) => RunnerOp::FilesRename(args),
            FilesRequest::Delete(args) => RunnerOp::FilesDelete(args),
        }
    }
}

/// `reply`: the answer to the `request` with the same `req`, on the wire as `{type: "reply", req,
/// result}` or `{type: "reply", req, error}`, never both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerReply {
    pub req: u32,
    #[serde(flatten)]
    pub outcome: ReplyOutcome,
}

/// Success or failure of a runner request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyOutcome {
    Result(ReplyResult),
    Error(Error),
}

/// The reply's fields, tagged by the client reply's `type`, so the gateway forwards it by adding
/// `ch` and `id` ([`ReplyResult::into_server_frame`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReplyResult {
    ListResult(ListResult),
    StatResult(StatResult),
    ReadResult(ReadResult),
    WriteResult(WriteResult),
    RenameResult(RenameResult),
    DeleteResult(DeleteResult),
    Opened(Opened),
}

impl ReplyResult {
    /// The client frame answering request `id`.
    pub fn into_server_frame(self, id: ReqId) -> ServerFrame {
        match self {
            ReplyResult::ListResult(result) => {
                ServerFrame::Files(FilesServerFrame::ListResult(Reply { id, result }))
            }
            ReplyResult::StatResult(result) => {
                ServerFrame::Files(FilesServerFrame::StatResult(Reply { id, result }))
            }
            ReplyResult::ReadResult(result) => {
                ServerFrame::Files(FilesServerFrame::ReadResult(Reply { id, result }))
            }
            ReplyResult::WriteResult(result) => {
                ServerFrame::Files(FilesServerFrame::WriteResult(Reply { id, result }))
            }
            ReplyResult::RenameResult(result) => {
                ServerFrame::Files(FilesServerFrame::RenameResult(Reply { id, result }))
            }
            ReplyResult::DeleteResult(result) => {
                ServerFrame::Files(FilesServerFrame::DeleteResult(Reply { id, result }))
            }
            ReplyResult::Opened(result) => {
                ServerFrame::Terminal(TerminalServerFrame::Opened(Reply { id, result }))
            }
        }
    }
}

/// `ping` and `pong` on the link (either side, every 10 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkPing {
    pub n: u64,
}

/// Why the gateway ends a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ByeReason {
    /// A newer connection of the same `runner_id` took over.
    Superseded,
    /// This boot was fenced: kill the harnesses and restart.
    BootExpired,
    UnsupportedVersion,
    Shutdown,
}

/// `bye`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bye {
    pub reason: ByeReason,
}

/// Why a link frame was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkFrameError {
    /// Peer error: the declared length is over [`RUNNER_FRAME_BYTES_MAX`]; end the link.
    #[error("link frame declares {len_bytes} bytes, over the {max_bytes}-byte limit")]
    TooLarge { len_bytes: usize, max_bytes: usize },
    /// Bug: the message could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Peer error: the body is not a valid message; end the link.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// Encodes `message` as one link frame: a 4-byte big-endian length, then named msgpack.
///
/// # Errors
/// [`LinkFrameError::Encode`] if the value cannot be encoded, [`LinkFrameError::TooLarge`] if the
/// body would exceed [`RUNNER_FRAME_BYTES_MAX`].
pub fn encode_link_frame<T: Serialize + ?Sized>(message: &T) -> Result<Vec<u8>, LinkFrameError> {
    let mut frame = vec![0; LINK_HEADER_BYTES];
    codec::write_msgpack(&mut frame, message)?;
    let len_bytes = frame.len() - LINK_HEADER_BYTES;
    let len_prefix = u32::try_from(len_bytes)
        .ok()
        .filter(|_| len_bytes <= RUNNER_FRAME_BYTES_MAX)
        .ok_or(LinkFrameError::TooLarge {
            len_bytes,
            max_bytes: RUNNER_FRAME_BYTES_MAX,
        })?;
    frame[..LINK_HEADER_BYTES].copy_from_slice(&len_prefix.to_be_bytes());
    Ok(frame)
}

/// The body length a link frame header declares, checked before any allocation.
///
/// # Errors
/// [`LinkFrameError::TooLarge`] over [`RUNNER_FRAME_BYTES_MAX`].
pub fn link_frame_len(header: [u8; LINK_HEADER_BYTES]) -> Result<usize, LinkFrameError> {
    let len_bytes = usize::try_from(u32::from_be_bytes(header)).unwrap_or(usize::MAX);
    if len_bytes > RUNNER_FRAME_BYTES_MAX {
        return Err(LinkFrameError::TooLarge {
            len_bytes,
            max_bytes: RUNNER_FRAME_BYTES_MAX,
        });
    }
    Ok(len_bytes)
}

/// Decodes a link frame body (without its header).
///
/// # Errors
/// [`LinkFrameError::TooLarge`] or [`LinkFrameError::Decode`].
pub fn decode_link_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, LinkFrameError> {
    Ok(codec::decode(
        codec::Encoding::Msgpack,
        body,
        RUNNER_FRAME_BYTES_MAX,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_frames_carry_their_length() {
        let message = GatewayToRunner::Acked(Acked { seq: 3 });
        let frame = encode_link_frame(&message).expect("encodable");
        let header: [u8; LINK_HEADER_BYTES] =
            frame[..LINK_HEADER_BYTES].try_into().expect("four bytes");
        let len_bytes = link_frame_len(header).expect("small");
        assert_eq!(len_bytes, frame.len() - LINK_HEADER_BYTES);
        let decoded: GatewayToRunner =
            decode_link_body(&frame[LINK_HEADER_BYTES..]).expect("decodable");
        assert_eq!(decoded, message);
        assert!(link_frame_len(u32::MAX.to_be_bytes()).is_err());
    }
}
