//! Extension input requests (PROTOCOL.md 6.6, 15): a real pi extension asks before a dangerous
//! bash command; the dialog reaches the client as `input.requested`, the client's `input.respond`
//! reaches pi as `extension_ui_response`, and `input.resolved` settles it. A dialog with a timeout
//! that nobody answers resolves `timed_out`, and pi gets `cancelled`.

mod support;

use octo_core::event::{InputKind, InputOutcome};
use octo_core::frame::AckStatus;
use octo_core::{ErrorCode, Event};
use serde_json::json;
use support::{Agent, Octo, cid, event, types};

fn extension() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/confirm-extension.js")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialog_is_answered_through_the_socket_and_one_times_out() {
    let octo = Octo::start_with(
        json!([
            {"text": "Cleaning up.", "tool_calls": [{"name": "bash", "arguments": {"command": "touch junk.txt && rm junk.txt && echo removed"}}], "match": "clean"},
            {"text": "Done cleaning.", "match": "removed"},
            {"text": "Going slowly.", "tool_calls": [{"name": "bash", "arguments": {"command": "echo slowly"}}], "match": "slow"},
            {"text": "It was blocked.", "sticky": true}
        ]),
        |config| config.pi_extensions = vec![extension()],
    )
    .await;
    let mut agent = Agent::new(octo.client().await);
    let (session_id, _) = agent.create_session().await;
    agent.subscribe(session_id, None).await;
    let prompt = agent.prompt(session_id, "clean the workspace").await;
    let requested = agent
        .until(|_, entries| find_event!(entries, Event::InputRequested))
        .await;
    assert_eq!(requested.kind, InputKind::Confirm);
    assert_eq!(requested.title, "Dangerous command");
    assert!(
        requested
            .message
            .as_deref()
            .is_some_and(|m| m.contains("rm junk.txt"))
    );
    let ui = octo
        .server()
        .app()
        .session_ui(&session_id)
        .await
        .expect("reads");
    assert_eq!(ui.open_inputs, vec![requested.request_id.clone()]);

    // A wrong request id is refused on state and changes nothing.
    let wrong = agent
        .command(json!({"ch": "agent", "type": "input.respond", "command_id": cid(), "session_id": session_id,
            "request_id": "not-open", "confirmed": true}))
        .await;
    assert_eq!(wrong.status, AckStatus::Rejected);
    assert_eq!(wrong.error.map(|e| e.code), Some(ErrorCode::InvalidState));

    let answer = agent
        .command(json!({"ch": "agent", "type": "input.respond", "command_id": cid(), "session_id": session_id,
            "request_id": requested.request_id, "confirmed": true}))
        .await;
    assert_eq!(answer.status, AckStatus::Accepted, "{answer:?}");
    let run = agent.until_run_ends(prompt).await;
    let resolved = find_event!(run, Event::InputResolved);
    let resolved = resolved.unwrap_or_else(|| panic!("input.resolved: {:?}", types(&run)));
    assert_eq!(resolved.outcome, InputOutcome::Answered);
    assert_eq!(resolved.cause, answer.offset);
    let tool_output: String = run
        .iter()
        .filter_map(|e| match event(e) {
            Some(Event::ToolProgress(progress)) => Some(progress.text.clone()),
            _ => None,
        })
        .collect();
    let removed = run.iter().any(|e| {
        matches!(event(e), Some(Event::MessageCreated(m)) if format!("{:?}", m.message).contains("removed"))
    });
    assert!(
        removed || tool_output.contains("removed"),
        "the confirmed command ran: {:?}",
        types(&run)
    );
    assert!(matches!(
        event(run.last().expect("entries")),
        Some(Event::AgentIdle(_))
    ));

    // Nobody answers the select: it times out, pi gets `cancelled`, the extension blocks the tool.
    let prompt = agent.prompt(session_id, "go slow").await;
    let run = agent.until_run_ends(prompt).await;
    let requested = find_event!(run, Event::InputRequested);
    let requested = requested.unwrap_or_else(|| panic!("input.requested: {:?}", types(&run)));
    assert_eq!(requested.kind, InputKind::Select);
    assert_eq!(
        requested.options,
        vec!["slow".to_owned(), "fast".to_owned()]
    );
    assert_eq!(requested.timeout_ms, Some(1500));
    let resolved = find_event!(run, Event::InputResolved);
    assert_eq!(
        resolved.map(|r| r.outcome),
        Some(InputOutcome::TimedOut),
        "{:?}",
        types(&run)
    );
    let blocked = run.iter().any(|e| {
        matches!(event(e), Some(Event::MessageCreated(m)) if format!("{:?}", m.message).contains("No answer in time"))
    });
    assert!(blocked, "the extension blocked the tool: {:?}", types(&run));
    let ui = octo
        .server()
        .app()
        .session_ui(&session_id)
        .await
        .expect("reads");
    assert!(ui.open_inputs.is_empty());
}
