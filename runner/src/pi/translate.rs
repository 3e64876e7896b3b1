//! pi's native RPC events to canonical events (PROTOCOL.md section 15), as a pure function of its
//! inputs: commands delivered to pi, pi's stdout records (with the time they were read), and the
//! process's exit. No clock, no I/O, no randomness beyond the injected [`IdMint`]; the runner
//! feeds it and appends what it returns.
//!
//! What it keeps (and why):
//! - run state only from lifecycle events: `agent_start` opens a run; `agent_end` is a candidate
//!   end, confirmed by a `get_state` probe showing pi idle with no retry or compaction in between;
//! - one message id per message, minted at `message_start`, and one part id per content index,
//!   minted at its first delta, reused by `stream.message_end`;
//! - user messages built from the bound prompt (FIFO), never from pi's echo;
//! - settlement: each delivered command ends with exactly one settling event or `command.failed`.
//!
//! Not here yet (with the runner process): delta coalescing (a layer over this output), run
//! timeouts, steer/follow-up binding, extension input requests, `thinking_level_changed`.

use std::collections::{HashMap, VecDeque};

use octo_core::command::{Command, Prompt};
use octo_core::event::{
    AgentIdle, AgentWorking, CommandFailed, CompactEnd, CompactReason, CompactStart,
    HarnessExitReason, HarnessExited, IdleOutcome, InputKind, InputOutcome, InputRequested,
    InputResolved, MessageCreated, Notice, NoticeLevel, RetryEnd, RetryStart, RunFailed,
    StreamMessageEnd, StreamMessageStart, StreamTextDelta, StreamThinkingDelta,
    StreamToolCallDelta, ToolEnd, ToolProgress, ToolStart, UsageRecorded,
};
use octo_core::message::{
    FileRefPart, ImagePart, Message, Part, ResultContent, Role, StopReason, TextPart, ThinkingPart,
    ToolCallPart, ToolResultPart,
};
use octo_core::{CommandId, Error, ErrorCode, Event, MessageId, Ms, Offset, PartId, RunId};
use serde_json::Value;

/// Mints the ids the translator assigns. Production mints UUIDv7s; tests can too.
pub trait IdMint {
    fn run_id(&mut self) -> RunId;
    fn message_id(&mut self) -> MessageId;
    fn part_id(&mut self) -> PartId;
}

/// Fresh UUIDv7s.
#[derive(Debug, Default)]
pub struct FreshIds;

impl IdMint for FreshIds {
    fn run_id(&mut self) -> RunId {
        RunId::new()
    }
    fn message_id(&mut self) -> MessageId {
        MessageId::new()
    }
    fn part_id(&mut self) -> PartId {
        PartId::new()
    }
}

/// A command the runner has sent to pi.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub offset: Offset,
    pub command_id: CommandId,
    pub command: Command,
}

/// What the translator asks of its caller.
#[derive(Debug, Default, PartialEq)]
pub struct Output {
    /// Canonical events to append, in order.
    pub events: Vec<Event>,
    /// Records to write to pi's stdin (probes), in order.
    pub to_pi: Vec<Value>,
}

#[derive(Debug)]
struct OpenMessage {
    id: MessageId,
    /// Part ids by pi's content index.
    parts: HashMap<u64, PartId>,
    created_ms: Ms,
}

#[derive(Debug)]
struct OpenRun {
    id: RunId,
    /// The compact that opened it, when pi was compacting on request (no `agent_start`).
    manual_compact: Option<Delivered>,
}

/// The translator for one pi process.
#[derive(Debug)]
pub struct Translator<M> {
    mint: M,
    /// Delivered commands not yet settled, in delivery order.
    unsettled: VecDeque<Delivered>,
    /// Prompts delivered and not yet bound to a user message, in order.
    prompts: VecDeque<Delivered>,
    run: Option<OpenRun>,
    message: Option<OpenMessage>,
    last_stop_reason: Option<StopReason>,
    /// The pending idle probe's request id, after a candidate `agent_end`.
    probe: Option<String>,
    probes_sent: u64,
    tools_started_ms: HashMap<String, Ms>,
    /// The model pi runs, for `usage.recorded` and `model.changed`.
    provider: String,
    model_id: String,
    thinking_level: octo_core::ThinkingLevel,
    /// Extension dialogs awaiting an answer, oldest first, with their deadline (runner clock).
    inputs: Vec<(String, Option<Ms>)>,
    /// The newest time the translator was told (records and deadline checks carry it).
    clock_ms: Ms,
}

/// pi times a dialog out on its own clock, started before Octo reads the request: a dialog open
/// at the end of a run within this much of its deadline was pi's timeout, not a cancellation.
pub const INPUT_DEADLINE_SLACK_MS: Ms = 1_000;

/// pi's answer to an extension dialog, by id.
fn ui_response(request_id: &str, answer: &octo_core::command::InputAnswer) -> Value {
    use octo_core::command::InputAnswer;
    match answer {
        InputAnswer::Value(value) => {
            serde_json::json!({"type": "extension_ui_response", "id": request_id, "value": value})
        }
        InputAnswer::Confirmed(confirmed) => {
            serde_json::json!({"type": "extension_ui_response", "id": request_id, "confirmed": confirmed})
        }
        InputAnswer::Cancelled => {
            serde_json::json!({"type": "extension_ui_response", "id": request_id, "cancelled": true})
        }
    }
}

/// Answers dialogs `cancelled` to pi and resolves them with `outcome`.
fn cancel_dialogs(out: &mut Output, dialogs: Vec<(String, Option<Ms>)>, outcome: InputOutcome) {
    for (request_id, _) in dialogs {
        out.to_pi.push(ui_response(
            &request_id,
            &octo_core::command::InputAnswer::Cancelled,
        ));
        out.events.push(Event::InputResolved(InputResolved {
            request_id,
            outcome,
            cause: None,
        }));
    }
}

fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn number(value: &Value, key: &str) -> u64 {
    value.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn stop_reason(message: &Value) -> Option<StopReason> {
    match message.get("stopReason").and_then(Value::as_str)? {
        "stop" => Some(StopReason::Stop),
        "length" => Some(StopReason::Length),
        "toolUse" => Some(StopReason::ToolUse),
        "error" => Some(StopReason::Error),
        "aborted" => Some(StopReason::Aborted),
        _ => None,
    }
}

fn error(code: ErrorCode, message: impl Into<String>) -> Error {
    Error::new(code, message)
}

impl<M: IdMint> Translator<M> {
    /// A translator for a pi process running `provider`/`model_id`.
    pub fn new(mint: M, provider: &str, model_id: &str) -> Translator<M> {
        Translator {
            mint,
            unsettled: VecDeque::new(),
            prompts: VecDeque::new(),
            run: None,
            message: None,
            last_stop_reason: None,
            probe: None,
            probes_sent: 0,
            tools_started_ms: HashMap::new(),
            provider: provider.to_owned(),
            model_id: model_id.to_owned(),
            thinking_level: octo_core::ThinkingLevel::Off,
            inputs: Vec::new(),
            clock_ms: 0,
        }
    }

    /// The thinking level pi started with (from its `get_state`).
    #[must_use]
    pub fn with_thinking_level(mut self, level: octo_core::ThinkingLevel) -> Translator<M> {
        self.thinking_level = level;
        self
    }

    /// Whether a run is open.
    pub fn run_open(&self) -> bool {
        self.run.is_some()
    }

    /// Records a command sent to pi (as `o<offset>`).
    pub fn delivered(&mut self, delivered: Delivered) {
        if matches!(delivered.command, Command::Prompt(_)) {
            self.prompts.push_back(delivered.clone());
        }
        self.unsettled.push_back(delivered);
    }

    fn settle(&mut self, offset: Offset) -> Option<Delivered> {
        let at = self.unsettled.iter().position(|d| d.offset == offset)?;
        self.unsettled.remove(at)
    }

    fn first_unsettled(&self, predicate: impl Fn(&Command) -> bool) -> Option<Offset> {
        self.unsettled
            .iter()
            .find(|d| predicate(&d.command))
            .map(|d| d.offset)
    }

    fn open_run(
        &mut self,
        cause: Option<Offset>,
        manual_compact: Option<Delivered>,
        out: &mut Output,
    ) -> RunId {
        let id = self.mint.run_id();
        self.run = Some(OpenRun { id, manual_compact });
        self.last_stop_reason = None;
        out.events
            .push(Event::AgentWorking(AgentWorking { run_id: id, cause }));
        id
    }

    fn close_run(&mut self, out: &mut Output, terminal: Event) {
        // Dialogs still open when the run ends are cancelled, on both sides; those at their
        // deadline were timed out by pi (its timer runs slightly ahead of ours).
        let now = self.clock_ms;
        let (timed_out, open): (Vec<_>, Vec<_>) = std::mem::take(&mut self.inputs)
            .into_iter()
            .partition(|(_, deadline)| {
                deadline.is_some_and(|deadline| deadline - INPUT_DEADLINE_SLACK_MS <= now)
            });
        cancel_dialogs(out, timed_out, InputOutcome::TimedOut);
        cancel_dialogs(out, open, InputOutcome::Cancelled);
        out.events.push(terminal);
        self.run = None;
        self.probe = None;
        self.message = None;
        // Prompts the run ended before pi took them are discarded, visibly.
        let discarded: Vec<Delivered> = std::mem::take(&mut self.prompts).into_iter().collect();
        for prompt in discarded {
            if self.settle(prompt.offset).is_some() {
                out.events.push(Event::CommandFailed(CommandFailed {
                    command_id: prompt.command_id,
                    error: error(
                        ErrorCode::Discarded,
                        "the run ended before the prompt reached the agent",
                    ),
                    cause: prompt.offset,
                }));
            }
        }
    }

    /// An `extension_ui_request`: dialogs become `input.requested`, notifications `notice`; the
    /// rest (status lines, widgets, titles, editor text) are for pi's own TUI.
    fn ui_request(&mut self, record: &Value, now_ms: Ms, out: &mut Output) {
        let request_id = text(record, "id");
        let optional = |key: &str| record.get(key).and_then(Value::as_str).map(str::to_owned);
        let kind = match record.get("method").and_then(Value::as_str) {
            Some("select") => InputKind::Select,
            Some("confirm") => InputKind::Confirm,
            Some("input") => InputKind::Input,
            Some("editor") => InputKind::Editor,
            Some("notify") => {
                let level = match record.get("notifyType").and_then(Value::as_str) {
                    Some("warning") => NoticeLevel::Warning,
                    Some("error") => NoticeLevel::Error,
                    _ => NoticeLevel::Info,
                };
                out.events.push(Event::Notice(Notice {
                    level,
                    text: text(record, "message"),
                }));
                return;
            }
            _ => return,
        };
        let timeout_ms = record.get("timeout").and_then(Value::as_u64);
        let deadline =
            timeout_ms.map(|ms| now_ms.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)));
        self.inputs.push((request_id.clone(), deadline));
        out.events.push(Event::InputRequested(InputRequested {
            request_id,
            kind,
            title: text(record, "title"),
            message: optional("message"),
            options: record
                .get("options")
                .and_then(Value::as_array)
                .map(|options| {
                    options
                        .iter()
                        .filter_map(|o| o.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            placeholder: optional("placeholder"),
            prefill: optional("prefill"),
            timeout_ms,
        }));
    }

    /// An `input.respond` delivered: pi's `extension_ui_response` and the settling
    /// `input.resolved`, or `command.failed{invalid_state}` when the dialog is no longer open.
    pub fn answer(&mut self, delivered: &Delivered) -> Output {
        let mut out = Output::default();
        let Command::InputRespond(respond) = &delivered.command else {
            return out;
        };
        let Some(index) = self
            .inputs
            .iter()
            .position(|(id, _)| id == &respond.request_id)
        else {
            out.events.push(Event::CommandFailed(CommandFailed {
                command_id: delivered.command_id,
                error: error(
                    ErrorCode::InvalidState,
                    "the input request is no longer open (answered, cancelled or timed out)",
                )
                .with_ref(respond.request_id.clone()),
                cause: delivered.offset,
            }));
            return out;
        };
        self.inputs.remove(index);
        out.to_pi
            .push(ui_response(&respond.request_id, &respond.answer));
        let outcome = match respond.answer {
            octo_core::command::InputAnswer::Cancelled => InputOutcome::Cancelled,
            _ => InputOutcome::Answered,
        };
        out.events.push(Event::InputResolved(InputResolved {
            request_id: respond.request_id.clone(),
            outcome,
            cause: Some(delivered.offset),
        }));
        out
    }

    /// The earliest deadline of an open dialog.
    pub fn input_deadline(&self) -> Option<Ms> {
        self.inputs
            .iter()
            .filter_map(|(_, deadline)| *deadline)
            .min()
    }

    /// Dialogs past their deadline at `now_ms`: answered `cancelled` to pi, `input.resolved
    /// {timed_out}` here.
    pub fn expire_inputs(&mut self, now_ms: Ms) -> Output {
        self.clock_ms = self.clock_ms.max(now_ms);
        let mut out = Output::default();
        let (expired, open): (Vec<_>, Vec<_>) = std::mem::take(&mut self.inputs)
            .into_iter()
            .partition(|(_, deadline)| deadline.is_some_and(|deadline| deadline <= now_ms));
        self.inputs = open;
        cancel_dialogs(&mut out, expired, InputOutcome::TimedOut);
        out
    }

    /// Translates one record of pi's stdout, read at `now_ms`.
    pub fn stdout(&mut self, record: &Value, now_ms: Ms) -> Output {
        self.clock_ms = self.clock_ms.max(now_ms);
        let mut out = Output::default();
        let kind = record
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match kind {
            "response" => self.response(record, &mut out),
            "agent_start" => {
                if self.run.is_none() {
                    let cause = self
                        .prompts
                        .front()
                        .map(|p| p.offset)
                        .or_else(|| self.first_unsettled(|c| matches!(c, Command::Compact(_))));
                    self.open_run(cause, None, &mut out);
                }
                // A retry or overflow compaction restarts inside the open run: cancel a
                // candidate end.
                self.probe = None;
            }
            "agent_end" if self.run.is_some() => {
                self.probes_sent += 1;
                let id = format!("q{}", self.probes_sent);
                out.to_pi
                    .push(serde_json::json!({"id": id, "type": "get_state"}));
                self.probe = Some(id);
            }
            "message_start" | "message_end" | "message_update" => {
                self.message_event(kind, record, now_ms, &mut out)
            }
            "tool_execution_start" => {
                let id = text(record, "toolCallId");
                self.tools_started_ms.insert(id.clone(), now_ms);
                out.events.push(Event::ToolStart(ToolStart {
                    tool_call_id: id,
                    name: text(record, "toolName"),
                    input: record.get("args").cloned().unwrap_or(Value::Null),
                }));
            }
            "tool_execution_update" => {
                let output = result_text(record.get("partialResult"));
                if !output.is_empty() {
                    out.events.push(Event::ToolProgress(ToolProgress {
                        tool_call_id: text(record, "toolCallId"),
                        text: output,
                    }));
                }
            }
            "extension_ui_request" => self.ui_request(record, now_ms, &mut out),
            "extension_error" => {
                let detail = record
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("an extension failed");
                out.events.push(Event::Notice(Notice {
                    level: NoticeLevel::Warning,
                    text: format!("{} {}", text(record, "extensionPath"), detail)
                        .trim()
                        .to_owned(),
                }));
            }
            "tool_execution_end" => {
                let id = text(record, "toolCallId");
                let started = self.tools_started_ms.remove(&id).unwrap_or(now_ms);
                out.events.push(Event::ToolEnd(ToolEnd {
                    tool_call_id: id,
                    name: text(record, "toolName"),
                    is_error: record
                        .get("isError")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    duration_ms: u64::try_from(now_ms - started).unwrap_or(0),
                }));
            }
            "compaction_start" => {
                self.probe = None;
                let reason = match record.get("reason").and_then(Value::as_str) {
                    Some("threshold") => CompactReason::Threshold,
                    Some("overflow") => CompactReason::Overflow,
                    _ => CompactReason::Manual,
                };
                let run_id = match &self.run {
                    Some(run) => run.id,
                    None => {
                        let compact = self
                            .unsettled
                            .iter()
                            .find(|d| matches!(d.command, Command::Compact(_)))
                            .cloned();
                        let cause = compact.as_ref().map(|d| d.offset);
                        self.open_run(cause, compact, &mut out)
                    }
                };
                out.events
                    .push(Event::CompactStart(CompactStart { run_id, reason }));
            }
            "compaction_end" => self.compaction_end(record, &mut out),
            "auto_retry_start" => {
                self.probe = None;
                if let Some(run) = &self.run {
                    out.events.push(Event::RetryStart(RetryStart {
                        run_id: run.id,
                        attempt: u32::try_from(number(record, "attempt")).unwrap_or(u32::MAX),
                        max_attempts: u32::try_from(number(record, "maxAttempts"))
                            .unwrap_or(u32::MAX),
                        delay_ms: number(record, "delayMs"),
                        error: text(record, "errorMessage"),
                    }));
                }
            }
            "auto_retry_end" => {
                if let Some(run) = &self.run {
                    let success = record
                        .get("success")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    let run_id = run.id;
                    out.events.push(Event::RetryEnd(RetryEnd {
                        run_id,
                        attempt: u32::try_from(number(record, "attempt")).unwrap_or(u32::MAX),
                        success,
                    }));
                    if !success {
                        let message = text(record, "finalError");
                        let failed = Event::RunFailed(RunFailed {
                            run_id,
                            error: error(ErrorCode::ProviderError, message),
                            recoverable: true,
                        });
                        self.close_run(&mut out, failed);
                    }
                }
            }
            // turn_*, queue_update and the rest carry nothing canonical.
            _ => {}
        }
        out
    }

    fn response(&mut self, record: &Value, out: &mut Output) {
        let id = text(record, "id");
        let success = record
            .get("success")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if self.probe.as_deref() == Some(id.as_str()) && success {
            let data = record.get("data").cloned().unwrap_or(Value::Null);
            let busy = data
                .get("isStreaming")
                .and_then(Value::as_bool)
                .unwrap_or(false)
                || data
                    .get("isCompacting")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
            if !busy {
                self.end_run(out);
            }
            return;
        }
        let Some(offset) = id
            .strip_prefix('o')
            .and_then(|n| n.parse::<u64>().ok())
            .and_then(|n| Offset::new(n).ok())
        else {
            return;
        };
        if !success {
            if let Some(delivered) = self.settle(offset) {
                self.prompts.retain(|p| p.offset != offset);
                out.events.push(Event::CommandFailed(CommandFailed {
                    command_id: delivered.command_id,
                    error: error(ErrorCode::HarnessRejected, text(record, "error")),
                    cause: offset,
                }));
            }
            return;
        }
        let Some(delivered) = self.unsettled.iter().find(|d| d.offset == offset).cloned() else {
            return;
        };
        match &delivered.command {
            Command::SetModel(set) => {
                self.provider.clone_from(&set.provider);
                self.model_id.clone_from(&set.model_id);
                self.settle(offset);
                out.events
                    .push(Event::ModelChanged(octo_core::event::ModelChanged {
                        provider: set.provider.clone(),
                        model_id: set.model_id.clone(),
                        thinking_level: self.thinking_level,
                        cause: Some(offset),
                    }));
            }
            Command::SetThinkingLevel(set) => {
                self.settle(offset);
                self.thinking_level = set.level;
                out.events
                    .push(Event::ModelChanged(octo_core::event::ModelChanged {
                        provider: self.provider.clone(),
                        model_id: self.model_id.clone(),
                        thinking_level: set.level,
                        cause: Some(offset),
                    }));
            }
            // pi answers `abort` after the run settled; with no run open there was nothing to
            // abort, and the gateway refuses that (invalid_state) before delivery.
            _ => {}
        }
    }

    /// The confirmed end of the open run, by the last assistant stop reason.
    fn end_run(&mut self, out: &mut Output) {
        let Some(run) = &self.run else { return };
        let run_id = run.id;
        let abort = self.first_unsettled(|c| matches!(c, Command::Abort(_)));
        let terminal = match self.last_stop_reason {
            Some(StopReason::Aborted) => {
                if let Some(abort) = abort {
                    self.settle(abort);
                }
                Event::AgentIdle(AgentIdle {
                    run_id,
                    outcome: IdleOutcome::Aborted,
                    cause: abort,
                })
            }
            Some(StopReason::Error) => Event::RunFailed(RunFailed {
                run_id,
                error: error(ErrorCode::ProviderError, "the model provider failed"),
                recoverable: true,
            }),
            _ => Event::AgentIdle(AgentIdle {
                run_id,
                outcome: IdleOutcome::Completed,
                cause: None,
            }),
        };
        self.close_run(out, terminal);
    }

    fn compaction_end(&mut self, record: &Value, out: &mut Output) {
        let Some(run) = &self.run else { return };
        let run_id = run.id;
        let manual = run.manual_compact.clone();
        let result = record.get("result").filter(|r| !r.is_null());
        let aborted = record
            .get("aborted")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let ok = result.is_some() && !aborted;
        let cause = manual.as_ref().map(|d| d.offset);
        if let Some(offset) = cause {
            self.settle(offset);
        }
        out.events.push(Event::CompactEnd(CompactEnd {
            run_id,
            ok,
            will_retry: record
                .get("willRetry")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            summary: result
                .and_then(|r| r.get("summary"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            tokens_before: result
                .and_then(|r| r.get("tokensBefore"))
                .and_then(Value::as_u64),
            error: record
                .get("errorMessage")
                .and_then(Value::as_str)
                .map(str::to_owned),
            cause,
        }));
        if manual.is_some() {
            let terminal = if ok {
                Event::AgentIdle(AgentIdle {
                    run_id,
                    outcome: IdleOutcome::Completed,
                    cause: None,
                })
            } else {
                Event::RunFailed(RunFailed {
                    run_id,
                    error: error(ErrorCode::HarnessRejected, "the compaction failed"),
                    recoverable: true,
                })
            };
            self.close_run(out, terminal);
        }
    }

    fn message_event(&mut self, kind: &str, record: &Value, now_ms: Ms, out: &mut Output) {
        let message = record.get("message").unwrap_or(&Value::Null);
        match (
            message
                .get("role")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            kind,
        ) {
            ("user", "message_end") => {
                let Some(prompt) = self.prompts.pop_front() else {
                    return;
                };
                self.settle(prompt.offset);
                let Command::Prompt(body) = &prompt.command else {
                    return;
                };
                out.events.push(Event::MessageCreated(MessageCreated {
                    message: self.user_message(body, now_ms),
                    command_id: Some(prompt.command_id),
                    cause: Some(prompt.offset),
                }));
            }
            ("assistant", "message_start") => {
                let Some(run) = &self.run else { return };
                let id = self.mint.message_id();
                out.events
                    .push(Event::StreamMessageStart(StreamMessageStart {
                        message_id: id,
                        run_id: run.id,
                        role: Role::Assistant,
                        provider: message
                            .get("provider")
                            .and_then(Value::as_str)
                            .unwrap_or(&self.provider)
                            .to_owned(),
                        model_id: message
                            .get("model")
                            .and_then(Value::as_str)
                            .unwrap_or(&self.model_id)
                            .to_owned(),
                    }));
                self.message = Some(OpenMessage {
                    id,
                    parts: HashMap::new(),
                    created_ms: now_ms,
                });
            }
            ("assistant", "message_update") => self.delta(record, out),
            ("assistant", "message_end") => self.assistant_end(message, now_ms, out),
            ("toolResult", "message_end") => {
                let content = self.result_content(message.get("content"));
                let part = ToolResultPart {
                    id: self.mint.part_id(),
                    tool_call_id: text(message, "toolCallId"),
                    name: text(message, "toolName"),
                    is_error: message
                        .get("isError")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    content,
                    details: message.get("details").filter(|d| !d.is_null()).cloned(),
                };
                out.events.push(Event::MessageCreated(MessageCreated {
                    message: Message::new(
                        self.mint.message_id(),
                        Role::Tool,
                        vec![Part::ToolResult(part)],
                        now_ms,
                    ),
                    command_id: None,
                    cause: None,
                }));
            }
            _ => {}
        }
    }

    fn user_message(&mut self, prompt: &Prompt, now_ms: Ms) -> Message {
        let mut parts = vec![Part::Text(TextPart {
            id: self.mint.part_id(),
            text: prompt.text.clone(),
            truncated: false,
        })];
        for image in &prompt.images {
            parts.push(Part::Image(ImagePart {
                id: self.mint.part_id(),
                media_type: image.media_type.as_str().to_owned(),
                data: Some(image.data.clone()),
                omitted_bytes: None,
            }));
        }
        for path in &prompt.files {
            parts.push(Part::FileRef(FileRefPart {
                id: self.mint.part_id(),
                path: path.clone(),
            }));
        }
        Message::new(self.mint.message_id(), Role::User, parts, now_ms)
    }

    fn delta(&mut self, record: &Value, out: &mut Output) {
        let Some(message) = self.message.as_mut() else {
            return;
        };
        let event = record.get("assistantMessageEvent").unwrap_or(&Value::Null);
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let index = event
            .get("contentIndex")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let delta = text(event, "delta");
        if !matches!(kind, "text_delta" | "thinking_delta" | "toolcall_delta") {
            return;
        }
        let first = !message.parts.contains_key(&index);
        if delta.is_empty() && !(first && kind == "toolcall_delta") {
            return;
        }
        let mint = &mut self.mint;
        let part_id = *message.parts.entry(index).or_insert_with(|| mint.part_id());
        let index_u32 = u32::try_from(index).unwrap_or(u32::MAX);
        let message_id = message.id;
        out.events.push(match kind {
            "text_delta" => Event::StreamTextDelta(StreamTextDelta {
                message_id,
                part_id,
                index: index_u32,
                delta,
            }),
            "thinking_delta" => Event::StreamThinkingDelta(StreamThinkingDelta {
                message_id,
                part_id,
                index: index_u32,
                delta,
            }),
            _ => {
                // pi 0.73.1 names the call only in the snapshot; 1.x also on the event.
                let snapshot = event
                    .get("partial")
                    .and_then(|p| p.get("content"))
                    .and_then(|c| c.get(usize::try_from(index).unwrap_or(usize::MAX)));
                let (tool_call_id, name) = if first {
                    (
                        event
                            .get("id")
                            .or_else(|| snapshot.and_then(|s| s.get("id")))
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                        event
                            .get("toolName")
                            .or_else(|| snapshot.and_then(|s| s.get("name")))
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                    )
                } else {
                    (None, None)
                };
                Event::StreamToolCallDelta(StreamToolCallDelta {
                    message_id,
                    part_id,
                    index: index_u32,
                    delta,
                    tool_call_id,
                    name,
                })
            }
        });
    }

    fn assistant_end(&mut self, message: &Value, now_ms: Ms, out: &mut Output) {
        let Some(run) = &self.run else { return };
        let run_id = run.id;
        let open = match self.message.take() {
            Some(open) => open,
            // An assistant message with no start (should not happen): give it ids now.
            None => OpenMessage {
                id: self.mint.message_id(),
                parts: HashMap::new(),
                created_ms: now_ms,
            },
        };
        let stop = stop_reason(message);
        self.last_stop_reason = stop;
        let parts = assistant_parts(message.get("content"), |index| {
            open.parts
                .get(&index)
                .copied()
                .unwrap_or_else(|| self.mint.part_id())
        });
        let provider = message
            .get("provider")
            .and_then(Value::as_str)
            .unwrap_or(&self.provider)
            .to_owned();
        let model_id = message
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or(&self.model_id)
            .to_owned();
        let harness_ref = message
            .get("responseId")
            .and_then(Value::as_str)
            .map(|id| serde_json::Map::from_iter([("response_id".to_owned(), Value::from(id))]));
        out.events.push(Event::StreamMessageEnd(StreamMessageEnd {
            message: Message {
                id: open.id,
                role: Role::Assistant,
                parts,
                created_ms: open.created_ms,
                completed_ms: Some(now_ms),
                provider: Some(provider.clone()),
                model_id: Some(model_id.clone()),
                stop_reason: stop,
                error: message
                    .get("errorMessage")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                harness_ref,
            },
        }));
        let usage = message.get("usage").unwrap_or(&Value::Null);
        out.events.push(Event::UsageRecorded(UsageRecorded {
            run_id,
            message_id: open.id,
            provider,
            model_id,
            input_tokens: number(usage, "input"),
            output_tokens: number(usage, "output"),
            cache_read_tokens: number(usage, "cacheRead"),
            cache_write_tokens: number(usage, "cacheWrite"),
            cost_usd: usage
                .get("cost")
                .and_then(|c| c.get("total"))
                .and_then(Value::as_f64)
                .filter(|c| c.is_finite()),
        }));
    }

    fn result_content(&mut self, content: Option<&Value>) -> Vec<ResultContent> {
        result_content(content, || self.mint.part_id())
    }

    /// No progress for `limit_ms`: the open run ends with `run.timed_out` (PROTOCOL.md 8); the
    /// caller aborts and, if need be, kills pi. Later output of that run is not translated.
    pub fn timed_out(&mut self, limit_ms: u64) -> Output {
        let mut out = Output::default();
        if let Some(run) = &self.run {
            let terminal = Event::RunTimedOut(octo_core::event::RunTimedOut {
                run_id: run.id,
                limit: octo_core::event::TimeoutLimit::NoProgress,
                limit_ms,
            });
            self.close_run(&mut out, terminal);
        }
        out
    }

    /// The pi process ended (PROTOCOL.md 15, last row).
    pub fn exited(
        &mut self,
        reason: HarnessExitReason,
        code: Option<i32>,
        signal: Option<i32>,
        stderr_tail: Option<String>,
    ) -> Output {
        let mut out = Output::default();
        for (request_id, _) in std::mem::take(&mut self.inputs) {
            out.events.push(Event::InputResolved(InputResolved {
                request_id,
                outcome: InputOutcome::Cancelled,
                cause: None,
            }));
        }
        if let Some(run) = self.run.take() {
            out.events.push(Event::RunFailed(RunFailed {
                run_id: run.id,
                error: error(
                    ErrorCode::HarnessExited,
                    "the agent process exited during the run",
                ),
                recoverable: true,
            }));
        }
        self.prompts.clear();
        self.message = None;
        self.probe = None;
        for delivered in std::mem::take(&mut self.unsettled) {
            out.events.push(Event::CommandFailed(CommandFailed {
                command_id: delivered.command_id,
                error: error(
                    ErrorCode::HarnessExited,
                    "the agent process exited before answering",
                ),
                cause: delivered.offset,
            }));
        }
        out.events.push(Event::HarnessExited(HarnessExited {
            reason,
            code,
            signal,
            stderr_tail,
            error: None,
            cause: None,
        }));
        out
    }
}

/// The text of a tool result snapshot (`{content: [{type: "text", text}]}`).
/// The parts of a pi assistant message's `content` blocks (text, thinking, tool calls), the
/// block at `index` under the id `id_for(index)`.
pub fn assistant_parts(
    content: Option<&Value>,
    mut id_for: impl FnMut(u64) -> PartId,
) -> Vec<Part> {
    let Some(content) = content.and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut parts = Vec::new();
    for (index, block) in content.iter().enumerate() {
        let id = id_for(index as u64);
        match block.get("type").and_then(Value::as_str) {
            Some("text") => parts.push(Part::Text(TextPart {
                id,
                text: text(block, "text"),
                truncated: false,
            })),
            Some("thinking") => parts.push(Part::Thinking(ThinkingPart {
                id,
                text: text(block, "thinking"),
                signature: block
                    .get("thinkingSignature")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            })),
            Some("toolCall") => parts.push(Part::ToolCall(ToolCallPart {
                id,
                tool_call_id: text(block, "id"),
                name: text(block, "name"),
                input: block.get("arguments").cloned().unwrap_or(Value::Null),
            })),
            _ => {}
        }
    }
    parts
}

/// The text and image blocks of a pi tool result's (or user message's) `content`, each under a
/// fresh id from `id`. Image bytes are not kept (PROTOCOL.md 7).
pub fn result_content(
    content: Option<&Value>,
    mut id: impl FnMut() -> PartId,
) -> Vec<ResultContent> {
    let Some(blocks) = content.and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut parts = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => parts.push(ResultContent::Text(TextPart {
                id: id(),
                text: text(block, "text"),
                truncated: false,
            })),
            Some("image") => parts.push(ResultContent::Image(ImagePart {
                id: id(),
                media_type: text(block, "mimeType"),
                data: None,
                omitted_bytes: None,
            })),
            _ => {}
        }
    }
    parts
}

fn result_text(result: Option<&Value>) -> String {
    result
        .and_then(|r| r.get("content"))
        .and_then(Value::as_array)
        .map(|blocks| {
            blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect::<String>()
        })
        .unwrap_or_default()
}
