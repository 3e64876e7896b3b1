//! Octo's canonical protocol as types (PROTOCOL.md): ids, log entries, commands, events, messages
//! and parts, frames, the runner link, error codes and limits, with their JSON and msgpack codecs,
//! the client frame decoder and field validation.
//!
//! Architecture invariant: no I/O and no async runtime here. Everything is a value, a codec or a
//! validation; the log, the gateway and the runner build on it.

#[macro_use]
mod macros;

#[cfg(feature = "allocator")]
pub mod alloc;
pub mod bytes;
pub mod civil;
pub mod codec;
pub mod command;
pub mod entry;
pub mod error;
pub mod event;
pub mod field;
pub mod frame;
pub mod history;
pub mod ids;
pub mod limits;
pub mod message;
pub mod runner;
pub mod validate;

pub use bytes::Bytes;
pub use civil::now_ms;
pub use codec::{DecodeError, EncodeError, Encoding};
pub use command::Command;
pub use entry::{Body, EntryError, Kind, LogEntry, Producer};
pub use error::{Error, ErrorCode};
pub use event::Event;
pub use frame::{ClientFrame, FrameError, ServerFrame, decode_client_frame};
pub use ids::{
    AttachmentId, BootId, CommandId, ConnectionId, IdError, MessageId, Ms, Offset, PartId,
    ProducerId, ReqId, RunId, SessionId, TerminalId, UserId,
};
pub use message::{Message, ModelRef, Part, Role, ThinkingLevel};
pub use validate::{FieldLimits, ValidationError, validate_client_frame};
