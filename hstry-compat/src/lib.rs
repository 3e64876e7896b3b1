//! `octo-hstry`: hstry's gRPC API (HSTRY_API.md), served from Octo's log and projections.
//!
//! Writes become `history.*` entries appended to the log in one batch per RPC (PROTOCOL.md 6.7) and
//! are answered once the `history` projection has applied them, so every later read sees them.
//! Reads come from the `history` projection's conversations (one consistent store snapshot per
//! RPC) and, for message events, from the log itself. Octo's own sessions appear as conversations
//! without any write. Search is the `search` projection, joined to the conversations.

pub mod content;
pub mod convert;
pub mod server;
pub mod service;
pub mod wire;

/// The code generated from `proto/hstry_service.proto` (package `hstry.service`).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    tonic::include_proto!("hstry.service");

    pub use crate::wire::GetMessagesResponse;

    /// The encoded descriptor set, for server reflection.
    pub const DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("hstry_descriptor");
}

pub use server::{HstryServer, ServeOptions};
pub use service::Hstry;

/// hstry's message cap, both directions (HSTRY_API.md 1).
pub const MESSAGE_BYTES_MAX: usize = 64 << 20;
