//! Events (PROTOCOL.md section 6): facts, named exactly as on the wire.
//!
//! Types only. The run rules of section 8 (one open run per session, which events may occur inside
//! a run) are checked by projections, not by decoding. The `history.*` events of section 6.7 live
//! in [`crate::history`].

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::field::null_as_default;
use crate::history::{
    HistoryAttachmentAdded, HistoryConversationDeleted, HistoryConversationTouched,
    HistoryConversationUpdated, HistoryConversationUpserted, HistoryMessageUpserted,
    HistoryTagAdded, HistoryTagRemoved,
};
use crate::ids::{CommandId, MessageId, Offset, PartId, RunId, SessionId};
use crate::message::{Message, ModelRef, Role, ThinkingLevel};

tagged_catalogue! {
    /// An event body.
    pub enum Event {
        "session.created" => SessionCreated,
        "session.forked" => SessionForked,
        "session.renamed" => SessionRenamed,
        "session.deleted" => SessionDeleted,
        "harness.started" => HarnessStarted,
        "harness.exited" => HarnessExited,
        "agent.working" => AgentWorking,
        "agent.idle" => AgentIdle,
        "run.failed" => RunFailed,
        "run.timed_out" => RunTimedOut,
        "retry.start" => RetryStart,
        "retry.end" => RetryEnd,
        "compact.start" => CompactStart,
        "compact.end" => CompactEnd,
        "message.created" => MessageCreated,
        "stream.message_start" => StreamMessageStart,
        "stream.text_delta" => StreamTextDelta,
        "stream.thinking_delta" => StreamThinkingDelta,
        "stream.tool_call_delta" => StreamToolCallDelta,
        "stream.message_end" => StreamMessageEnd,
        "usage.recorded" => UsageRecorded,
        "tool.start" => ToolStart,
        "tool.progress" => ToolProgress,
        "tool.end" => ToolEnd,
        "model.changed" => ModelChanged,
        "input.requested" => InputRequested,
        "input.resolved" => InputResolved,
        "notice" => Notice,
        "command.failed" => CommandFailed,
        "history.conversation_upserted" => HistoryConversationUpserted,
        "history.message_upserted" => HistoryMessageUpserted,
        "history.conversation_touched" => HistoryConversationTouched,
        "history.conversation_updated" => HistoryConversationUpdated,
        "history.conversation_deleted" => HistoryConversationDeleted,
        "history.tag_added" => HistoryTagAdded,
        "history.tag_removed" => HistoryTagRemoved,
        "history.attachment_added" => HistoryAttachmentAdded,
    }
}

impl Event {
    /// The offset of the command this event results from, when it carries one.
    pub fn cause(&self) -> Option<Offset> {
        match self {
            Event::SessionCreated(event) => Some(event.cause),
            Event::SessionForked(event) => Some(event.cause),
            Event::SessionRenamed(event) => event.cause,
            Event::SessionDeleted(event) => Some(event.cause),
            Event::HarnessStarted(event) => event.cause,
            Event::HarnessExited(event) => event.cause,
            Event::AgentWorking(event) => event.cause,
            Event::AgentIdle(event) => event.cause,
            Event::CompactEnd(event) => event.cause,
            Event::MessageCreated(event) => event.cause,
            Event::ModelChanged(event) => event.cause,
            Event::InputResolved(event) => event.cause,
            Event::CommandFailed(event) => Some(event.cause),
            _ => None,
        }
    }

    /// Sets `cause` on an event that carries one; false (and unchanged) for the others.
    pub fn set_cause(&mut self, cause: Offset) -> bool {
        match self {
            Event::SessionCreated(event) => event.cause = cause,
            Event::SessionForked(event) => event.cause = cause,
            Event::SessionRenamed(event) => event.cause = Some(cause),
            Event::SessionDeleted(event) => event.cause = cause,
            Event::HarnessStarted(event) => event.cause = Some(cause),
            Event::HarnessExited(event) => event.cause = Some(cause),
            Event::AgentWorking(event) => event.cause = Some(cause),
            Event::AgentIdle(event) => event.cause = Some(cause),
            Event::CompactEnd(event) => event.cause = Some(cause),
            Event::MessageCreated(event) => event.cause = Some(cause),
            Event::ModelChanged(event) => event.cause = Some(cause),
            Event::InputResolved(event) => event.cause = Some(cause),
            Event::CommandFailed(event) => event.cause = cause,
            _ => return false,
        }
        true
    }
}

// 6.1 Session.

/// `session.created`: the first event of a session made by `session.create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCreated {
    pub harness: String,
    pub workspace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_level: Option<ThinkingLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The source session of a rerun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<SessionId>,
    pub cause: Offset,
}

/// `session.forked`: the first event of a session made by `fork`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionForked {
    pub parent_session_id: SessionId,
    pub parent_offset: Offset,
    pub harness: String,
    pub workspace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_level: Option<ThinkingLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub user_messages_inherited: u32,
    /// The `fork` entry in the parent.
    pub cause: Offset,
}

/// Who renamed a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RenameSource {
    User,
    Harness,
}

/// `session.renamed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRenamed {
    pub title: String,
    pub source: RenameSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Offset>,
}

/// `session.deleted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDeleted {
    pub cause: Offset,
}

// 6.2 Harness process.

/// Where a forked harness started from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkedFrom {
    pub harness_session_file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_id: Option<String>,
}

/// `harness.started`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HarnessStarted {
    pub harness: String,
    pub version: String,
    pub pid: u32,
    /// An attribute: nothing is keyed by it.
    pub harness_session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harness_session_file: Option<String>,
    pub resumed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forked_from: Option<ForkedFrom>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_level: Option<ThinkingLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Offset>,
}

/// Why a harness process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HarnessExitReason {
    Idle,
    Deleted,
    Crashed,
    StartFailed,
    Killed,
    RunnerLost,
    RunnerShutdown,
}

/// `harness.exited`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HarnessExited {
    pub reason: HarnessExitReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Up to 4 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_tail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Error>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Offset>,
}

// 6.3 Runs.

/// `agent.working`: a run opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentWorking {
    pub run_id: RunId,
    /// The prompt or compact that started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Offset>,
}

/// How a run ended normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdleOutcome {
    Completed,
    Aborted,
}

/// `agent.idle`: a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentIdle {
    pub run_id: RunId,
    pub outcome: IdleOutcome,
    /// The abort, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Offset>,
}

/// `run.failed`: a run ended in error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFailed {
    pub run_id: RunId,
    pub error: Error,
    /// True when a new prompt can succeed without changing anything.
    pub recoverable: bool,
}

/// Which timeout ended a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutLimit {
    NoProgress,
    MaxDuration,
}

/// `run.timed_out`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTimedOut {
    pub run_id: RunId,
    pub limit: TimeoutLimit,
    pub limit_ms: u64,
}

/// `retry.start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryStart {
    pub run_id: RunId,
    pub attempt: u32,
    pub max_attempts: u32,
    pub delay_ms: u64,
    pub error: String,
}

/// `retry.end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryEnd {
    pub run_id: RunId,
    pub attempt: u32,
    pub success: bool,
}

/// Why a compaction started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompactReason {
    Manual,
    Threshold,
    Overflow,
}

/// `compact.start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactStart {
    pub run_id: RunId,
    pub reason: CompactReason,
}

/// `compact.end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactEnd {
    pub run_id: RunId,
    pub ok: bool,
    pub will_retry: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_before: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Offset>,
}

// 6.4 Messages.

/// `message.created`: a complete user or tool message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageCreated {
    pub message: Message,
    /// User messages from a prompt: the prompt's `command_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<CommandId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Offset>,
}

/// `stream.message_start`: an assistant message opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMessageStart {
    pub message_id: MessageId,
    pub run_id: RunId,
    /// Always `assistant` in v1.
    pub role: Role,
    pub provider: String,
    pub model_id: String,
}

/// `stream.text_delta`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamTextDelta {
    pub message_id: MessageId,
    pub part_id: PartId,
    pub index: u32,
    pub delta: String,
}

/// `stream.thinking_delta`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamThinkingDelta {
    pub message_id: MessageId,
    pub part_id: PartId,
    pub index: u32,
    pub delta: String,
}

/// `stream.tool_call_delta`: raw JSON text of the arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamToolCallDelta {
    pub message_id: MessageId,
    pub part_id: PartId,
    pub index: u32,
    pub delta: String,
    /// On the first delta of the part, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// On the first delta of the part, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `stream.message_end`: the authoritative assistant message, replacing the draft.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamMessageEnd {
    pub message: Message,
}

/// `usage.recorded`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecorded {
    pub run_id: RunId,
    pub message_id: MessageId,
    pub provider: String,
    pub model_id: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::field::finite_f64_opt"
    )]
    pub cost_usd: Option<f64>,
}

// 6.5 Tools.

/// `tool.start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolStart {
    pub tool_call_id: String,
    pub name: String,
    pub input: serde_json::Value,
}

/// `tool.progress`: the latest output so far (a snapshot, at most its last 64 KiB).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolProgress {
    pub tool_call_id: String,
    pub text: String,
}

/// `tool.end`. The result itself is the `tool_result` part of the `message.created` that follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolEnd {
    pub tool_call_id: String,
    pub name: String,
    pub is_error: bool,
    pub duration_ms: u64,
}

// 6.6 Model, input, notices, failures.

/// `model.changed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelChanged {
    pub provider: String,
    pub model_id: String,
    pub thinking_level: ThinkingLevel,
    /// Absent when the harness changed it itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Offset>,
}

/// What kind of input a harness asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    Select,
    Confirm,
    Input,
    Editor,
}

/// `input.requested`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRequested {
    pub request_id: String,
    pub kind: InputKind,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub options: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// How an input request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputOutcome {
    Answered,
    Cancelled,
    TimedOut,
}

/// `input.resolved`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputResolved {
    pub request_id: String,
    pub outcome: InputOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Offset>,
}

/// How loud a notice is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeLevel {
    Info,
    Warning,
    Error,
}

/// `notice`: a message from a harness extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub level: NoticeLevel,
    pub text: String,
}

/// `command.failed`: the settling event of a command that did not take effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandFailed {
    pub command_id: CommandId,
    pub error: Error,
    pub cause: Offset,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_are_unique_and_disjoint_from_commands() {
        let mut names = Event::TYPE_NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Event::TYPE_NAMES.len());
        for name in crate::command::Command::TYPE_NAMES {
            assert!(!Event::TYPE_NAMES.contains(name), "{name} is both");
        }
    }

    #[test]
    fn notice_level_is_an_enum_on_the_wire() {
        let notice = Event::Notice(Notice {
            level: NoticeLevel::Warning,
            text: "t".into(),
        });
        let text = serde_json::to_string(&notice).expect("encodable");
        assert_eq!(text, r#"{"type":"notice","level":"warning","text":"t"}"#);
        let bad: Result<Event, _> =
            serde_json::from_str(r#"{"type":"notice","level":"loud","text":"t"}"#);
        assert!(bad.is_err());
    }
}
