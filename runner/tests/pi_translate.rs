//! The pi translator on a captured real transcript (pi 0.73.1: a bash tool turn, then a prompt
//! aborted mid-stream): the exact canonical sequence, stable ids from start to end, and every
//! delivered command settled once.

use octo_core::command::{Abort, Command, Prompt};
use octo_core::message::{Part, StopReason};
use octo_core::{CommandId, Event, Offset};
use octo_runner::pi::translate::{Delivered, FreshIds, Translator};
use serde_json::{Value, json};

const TRANSCRIPT: &str = include_str!("fixtures/pi-0.73.1-rpc-tool-turn-and-abort.jsonl");

fn delivered(offset: u64, command: Command) -> Delivered {
    Delivered {
        offset: Offset::new(offset).expect("small"),
        command_id: CommandId::new(),
        command,
    }
}

fn prompt(offset: u64, text: &str) -> Delivered {
    delivered(
        offset,
        Command::Prompt(Prompt {
            text: text.to_owned(),
            ..Prompt::default()
        }),
    )
}

/// Feeds the transcript, answering each idle probe as pi would (idle), and delivering the abort
/// where the capture sent it (during the second answer's stream).
fn run_transcript() -> (Vec<Event>, [Delivered; 3]) {
    let first = prompt(10, "Run echo hi with bash, then tell me what it printed.");
    let second = prompt(20, "Write a long answer");
    let abort = delivered(30, Command::Abort(Abort {}));
    let mut translator = Translator::new(FreshIds, "fake", "fake-model");
    let mut events = Vec::new();
    let mut text_deltas_of_second = 0;
    for (line_idx, line) in TRANSCRIPT.lines().enumerate() {
        let record: Value = serde_json::from_str(line).expect("fixture lines are JSON");
        match (record["type"].as_str(), record["id"].as_str()) {
            (Some("response"), Some("p1")) => translator.delivered(first.clone()),
            (Some("response"), Some("p2")) => translator.delivered(second.clone()),
            _ => {}
        }
        let output = translator.stdout(&record, 1_795_602_682_000 + line_idx as i64);
        events.extend(output.events);
        for probe in output.to_pi {
            assert_eq!(
                probe["type"], "get_state",
                "the translator probes before ending a run"
            );
            let answer = json!({"id": probe["id"], "type": "response", "command": "get_state", "success": true,
                "data": {"isStreaming": false, "isCompacting": false}});
            events.extend(
                translator
                    .stdout(&answer, 1_795_602_682_000 + line_idx as i64)
                    .events,
            );
        }
        if record["assistantMessageEvent"]["type"] == "text_delta"
            && events.iter().any(|e| matches!(e, Event::AgentIdle(_)))
        {
            text_deltas_of_second += 1;
            if text_deltas_of_second == 3 {
                translator.delivered(abort.clone());
            }
        }
    }
    assert!(!translator.run_open(), "the transcript ends idle");
    (events, [first, second, abort])
}

#[test]
fn a_tool_turn_and_an_abort_translate_exactly() {
    let (events, [first, second, abort]) = run_transcript();
    let names: Vec<&str> = events.iter().map(Event::type_name).collect();
    assert_eq!(
        names,
        vec![
            "agent.working",
            "message.created",
            "stream.message_start",
            "stream.text_delta",
            "stream.text_delta",
            "stream.text_delta",
            "stream.tool_call_delta",
            "stream.tool_call_delta",
            "stream.tool_call_delta",
            "stream.message_end",
            "usage.recorded",
            "tool.start",
            "tool.progress",
            "tool.end",
            "message.created",
            "stream.message_start",
            "stream.text_delta",
            "stream.text_delta",
            "stream.text_delta",
            "stream.message_end",
            "usage.recorded",
            "agent.idle",
            "agent.working",
            "message.created",
            "stream.message_start",
            "stream.text_delta",
            "stream.text_delta",
            "stream.text_delta",
            "stream.text_delta",
            "stream.text_delta",
            "stream.text_delta",
            "stream.message_end",
            "usage.recorded",
            "agent.idle",
        ]
    );

    // Causes and settlement: each prompt's run and user message point at it; the abort is
    // settled by the aborted run's end.
    let Event::AgentWorking(working) = &events[0] else {
        unreachable!()
    };
    assert_eq!(working.cause, Some(first.offset));
    let Event::MessageCreated(user) = &events[1] else {
        unreachable!()
    };
    assert_eq!(
        (user.cause, user.command_id),
        (Some(first.offset), Some(first.command_id))
    );
    let Event::AgentWorking(second_run) = &events[22] else {
        unreachable!()
    };
    assert_eq!(second_run.cause, Some(second.offset));
    let Event::AgentIdle(aborted) = events.last().expect("events") else {
        unreachable!()
    };
    assert_eq!(aborted.cause, Some(abort.offset));
    assert_eq!(aborted.outcome, octo_core::event::IdleOutcome::Aborted);
    assert_eq!(aborted.run_id, second_run.run_id);
    assert!(
        !events.iter().any(|e| matches!(e, Event::CommandFailed(_))),
        "nothing failed"
    );

    // The first assistant message: the ids of its deltas are the ids of its final parts.
    let Event::StreamMessageStart(start) = &events[2] else {
        unreachable!()
    };
    let Event::StreamMessageEnd(end) = &events[9] else {
        unreachable!()
    };
    assert_eq!(end.message.id, start.message_id);
    assert_eq!(end.message.stop_reason, Some(StopReason::ToolUse));
    let Event::StreamTextDelta(text_delta) = &events[3] else {
        unreachable!()
    };
    let Event::StreamToolCallDelta(call_delta) = &events[6] else {
        unreachable!()
    };
    assert_eq!(call_delta.tool_call_id.as_deref(), Some("call_56f109fc"));
    assert_eq!(call_delta.name.as_deref(), Some("bash"));
    match &end.message.parts[..] {
        [Part::Text(text), Part::ToolCall(call)] => {
            assert_eq!(text.id, text_delta.part_id);
            assert_eq!(text.text, "Let me run a command.");
            assert_eq!(call.id, call_delta.part_id);
            assert_eq!(call.input, json!({"command": "echo hi"}));
        }
        other => panic!("unexpected parts {other:?}"),
    }
    let deltas: String = events[3..6]
        .iter()
        .map(|e| match e {
            Event::StreamTextDelta(d) => d.delta.as_str(),
            _ => "",
        })
        .collect();
    assert_eq!(deltas, "Let me run a command.", "deltas rebuild the text");

    // The tool: its output, and its result as a tool message.
    let Event::ToolProgress(progress) = &events[12] else {
        unreachable!()
    };
    assert_eq!(progress.text, "hi\n");
    let Event::MessageCreated(result) = &events[14] else {
        unreachable!()
    };
    match &result.message.parts[..] {
        [Part::ToolResult(part)] => {
            assert_eq!(part.tool_call_id, "call_56f109fc");
            assert!(!part.is_error);
        }
        other => panic!("unexpected parts {other:?}"),
    }

    // The aborted answer keeps its partial text and pi's message.
    let Event::StreamMessageEnd(cut) = &events[31] else {
        unreachable!()
    };
    assert_eq!(cut.message.stop_reason, Some(StopReason::Aborted));
    assert_eq!(cut.message.error.as_deref(), Some("Request was aborted"));
}

#[test]
fn every_event_survives_the_wire() {
    let (events, _) = run_transcript();
    for event in events {
        let bytes = octo_core::codec::to_msgpack(&event).expect("encodes");
        let back: Event = octo_core::codec::from_msgpack(&bytes).expect("decodes");
        assert_eq!(back, event);
    }
}

#[test]
fn an_exit_mid_run_fails_the_run_and_every_unsettled_command() {
    let mut translator = Translator::new(FreshIds, "fake", "fake-model");
    let waiting = prompt(5, "hello");
    translator.delivered(waiting.clone());
    let started = translator.stdout(&json!({"type": "agent_start"}), 1).events;
    assert!(matches!(started[..], [Event::AgentWorking(_)]));
    let queued = prompt(6, "queued");
    translator.delivered(queued.clone());
    let exit = translator
        .exited(
            octo_core::event::HarnessExitReason::Crashed,
            None,
            Some(9),
            Some("killed".into()),
        )
        .events;
    let names: Vec<&str> = exit.iter().map(Event::type_name).collect();
    assert_eq!(
        names,
        vec![
            "run.failed",
            "command.failed",
            "command.failed",
            "harness.exited"
        ]
    );
    let Event::RunFailed(failed) = &exit[0] else {
        unreachable!()
    };
    assert!(failed.recoverable);
    assert_eq!(failed.error.code, octo_core::ErrorCode::HarnessExited);
    let causes: Vec<Offset> = exit[1..3]
        .iter()
        .map(|e| match e {
            Event::CommandFailed(f) => f.cause,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(causes, vec![waiting.offset, queued.offset]);
    assert!(!translator.run_open());
}

#[test]
fn a_rejected_command_is_settled_by_command_failed() {
    let mut translator = Translator::new(FreshIds, "fake", "fake-model");
    let busy = prompt(7, "again");
    translator.delivered(busy.clone());
    let out = translator.stdout(
        &json!({"id": "o7", "type": "response", "command": "prompt", "success": false, "error": "Agent is already processing"}),
        1,
    );
    match &out.events[..] {
        [Event::CommandFailed(failed)] => {
            assert_eq!(failed.cause, busy.offset);
            assert_eq!(failed.command_id, busy.command_id);
            assert_eq!(failed.error.code, octo_core::ErrorCode::HarnessRejected);
        }
        other => panic!("{other:?}"),
    }
    // A later agent_start does not bind the rejected prompt.
    let started = translator.stdout(&json!({"type": "agent_start"}), 2).events;
    let [Event::AgentWorking(working)] = &started[..] else {
        panic!("{started:?}")
    };
    assert_eq!(working.cause, None);
}

#[test]
fn a_retry_or_compaction_after_agent_end_keeps_the_run_open() {
    let mut translator = Translator::new(FreshIds, "fake", "fake-model");
    translator.delivered(prompt(3, "x"));
    translator.stdout(&json!({"type": "agent_start"}), 1);
    let end = translator.stdout(&json!({"type": "agent_end"}), 2);
    assert_eq!(end.to_pi.len(), 1, "a probe");
    let probe_id = end.to_pi[0]["id"].clone();
    let retry = translator.stdout(
        &json!({"type": "auto_retry_start", "attempt": 1, "maxAttempts": 3, "delayMs": 100, "errorMessage": "429"}),
        3,
    );
    assert!(matches!(retry.events[..], [Event::RetryStart(_)]));
    // The stale probe's answer must not end the run.
    let answer = json!({"id": probe_id, "type": "response", "command": "get_state", "success": true,
        "data": {"isStreaming": false, "isCompacting": false}});
    assert!(translator.stdout(&answer, 4).events.is_empty());
    assert!(translator.run_open());
}

#[test]
fn model_changes_keep_the_other_half() {
    use octo_core::ThinkingLevel;
    use octo_core::command::{SetModel, SetThinkingLevel};
    let mut translator =
        Translator::new(FreshIds, "fake", "fake-model").with_thinking_level(ThinkingLevel::Low);
    translator.delivered(delivered(
        8,
        Command::SetModel(SetModel {
            provider: "fake".into(),
            model_id: "fake-model-2".into(),
        }),
    ));
    let out = translator.stdout(&json!({"id": "o8", "type": "response", "command": "set_model", "success": true, "data": {}}), 1);
    let [Event::ModelChanged(changed)] = &out.events[..] else {
        panic!("{out:?}")
    };
    assert_eq!(
        (changed.model_id.as_str(), changed.thinking_level),
        ("fake-model-2", ThinkingLevel::Low)
    );
    translator.delivered(delivered(
        9,
        Command::SetThinkingLevel(SetThinkingLevel {
            level: ThinkingLevel::High,
        }),
    ));
    let out = translator.stdout(
        &json!({"id": "o9", "type": "response", "command": "set_thinking_level", "success": true}),
        2,
    );
    let [Event::ModelChanged(changed)] = &out.events[..] else {
        panic!("{out:?}")
    };
    assert_eq!(
        (changed.model_id.as_str(), changed.thinking_level),
        ("fake-model-2", ThinkingLevel::High)
    );
    assert_eq!(changed.cause, Some(Offset::new(9).expect("small")));
}
