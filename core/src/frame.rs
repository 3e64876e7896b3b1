//! WebSocket frames (PROTOCOL.md 3, 5, 10, 11, 12): what clients send ([`ClientFrame`]), what the
//! server sends ([`ServerFrame`]), and the decoder that turns an inbound message into a frame or
//! the exact section 13 error for it ([`decode_client_frame`]).
//!
//! Frames are flat maps: `{ch, type, command_id?, id?, session_id?, ...fields}`. Client frames are
//! decoded only through [`decode_client_frame`] (also behind their `Deserialize`), which checks
//! shape, then ids, then field types, in the order of PROTOCOL.md 4.1. It does not check limits or
//! field rules (that is [`crate::validate`], run after the ownership check) nor anything that needs
//! state. No I/O: the gateway owns sockets.

mod client;
mod decode;
mod server;
mod wire_value;

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use client::{
    AgentFrame, ClientFrame, CommandFrame, FilesDelete, FilesFrame, FilesList, FilesRead,
    FilesRename, FilesRequest, FilesStat, FilesWrite, Ping, Replay, Snapshot, Subscribe,
    SubscribeLog, SubscribeSessions, SystemFrame, TerminalClose, TerminalFrame, TerminalInput,
    TerminalOpen, TerminalResize, TerminalSize, Unsubscribe, UnsubscribeLog, UnsubscribeSessions,
    WriteMode,
};
pub use decode::{
    FrameError, FrameProblem, ReplyTo, decode_client_frame, decode_client_frame_with_limit,
};
pub use server::{
    Ack, AckStatus, AgentServerFrame, DeleteResult, EntryFrame, ErrorFrame, FileEntry, FileKind,
    FilesServerFrame, HarnessInfo, HarnessesFrame, Hello, HelloLimits, ListResult, ModelInfo,
    OpenRun, Opened, ParentRef, Pong, ProtocolVersion, ReadResult, RenameResult, ReplayResult,
    Reply, RunPhase, RunState, ServerFrame, SessionSummary, SessionSummaryFrame, Sessions,
    SnapshotResult, StatResult, Subscribed, SubscribedLog, SystemServerFrame, TerminalExited,
    TerminalOutput, TerminalServerFrame, Unsubscribed, UnsubscribedLog, UnsubscribedSessions,
    UserInfo, WriteResult,
};
pub use wire_value::CLIENT_FRAME_DEPTH_MAX;

/// The four channels of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Agent,
    Files,
    Terminal,
    System,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 4] = [
        Channel::Agent,
        Channel::Files,
        Channel::Terminal,
        Channel::System,
    ];

    /// The name on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Agent => "agent",
            Channel::Files => "files",
            Channel::Terminal => "terminal",
            Channel::System => "system",
        }
    }

    /// The channel named `name`, if it is one.
    pub fn parse(name: &str) -> Option<Channel> {
        Channel::ALL
            .into_iter()
            .find(|channel| channel.as_str() == name)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Decodes one body struct from a frame's fields; the frame decoder implements it so that catalogue
/// enums can dispatch by `type` without going through serde's tag buffering (which loses the
/// offending field's name).
pub(crate) trait FieldDecoder {
    type Error;
    fn decode<T: DeserializeOwned>(self) -> Result<T, Self::Error>;
}
