//! Runs through the WebSocket with the real pi: abort mid-stream, set_model, compact, pi killed
//! mid-turn, and a run with no progress timing out.

mod support;

use std::time::Duration;

use octo_core::event::{HarnessExitReason, IdleOutcome, TimeoutLimit};
use octo_core::frame::AckStatus;
use octo_core::{ErrorCode, Event, LogEntry};
use serde_json::json;
use support::{Agent, Octo, cid, event, types};

fn has(entries: &[LogEntry], wanted: impl Fn(&Event) -> bool) -> bool {
    entries.iter().any(|e| event(e).is_some_and(&wanted))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_set_model_and_compact() {
    let octo = Octo::start(json!([
        {"text": "I will think about this for a long time", "hang": true, "match": "forever"},
        {"text": "Now on the second model.", "match": "switched"},
        {"text": "Summary: the user asked twice; the second model answered.", "match": "summar"},
        // Hangs, so the run is still open when compact is refused below.
        {"text": "Still thinking", "hang": true, "match": "forever again"},
        {"text": "More.", "sticky": true}
    ]))
    .await;
    let mut agent = Agent::new(octo.client().await);
    let (session_id, _) = agent.create_session().await;
    agent.subscribe(session_id, None).await;

    // abort mid-stream.
    let prompt = agent.prompt(session_id, "think forever").await;
    agent
        .until(|_, entries| has(entries, |e| matches!(e, Event::StreamTextDelta(_))).then_some(()))
        .await;
    let abort = agent
        .command(
            json!({"ch": "agent", "type": "abort", "command_id": cid(), "session_id": session_id}),
        )
        .await;
    assert_eq!(abort.status, AckStatus::Accepted, "{abort:?}");
    let abort_at = abort.offset.expect("offset");
    let run = agent.until_run_ends(prompt).await;
    match event(run.last().expect("entries")) {
        Some(Event::AgentIdle(idle)) => {
            assert_eq!(idle.outcome, IdleOutcome::Aborted);
            assert_eq!(
                idle.cause,
                Some(abort_at),
                "the abort settles with the run's end"
            );
        }
        other => panic!("agent.idle{{aborted}} expected: {other:?}"),
    }

    // set_model.
    let set = agent
        .command(json!({"ch": "agent", "type": "set_model", "command_id": cid(), "session_id": session_id,
            "provider": "fake", "model_id": "fake-model-2"}))
        .await;
    assert_eq!(set.status, AckStatus::Accepted);
    let set_at = set.offset.expect("offset");
    let changed = agent
        .until(|_, entries| {
            entries.iter().find_map(|e| match event(e) {
                Some(Event::ModelChanged(changed)) if changed.cause == Some(set_at) => {
                    Some(changed.clone())
                }
                _ => None,
            })
        })
        .await;
    assert_eq!(
        (changed.provider.as_str(), changed.model_id.as_str()),
        ("fake", "fake-model-2")
    );
    let prompt = agent.prompt(session_id, "switched?").await;
    let run = agent.until_run_ends(prompt).await;
    assert!(has(
        &run,
        |e| matches!(e, Event::AgentIdle(idle) if idle.outcome == IdleOutcome::Completed)
    ));
    let last = octo.model.requests().last().cloned().expect("a request");
    assert_eq!(
        last.body["model"], "fake-model-2",
        "the next request used the new model"
    );

    // compact: its own run around compact.start and compact.end.
    let compact = agent
        .command(
            json!({"ch": "agent", "type": "compact", "command_id": cid(), "session_id": session_id,
            "instructions": "summarise briefly"}),
        )
        .await;
    assert_eq!(compact.status, AckStatus::Accepted, "{compact:?}");
    let compact_at = compact.offset.expect("offset");
    let run = agent.until_run_ends(compact_at).await;
    let names = types(&run);
    assert_eq!(names.first(), Some(&"compact"));
    assert!(names.contains(&"agent.working"), "{names:?}");
    assert!(names.contains(&"compact.start"), "{names:?}");
    let end =
        find_event!(run, Event::CompactEnd).unwrap_or_else(|| panic!("compact.end: {names:?}"));
    assert!(end.ok, "{end:?}");
    assert_eq!(end.cause, Some(compact_at));
    assert!(
        matches!(
            event(run.last().expect("entries")),
            Some(Event::AgentIdle(_))
        ),
        "{names:?}"
    );

    // compact while a run is open is refused, and changes nothing.
    let prompt = agent.prompt(session_id, "think forever again").await;
    agent
        .until(|_, entries| {
            entries
                .iter()
                .any(|e| e.offset > prompt && matches!(event(e), Some(Event::AgentWorking(_))))
                .then_some(())
        })
        .await;
    let head = octo.server().app().log.head();
    let refused = agent
        .command(json!({"ch": "agent", "type": "compact", "command_id": cid(), "session_id": session_id}))
        .await;
    assert_eq!(refused.status, AckStatus::Rejected);
    assert_eq!(refused.error.map(|e| e.code), Some(ErrorCode::InvalidState));
    assert!(octo.server().app().log.head() >= head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_pi_fails_its_run_and_the_next_prompt_restarts_it() {
    let octo = Octo::start(json!([
        {"text": "Hello.", "match": "zero"},
        {"text": "Working on it", "hang": true, "match": "first"},
        {"text": "Back again.", "match": "second"}
    ]))
    .await;
    let mut agent = Agent::new(octo.client().await);
    let (session_id, _) = agent.create_session().await;
    agent.subscribe(session_id, None).await;
    // A finished turn first, so pi has written its session file.
    let prompt = agent.prompt(session_id, "zero").await;
    agent.until_run_ends(prompt).await;
    let prompt = agent.prompt(session_id, "first").await;
    let pid = agent
        .until(|_, entries| {
            let streaming = entries
                .iter()
                .any(|e| e.offset > prompt && matches!(event(e), Some(Event::StreamTextDelta(_))));
            let pid = entries.iter().find_map(|e| match event(e) {
                Some(Event::HarnessStarted(started)) => Some(started.pid),
                _ => None,
            });
            pid.filter(|_| streaming)
        })
        .await;
    nix_kill(pid);
    let run = agent.until_run_ends(prompt).await;
    let failed = find_event!(run, Event::RunFailed);
    let failed = failed.unwrap_or_else(|| panic!("run.failed: {:?}", types(&run)));
    assert!(failed.recoverable);
    assert_eq!(failed.error.code, ErrorCode::HarnessExited);
    agent
        .until(|_, entries| {
            has(entries, |e| matches!(e, Event::HarnessExited(exited) if exited.reason == HarnessExitReason::Crashed)).then_some(())
        })
        .await;
    let prompt = agent.prompt(session_id, "second").await;
    let run = agent.until_run_ends(prompt).await;
    assert!(
        has(
            &run,
            |e| matches!(e, Event::HarnessStarted(started) if started.resumed)
        ),
        "pi restarted on its session file: {:?}",
        types(&run)
    );
    assert!(has(
        &run,
        |e| matches!(e, Event::AgentIdle(idle) if idle.outcome == IdleOutcome::Completed)
    ));
    // The ui_state projection says idle, not working.
    let ui = octo
        .server()
        .app()
        .session_ui(&session_id)
        .await
        .expect("reads");
    assert_eq!(ui.run_state, octo_core::frame::RunState::Idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_without_progress_times_out() {
    let octo = Octo::start_with(
        json!([{"text": "Hmm", "hang": true, "hang_ms": 30000}]),
        |config| config.no_progress = Duration::from_millis(1500),
    )
    .await;
    let mut agent = Agent::new(octo.client().await);
    let (session_id, _) = agent.create_session().await;
    agent.subscribe(session_id, None).await;
    let prompt = agent.prompt(session_id, "hang").await;
    let run = agent.until_run_ends(prompt).await;
    match event(run.last().expect("entries")) {
        Some(Event::RunTimedOut(timed_out)) => {
            assert_eq!(timed_out.limit, TimeoutLimit::NoProgress);
            assert_eq!(timed_out.limit_ms, 1500);
        }
        other => panic!("run.timed_out expected: {other:?}"),
    }
    agent
        .until(|_, entries| {
            has(entries, |e| matches!(e, Event::HarnessExited(exited) if exited.reason == HarnessExitReason::Killed)).then_some(())
        })
        .await;
    let ui = octo
        .server()
        .app()
        .session_ui(&session_id)
        .await
        .expect("reads");
    assert_eq!(ui.run_state, octo_core::frame::RunState::Error);
}

fn nix_kill(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -9 {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_records_what_it_stopped() {
    let mut octo = Octo::start(json!([{"text": "Working", "hang": true}])).await;
    let mut agent = Agent::new(octo.client().await);
    let (session_id, _) = agent.create_session().await;
    agent.subscribe(session_id, None).await;
    let prompt = agent.prompt(session_id, "keep going").await;
    agent.until_streaming(prompt).await;
    let app = std::sync::Arc::clone(octo.server().app());
    let server = octo.server.take().expect("running");
    // The client stays connected: shutdown must not wait for it forever.
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(30), server.shutdown())
        .await
        .expect("shutdown ends despite an open WebSocket");
    assert!(started.elapsed() < Duration::from_secs(20));
    let entries: Vec<_> = support::read_log(app.log.as_ref())
        .await
        .into_iter()
        .filter(|e| e.session_id == session_id)
        .collect();
    let failed = find_event!(entries, Event::RunFailed).expect("the open run failed");
    assert!(failed.recoverable);
    let exited = find_event!(entries, Event::HarnessExited).expect("pi's exit is recorded");
    assert_eq!(exited.reason, HarnessExitReason::RunnerShutdown);
    drop(agent);
}
