//! One fixed value of every command, event, part, log entry body kind, client frame, server frame
//! and runner message, with fixed UUIDv7s (the style of PROTOCOL.md 16), for snapshots and
//! deterministic round trips. Optional fields are filled on some values and left out on others.

use octo_core::command::*;
use octo_core::entry::{Body, Kind, LogEntry, Producer, UnknownBody};
use octo_core::error::{Error, ErrorCode};
use octo_core::event::*;
use octo_core::frame::*;
use octo_core::history::*;
use octo_core::ids::*;
use octo_core::message::*;
use octo_core::runner::*;
use octo_core::{Bytes, Encoding};

/// The session id of PROTOCOL.md 16.
pub const S: &str = "0193f1a0-5c2e-7b40-9a11-3c5e7d9f0b21";

/// A fixed UUIDv7 numbered `n`.
pub fn uuid(n: u64) -> String {
    format!("0193f1a0-5c2e-7b40-9a11-{n:012x}")
}

pub fn sid() -> SessionId {
    SessionId::parse(S).expect("uuid7")
}
pub fn sid2() -> SessionId {
    SessionId::parse(&uuid(0x5e55)).expect("uuid7")
}
pub fn cid(n: u64) -> CommandId {
    CommandId::parse(&uuid(0xc000 + n)).expect("uuid7")
}
pub fn mid(n: u64) -> MessageId {
    MessageId::parse(&uuid(0x3000 + n)).expect("uuid7")
}
pub fn pid(n: u64) -> PartId {
    PartId::parse(&uuid(0x9000 + n)).expect("uuid7")
}
pub fn rid() -> RunId {
    RunId::parse(&uuid(0x7000)).expect("uuid7")
}
pub fn tid() -> TerminalId {
    TerminalId::parse(&uuid(0x7e00)).expect("uuid7")
}
pub fn off(value: u64) -> Offset {
    Offset::new(value).expect("small offset")
}
pub fn req(text: &str) -> ReqId {
    ReqId::new(text).expect("req id")
}
pub fn user() -> UserId {
    UserId::new("u1").expect("user id")
}
pub fn model() -> ModelRef {
    ModelRef {
        provider: "fake".into(),
        model_id: "fake-model".into(),
    }
}
pub fn err(code: ErrorCode, message: &str, reference: Option<&str>) -> Error {
    Error {
        code,
        message: message.into(),
        reference: reference.map(str::to_owned),
    }
}
pub fn blob() -> BlobRef {
    BlobRef {
        blob: BlobHash::from_bytes([0xb1; 32]),
        size: 2_000_000,
    }
}

pub fn commands() -> Vec<Command> {
    vec![
        Command::SessionCreate(SessionCreate {
            harness: "pi".into(),
            workspace: "demo".into(),
            model: Some(model()),
            thinking_level: Some(ThinkingLevel::Off),
            title: Some("First steps".into()),
        }),
        Command::SessionRename(SessionRename {
            title: "Renamed".into(),
        }),
        Command::SessionDelete(SessionDelete {}),
        Command::Fork(Fork {
            at_offset: off(120),
            title: Some("Try again".into()),
            new_session_id: Some(sid2()),
        }),
        Command::Prompt(Prompt {
            text: "Run `echo hi` and tell me the output.".into(),
            images: vec![ImageInput {
                media_type: ImageMediaType::Png,
                data: Bytes(vec![0x89, b'P', b'N', b'G']),
            }],
            files: vec!["src/main.rs".into()],
            when_busy: Some(WhenBusy::Steer),
        }),
        Command::Abort(Abort {}),
        Command::SetModel(SetModel {
            provider: "fake".into(),
            model_id: "fake-model-2".into(),
        }),
        Command::SetThinkingLevel(SetThinkingLevel {
            level: ThinkingLevel::Xhigh,
        }),
        Command::Compact(Compact {
            instructions: Some("keep the test plan".into()),
        }),
        Command::InputRespond(InputRespond {
            request_id: "q1".into(),
            answer: InputAnswer::Value("yes".into()),
        }),
    ]
}

/// Variants of commands with their other shapes (minimal fields, the other answers).
pub fn command_shapes() -> Vec<Command> {
    vec![
        Command::SessionCreate(SessionCreate {
            harness: "pi".into(),
            workspace: ".".into(),
            model: None,
            thinking_level: None,
            title: None,
        }),
        Command::Fork(Fork {
            at_offset: off(120),
            title: None,
            new_session_id: None,
        }),
        Command::Prompt(Prompt {
            text: "hi".into(),
            ..Default::default()
        }),
        Command::Compact(Compact { instructions: None }),
        Command::InputRespond(InputRespond {
            request_id: "q2".into(),
            answer: InputAnswer::Confirmed(false),
        }),
        Command::InputRespond(InputRespond {
            request_id: "q3".into(),
            answer: InputAnswer::Cancelled,
        }),
    ]
}

pub fn user_message() -> Message {
    Message {
        id: mid(1),
        role: Role::User,
        parts: vec![
            Part::Text(TextPart {
                id: pid(1),
                text: "Run `echo hi` and tell me the output.".into(),
                truncated: false,
            }),
            Part::FileRef(FileRefPart {
                id: pid(7),
                path: "src/main.rs".into(),
            }),
        ],
        created_ms: 1_795_549_163_664,
        completed_ms: None,
        provider: None,
        model_id: None,
        stop_reason: None,
        error: None,
        harness_ref: None,
    }
}

pub fn assistant_message() -> Message {
    let mut harness_ref = serde_json::Map::new();
    harness_ref.insert("response_id".into(), "chatcmpl-aeb22a9300d0".into());
    Message {
        id: mid(2),
        role: Role::Assistant,
        parts: vec![
            Part::Thinking(ThinkingPart {
                id: pid(8),
                text: "The user wants a shell command.".into(),
                signature: Some("sig-1".into()),
            }),
            Part::Text(TextPart {
                id: pid(2),
                text: "Running it.".into(),
                truncated: true,
            }),
            Part::ToolCall(ToolCallPart {
                id: pid(3),
                tool_call_id: "call_93268fa1".into(),
                name: "bash".into(),
                input: serde_json::json!({"command": "echo hi"}),
            }),
        ],
        created_ms: 1_795_549_163_752,
        completed_ms: Some(1_795_549_163_880),
        provider: Some("fake".into()),
        model_id: Some("fake-model".into()),
        stop_reason: Some(StopReason::ToolUse),
        error: None,
        harness_ref: Some(harness_ref),
    }
}

pub fn tool_message() -> Message {
    Message {
        id: mid(3),
        role: Role::Tool,
        parts: vec![Part::ToolResult(ToolResultPart {
            id: pid(4),
            tool_call_id: "call_93268fa1".into(),
            name: "bash".into(),
            is_error: false,
            content: vec![
                ResultContent::Text(TextPart {
                    id: pid(5),
                    text: "hi\n".into(),
                    truncated: false,
                }),
                ResultContent::Image(ImagePart {
                    id: pid(6),
                    media_type: "image/png".into(),
                    data: None,
                    omitted_bytes: Some(3_000_000),
                }),
            ],
            details: Some(serde_json::json!({"exit_code": 0})),
        })],
        created_ms: 1_795_549_163_902,
        completed_ms: None,
        provider: None,
        model_id: None,
        stop_reason: None,
        error: None,
        harness_ref: None,
    }
}

/// One part of every type.
pub fn parts() -> Vec<Part> {
    let mut parts: Vec<Part> = [user_message(), assistant_message(), tool_message()]
        .into_iter()
        .flat_map(|message| message.parts)
        .collect();
    parts.push(Part::Image(ImagePart {
        id: pid(10),
        media_type: "image/jpeg".into(),
        data: Some(Bytes(vec![0xff, 0xd8, 0xff])),
        omitted_bytes: None,
    }));
    parts
}

pub fn events() -> Vec<Event> {
    vec![
        Event::SessionCreated(SessionCreated {
            harness: "pi".into(),
            workspace: "demo".into(),
            model: Some(model()),
            thinking_level: Some(ThinkingLevel::Off),
            title: Some("First steps".into()),
            rerun_of: None,
            cause: off(100),
        }),
        Event::SessionForked(SessionForked {
            parent_session_id: sid(),
            parent_offset: off(120),
            harness: "pi".into(),
            workspace: "demo".into(),
            model: Some(model()),
            thinking_level: Some(ThinkingLevel::Low),
            title: None,
            user_messages_inherited: 1,
            cause: off(130),
        }),
        Event::SessionRenamed(SessionRenamed {
            title: "Renamed".into(),
            source: RenameSource::User,
            cause: Some(off(131)),
        }),
        Event::SessionDeleted(SessionDeleted { cause: off(132) }),
        Event::HarnessStarted(HarnessStarted {
            harness: "pi".into(),
            version: "0.73.1".into(),
            pid: 4242,
            harness_session_id: "01a20f11-f060-710e-9285-b01c7507ce4b".into(),
            harness_session_file: Some("/pi/sessions/a.jsonl".into()),
            resumed: false,
            forked_from: Some(ForkedFrom {
                harness_session_file: "/pi/sessions/parent.jsonl".into(),
                entry_id: Some("e7".into()),
            }),
            model: Some(model()),
            thinking_level: Some(ThinkingLevel::Off),
            cause: Some(off(100)),
        }),
        Event::HarnessExited(HarnessExited {
            reason: HarnessExitReason::Crashed,
            code: Some(1),
            signal: Some(9),
            stderr_tail: Some("panic: boom\n".into()),
            error: Some(err(ErrorCode::HarnessExited, "pi exited with code 1", None)),
            cause: None,
        }),
        Event::AgentWorking(AgentWorking {
            run_id: rid(),
            cause: Some(off(103)),
        }),
        Event::AgentIdle(AgentIdle {
            run_id: rid(),
            outcome: IdleOutcome::Completed,
            cause: None,
        }),
        Event::RunFailed(RunFailed {
            run_id: rid(),
            error: err(ErrorCode::ProviderError, "rate limited", None),
            recoverable: true,
        }),
        Event::RunTimedOut(RunTimedOut {
            run_id: rid(),
            limit: TimeoutLimit::NoProgress,
            limit_ms: 900_000,
        }),
        Event::RetryStart(RetryStart {
            run_id: rid(),
            attempt: 1,
            max_attempts: 3,
            delay_ms: 2000,
            error: "overloaded".into(),
        }),
        Event::RetryEnd(RetryEnd {
            run_id: rid(),
            attempt: 1,
            success: true,
        }),
        Event::CompactStart(CompactStart {
            run_id: rid(),
            reason: CompactReason::Manual,
        }),
        Event::CompactEnd(CompactEnd {
            run_id: rid(),
            ok: true,
            will_retry: false,
            summary: Some("We ran echo.".into()),
            tokens_before: Some(12_000),
            error: None,
            cause: Some(off(140)),
        }),
        Event::MessageCreated(MessageCreated {
            message: user_message(),
            command_id: Some(cid(2)),
            cause: Some(off(103)),
        }),
        Event::StreamMessageStart(StreamMessageStart {
            message_id: mid(2),
            run_id: rid(),
            role: Role::Assistant,
            provider: "fake".into(),
            model_id: "fake-model".into(),
        }),
        Event::StreamTextDelta(StreamTextDelta {
            message_id: mid(2),
            part_id: pid(2),
            index: 1,
            delta: "Running it.".into(),
        }),
        Event::StreamThinkingDelta(StreamThinkingDelta {
            message_id: mid(2),
            part_id: pid(8),
            index: 0,
            delta: "The user wants".into(),
        }),
        Event::StreamToolCallDelta(StreamToolCallDelta {
            message_id: mid(2),
            part_id: pid(3),
            index: 2,
            delta: "{\"command\": \"echo hi\"}".into(),
            tool_call_id: Some("call_93268fa1".into()),
            name: Some("bash".into()),
        }),
        Event::StreamMessageEnd(StreamMessageEnd {
            message: assistant_message(),
        }),
        Event::UsageRecorded(UsageRecorded {
            run_id: rid(),
            message_id: mid(2),
            provider: "fake".into(),
            model_id: "fake-model".into(),
            input_tokens: 10,
            output_tokens: 5,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            cost_usd: Some(0.0125),
        }),
        Event::ToolStart(ToolStart {
            tool_call_id: "call_93268fa1".into(),
            name: "bash".into(),
            input: serde_json::json!({"command": "echo hi"}),
        }),
        Event::ToolProgress(ToolProgress {
            tool_call_id: "call_93268fa1".into(),
            text: "hi\n".into(),
        }),
        Event::ToolEnd(ToolEnd {
            tool_call_id: "call_93268fa1".into(),
            name: "bash".into(),
            is_error: false,
            duration_ms: 148,
        }),
        Event::ModelChanged(ModelChanged {
            provider: "fake".into(),
            model_id: "fake-model-2".into(),
            thinking_level: ThinkingLevel::Medium,
            cause: Some(off(150)),
        }),
        Event::InputRequested(InputRequested {
            request_id: "q1".into(),
            kind: InputKind::Select,
            title: "Pick one".into(),
            message: Some("Which branch?".into()),
            options: vec!["main".into(), "dev".into()],
            placeholder: None,
            prefill: None,
            timeout_ms: Some(60_000),
        }),
        Event::InputResolved(InputResolved {
            request_id: "q1".into(),
            outcome: InputOutcome::Answered,
            cause: Some(off(152)),
        }),
        Event::Notice(Notice {
            level: NoticeLevel::Warning,
            text: "extension failed to load".into(),
        }),
        Event::CommandFailed(CommandFailed {
            command_id: cid(3),
            error: err(ErrorCode::InvalidState, "no open run", Some("idle")),
            cause: off(153),
        }),
        Event::HistoryConversationUpserted(HistoryConversationUpserted {
            source_id: "pi".into(),
            external_id: "01a20f11-f060-710e-9285-b01c7507ce4b".into(),
            readable_id: "cold-lamp".into(),
            title: Some("Imported".into()),
            created_ms: 1_795_549_000_000,
            updated_ms: Some(1_795_549_100_000),
            model: Some("fake-model".into()),
            provider: Some(String::new()),
            workspace: Some("/home/u1/demo".into()),
            tokens_in: Some(100),
            tokens_out: Some(50),
            cost_usd: Some(0.5),
            metadata_json: "{\"k\":1}".into(),
            harness: Some("pi".into()),
            platform_id: None,
            parent_conversation_id: None,
            parent_message_idx: None,
            fork_type: None,
        }),
        Event::HistoryMessageUpserted(HistoryMessageUpserted {
            idx: 0,
            message_id: mid(9),
            role: HistoryRole::User,
            content: TextOrBlob::Inline("hello".into()),
            sent_content: None,
            parts_json: TextOrBlob::Blob(blob()),
            created_ms: Some(1_795_549_000_500),
            model: None,
            provider: None,
            harness: Some("pi".into()),
            tokens: Some(3),
            cost_usd: None,
            metadata_json: String::new(),
            sender_json: "{\"type\":\"user\",\"id\":\"u1\",\"name\":\"alice\"}".into(),
            client_id: Some("c-1".into()),
        }),
        Event::HistoryConversationTouched(HistoryConversationTouched {
            updated_ms: 1_795_549_200_000,
        }),
        Event::HistoryConversationUpdated(HistoryConversationUpdated {
            title: Some(String::new()),
            fork_type: Some("fork".into()),
            updated_ms: 1_795_549_300_000,
            ..Default::default()
        }),
        Event::HistoryConversationDeleted(HistoryConversationDeleted {}),
        Event::HistoryTagAdded(HistoryTagAdded { tag: "rust".into() }),
        Event::HistoryTagRemoved(HistoryTagRemoved { tag: "rust".into() }),
        Event::HistoryAttachmentAdded(HistoryAttachmentAdded {
            attachment_id: AttachmentId::parse(&uuid(0xa7)).expect("uuid7"),
            message_id: mid(9),
            mime_type: "image/png".into(),
            filename: Some("shot.png".into()),
            data: blob(),
        }),
    ]
}

fn entry(offset: u64, kind: Kind, command_id: Option<CommandId>, body: Body) -> LogEntry {
    LogEntry {
        offset: off(offset),
        ts_ms: 1_795_549_163_000,
        user_id: user(),
        session_id: sid(),
        kind,
        producer: Producer {
            id: ProducerId::new("gw:n1").expect("producer"),
            seq: 500 + offset,
        },
        command_id,
        body,
    }
}

/// One entry of each body kind: command, event, unknown.
pub fn log_entries() -> Vec<LogEntry> {
    vec![
        entry(
            103,
            Kind::Command,
            Some(cid(2)),
            Body::Command(Command::Prompt(Prompt {
                text: "hi".into(),
                ..Default::default()
            })),
        ),
        entry(
            104,
            Kind::Event,
            None,
            Body::Event(Event::AgentWorking(AgentWorking {
                run_id: rid(),
                cause: Some(off(103)),
            })),
        ),
        entry(
            105,
            Kind::Event,
            None,
            Body::Unknown(UnknownBody {
                type_name: "future.event".into(),
            }),
        ),
    ]
}

fn agent(frame: AgentFrame) -> ClientFrame {
    ClientFrame::Agent(frame)
}

/// Every client frame: each command as framed, then each request.
pub fn client_frames() -> Vec<ClientFrame> {
    let mut frames: Vec<ClientFrame> = commands()
        .into_iter()
        .enumerate()
        .map(|(idx, command)| {
            let session_id = (!command.mints_session()).then(sid);
            agent(AgentFrame::Command(CommandFrame {
                command: command.client_view(),
                command_id: cid(u64::try_from(idx).expect("small")),
                session_id,
            }))
        })
        .collect();
    let files = |request: FilesRequest| {
        ClientFrame::Files(FilesFrame {
            request,
            id: req("f1"),
            session_id: sid(),
        })
    };
    frames.extend([
        agent(AgentFrame::Subscribe(Subscribe {
            id: req("r1"),
            session_id: sid(),
            after: None,
        })),
        agent(AgentFrame::Unsubscribe(Unsubscribe {
            id: req("r1"),
            session_id: sid(),
        })),
        agent(AgentFrame::SubscribeSessions(SubscribeSessions {
            id: req("s1"),
            after: Some(off(140)),
        })),
        agent(AgentFrame::UnsubscribeSessions(UnsubscribeSessions {
            id: req("s1"),
        })),
        agent(AgentFrame::Replay(Replay {
            id: req("p1"),
            session_id: sid(),
            after: Some(off(100)),
            until: Some(off(120)),
            limit: Some(50),
        })),
        agent(AgentFrame::Snapshot(Snapshot {
            id: req("n1"),
            session_id: sid(),
            at: Some(off(120)),
            before: None,
        })),
        agent(AgentFrame::SubscribeLog(SubscribeLog {
            id: req("l1"),
            after: None,
            kinds: vec![Kind::Event],
            types: vec!["stream.*".into()],
            all_users: false,
        })),
        agent(AgentFrame::UnsubscribeLog(UnsubscribeLog { id: req("l1") })),
        files(FilesRequest::List(FilesList {
            path: "src".into(),
            hidden: true,
        })),
        files(FilesRequest::Stat(FilesStat {
            path: "src/main.rs".into(),
        })),
        files(FilesRequest::Read(FilesRead {
            path: "src/main.rs".into(),
            offset: Some(0),
            length: Some(4096),
        })),
        files(FilesRequest::Write(FilesWrite {
            path: "notes.txt".into(),
            data: Bytes(b"hello\n".to_vec()),
            mode: WriteMode::Create,
            parents: true,
        })),
        files(FilesRequest::Rename(FilesRename {
            from: "notes.txt".into(),
            to: "docs/notes.txt".into(),
            overwrite: false,
        })),
        files(FilesRequest::Delete(FilesDelete {
            path: "docs".into(),
            recursive: true,
        })),
        ClientFrame::Terminal(TerminalFrame::Open(TerminalOpen {
            id: req("t1"),
            session_id: sid(),
            cols: 120,
            rows: 40,
        })),
        ClientFrame::Terminal(TerminalFrame::Input(TerminalInput {
            terminal_id: tid(),
            data: Bytes(b"ls\r".to_vec()),
        })),
        ClientFrame::Terminal(TerminalFrame::Resize(TerminalResize {
            terminal_id: tid(),
            cols: 80,
            rows: 24,
        })),
        ClientFrame::Terminal(TerminalFrame::Close(TerminalClose { terminal_id: tid() })),
        ClientFrame::System(SystemFrame::Ping(Ping { id: req("ping-1") })),
    ]);
    frames
}

pub fn summary() -> SessionSummary {
    SessionSummary {
        session_id: sid(),
        title: Some("First steps".into()),
        preview: "Run `echo hi` and tell me the output.".into(),
        harness: "pi".into(),
        workspace: "demo".into(),
        parent: Some(ParentRef {
            session_id: sid2(),
            offset: off(90),
        }),
        created_ms: 1_795_549_163_000,
        updated_ms: 1_795_549_163_960,
        updated_offset: off(120),
        run_state: RunState::Idle,
        model: Some(model()),
        message_count: 4,
        usage: Usage {
            input_tokens: 20,
            output_tokens: 10,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            cost_usd: 0.0,
        },
        deleted: false,
    }
}

pub fn harness_info() -> HarnessInfo {
    HarnessInfo {
        name: "pi".into(),
        version: "0.73.1".into(),
        available: true,
        capabilities: vec!["images".into(), "steer".into(), "follow_up".into()],
        models: vec![ModelInfo {
            provider: "fake".into(),
            model_id: "fake-model".into(),
            name: "Fake Model".into(),
            context_window: 32_000,
            max_output_tokens: 4096,
            reasoning: false,
            images: false,
        }],
        thinking_levels: vec![ThinkingLevel::Off],
    }
}

fn file_entry() -> FileEntry {
    FileEntry {
        name: "main.rs".into(),
        path: "src/main.rs".into(),
        kind: FileKind::File,
        size: 42,
        mtime_ms: 1_795_549_000_000,
        mode: 0o644,
    }
}

fn error_frame(id: Option<&str>, terminal_id: Option<TerminalId>, error: Error) -> ErrorFrame {
    ErrorFrame {
        id: id.map(req),
        terminal_id,
        error,
    }
}

/// Every server frame type on every channel, `error` included on each.
pub fn server_frames() -> Vec<ServerFrame> {
    use octo_core::frame::AgentServerFrame as A;
    let entries = log_entries();
    vec![
        ServerFrame::Agent(A::Ack(Ack {
            command_id: cid(2),
            status: AckStatus::Accepted,
            offset: Some(off(103)),
            session_id: Some(sid()),
            error: None,
        })),
        ServerFrame::Agent(A::Ack(Ack::rejected(
            cid(4),
            err(ErrorCode::SessionNotFound, "no such session", Some(S)),
        ))),
        ServerFrame::Agent(A::Subscribed(Subscribed {
            id: req("r1"),
            session_id: sid(),
            head: off(101),
        })),
        ServerFrame::Agent(A::Entry(EntryFrame {
            session_id: sid(),
            entry: entries[1].clone(),
        })),
        ServerFrame::Agent(A::Unsubscribed(Unsubscribed {
            id: req("r1"),
            session_id: sid(),
        })),
        ServerFrame::Agent(A::Sessions(Sessions {
            id: req("s1"),
            head: off(151),
            items: vec![summary()],
            done: true,
        })),
        ServerFrame::Agent(A::SessionSummary(SessionSummaryFrame {
            summary: summary(),
        })),
        ServerFrame::Agent(A::UnsubscribedSessions(UnsubscribedSessions {
            id: req("s1"),
        })),
        ServerFrame::Agent(A::ReplayResult(ReplayResult {
            id: req("p1"),
            session_id: sid(),
            entries: entries[..2].to_vec(),
            next_after: None,
        })),
        ServerFrame::Agent(A::SnapshotResult(SnapshotResult {
            id: req("n1"),
            session_id: sid(),
            as_of: off(120),
            summary: summary(),
            messages: vec![user_message()],
            open_run: Some(OpenRun {
                run_id: rid(),
                draft: Some(assistant_message()),
                phase: RunPhase::ToolRunning {
                    name: "bash".into(),
                },
            }),
            next_before: Some(off(20)),
        })),
        ServerFrame::Agent(A::SubscribedLog(SubscribedLog {
            id: req("l1"),
            head: Some(off(151)),
        })),
        ServerFrame::Agent(A::UnsubscribedLog(UnsubscribedLog { id: req("l1") })),
        ServerFrame::Agent(A::Error(error_frame(
            Some("r9"),
            None,
            err(
                ErrorCode::LimitExceeded,
                "too many subscriptions",
                Some("max_subscriptions"),
            ),
        ))),
        ReplyResult::ListResult(ListResult {
            path: "src".into(),
            entries: vec![file_entry()],
            truncated: false,
        })
        .into_server_frame(req("f1")),
        ReplyResult::StatResult(StatResult {
            entry: file_entry(),
        })
        .into_server_frame(req("f2")),
        ReplyResult::ReadResult(ReadResult {
            path: "src/main.rs".into(),
            offset: 0,
            data: Bytes(b"fn main() {}\n".to_vec()),
            size: 13,
            eof: true,
        })
        .into_server_frame(req("f3")),
        ReplyResult::WriteResult(WriteResult {
            path: "notes.txt".into(),
            size: 6,
        })
        .into_server_frame(req("f4")),
        ReplyResult::RenameResult(RenameResult {
            from: "notes.txt".into(),
            to: "docs/notes.txt".into(),
        })
        .into_server_frame(req("f5")),
        ReplyResult::DeleteResult(DeleteResult {
            path: "docs".into(),
        })
        .into_server_frame(req("f6")),
        ServerFrame::Files(FilesServerFrame::Error(error_frame(
            Some("f7"),
            None,
            err(
                ErrorCode::PathOutsideRoot,
                "path leaves the workspace",
                Some("../etc"),
            ),
        ))),
        ReplyResult::Opened(Opened { terminal_id: tid() }).into_server_frame(req("t1")),
        ServerFrame::Terminal(TerminalServerFrame::Output(TerminalOutput {
            terminal_id: tid(),
            data: Bytes(b"README.md\r\n".to_vec()),
        })),
        ServerFrame::Terminal(TerminalServerFrame::Exited(TerminalExited {
            terminal_id: tid(),
            code: Some(0),
            signal: None,
        })),
        ServerFrame::Terminal(TerminalServerFrame::Error(error_frame(
            None,
            Some(tid()),
            err(ErrorCode::NotFound, "no such terminal", Some(&uuid(0x7e00))),
        ))),
        ServerFrame::System(SystemServerFrame::Hello(Hello {
            protocol: ProtocolVersion::CURRENT,
            encoding: Encoding::Json,
            server_version: "0.1.0".into(),
            demo: false,
            workspaces_root: "/home/u1/workspaces".into(),
            connection_id: ConnectionId::parse("0193f1a2-0b00-7e00-8000-000000000001")
                .expect("uuid7"),
            user: UserInfo {
                id: user(),
                name: "alice".into(),
            },
            capabilities: vec!["files".into(), "terminal".into()],
            harnesses: vec![harness_info()],
            limits: HelloLimits::default(),
        })),
        ServerFrame::System(SystemServerFrame::Pong(Pong {
            id: req("ping-1"),
            ts_ms: 1_795_549_163_000,
        })),
        ServerFrame::System(SystemServerFrame::Harnesses(HarnessesFrame {
            harnesses: vec![harness_info()],
        })),
        ServerFrame::System(SystemServerFrame::Error(error_frame(
            None,
            None,
            err(
                ErrorCode::MalformedFrame,
                "frame is not a valid Json map",
                None,
            ),
        ))),
    ]
}

fn ctx() -> SessionCtx {
    SessionCtx {
        harness: "pi".into(),
        workspace_root: "/home/u1/workspaces/demo".into(),
        model: Some(model()),
        thinking_level: Some(ThinkingLevel::Off),
        harness_session_file: Some("/pi/sessions/a.jsonl".into()),
        fork: Some(ForkCtx {
            ancestor_harness_session_file: Some("/pi/sessions/parent.jsonl".into()),
            user_messages_inherited: 1,
            last_inherited_user_text: Some("Run the check.".into()),
        }),
    }
}

pub fn runner_to_gateway() -> Vec<RunnerToGateway> {
    vec![
        RunnerToGateway::Hello(RunnerHello {
            proto: RUNNER_PROTO,
            runner_id: ProducerId::new("rn-u1").expect("producer"),
            boot_id: BootId::parse("0193f1a0-0000-7000-8000-00000000b001").expect("uuid7"),
            version: "0.1.0".into(),
            harnesses: vec![harness_info()],
            resume_after: Some(off(142)),
        }),
        RunnerToGateway::Events(RunnerEvents {
            events: vec![RunnerEvent {
                seq: 31,
                session_id: sid(),
                body: Event::StreamTextDelta(StreamTextDelta {
                    message_id: mid(2),
                    part_id: pid(2),
                    index: 0,
                    delta: "Here is".into(),
                }),
            }],
        }),
        RunnerToGateway::Reply(RunnerReply {
            req: 7,
            outcome: ReplyOutcome::Result(ReplyResult::WriteResult(WriteResult {
                path: "notes.txt".into(),
                size: 6,
            })),
        }),
        RunnerToGateway::Reply(RunnerReply {
            req: 8,
            outcome: ReplyOutcome::Error(err(ErrorCode::NotFound, "no such file", Some("x"))),
        }),
        RunnerToGateway::TermOutput(TerminalOutput {
            terminal_id: tid(),
            data: Bytes(b"$ ".to_vec()),
        }),
        RunnerToGateway::TermExit(TerminalExited {
            terminal_id: tid(),
            code: None,
            signal: Some(1),
        }),
        RunnerToGateway::Ping(LinkPing { n: 1 }),
        RunnerToGateway::Pong(LinkPing { n: 2 }),
    ]
}

pub fn gateway_to_runner() -> Vec<GatewayToRunner> {
    vec![
        GatewayToRunner::Welcome(Welcome {
            proto: RUNNER_PROTO,
            user_id: user(),
            acked_seq: 30,
        }),
        GatewayToRunner::Command(RunnerCommand {
            offset: off(103),
            session_id: sid(),
            command_id: cid(2),
            body: Command::Prompt(Prompt {
                text: "Run `echo hi` and tell me the output.".into(),
                ..Default::default()
            }),
            ctx: ctx(),
        }),
        GatewayToRunner::Acked(Acked { seq: 3 }),
        GatewayToRunner::Resume(Resume { from_seq: 29 }),
        GatewayToRunner::Request(RunnerRequest {
            req: 7,
            session_id: sid(),
            ctx: ctx(),
            op: RunnerOp::FilesWrite(FilesWrite {
                path: "notes.txt".into(),
                data: Bytes(b"hello\n".to_vec()),
                mode: WriteMode::Create,
                parents: false,
            }),
        }),
        GatewayToRunner::Request(RunnerRequest {
            req: 9,
            session_id: sid(),
            ctx: ctx(),
            op: RunnerOp::TerminalOpen(TerminalSize { cols: 80, rows: 24 }),
        }),
        GatewayToRunner::TermInput(TerminalInput {
            terminal_id: tid(),
            data: Bytes(b"ls\r".to_vec()),
        }),
        GatewayToRunner::TermResize(TerminalResize {
            terminal_id: tid(),
            cols: 100,
            rows: 30,
        }),
        GatewayToRunner::TermClose(TerminalClose { terminal_id: tid() }),
        GatewayToRunner::Ping(LinkPing { n: 3 }),
        GatewayToRunner::Pong(LinkPing { n: 4 }),
        GatewayToRunner::Bye(Bye {
            reason: ByeReason::Superseded,
        }),
    ]
}
