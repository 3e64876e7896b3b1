//! Proptest strategies for every protocol type: ids, values, parts, messages, commands, events,
//! log entries, client and server frames and runner messages.
//!
//! Values are generated so that they round-trip exactly: floats are finite, `any` JSON values are
//! small, optional `any` fields are never `Some(null)` (which the protocol reads as absent), and
//! client frames carry only what a client may send (no server-decided `new_session_id`, no
//! `session_id` on `session.create`).

use std::fmt::Debug;

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, Union};

use octo_core::command::*;
use octo_core::entry::{Body, Kind, LogEntry, Producer, UnknownBody};
use octo_core::error::{Error, ErrorCode};
use octo_core::event::*;
use octo_core::frame::*;
use octo_core::history::*;
use octo_core::ids::*;
use octo_core::limits::OFFSET_MAX;
use octo_core::message::*;
use octo_core::runner::*;
use octo_core::{Bytes, Encoding};

/// `Union` of boxed strategies, for catalogues longer than `prop_oneof!` handles comfortably.
macro_rules! union {
    ($($strategy:expr),+ $(,)?) => {
        Union::new(vec![$($strategy.boxed()),+])
    };
}

/// 16 random bytes made into a version-7 UUID.
fn uuid7_bytes() -> impl Strategy<Value = [u8; 16]> {
    any::<[u8; 16]>().prop_map(|mut bytes| {
        bytes[6] = (bytes[6] & 0x0f) | 0x70;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        bytes
    })
}

macro_rules! arb_uuid_id {
    ($name:ident, $ty:ty) => {
        pub fn $name() -> impl Strategy<Value = $ty> {
            uuid7_bytes().prop_map(|bytes| <$ty>::from_bytes(bytes).expect("a v7 uuid"))
        }
    };
}

arb_uuid_id!(session_id, SessionId);
arb_uuid_id!(command_id, CommandId);
arb_uuid_id!(message_id, MessageId);
arb_uuid_id!(part_id, PartId);
arb_uuid_id!(run_id, RunId);
arb_uuid_id!(connection_id, ConnectionId);
arb_uuid_id!(terminal_id, TerminalId);
arb_uuid_id!(attachment_id, AttachmentId);
arb_uuid_id!(boot_id, BootId);

pub fn offset() -> impl Strategy<Value = Offset> {
    prop_oneof![0..1000u64, 0..=OFFSET_MAX].prop_map(|value| Offset::new(value).expect("in range"))
}

pub fn ms() -> impl Strategy<Value = Ms> {
    prop_oneof![
        Just(0i64),
        1_700_000_000_000i64..1_900_000_000_000,
        any::<i64>()
    ]
}

pub fn req_id() -> impl Strategy<Value = ReqId> {
    "[A-Za-z0-9._:-]{1,64}".prop_map(|text| ReqId::new(text).expect("valid req id"))
}

pub fn user_id() -> impl Strategy<Value = UserId> {
    "[a-z0-9:_-]{1,24}".prop_map(|text| UserId::new(text).expect("valid user id"))
}

pub fn producer_id() -> impl Strategy<Value = ProducerId> {
    "(gw|hstry|rn):[a-z0-9-]{1,16}".prop_map(|text| ProducerId::new(text).expect("valid producer"))
}

/// Short text of any printable characters, including non-ASCII.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof!["\\PC{0,16}", "[a-z ]{0,8}", Just(String::new())]
}

pub fn opt_text() -> impl Strategy<Value = Option<String>> {
    option::of(text())
}

pub fn bytes() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..48).prop_map(Bytes)
}

/// A finite float: small dyadic ones and any finite `f64` (JSON decoding is exact with
/// serde_json's `float_roundtrip`).
pub fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1_000_000_000i64..1_000_000_000).prop_map(|numerator| numerator as f64 / 1024.0),
        any::<f64>().prop_filter("JSON has no NaN or infinity", |value| value.is_finite()),
    ]
}

/// A small JSON value (the protocol's `any`).
pub fn json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        float().prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map("[a-z_]{0,6}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A JSON value that is not `null` (for `any?` fields, where `null` means absent).
pub fn json_not_null() -> impl Strategy<Value = serde_json::Value> {
    json().prop_filter("null reads as absent", |value| !value.is_null())
}

pub fn json_map() -> impl Strategy<Value = serde_json::Map<String, serde_json::Value>> {
    btree_map("[a-z_]{1,8}", json(), 0..3).prop_map(|map| map.into_iter().collect())
}

pub fn error_code() -> impl Strategy<Value = ErrorCode> {
    proptest::sample::select(ErrorCode::ALL.to_vec())
}

pub fn error() -> impl Strategy<Value = Error> {
    (error_code(), text(), opt_text()).prop_map(|(code, message, reference)| Error {
        code,
        message,
        reference,
    })
}

pub fn model_ref() -> impl Strategy<Value = ModelRef> {
    (text(), text()).prop_map(|(provider, model_id)| ModelRef { provider, model_id })
}

pub fn thinking_level() -> impl Strategy<Value = ThinkingLevel> {
    proptest::sample::select(ThinkingLevel::ALL.to_vec())
}

pub fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::User), Just(Role::Assistant), Just(Role::Tool)]
}

pub fn stop_reason() -> impl Strategy<Value = StopReason> {
    prop_oneof![
        Just(StopReason::Stop),
        Just(StopReason::Length),
        Just(StopReason::ToolUse),
        Just(StopReason::Error),
        Just(StopReason::Aborted),
    ]
}

pub fn text_part() -> impl Strategy<Value = TextPart> {
    (part_id(), text(), any::<bool>()).prop_map(|(id, text, truncated)| TextPart {
        id,
        text,
        truncated,
    })
}

pub fn image_part() -> impl Strategy<Value = ImagePart> {
    (
        part_id(),
        text(),
        option::of(bytes()),
        option::of(any::<u64>()),
    )
        .prop_map(|(id, media_type, data, omitted_bytes)| ImagePart {
            id,
            media_type,
            data,
            omitted_bytes,
        })
}

pub fn part() -> impl Strategy<Value = Part> {
    let content = vec(
        prop_oneof![
            text_part().prop_map(ResultContent::Text),
            image_part().prop_map(ResultContent::Image),
        ],
        0..3,
    );
    prop_oneof![
        text_part().prop_map(Part::Text),
        (part_id(), text(), opt_text()).prop_map(|(id, text, signature)| Part::Thinking(
            ThinkingPart {
                id,
                text,
                signature
            }
        )),
        (part_id(), text(), text(), json()).prop_map(|(id, tool_call_id, name, input)| {
            Part::ToolCall(ToolCallPart {
                id,
                tool_call_id,
                name,
                input,
            })
        }),
        (
            part_id(),
            text(),
            text(),
            any::<bool>(),
            content,
            option::of(json_not_null())
        )
            .prop_map(|(id, tool_call_id, name, is_error, content, details)| {
                Part::ToolResult(ToolResultPart {
                    id,
                    tool_call_id,
                    name,
                    is_error,
                    content,
                    details,
                })
            }),
        image_part().prop_map(Part::Image),
        (part_id(), text()).prop_map(|(id, path)| Part::FileRef(FileRefPart { id, path })),
    ]
}

pub fn message() -> impl Strategy<Value = Message> {
    (
        (message_id(), role(), vec(part(), 0..4), ms()),
        (
            option::of(ms()),
            opt_text(),
            opt_text(),
            option::of(stop_reason()),
            opt_text(),
            option::of(json_map()),
        ),
    )
        .prop_map(
            |(
                (id, role, parts, created_ms),
                (completed_ms, provider, model_id, stop_reason, error, harness_ref),
            )| Message {
                id,
                role,
                parts,
                created_ms,
                completed_ms,
                provider,
                model_id,
                stop_reason,
                error,
                harness_ref,
            },
        )
}

pub fn usage() -> impl Strategy<Value = Usage> {
    (any::<[u64; 4]>(), float()).prop_map(|(tokens, cost_usd)| Usage {
        input_tokens: tokens[0],
        output_tokens: tokens[1],
        cache_read_tokens: tokens[2],
        cache_write_tokens: tokens[3],
        cost_usd,
    })
}

pub fn image_input() -> impl Strategy<Value = ImageInput> {
    let media_type = prop_oneof![
        Just(ImageMediaType::Png),
        Just(ImageMediaType::Jpeg),
        Just(ImageMediaType::Gif),
        Just(ImageMediaType::Webp),
    ];
    (media_type, bytes()).prop_map(|(media_type, data)| ImageInput { media_type, data })
}

/// Every command, including server-decided values (as logged).
pub fn command() -> BoxedStrategy<Command> {
    union![
        (
            text(),
            text(),
            option::of(model_ref()),
            option::of(thinking_level()),
            opt_text()
        )
            .prop_map(|(harness, workspace, model, thinking_level, title)| {
                Command::SessionCreate(SessionCreate {
                    harness,
                    workspace,
                    model,
                    thinking_level,
                    title,
                })
            }),
        text().prop_map(|title| Command::SessionRename(SessionRename { title })),
        Just(Command::SessionDelete(SessionDelete {})),
        (offset(), opt_text(), option::of(session_id())).prop_map(
            |(at_offset, title, new_session_id)| Command::Fork(Fork {
                at_offset,
                title,
                new_session_id
            })
        ),
        (
            text(),
            vec(image_input(), 0..3),
            vec(text(), 0..3),
            option::of(prop_oneof![Just(WhenBusy::Steer), Just(WhenBusy::FollowUp)])
        )
            .prop_map(|(text, images, files, when_busy)| Command::Prompt(Prompt {
                text,
                images,
                files,
                when_busy
            })),
        Just(Command::Abort(Abort {})),
        (text(), text())
            .prop_map(|(provider, model_id)| Command::SetModel(SetModel { provider, model_id })),
        thinking_level().prop_map(|level| Command::SetThinkingLevel(SetThinkingLevel { level })),
        opt_text().prop_map(|instructions| Command::Compact(Compact { instructions })),
        (
            text(),
            prop_oneof![
                text().prop_map(InputAnswer::Value),
                any::<bool>().prop_map(InputAnswer::Confirmed),
                Just(InputAnswer::Cancelled),
            ]
        )
            .prop_map(|(request_id, answer)| Command::InputRespond(InputRespond {
                request_id,
                answer
            })),
    ]
    .boxed()
}

fn blob_ref() -> impl Strategy<Value = BlobRef> {
    (any::<[u8; 32]>(), any::<u64>()).prop_map(|(hash, size)| BlobRef {
        blob: BlobHash::from_bytes(hash),
        size,
    })
}

fn text_or_blob() -> impl Strategy<Value = TextOrBlob> {
    prop_oneof![
        text().prop_map(TextOrBlob::Inline),
        blob_ref().prop_map(TextOrBlob::Blob),
    ]
}

fn history_role() -> impl Strategy<Value = HistoryRole> {
    prop_oneof![
        Just(HistoryRole::User),
        Just(HistoryRole::Assistant),
        Just(HistoryRole::System),
        Just(HistoryRole::Tool),
        Just(HistoryRole::Other),
    ]
}

fn history_event() -> BoxedStrategy<Event> {
    union![
        (
            (text(), text(), text(), opt_text(), ms(), option::of(ms())),
            (
                opt_text(),
                opt_text(),
                opt_text(),
                option::of(any::<i64>()),
                option::of(any::<i64>())
            ),
            (
                option::of(float()),
                text(),
                opt_text(),
                opt_text(),
                opt_text()
            ),
            (option::of(any::<i32>()), opt_text()),
        )
            .prop_map(
                |(
                    (source_id, external_id, readable_id, title, created_ms, updated_ms),
                    (model, provider, workspace, tokens_in, tokens_out),
                    (cost_usd, metadata_json, harness, platform_id, parent_conversation_id),
                    (parent_message_idx, fork_type),
                )| {
                    Event::HistoryConversationUpserted(HistoryConversationUpserted {
                        source_id,
                        external_id,
                        readable_id,
                        title,
                        created_ms,
                        updated_ms,
                        model,
                        provider,
                        workspace,
                        tokens_in,
                        tokens_out,
                        cost_usd,
                        metadata_json,
                        harness,
                        platform_id,
                        parent_conversation_id,
                        parent_message_idx,
                        fork_type,
                    })
                }
            ),
        (
            (
                any::<i32>(),
                message_id(),
                history_role(),
                text_or_blob(),
                text_or_blob()
            ),
            (
                option::of(ms()),
                opt_text(),
                opt_text(),
                opt_text(),
                option::of(any::<i64>())
            ),
            (option::of(float()), text(), text(), opt_text(), opt_text()),
        )
            .prop_map(
                |(
                    (idx, message_id, role, content, parts_json),
                    (created_ms, model, provider, harness, tokens),
                    (cost_usd, metadata_json, sender_json, client_id, sent_content),
                )| {
                    Event::HistoryMessageUpserted(HistoryMessageUpserted {
                        idx,
                        message_id,
                        role,
                        sent_content: sent_content.map(TextOrBlob::Inline),
                        content,
                        parts_json,
                        created_ms,
                        model,
                        provider,
                        harness,
                        tokens,
                        cost_usd,
                        metadata_json,
                        sender_json,
                        client_id,
                    })
                }
            ),
        ms().prop_map(
            |updated_ms| Event::HistoryConversationTouched(HistoryConversationTouched {
                updated_ms
            })
        ),
        (
            (
                opt_text(),
                opt_text(),
                opt_text(),
                opt_text(),
                opt_text(),
                opt_text()
            ),
            (
                opt_text(),
                opt_text(),
                opt_text(),
                option::of(any::<i32>()),
                opt_text()
            ),
            ms(),
        )
            .prop_map(
                |(
                    (title, workspace, model, provider, metadata_json, readable_id),
                    (harness, platform_id, parent_conversation_id, parent_message_idx, fork_type),
                    updated_ms,
                )| {
                    Event::HistoryConversationUpdated(HistoryConversationUpdated {
                        title,
                        workspace,
                        model,
                        provider,
                        metadata_json,
                        readable_id,
                        harness,
                        platform_id,
                        parent_conversation_id,
                        parent_message_idx,
                        fork_type,
                        updated_ms,
                    })
                }
            ),
        Just(Event::HistoryConversationDeleted(
            HistoryConversationDeleted {}
        )),
        text().prop_map(|tag| Event::HistoryTagAdded(HistoryTagAdded { tag })),
        text().prop_map(|tag| Event::HistoryTagRemoved(HistoryTagRemoved { tag })),
        (
            attachment_id(),
            message_id(),
            text(),
            opt_text(),
            blob_ref()
        )
            .prop_map(|(attachment_id, message_id, mime_type, filename, data)| {
                Event::HistoryAttachmentAdded(HistoryAttachmentAdded {
                    attachment_id,
                    message_id,
                    mime_type,
                    filename,
                    data,
                })
            }),
    ]
    .boxed()
}

fn session_event() -> BoxedStrategy<Event> {
    union![
        (
            (
                text(),
                text(),
                option::of(model_ref()),
                option::of(thinking_level())
            ),
            (opt_text(), option::of(session_id()), offset()),
        )
            .prop_map(
                |((harness, workspace, model, thinking_level), (title, rerun_of, cause))| {
                    Event::SessionCreated(SessionCreated {
                        harness,
                        workspace,
                        model,
                        thinking_level,
                        title,
                        rerun_of,
                        cause,
                    })
                }
            ),
        (
            (session_id(), offset(), text(), text()),
            (
                option::of(model_ref()),
                option::of(thinking_level()),
                opt_text(),
                any::<u32>(),
                offset()
            ),
        )
            .prop_map(
                |(
                    (parent_session_id, parent_offset, harness, workspace),
                    (model, thinking_level, title, user_messages_inherited, cause),
                )| {
                    Event::SessionForked(SessionForked {
                        parent_session_id,
                        parent_offset,
                        harness,
                        workspace,
                        model,
                        thinking_level,
                        title,
                        user_messages_inherited,
                        cause,
                    })
                }
            ),
        (
            text(),
            prop_oneof![Just(RenameSource::User), Just(RenameSource::Harness)],
            option::of(offset())
        )
            .prop_map(
                |(title, source, cause)| Event::SessionRenamed(SessionRenamed {
                    title,
                    source,
                    cause
                })
            ),
        offset().prop_map(|cause| Event::SessionDeleted(SessionDeleted { cause })),
        (
            (
                text(),
                text(),
                any::<u32>(),
                text(),
                opt_text(),
                any::<bool>()
            ),
            (
                option::of((text(), opt_text())),
                option::of(model_ref()),
                option::of(thinking_level()),
                option::of(offset())
            ),
        )
            .prop_map(
                |(
                    (harness, version, pid, harness_session_id, harness_session_file, resumed),
                    (forked_from, model, thinking_level, cause),
                )| {
                    Event::HarnessStarted(HarnessStarted {
                        harness,
                        version,
                        pid,
                        harness_session_id,
                        harness_session_file,
                        resumed,
                        forked_from: forked_from.map(|(harness_session_file, entry_id)| {
                            ForkedFrom {
                                harness_session_file,
                                entry_id,
                            }
                        }),
                        model,
                        thinking_level,
                        cause,
                    })
                }
            ),
        (
            proptest::sample::select(vec![
                HarnessExitReason::Idle,
                HarnessExitReason::Deleted,
                HarnessExitReason::Crashed,
                HarnessExitReason::StartFailed,
                HarnessExitReason::Killed,
                HarnessExitReason::RunnerLost,
                HarnessExitReason::RunnerShutdown,
            ]),
            option::of(any::<i32>()),
            option::of(any::<i32>()),
            opt_text(),
            option::of(error()),
            option::of(offset()),
        )
            .prop_map(|(reason, code, signal, stderr_tail, error, cause)| {
                Event::HarnessExited(HarnessExited {
                    reason,
                    code,
                    signal,
                    stderr_tail,
                    error,
                    cause,
                })
            }),
    ]
    .boxed()
}

fn run_event() -> BoxedStrategy<Event> {
    union![
        (run_id(), option::of(offset()))
            .prop_map(|(run_id, cause)| Event::AgentWorking(AgentWorking { run_id, cause })),
        (
            run_id(),
            prop_oneof![Just(IdleOutcome::Completed), Just(IdleOutcome::Aborted)],
            option::of(offset())
        )
            .prop_map(|(run_id, outcome, cause)| Event::AgentIdle(AgentIdle {
                run_id,
                outcome,
                cause
            })),
        (run_id(), error(), any::<bool>()).prop_map(|(run_id, error, recoverable)| {
            Event::RunFailed(RunFailed {
                run_id,
                error,
                recoverable,
            })
        }),
        (
            run_id(),
            prop_oneof![
                Just(TimeoutLimit::NoProgress),
                Just(TimeoutLimit::MaxDuration)
            ],
            any::<u64>()
        )
            .prop_map(|(run_id, limit, limit_ms)| Event::RunTimedOut(RunTimedOut {
                run_id,
                limit,
                limit_ms
            })),
        (run_id(), any::<u32>(), any::<u32>(), any::<u64>(), text()).prop_map(
            |(run_id, attempt, max_attempts, delay_ms, error)| Event::RetryStart(RetryStart {
                run_id,
                attempt,
                max_attempts,
                delay_ms,
                error
            })
        ),
        (run_id(), any::<u32>(), any::<bool>()).prop_map(|(run_id, attempt, success)| {
            Event::RetryEnd(RetryEnd {
                run_id,
                attempt,
                success,
            })
        }),
        (
            run_id(),
            prop_oneof![
                Just(CompactReason::Manual),
                Just(CompactReason::Threshold),
                Just(CompactReason::Overflow)
            ]
        )
            .prop_map(|(run_id, reason)| Event::CompactStart(CompactStart { run_id, reason })),
        (
            (run_id(), any::<bool>(), any::<bool>()),
            (
                opt_text(),
                option::of(any::<u64>()),
                opt_text(),
                option::of(offset())
            ),
        )
            .prop_map(
                |((run_id, ok, will_retry), (summary, tokens_before, error, cause))| {
                    Event::CompactEnd(CompactEnd {
                        run_id,
                        ok,
                        will_retry,
                        summary,
                        tokens_before,
                        error,
                        cause,
                    })
                }
            ),
    ]
    .boxed()
}

fn message_event() -> BoxedStrategy<Event> {
    union![
        (message(), option::of(command_id()), option::of(offset())).prop_map(
            |(message, command_id, cause)| Event::MessageCreated(MessageCreated {
                message,
                command_id,
                cause
            })
        ),
        (message_id(), run_id(), role(), text(), text()).prop_map(
            |(message_id, run_id, role, provider, model_id)| {
                Event::StreamMessageStart(StreamMessageStart {
                    message_id,
                    run_id,
                    role,
                    provider,
                    model_id,
                })
            }
        ),
        (message_id(), part_id(), any::<u32>(), text()).prop_map(
            |(message_id, part_id, index, delta)| Event::StreamTextDelta(StreamTextDelta {
                message_id,
                part_id,
                index,
                delta
            })
        ),
        (message_id(), part_id(), any::<u32>(), text()).prop_map(
            |(message_id, part_id, index, delta)| {
                Event::StreamThinkingDelta(StreamThinkingDelta {
                    message_id,
                    part_id,
                    index,
                    delta,
                })
            }
        ),
        (
            message_id(),
            part_id(),
            any::<u32>(),
            text(),
            opt_text(),
            opt_text()
        )
            .prop_map(|(message_id, part_id, index, delta, tool_call_id, name)| {
                Event::StreamToolCallDelta(StreamToolCallDelta {
                    message_id,
                    part_id,
                    index,
                    delta,
                    tool_call_id,
                    name,
                })
            }),
        message().prop_map(|message| Event::StreamMessageEnd(StreamMessageEnd { message })),
        (
            (run_id(), message_id(), text(), text()),
            (any::<[u64; 4]>(), option::of(float())),
        )
            .prop_map(
                |((run_id, message_id, provider, model_id), (tokens, cost_usd))| {
                    Event::UsageRecorded(UsageRecorded {
                        run_id,
                        message_id,
                        provider,
                        model_id,
                        input_tokens: tokens[0],
                        output_tokens: tokens[1],
                        cache_read_tokens: tokens[2],
                        cache_write_tokens: tokens[3],
                        cost_usd,
                    })
                }
            ),
        (text(), text(), json()).prop_map(|(tool_call_id, name, input)| Event::ToolStart(
            ToolStart {
                tool_call_id,
                name,
                input
            }
        )),
        (text(), text()).prop_map(|(tool_call_id, text)| Event::ToolProgress(ToolProgress {
            tool_call_id,
            text
        })),
        (text(), text(), any::<bool>(), any::<u64>()).prop_map(
            |(tool_call_id, name, is_error, duration_ms)| Event::ToolEnd(ToolEnd {
                tool_call_id,
                name,
                is_error,
                duration_ms
            })
        ),
    ]
    .boxed()
}

fn other_event() -> BoxedStrategy<Event> {
    union![
        (text(), text(), thinking_level(), option::of(offset())).prop_map(
            |(provider, model_id, thinking_level, cause)| Event::ModelChanged(ModelChanged {
                provider,
                model_id,
                thinking_level,
                cause
            })
        ),
        (
            (
                text(),
                prop_oneof![
                    Just(InputKind::Select),
                    Just(InputKind::Confirm),
                    Just(InputKind::Input),
                    Just(InputKind::Editor)
                ],
                text(),
                opt_text()
            ),
            (
                vec(text(), 0..3),
                opt_text(),
                opt_text(),
                option::of(any::<u64>())
            ),
        )
            .prop_map(
                |(
                    (request_id, kind, title, message),
                    (options, placeholder, prefill, timeout_ms),
                )| {
                    Event::InputRequested(InputRequested {
                        request_id,
                        kind,
                        title,
                        message,
                        options,
                        placeholder,
                        prefill,
                        timeout_ms,
                    })
                }
            ),
        (
            text(),
            prop_oneof![
                Just(InputOutcome::Answered),
                Just(InputOutcome::Cancelled),
                Just(InputOutcome::TimedOut)
            ],
            option::of(offset())
        )
            .prop_map(
                |(request_id, outcome, cause)| Event::InputResolved(InputResolved {
                    request_id,
                    outcome,
                    cause
                })
            ),
        (
            prop_oneof![
                Just(NoticeLevel::Info),
                Just(NoticeLevel::Warning),
                Just(NoticeLevel::Error)
            ],
            text()
        )
            .prop_map(|(level, text)| Event::Notice(Notice { level, text })),
        (command_id(), error(), offset()).prop_map(|(command_id, error, cause)| {
            Event::CommandFailed(CommandFailed {
                command_id,
                error,
                cause,
            })
        }),
    ]
    .boxed()
}

/// Every event.
pub fn event() -> BoxedStrategy<Event> {
    union![
        session_event(),
        run_event(),
        message_event(),
        other_event(),
        history_event()
    ]
    .boxed()
}

/// A body `type` no build knows.
pub fn unknown_type() -> impl Strategy<Value = String> {
    "future\\.[a-z_]{1,12}"
}

/// A log entry whose kind, body and `command_id` agree, with bodies of every kind.
pub fn log_entry() -> BoxedStrategy<LogEntry> {
    let body = prop_oneof![
        event().prop_map(|event| (Kind::Event, None, Body::Event(event))),
        (command(), command_id()).prop_map(|(command, command_id)| (
            Kind::Command,
            Some(command_id),
            Body::Command(command)
        )),
        (
            unknown_type(),
            prop_oneof![Just(Kind::Event), Just(Kind::Command)]
        )
            .prop_map(|(type_name, kind)| (
                kind,
                None,
                Body::Unknown(UnknownBody { type_name })
            )),
    ];
    (
        offset(),
        ms(),
        user_id(),
        session_id(),
        producer_id(),
        any::<u64>(),
        body,
    )
        .prop_map(
            |(offset, ts_ms, user_id, session_id, producer, seq, (kind, command_id, body))| {
                LogEntry {
                    offset,
                    ts_ms,
                    user_id,
                    session_id,
                    kind,
                    producer: Producer { id: producer, seq },
                    command_id,
                    body,
                }
            },
        )
        .boxed()
}

fn files_request() -> impl Strategy<Value = FilesRequest> {
    prop_oneof![
        (text(), any::<bool>())
            .prop_map(|(path, hidden)| FilesRequest::List(FilesList { path, hidden })),
        text().prop_map(|path| FilesRequest::Stat(FilesStat { path })),
        (text(), option::of(any::<u64>()), option::of(any::<u32>())).prop_map(
            |(path, offset, length)| FilesRequest::Read(FilesRead {
                path,
                offset,
                length
            })
        ),
        (
            text(),
            bytes(),
            prop_oneof![
                Just(WriteMode::Create),
                Just(WriteMode::Overwrite),
                Just(WriteMode::Append)
            ],
            any::<bool>()
        )
            .prop_map(
                |(path, data, mode, parents)| FilesRequest::Write(FilesWrite {
                    path,
                    data,
                    mode,
                    parents
                })
            ),
        (text(), text(), any::<bool>()).prop_map(|(from, to, overwrite)| {
            FilesRequest::Rename(FilesRename {
                from,
                to,
                overwrite,
            })
        }),
        (text(), any::<bool>())
            .prop_map(|(path, recursive)| FilesRequest::Delete(FilesDelete { path, recursive })),
    ]
}

/// A command frame as a client sends it.
pub fn command_frame() -> impl Strategy<Value = CommandFrame> {
    (command(), command_id(), session_id()).prop_map(|(command, command_id, session_id)| {
        let session_id = (!command.mints_session()).then_some(session_id);
        CommandFrame {
            command: command.client_view(),
            command_id,
            session_id,
        }
    })
}

fn kinds() -> impl Strategy<Value = Vec<Kind>> {
    vec(prop_oneof![Just(Kind::Event), Just(Kind::Command)], 0..3)
}

/// Every client frame.
pub fn client_frame() -> BoxedStrategy<ClientFrame> {
    let agent = union![
        command_frame().prop_map(AgentFrame::Command),
        (req_id(), session_id(), option::of(offset())).prop_map(|(id, session_id, after)| {
            AgentFrame::Subscribe(Subscribe {
                id,
                session_id,
                after,
            })
        }),
        (req_id(), session_id())
            .prop_map(|(id, session_id)| AgentFrame::Unsubscribe(Unsubscribe { id, session_id })),
        (req_id(), option::of(offset()))
            .prop_map(|(id, after)| AgentFrame::SubscribeSessions(SubscribeSessions { id, after })),
        req_id().prop_map(|id| AgentFrame::UnsubscribeSessions(UnsubscribeSessions { id })),
        (
            req_id(),
            session_id(),
            option::of(offset()),
            option::of(offset()),
            option::of(any::<u32>())
        )
            .prop_map(
                |(id, session_id, after, until, limit)| AgentFrame::Replay(Replay {
                    id,
                    session_id,
                    after,
                    until,
                    limit
                })
            ),
        (
            req_id(),
            session_id(),
            option::of(offset()),
            option::of(offset())
        )
            .prop_map(
                |(id, session_id, at, before)| AgentFrame::Snapshot(Snapshot {
                    id,
                    session_id,
                    at,
                    before
                })
            ),
        (
            req_id(),
            option::of(offset()),
            kinds(),
            vec(text(), 0..3),
            any::<bool>()
        )
            .prop_map(
                |(id, after, kinds, types, all_users)| AgentFrame::SubscribeLog(SubscribeLog {
                    id,
                    after,
                    kinds,
                    types,
                    all_users
                })
            ),
        req_id().prop_map(|id| AgentFrame::UnsubscribeLog(UnsubscribeLog { id })),
    ];
    let files = (files_request(), req_id(), session_id()).prop_map(|(request, id, session_id)| {
        FilesFrame {
            request,
            id,
            session_id,
        }
    });
    let terminal = prop_oneof![
        (req_id(), session_id(), any::<u16>(), any::<u16>()).prop_map(
            |(id, session_id, cols, rows)| TerminalFrame::Open(TerminalOpen {
                id,
                session_id,
                cols,
                rows
            })
        ),
        (terminal_id(), bytes()).prop_map(|(terminal_id, data)| TerminalFrame::Input(
            TerminalInput { terminal_id, data }
        )),
        (terminal_id(), any::<u16>(), any::<u16>()).prop_map(|(terminal_id, cols, rows)| {
            TerminalFrame::Resize(TerminalResize {
                terminal_id,
                cols,
                rows,
            })
        }),
        terminal_id().prop_map(|terminal_id| TerminalFrame::Close(TerminalClose { terminal_id })),
    ];
    prop_oneof![
        agent.prop_map(ClientFrame::Agent),
        files.prop_map(ClientFrame::Files),
        terminal.prop_map(ClientFrame::Terminal),
        req_id().prop_map(|id| ClientFrame::System(SystemFrame::Ping(Ping { id }))),
    ]
    .boxed()
}

pub fn session_summary() -> impl Strategy<Value = SessionSummary> {
    (
        (session_id(), opt_text(), text(), text(), text()),
        (option::of((session_id(), offset())), ms(), ms(), offset()),
        (
            prop_oneof![
                Just(RunState::Idle),
                Just(RunState::Working),
                Just(RunState::Error)
            ],
            option::of(model_ref()),
            any::<u32>(),
            usage(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (session_id, title, preview, harness, workspace),
                (parent, created_ms, updated_ms, updated_offset),
                (run_state, model, message_count, usage, deleted),
            )| SessionSummary {
                session_id,
                title,
                preview,
                harness,
                workspace,
                parent: parent.map(|(session_id, offset)| ParentRef { session_id, offset }),
                created_ms,
                updated_ms,
                updated_offset,
                run_state,
                model,
                message_count,
                usage,
                deleted,
            },
        )
}

pub fn model_info() -> impl Strategy<Value = ModelInfo> {
    (
        text(),
        text(),
        text(),
        any::<u32>(),
        any::<u32>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(provider, model_id, name, context_window, max_output_tokens, reasoning, images)| {
                ModelInfo {
                    provider,
                    model_id,
                    name,
                    context_window,
                    max_output_tokens,
                    reasoning,
                    images,
                }
            },
        )
}

pub fn harness_info() -> impl Strategy<Value = HarnessInfo> {
    (
        text(),
        text(),
        any::<bool>(),
        vec(text(), 0..3),
        vec(model_info(), 0..2),
        vec(thinking_level(), 0..3),
    )
        .prop_map(
            |(name, version, available, capabilities, models, thinking_levels)| HarnessInfo {
                name,
                version,
                available,
                capabilities,
                models,
                thinking_levels,
            },
        )
}

fn file_entry() -> impl Strategy<Value = FileEntry> {
    (
        text(),
        text(),
        prop_oneof![
            Just(FileKind::File),
            Just(FileKind::Dir),
            Just(FileKind::Symlink),
            Just(FileKind::Other)
        ],
        any::<u64>(),
        ms(),
        any::<u32>(),
    )
        .prop_map(|(name, path, kind, size, mtime_ms, mode)| FileEntry {
            name,
            path,
            kind,
            size,
            mtime_ms,
            mode,
        })
}

fn error_frame() -> impl Strategy<Value = ErrorFrame> {
    (option::of(req_id()), option::of(terminal_id()), error()).prop_map(
        |(id, terminal_id, error)| ErrorFrame {
            id,
            terminal_id,
            error,
        },
    )
}

/// Every result a runner `reply` or a files/terminal reply carries.
pub fn reply_result() -> impl Strategy<Value = ReplyResult> {
    prop_oneof![
        (text(), vec(file_entry(), 0..3), any::<bool>()).prop_map(|(path, entries, truncated)| {
            ReplyResult::ListResult(ListResult {
                path,
                entries,
                truncated,
            })
        }),
        file_entry().prop_map(|entry| ReplyResult::StatResult(StatResult { entry })),
        (text(), any::<u64>(), bytes(), any::<u64>(), any::<bool>()).prop_map(
            |(path, offset, data, size, eof)| ReplyResult::ReadResult(ReadResult {
                path,
                offset,
                data,
                size,
                eof
            })
        ),
        (text(), any::<u64>())
            .prop_map(|(path, size)| ReplyResult::WriteResult(WriteResult { path, size })),
        (text(), text())
            .prop_map(|(from, to)| ReplyResult::RenameResult(RenameResult { from, to })),
        text().prop_map(|path| ReplyResult::DeleteResult(DeleteResult { path })),
        terminal_id().prop_map(|terminal_id| ReplyResult::Opened(Opened { terminal_id })),
    ]
}

fn run_phase() -> impl Strategy<Value = RunPhase> {
    prop_oneof![
        text().prop_map(|name| RunPhase::ToolRunning { name }),
        Just(RunPhase::Compacting),
        Just(RunPhase::Retrying),
        Just(RunPhase::Generating),
    ]
}

fn agent_server_frame() -> BoxedStrategy<AgentServerFrame> {
    union![
        (
            command_id(),
            prop_oneof![
                Just(AckStatus::Accepted),
                Just(AckStatus::Duplicate),
                Just(AckStatus::Rejected)
            ],
            option::of(offset()),
            option::of(session_id()),
            option::of(error())
        )
            .prop_map(|(command_id, status, offset, session_id, error)| {
                AgentServerFrame::Ack(Ack {
                    command_id,
                    status,
                    offset,
                    session_id,
                    error,
                })
            }),
        (req_id(), session_id(), offset()).prop_map(|(id, session_id, head)| {
            AgentServerFrame::Subscribed(Subscribed {
                id,
                session_id,
                head,
            })
        }),
        (session_id(), log_entry()).prop_map(|(session_id, entry)| AgentServerFrame::Entry(
            EntryFrame { session_id, entry }
        )),
        (req_id(), session_id()).prop_map(|(id, session_id)| AgentServerFrame::Unsubscribed(
            Unsubscribed { id, session_id }
        )),
        (
            req_id(),
            offset(),
            vec(session_summary(), 0..3),
            any::<bool>()
        )
            .prop_map(
                |(id, head, items, done)| AgentServerFrame::Sessions(Sessions {
                    id,
                    head,
                    items,
                    done
                })
            ),
        session_summary()
            .prop_map(|summary| AgentServerFrame::SessionSummary(SessionSummaryFrame { summary })),
        req_id().prop_map(|id| AgentServerFrame::UnsubscribedSessions(UnsubscribedSessions { id })),
        (
            req_id(),
            session_id(),
            vec(log_entry(), 0..3),
            option::of(offset())
        )
            .prop_map(|(id, session_id, entries, next_after)| {
                AgentServerFrame::ReplayResult(ReplayResult {
                    id,
                    session_id,
                    entries,
                    next_after,
                })
            }),
        (
            (req_id(), session_id(), offset(), session_summary()),
            (
                vec(message(), 0..3),
                option::of((run_id(), option::of(message()), run_phase())),
                option::of(offset())
            ),
        )
            .prop_map(
                |((id, session_id, as_of, summary), (messages, open_run, next_before))| {
                    AgentServerFrame::SnapshotResult(SnapshotResult {
                        id,
                        session_id,
                        as_of,
                        summary,
                        messages,
                        open_run: open_run.map(|(run_id, draft, phase)| OpenRun {
                            run_id,
                            draft,
                            phase,
                        }),
                        next_before,
                    })
                }
            ),
        (req_id(), option::of(offset()))
            .prop_map(|(id, head)| AgentServerFrame::SubscribedLog(SubscribedLog { id, head })),
        req_id().prop_map(|id| AgentServerFrame::UnsubscribedLog(UnsubscribedLog { id })),
        error_frame().prop_map(AgentServerFrame::Error),
    ]
    .boxed()
}

fn hello() -> impl Strategy<Value = Hello> {
    (
        (
            any::<(u32, u32)>(),
            prop_oneof![Just(Encoding::Json), Just(Encoding::Msgpack)],
            text(),
            any::<bool>(),
            text(),
        ),
        (
            connection_id(),
            user_id(),
            text(),
            vec(text(), 0..3),
            vec(harness_info(), 0..2),
        ),
        (any::<[u64; 4]>(), any::<[u32; 3]>()),
    )
        .prop_map(
            |(
                ((major, minor), encoding, server_version, demo, workspaces_root),
                (connection_id, user_id, user_name, capabilities, harnesses),
                (sizes, counts),
            )| Hello {
                protocol: ProtocolVersion { major, minor },
                encoding,
                server_version,
                demo,
                workspaces_root,
                connection_id,
                user: UserInfo {
                    id: user_id,
                    name: user_name,
                },
                capabilities,
                harnesses,
                limits: HelloLimits {
                    max_frame_bytes: sizes[0],
                    max_entry_bytes: sizes[1],
                    max_subscriptions: counts[0],
                    max_terminals: counts[1],
                    max_prompt_bytes: sizes[2],
                    max_images: counts[2],
                    read_chunk_bytes: sizes[3],
                },
            },
        )
}

/// Every server frame.
pub fn server_frame() -> BoxedStrategy<ServerFrame> {
    let files = prop_oneof![
        (req_id(), reply_result()).prop_map(|(id, result)| result.into_server_frame(id)),
        error_frame().prop_map(|frame| ServerFrame::Files(FilesServerFrame::Error(frame))),
    ];
    let terminal = prop_oneof![
        (terminal_id(), bytes()).prop_map(|(terminal_id, data)| ServerFrame::Terminal(
            TerminalServerFrame::Output(TerminalOutput { terminal_id, data })
        )),
        (
            terminal_id(),
            option::of(any::<i32>()),
            option::of(any::<i32>())
        )
            .prop_map(|(terminal_id, code, signal)| ServerFrame::Terminal(
                TerminalServerFrame::Exited(TerminalExited {
                    terminal_id,
                    code,
                    signal
                })
            )),
        error_frame().prop_map(|frame| ServerFrame::Terminal(TerminalServerFrame::Error(frame))),
    ];
    let system = prop_oneof![
        hello().prop_map(SystemServerFrame::Hello),
        (req_id(), ms()).prop_map(|(id, ts_ms)| SystemServerFrame::Pong(Pong { id, ts_ms })),
        vec(harness_info(), 0..3)
            .prop_map(|harnesses| SystemServerFrame::Harnesses(HarnessesFrame { harnesses })),
        error_frame().prop_map(SystemServerFrame::Error),
    ];
    prop_oneof![
        agent_server_frame().prop_map(ServerFrame::Agent),
        files,
        terminal,
        system.prop_map(ServerFrame::System),
    ]
    .boxed()
}

fn session_ctx() -> impl Strategy<Value = SessionCtx> {
    (
        text(),
        text(),
        option::of(model_ref()),
        option::of(thinking_level()),
        opt_text(),
        option::of((opt_text(), any::<u32>())),
    )
        .prop_map(
            |(harness, workspace_root, model, thinking_level, harness_session_file, fork)| {
                SessionCtx {
                    harness,
                    workspace_root,
                    model,
                    thinking_level,
                    harness_session_file,
                    fork: fork.map(|(ancestor_harness_session_file, user_messages_inherited)| {
                        ForkCtx {
                            last_inherited_user_text: ancestor_harness_session_file
                                .as_ref()
                                .map(|file| format!("text of {file}")),
                            ancestor_harness_session_file,
                            user_messages_inherited,
                        }
                    }),
                }
            },
        )
}

/// Every runner-to-gateway message.
pub fn runner_to_gateway() -> BoxedStrategy<RunnerToGateway> {
    union![
        (
            any::<u32>(),
            producer_id(),
            boot_id(),
            text(),
            vec(harness_info(), 0..2),
            option::of(offset())
        )
            .prop_map(
                |(proto, runner_id, boot_id, version, harnesses, resume_after)| {
                    RunnerToGateway::Hello(RunnerHello {
                        proto,
                        runner_id,
                        boot_id,
                        version,
                        harnesses,
                        resume_after,
                    })
                }
            ),
        vec(
            (any::<u64>(), session_id(), event()).prop_map(|(seq, session_id, body)| RunnerEvent {
                seq,
                session_id,
                body
            }),
            0..3
        )
        .prop_map(|events| RunnerToGateway::Events(RunnerEvents { events })),
        (
            any::<u32>(),
            prop_oneof![
                reply_result().prop_map(ReplyOutcome::Result),
                error().prop_map(ReplyOutcome::Error)
            ]
        )
            .prop_map(|(req, outcome)| RunnerToGateway::Reply(RunnerReply { req, outcome })),
        (terminal_id(), bytes()).prop_map(|(terminal_id, data)| RunnerToGateway::TermOutput(
            TerminalOutput { terminal_id, data }
        )),
        (
            terminal_id(),
            option::of(any::<i32>()),
            option::of(any::<i32>())
        )
            .prop_map(|(terminal_id, code, signal)| RunnerToGateway::TermExit(
                TerminalExited {
                    terminal_id,
                    code,
                    signal
                }
            )),
        any::<u64>().prop_map(|n| RunnerToGateway::Ping(LinkPing { n })),
        any::<u64>().prop_map(|n| RunnerToGateway::Pong(LinkPing { n })),
    ]
    .boxed()
}

/// Every gateway-to-runner message.
pub fn gateway_to_runner() -> BoxedStrategy<GatewayToRunner> {
    let op = prop_oneof![
        files_request().prop_map(RunnerOp::from),
        (any::<u16>(), any::<u16>())
            .prop_map(|(cols, rows)| RunnerOp::TerminalOpen(TerminalSize { cols, rows })),
    ];
    union![
        (any::<u32>(), user_id(), any::<u64>()).prop_map(|(proto, user_id, acked_seq)| {
            GatewayToRunner::Welcome(Welcome {
                proto,
                user_id,
                acked_seq,
            })
        }),
        (
            offset(),
            session_id(),
            command_id(),
            command(),
            session_ctx()
        )
            .prop_map(|(offset, session_id, command_id, body, ctx)| {
                GatewayToRunner::Command(RunnerCommand {
                    offset,
                    session_id,
                    command_id,
                    body,
                    ctx,
                })
            }),
        any::<u64>().prop_map(|seq| GatewayToRunner::Acked(Acked { seq })),
        any::<u64>().prop_map(|from_seq| GatewayToRunner::Resume(Resume { from_seq })),
        (any::<u32>(), session_id(), session_ctx(), op).prop_map(|(req, session_id, ctx, op)| {
            GatewayToRunner::Request(RunnerRequest {
                req,
                session_id,
                ctx,
                op,
            })
        }),
        (terminal_id(), bytes()).prop_map(|(terminal_id, data)| GatewayToRunner::TermInput(
            TerminalInput { terminal_id, data }
        )),
        (terminal_id(), any::<u16>(), any::<u16>()).prop_map(|(terminal_id, cols, rows)| {
            GatewayToRunner::TermResize(TerminalResize {
                terminal_id,
                cols,
                rows,
            })
        }),
        terminal_id()
            .prop_map(|terminal_id| GatewayToRunner::TermClose(TerminalClose { terminal_id })),
        any::<u64>().prop_map(|n| GatewayToRunner::Ping(LinkPing { n })),
        any::<u64>().prop_map(|n| GatewayToRunner::Pong(LinkPing { n })),
        prop_oneof![
            Just(ByeReason::Superseded),
            Just(ByeReason::BootExpired),
            Just(ByeReason::UnsupportedVersion),
            Just(ByeReason::Shutdown)
        ]
        .prop_map(|reason| GatewayToRunner::Bye(Bye { reason })),
    ]
    .boxed()
}

/// Stack for running property tests: building deeply nested values (a replay result of entries of
/// messages of parts) through proptest's value trees takes more than a test thread's 2 MiB in a
/// debug build. The codecs themselves stay far below it (checked in `bad_input`).
const PROPERTY_STACK_BYTES: usize = 64 << 20;

/// Runs `test` on `cases` values of `strategy()` on a thread with a large stack, failing the
/// calling test with proptest's minimal failing input.
pub fn check<S, F>(cases: u32, strategy: fn() -> S, test: F)
where
    S: Strategy + 'static,
    S::Value: Debug,
    F: Fn(S::Value) -> Result<(), proptest::test_runner::TestCaseError> + Send + 'static,
{
    let outcome = std::thread::Builder::new()
        .stack_size(PROPERTY_STACK_BYTES)
        .spawn(move || {
            let config = proptest::test_runner::Config {
                cases,
                failure_persistence: None,
                ..proptest::test_runner::Config::default()
            };
            let mut runner = proptest::test_runner::TestRunner::new(config);
            runner
                .run(&strategy(), test)
                .map_err(|failure| failure.to_string())
        })
        .expect("spawn the property thread")
        .join()
        .expect("the property thread panicked");
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}
