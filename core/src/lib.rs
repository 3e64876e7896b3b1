//! Octo's canonical protocol as types (PROTOCOL.md): ids, log entries, commands, events, messages
//! and parts, frames, error codes and limits, with their JSON and msgpack codecs.
//!
//! Architecture invariant: no I/O and no async runtime here. Everything is a value, a codec or a
//! validation; the log, the gateway and the runner build on it.

pub mod bytes;
pub mod codec;
pub mod command;
pub mod entry;
pub mod error;
pub mod event;
pub mod ids;
pub mod limits;

pub use bytes::Bytes;
pub use codec::{DecodeError, EncodeError, Encoding};
pub use command::Command;
pub use entry::{Body, EntryError, Kind, LogEntry, Producer};
pub use error::{Error, ErrorCode};
pub use event::Event;
pub use ids::{
    AttachmentId, BootId, CommandId, ConnectionId, IdError, MessageId, Ms, Offset, PartId,
    ProducerId, ReqId, RunId, SessionId, TerminalId, UserId,
};
