//! Events (PROTOCOL.md section 6): facts, named exactly as on the wire.

use serde::{Deserialize, Serialize};

use crate::ids::Offset;

/// An event body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum Event {
    #[serde(rename = "session.created")]
    SessionCreated(SessionCreated),
    #[serde(rename = "notice")]
    Notice(Notice),
}

impl Event {
    /// The `type` on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::SessionCreated(_) => "session.created",
            Event::Notice(_) => "notice",
        }
    }
}

/// `session.created`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionCreated {
    pub harness: String,
    pub workspace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub cause: Offset,
}

/// `notice`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub level: String,
    pub text: String,
}
