//! Logged commands (PROTOCOL.md section 4): what a client asks for. Effects arrive only as events.

use serde::{Deserialize, Serialize};

use crate::ids::{Offset, SessionId};

/// A command body as logged: the client frame minus `ch`, `command_id` and `session_id`, plus the
/// values the server decides (`fork` gets `new_session_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum Command {
    #[serde(rename = "session.create")]
    SessionCreate(SessionCreate),
    #[serde(rename = "prompt")]
    Prompt(Prompt),
    #[serde(rename = "fork")]
    Fork(Fork),
}

impl Command {
    /// The `type` on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            Command::SessionCreate(_) => "session.create",
            Command::Prompt(_) => "prompt",
            Command::Fork(_) => "fork",
        }
    }

    /// The command as the client sent it: server-decided values cleared. Two sends of one
    /// `command_id` are the same command when their client views are equal (PROTOCOL.md 4.1).
    #[must_use]
    pub fn client_view(&self) -> Command {
        match self {
            Command::Fork(fork) => Command::Fork(Fork {
                new_session_id: None,
                ..fork.clone()
            }),
            other => other.clone(),
        }
    }
}

/// `session.create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionCreate {
    pub harness: String,
    pub workspace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// `prompt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    pub text: String,
}

/// `fork`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fork {
    pub at_offset: Offset,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Decided by the gateway when it appends the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_session_id: Option<SessionId>,
}
