//! End to end through the WebSocket: the real `octo` server, the real pi in bubblewrap, Octo's
//! scripted model on loopback.

mod support;

use octo_core::frame::AckStatus;
use octo_core::message::Part;
use octo_core::{Body, Command, Event};
use serde_json::json;
use support::{Agent, Octo, cid, event, types};

/// Collapses runs of the same delta or progress type, whose count depends on timing.
fn shape(types: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in types {
        let repeatable = t.starts_with("stream.") && t.ends_with("_delta") || *t == "tool.progress";
        if repeatable && out.last().is_some_and(|last| last == t) {
            continue;
        }
        out.push((*t).to_owned());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_streams_and_runs_a_tool_in_the_sandbox() {
    let octo = Octo::start(json!([
        {"text": "Let me check.", "tool_calls": [{"name": "bash", "arguments": {"command":
            "id -u; grep CapEff /proc/self/status; cat ~/.ssh/id_secret; echo x > ../escape.txt; echo y > /etc/octo-escape; echo done"}}]},
        {"text": "It printed what it could."}
    ]))
    .await;
    let mut agent = Agent::new(octo.client().await);
    assert!(
        !agent.client.hello.demo,
        "a configured provider is not the demo"
    );
    let (session_id, created_at) = agent.create_session().await;
    let head = agent.subscribe(session_id, None).await;
    assert!(
        head > created_at,
        "session.created is in the view: {head} > {created_at}"
    );
    let prompt = agent.prompt(session_id, "Run the check.").await;
    let run = agent.until_run_ends(prompt).await;

    // The exact canonical sequence from the prompt on.
    let expected = [
        "prompt",
        "agent.working",
        "message.created",
        "stream.message_start",
        "stream.text_delta",
        "stream.tool_call_delta",
        "stream.message_end",
        "usage.recorded",
        "tool.start",
        "tool.progress",
        "tool.end",
        "message.created",
        "stream.message_start",
        "stream.text_delta",
        "stream.message_end",
        "usage.recorded",
        "agent.idle",
    ];
    let run_types: Vec<&str> = types(&run)
        .into_iter()
        .filter(|t| *t != "harness.started")
        .collect();
    let mut got = shape(&run_types);
    if !got.contains(&"tool.progress".to_owned()) {
        // A command this quick may finish before pi reports progress.
        got.insert(10, "tool.progress".to_owned());
    }
    assert_eq!(got, expected, "the run's events");

    // The session's whole view: created, started once (caused by the create), then the run.
    let view = agent.entries.clone();
    assert_eq!(types(&view)[..2], ["session.create", "session.created"]);
    let started: Vec<_> = view
        .iter()
        .filter_map(|e| match event(e) {
            Some(Event::HarnessStarted(started)) => Some(started.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(started.len(), 1, "pi started once");
    assert_eq!(started[0].cause, Some(created_at));
    let offsets: Vec<_> = view.iter().map(|e| e.offset).collect();
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "in order, once: {offsets:?}"
    );
    match event(&view[1]) {
        Some(Event::SessionCreated(created)) => assert_eq!(created.cause, created_at),
        other => panic!("session.created expected: {other:?}"),
    }

    // The sandbox held: uid 1000, no capabilities, the secret unreadable, nothing written outside.
    let result = run
        .iter()
        .find_map(|e| match event(e) {
            Some(Event::MessageCreated(created)) => {
                created.message.parts.iter().find_map(|part| match part {
                    Part::ToolResult(result) => Some(result.clone()),
                    _ => None,
                })
            }
            _ => None,
        })
        .expect("a tool result");
    let text: String = result
        .content
        .iter()
        .filter_map(|part| match part {
            octo_core::message::ResultContent::Text(text) => Some(text.text.clone()),
            _ => None,
        })
        .collect();
    assert!(text.contains("1000"), "uid 1000 inside: {text}");
    assert!(
        text.contains("CapEff:\t0000000000000000"),
        "no capabilities: {text}"
    );
    assert!(
        !text.contains("TOP-SECRET-KEY"),
        "the denied file stayed hidden: {text}"
    );
    assert!(text.contains("done"), "the script ran to its end: {text}");
    assert!(
        !octo.workspace("escape.txt").exists(),
        "nothing written beside the workspace"
    );
    assert!(
        !std::path::Path::new("/etc/octo-escape").exists(),
        "nothing written to /etc"
    );
    assert_eq!(
        std::fs::read_to_string(octo.home().join(".ssh/id_secret")).expect("reads"),
        "TOP-SECRET-KEY"
    );

    // The user message is the prompt, with its command id.
    let user = run.iter().find_map(|e| match event(e) {
        Some(Event::MessageCreated(created)) if created.command_id.is_some() => {
            Some(created.clone())
        }
        _ => None,
    });
    let user = user.expect("the user message");
    assert_eq!(user.cause, Some(prompt));
    match &run[0].body {
        Body::Command(Command::Prompt(p)) => assert_eq!(p.text, "Run the check."),
        other => panic!("the prompt first: {other:?}"),
    }
    assert_eq!(octo.model.requests().len(), 2, "one model request per turn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_command_id_has_no_second_effect() {
    let octo = Octo::start(json!([{"text": "Once."}])).await;
    let mut agent = Agent::new(octo.client().await);
    let (session_id, _) = agent.create_session().await;
    agent.subscribe(session_id, None).await;
    let command_id = cid();
    let frame = json!({"ch": "agent", "type": "prompt", "command_id": command_id,
        "session_id": session_id, "text": "say it once"});
    let first = agent.command(frame.clone()).await;
    assert_eq!(first.status, AckStatus::Accepted);
    let second = agent.command(frame.clone()).await;
    assert_eq!(second.status, AckStatus::Duplicate);
    assert_eq!(second.offset, first.offset);
    assert_eq!(second.session_id, Some(session_id));
    agent.until_run_ends(first.offset.expect("offset")).await;
    // After the run: the state moved on, still a duplicate.
    let third = agent.command(frame.clone()).await;
    assert_eq!(third.status, AckStatus::Duplicate);
    assert_eq!(third.offset, first.offset);
    // From another connection too.
    let mut other = Agent::new(octo.client().await);
    let fourth = other.command(frame).await;
    assert_eq!(fourth.status, AckStatus::Duplicate);
    assert_eq!(fourth.offset, first.offset);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(octo.model.requests().len(), 1, "one model request");
    let prompts = octo
        .log()
        .await
        .into_iter()
        .filter(|e| e.body.type_name() == "prompt")
        .count();
    assert_eq!(prompts, 1, "one prompt in the log");
}
