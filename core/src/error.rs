//! The error codes of PROTOCOL.md section 13 and the wire `Error` shape.

use serde::{Deserialize, Serialize};

/// Every error code on the wire. Bad input gets one of these and changes nothing; the event codes
/// at the end appear inside `run.failed`, `command.failed` and `harness.exited`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    MalformedFrame,
    FrameTooLarge,
    UnknownChannel,
    UnknownType,
    MissingField,
    InvalidField,
    InvalidId,
    IdempotencyConflict,
    SessionNotFound,
    UnknownHarness,
    Unsupported,
    InvalidState,
    InvalidOffset,
    ForkPointInRun,
    LimitExceeded,
    InvalidPath,
    PathOutsideRoot,
    NotFound,
    AlreadyExists,
    NotADirectory,
    IsADirectory,
    DirectoryNotEmpty,
    PermissionDenied,
    IoError,
    RunnerUnavailable,
    Unavailable,
    Internal,
    // Event codes.
    ProviderError,
    HarnessRejected,
    HarnessExited,
    HarnessStartFailed,
    HarnessStateMissing,
    RunnerLost,
    Discarded,
}

impl ErrorCode {
    /// Every code, in the order of PROTOCOL.md section 13.
    pub const ALL: [ErrorCode; 34] = [
        ErrorCode::MalformedFrame,
        ErrorCode::FrameTooLarge,
        ErrorCode::UnknownChannel,
        ErrorCode::UnknownType,
        ErrorCode::MissingField,
        ErrorCode::InvalidField,
        ErrorCode::InvalidId,
        ErrorCode::IdempotencyConflict,
        ErrorCode::SessionNotFound,
        ErrorCode::UnknownHarness,
        ErrorCode::Unsupported,
        ErrorCode::InvalidState,
        ErrorCode::InvalidOffset,
        ErrorCode::ForkPointInRun,
        ErrorCode::LimitExceeded,
        ErrorCode::InvalidPath,
        ErrorCode::PathOutsideRoot,
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::NotADirectory,
        ErrorCode::IsADirectory,
        ErrorCode::DirectoryNotEmpty,
        ErrorCode::PermissionDenied,
        ErrorCode::IoError,
        ErrorCode::RunnerUnavailable,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
        ErrorCode::ProviderError,
        ErrorCode::HarnessRejected,
        ErrorCode::HarnessExited,
        ErrorCode::HarnessStartFailed,
        ErrorCode::HarnessStateMissing,
        ErrorCode::RunnerLost,
        ErrorCode::Discarded,
    ];
}

/// `{code, message, ref?}`: `message` is for humans; `ref` names the offending field, path, id or
/// state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// Longest `message` and `ref` the server sends, in characters: errors often quote the offending
/// input, and an error reply must never be a way to make the server send more than it received
/// (nor exceed the outbound frame limit).
pub const ERROR_TEXT_CHARS_MAX: usize = 300;

fn bounded(text: String) -> String {
    if text.chars().count() <= ERROR_TEXT_CHARS_MAX {
        return text;
    }
    let mut cut: String = text.chars().take(ERROR_TEXT_CHARS_MAX - 1).collect();
    cut.push('…');
    cut
}

impl Error {
    /// An error with no `ref`; the message is cut to [`ERROR_TEXT_CHARS_MAX`] characters.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Error {
        Error {
            code,
            message: bounded(message.into()),
            reference: None,
        }
    }

    /// Names the offending field, path, id or state (cut to [`ERROR_TEXT_CHARS_MAX`]).
    #[must_use]
    pub fn with_ref(mut self, reference: impl Into<String>) -> Error {
        self.reference = Some(bounded(reference.into()));
        self
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.reference {
            Some(reference) => write!(f, "{:?}: {} ({reference})", self.code, self.message),
            None => write!(f, "{:?}: {}", self.code, self.message),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_texts_are_bounded() {
        let long = "\u{1}".repeat(1 << 20);
        let error = Error::new(ErrorCode::InvalidPath, long.clone()).with_ref(long);
        assert_eq!(error.message.chars().count(), ERROR_TEXT_CHARS_MAX);
        assert_eq!(
            error.reference.as_deref().map(|r| r.chars().count()),
            Some(ERROR_TEXT_CHARS_MAX)
        );
        let short = Error::new(ErrorCode::InvalidPath, "x".repeat(ERROR_TEXT_CHARS_MAX));
        assert_eq!(
            short.message,
            "x".repeat(ERROR_TEXT_CHARS_MAX),
            "at the limit nothing is cut"
        );
    }
}
