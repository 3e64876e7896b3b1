//! Field rules and limits of a decoded client frame (PROTOCOL.md 3.4, 4.2, 5, 10, 11): prompt size,
//! image and file counts, title length, compact instructions, replay limit, read chunk, terminal
//! size, and the pure part of the path rules.
//!
//! Run after decoding and after the ownership check (PROTOCOL.md 4.1: shape, ids, ownership,
//! fields, state). Pure: nothing here looks at the filesystem (symlink escapes are the runner's)
//! or at session state (`invalid_state` and the like are the gateway's and the runner's).

use crate::command::{Command, Compact, Fork, InputRespond, Prompt, SessionCreate, SetModel};
use crate::error::{Error, ErrorCode};
use crate::frame::{AgentFrame, ClientFrame, FilesRequest, Replay, SubscribeLog, TerminalFrame};
use crate::limits;

/// The configurable limits fields are checked against; `Default` is [`crate::limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldLimits {
    pub prompt_text_bytes_max: usize,
    pub prompt_images_max: usize,
    pub prompt_files_max: usize,
    pub title_chars_max: usize,
    pub compact_instructions_bytes_max: usize,
    pub read_chunk_bytes_max: usize,
    pub path_bytes_max: usize,
    pub replay_limit_max: u32,
}

impl Default for FieldLimits {
    fn default() -> FieldLimits {
        FieldLimits {
            prompt_text_bytes_max: limits::PROMPT_TEXT_BYTES_MAX,
            prompt_images_max: limits::PROMPT_IMAGES_MAX,
            prompt_files_max: limits::PROMPT_FILES_MAX,
            title_chars_max: limits::TITLE_CHARS_MAX,
            compact_instructions_bytes_max: limits::COMPACT_INSTRUCTIONS_BYTES_MAX,
            read_chunk_bytes_max: limits::READ_CHUNK_BYTES_MAX,
            path_bytes_max: limits::PATH_BYTES_MAX,
            replay_limit_max: limits::REPLAY_LIMIT_MAX,
        }
    }
}

/// Why a decoded frame breaks a field rule. Every variant is a caller error: reject with it
/// (`ack` rejected or `error` frame, see [`ClientFrame::reply_to`]) and change nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// `missing_field`: required content is empty.
    #[error("field {field} is empty; {hint}")]
    MissingField {
        field: &'static str,
        hint: &'static str,
    },
    /// `invalid_field`: out of range or over a size limit.
    #[error("field {field} is {actual}, over the limit of {limit}")]
    OverLimit {
        field: &'static str,
        actual: String,
        limit: String,
    },
    /// `invalid_field`: a value outside its allowed range.
    #[error("field {field} {problem}")]
    OutOfRange {
        field: &'static str,
        problem: &'static str,
    },
    /// `invalid_path`, ref the path as sent.
    #[error("path {path:?} {problem}")]
    InvalidPath { path: String, problem: &'static str },
    /// `path_outside_root`, ref the path as sent.
    #[error("path {path:?} leaves the workspace: use a relative path without `..`")]
    PathOutsideRoot { path: String },
}

impl ValidationError {
    /// The wire code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ValidationError::MissingField { .. } => ErrorCode::MissingField,
            ValidationError::OverLimit { .. } | ValidationError::OutOfRange { .. } => {
                ErrorCode::InvalidField
            }
            ValidationError::InvalidPath { .. } => ErrorCode::InvalidPath,
            ValidationError::PathOutsideRoot { .. } => ErrorCode::PathOutsideRoot,
        }
    }

    /// The wire `ref`: the field name, or the path as sent.
    pub fn reference(&self) -> &str {
        match self {
            ValidationError::MissingField { field, .. }
            | ValidationError::OverLimit { field, .. }
            | ValidationError::OutOfRange { field, .. } => field,
            ValidationError::InvalidPath { path, .. }
            | ValidationError::PathOutsideRoot { path } => path,
        }
    }

    /// The wire `Error`.
    pub fn to_error(&self) -> Error {
        Error::new(self.code(), self.to_string()).with_ref(self.reference())
    }
}

fn over_limit(field: &'static str, actual: usize, limit: usize, unit: &str) -> ValidationError {
    ValidationError::OverLimit {
        field,
        actual: format!("{actual} {unit}"),
        limit: format!("{limit} {unit}"),
    }
}

/// Checks a decoded client frame's fields.
///
/// # Errors
/// The first [`ValidationError`] found.
pub fn validate_client_frame(
    frame: &ClientFrame,
    field_limits: &FieldLimits,
) -> Result<(), ValidationError> {
    match frame {
        ClientFrame::Agent(AgentFrame::Command(command_frame)) => {
            validate_command(&command_frame.command, field_limits)
        }
        ClientFrame::Agent(AgentFrame::Replay(replay)) => validate_replay(replay, field_limits),
        ClientFrame::Agent(AgentFrame::SubscribeLog(subscribe)) => {
            validate_subscribe_log(subscribe)
        }
        ClientFrame::Agent(_) | ClientFrame::System(_) => Ok(()),
        ClientFrame::Files(files) => validate_files(&files.request, field_limits),
        ClientFrame::Terminal(TerminalFrame::Open(open)) => {
            validate_terminal_size(open.cols, open.rows)
        }
        ClientFrame::Terminal(TerminalFrame::Resize(resize)) => {
            validate_terminal_size(resize.cols, resize.rows)
        }
        ClientFrame::Terminal(TerminalFrame::Input(_) | TerminalFrame::Close(_)) => Ok(()),
    }
}

/// Checks a command's fields (the rules of PROTOCOL.md 4.2 that need no state).
///
/// # Errors
/// The first [`ValidationError`] found.
pub fn validate_command(
    command: &Command,
    field_limits: &FieldLimits,
) -> Result<(), ValidationError> {
    match command {
        Command::SessionCreate(create) => validate_session_create(create, field_limits),
        Command::SessionRename(rename) => validate_title(&rename.title, field_limits),
        Command::Fork(Fork { title, .. }) => title
            .as_deref()
            .map_or(Ok(()), |title| validate_title(title, field_limits)),
        Command::Prompt(prompt) => validate_prompt(prompt, field_limits),
        Command::SetModel(SetModel { provider, model_id }) => {
            require("provider", provider, "name the model's provider")?;
            require("model_id", model_id, "name a model the harness offers")
        }
        Command::Compact(Compact {
            instructions: Some(instructions),
        }) => {
            if instructions.len() > field_limits.compact_instructions_bytes_max {
                return Err(over_limit(
                    "instructions",
                    instructions.len(),
                    field_limits.compact_instructions_bytes_max,
                    "bytes",
                ));
            }
            Ok(())
        }
        Command::InputRespond(InputRespond { request_id, .. }) => require(
            "request_id",
            request_id,
            "use the request_id of the input.requested event",
        ),
        _ => Ok(()),
    }
}

fn require(field: &'static str, value: &str, hint: &'static str) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::MissingField { field, hint });
    }
    Ok(())
}

/// Checks a session title: 1..200 characters.
///
/// # Errors
/// [`ValidationError::OutOfRange`] when empty, [`ValidationError::OverLimit`] when too long.
pub fn validate_title(title: &str, field_limits: &FieldLimits) -> Result<(), ValidationError> {
    if title.is_empty() {
        return Err(ValidationError::OutOfRange {
            field: "title",
            problem: "is empty: use 1 to 200 characters",
        });
    }
    let n_chars = title.chars().count();
    if n_chars > field_limits.title_chars_max {
        return Err(over_limit(
            "title",
            n_chars,
            field_limits.title_chars_max,
            "characters",
        ));
    }
    Ok(())
}

fn validate_session_create(
    create: &SessionCreate,
    field_limits: &FieldLimits,
) -> Result<(), ValidationError> {
    require(
        "harness",
        &create.harness,
        "name a harness from hello.harnesses",
    )?;
    validate_path(&create.workspace, field_limits)?;
    if let Some(title) = &create.title {
        validate_title(title, field_limits)?;
    }
    Ok(())
}

fn validate_prompt(prompt: &Prompt, field_limits: &FieldLimits) -> Result<(), ValidationError> {
    if prompt.text.is_empty() && prompt.images.is_empty() {
        return Err(ValidationError::MissingField {
            field: "text",
            hint: "send some text or at least one image",
        });
    }
    if prompt.text.len() > field_limits.prompt_text_bytes_max {
        return Err(over_limit(
            "text",
            prompt.text.len(),
            field_limits.prompt_text_bytes_max,
            "bytes",
        ));
    }
    if prompt.images.len() > field_limits.prompt_images_max {
        return Err(over_limit(
            "images",
            prompt.images.len(),
            field_limits.prompt_images_max,
            "images",
        ));
    }
    if prompt.files.len() > field_limits.prompt_files_max {
        return Err(over_limit(
            "files",
            prompt.files.len(),
            field_limits.prompt_files_max,
            "files",
        ));
    }
    for path in &prompt.files {
        validate_path(path, field_limits)?;
    }
    Ok(())
}

fn validate_replay(replay: &Replay, field_limits: &FieldLimits) -> Result<(), ValidationError> {
    match replay.limit {
        Some(0) => Err(ValidationError::OutOfRange {
            field: "limit",
            problem: "is 0: use 1 to 1000",
        }),
        Some(limit) if limit > field_limits.replay_limit_max => Err(ValidationError::OverLimit {
            field: "limit",
            actual: limit.to_string(),
            limit: field_limits.replay_limit_max.to_string(),
        }),
        _ => Ok(()),
    }
}

fn validate_subscribe_log(subscribe: &SubscribeLog) -> Result<(), ValidationError> {
    if subscribe.types.iter().any(String::is_empty) {
        return Err(ValidationError::OutOfRange {
            field: "types",
            problem: "holds an empty type: name body types, with `*` for a prefix",
        });
    }
    Ok(())
}

fn validate_terminal_size(cols: u16, rows: u16) -> Result<(), ValidationError> {
    if cols == 0 {
        return Err(ValidationError::OutOfRange {
            field: "cols",
            problem: "is 0: use at least 1",
        });
    }
    if rows == 0 {
        return Err(ValidationError::OutOfRange {
            field: "rows",
            problem: "is 0: use at least 1",
        });
    }
    Ok(())
}

fn validate_files(
    request: &FilesRequest,
    field_limits: &FieldLimits,
) -> Result<(), ValidationError> {
    match request {
        FilesRequest::List(list) => validate_path(&list.path, field_limits),
        FilesRequest::Stat(stat) => validate_path(&stat.path, field_limits),
        FilesRequest::Read(read) => {
            validate_path(&read.path, field_limits)?;
            let length = read
                .length
                .map_or(0, |length| usize::try_from(length).unwrap_or(usize::MAX));
            if length > field_limits.read_chunk_bytes_max {
                return Err(over_limit(
                    "length",
                    length,
                    field_limits.read_chunk_bytes_max,
                    "bytes",
                ));
            }
            Ok(())
        }
        FilesRequest::Write(write) => validate_path(&write.path, field_limits),
        FilesRequest::Rename(rename) => {
            validate_path(&rename.from, field_limits)?;
            validate_path(&rename.to, field_limits)?;
            refuse_root(
                &rename.from,
                "is the workspace root, which cannot be renamed",
            )?;
            refuse_root(
                &rename.to,
                "is the workspace root, which cannot be replaced",
            )
        }
        FilesRequest::Delete(delete) => {
            validate_path(&delete.path, field_limits)?;
            refuse_root(
                &delete.path,
                "is the workspace root, which cannot be deleted",
            )
        }
    }
}

/// Whether `path` names the workspace root (`""`, `"."`, `"./."` and the like).
pub fn is_root(path: &str) -> bool {
    path.split('/')
        .all(|component| component.is_empty() || component == ".")
}

fn refuse_root(path: &str, problem: &'static str) -> Result<(), ValidationError> {
    if is_root(path) {
        return Err(ValidationError::InvalidPath {
            path: path.to_owned(),
            problem,
        });
    }
    Ok(())
}

/// The pure path rules of PROTOCOL.md 10: workspace-relative, `/`-separated, at most 4096 bytes,
/// no NUL, not absolute, no `..` component. Symlink escapes are checked by the runner.
///
/// # Errors
/// [`ValidationError::InvalidPath`] or [`ValidationError::PathOutsideRoot`], with the path as sent.
pub fn validate_path(path: &str, field_limits: &FieldLimits) -> Result<(), ValidationError> {
    if path.len() > field_limits.path_bytes_max {
        return Err(ValidationError::InvalidPath {
            path: path.to_owned(),
            problem: "is over 4096 bytes",
        });
    }
    if path.contains('\0') {
        return Err(ValidationError::InvalidPath {
            path: path.to_owned(),
            problem: "contains a NUL byte",
        });
    }
    if path.starts_with('/') || path.split('/').any(|component| component == "..") {
        return Err(ValidationError::PathOutsideRoot {
            path: path.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_spellings() {
        for path in ["", ".", "./", "./.", "//"] {
            assert!(is_root(path), "{path:?}");
        }
        for path in ["a", "./a", "a/.."] {
            assert!(!is_root(path), "{path:?}");
        }
    }

    #[test]
    fn path_rules() {
        let field_limits = FieldLimits::default();
        assert!(validate_path("src/main.rs", &field_limits).is_ok());
        assert!(matches!(
            validate_path("/etc", &field_limits),
            Err(ValidationError::PathOutsideRoot { .. })
        ));
        assert!(matches!(
            validate_path("a/../../b", &field_limits),
            Err(ValidationError::PathOutsideRoot { .. })
        ));
        assert!(matches!(
            validate_path("a\0b", &field_limits),
            Err(ValidationError::InvalidPath { .. })
        ));
    }
}
