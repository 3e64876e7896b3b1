//! The real pi (npm, pinned in harnesses/pi) in the real sandbox, driven through the translator
//! against Octo's scripted model on loopback: a prompt whose answer runs a bash tool inside the
//! sandbox, and an abort of a hanging stream.
//!
//! Needs `npm ci --prefix harnesses/pi` and bwrap (scripts/test.sh sets them up).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use octo_core::command::{Command, Prompt};
use octo_core::message::Part;
use octo_core::{CommandId, Event, Offset};
use octo_runner::jsonl::Record;
use octo_runner::pi::process::{PiConfig, PiProcess};
use octo_runner::pi::translate::{Delivered, FreshIds, Translator};
use octo_runner::sandbox::{Profile, SandboxFile, SandboxPolicy};
use serde_json::json;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn agent_dir(dir: &Path, port: u16) -> PathBuf {
    let agent = dir.join("agent");
    std::fs::create_dir_all(&agent).expect("mkdir");
    let models = json!({"providers": {"fake": {
        "baseUrl": format!("http://127.0.0.1:{port}/v1"), "api": "openai-completions", "apiKey": "fake-key",
        "compat": {"supportsDeveloperRole": false, "supportsReasoningEffort": false},
        "models": [{"id": "fake-model", "name": "Fake Model", "reasoning": false, "input": ["text"],
            "contextWindow": 32000, "maxTokens": 4096,
            "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0}}]},
        "fake-anthropic": {"baseUrl": format!("http://127.0.0.1:{port}"), "api": "anthropic-messages", "apiKey": "fake-key",
            "models": [{"id": "fake-claude", "reasoning": false, "contextWindow": 32000, "maxTokens": 4096}]}}});
    std::fs::write(agent.join("models.json"), models.to_string()).expect("write");
    let settings = json!({"defaultProvider": "fake", "defaultModel": "fake-model", "quietStartup": true,
        "enableInstallTelemetry": false,
        "retry": {"enabled": false, "maxRetries": 0, "baseDelayMs": 100, "provider": {"maxRetries": 0}}});
    std::fs::write(agent.join("settings.json"), settings.to_string()).expect("write");
    agent
}

struct Session {
    _dir: tempfile::TempDir,
    workspace: PathBuf,
    model: octo_tools::model::ModelHandle,
    pi: PiProcess,
    translator: Translator<FreshIds>,
    started: Instant,
}

impl Session {
    async fn start(turns: serde_json::Value) -> Session {
        Session::start_on(turns, "fake", "fake-model").await
    }

    async fn start_on(turns: serde_json::Value, provider: &str, model_id: &str) -> Session {
        let pi_bin = workspace_root().join("harnesses/pi/node_modules/.bin/pi");
        assert!(
            pi_bin.exists(),
            "pi is installed: npm ci --prefix harnesses/pi (scripts/test.sh does)"
        );
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
        let model = start_model(turns).await;
        let config = pi_config(dir.path(), model.addr().port(), provider, model_id);
        let workspace = config.workspace.clone();
        let pi = PiProcess::spawn(&config).expect("pi starts");
        let translator = Translator::new(FreshIds, provider, model_id);
        Session {
            _dir: dir,
            workspace,
            model,
            pi,
            translator,
            started: Instant::now(),
        }
    }

    async fn deliver(
        &mut self,
        offset: u64,
        command: Command,
        to_pi: serde_json::Value,
    ) -> Delivered {
        let delivered = Delivered {
            offset: Offset::new(offset).expect("small"),
            command_id: CommandId::new(),
            command,
        };
        self.translator.delivered(delivered.clone());
        self.pi.send(&to_pi).await.expect("pi takes the command");
        delivered
    }

    /// Delivers a prompt of `text` as the command at `offset`.
    async fn prompt(&mut self, offset: u64, text: &str) -> Delivered {
        let command = Command::Prompt(Prompt {
            text: text.into(),
            ..Prompt::default()
        });
        let to_pi = json!({"id": format!("o{offset}"), "type": "prompt", "message": text});
        self.deliver(offset, command, to_pi).await
    }

    /// Events until `done` says so.
    async fn events_until(&mut self, done: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let mut events = Vec::new();
        while !done(&events) {
            let record = tokio::time::timeout(Duration::from_secs(60), self.pi.next_record())
                .await
                .unwrap_or_else(|_| panic!("pi went quiet; stderr: {}", self.pi.stderr_tail()))
                .unwrap_or_else(|| panic!("pi exited; stderr: {}", self.pi.stderr_tail()));
            let Record::Value(value) = record else {
                panic!("pi wrote a bad line: {record:?}")
            };
            let now_ms = self.started.elapsed().as_millis() as i64;
            let output = self.translator.stdout(&value, now_ms);
            events.extend(output.events);
            for probe in output.to_pi {
                self.pi.send(&probe).await.expect("probe sent");
            }
        }
        events
    }
}

/// A pi configuration in `dir`, on the scripted model at `port`, in the development sandbox.
fn pi_config(dir: &Path, port: u16, provider: &str, model_id: &str) -> PiConfig {
    let pi_bin = workspace_root().join("harnesses/pi/node_modules/.bin/pi");
    let (workspace, home) = (dir.join("ws"), dir.join("home"));
    let sessions = dir.join("sessions");
    for path in [&workspace, &home, &sessions] {
        std::fs::create_dir_all(path).expect("mkdir");
    }
    PiConfig {
        pi_bin,
        agent_dir: agent_dir(dir, port),
        session_dir: sessions,
        workspace,
        home: home.clone(),
        provider: provider.into(),
        model_id: model_id.into(),
        thinking_level: None,
        session_file: None,
        pin_model: true,
        fork: None,
        sandbox: SandboxPolicy::from_user_file(
            &SandboxFile {
                profile: Some(Profile::Development),
                ..Default::default()
            },
            &home,
        )
        .expect("policy"),
        env: vec![("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into())],
        extensions: Vec::new(),
    }
}

/// The first finished assistant message.
fn first_answer(events: &[Event]) -> Option<octo_core::Message> {
    events.iter().find_map(|event| match event {
        Event::StreamMessageEnd(end) => Some(end.message.clone()),
        _ => None,
    })
}

/// Octo's scripted model on an ephemeral loopback port.
async fn start_model(turns: serde_json::Value) -> octo_tools::model::ModelHandle {
    let turns = serde_json::from_value(turns).expect("turns");
    octo_tools::model::serve(
        "127.0.0.1:0".parse().expect("addr"),
        turns,
        Default::default(),
    )
    .await
    .expect("the scripted model starts")
}

fn run_ended(events: &[Event]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::AgentIdle(_) | Event::RunFailed(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_with_a_bash_tool_call_runs_in_the_sandbox() {
    let mut session = Session::start(json!([
        {"text": "Let me check.", "tool_calls": [{"name": "bash", "arguments": {"command": "id -u; echo hi > made.txt; echo x > /etc/octo-escape"}}]},
        {"text": "Done: uid 1000."}
    ]))
    .await;
    session.prompt(10, "Run the check.").await;
    let events = session.events_until(run_ended).await;
    session.pi.kill().await.expect("killed");
    let workspace = session.workspace.clone();
    assert_eq!(
        session.model.requests().len(),
        2,
        "one request per model turn"
    );
    let names: Vec<&str> = events.iter().map(Event::type_name).collect();
    let must_follow = [
        "agent.working",
        "message.created",
        "stream.message_start",
        "stream.tool_call_delta",
        "stream.message_end",
        "usage.recorded",
        "tool.start",
        "tool.end",
        "message.created",
        "stream.message_start",
        "stream.message_end",
        "usage.recorded",
        "agent.idle",
    ];
    let mut position = 0;
    for wanted in must_follow {
        position += names[position..]
            .iter()
            .position(|name| *name == wanted)
            .unwrap_or_else(|| panic!("{wanted} missing after position {position} in {names:?}"))
            + 1;
    }
    assert_eq!(names.last(), Some(&"agent.idle"));
    let tool_result = events
        .iter()
        .find_map(|event| match event {
            Event::MessageCreated(created) => match created.message.parts.first() {
                Some(Part::ToolResult(result)) => Some(result.clone()),
                _ => None,
            },
            _ => None,
        })
        .expect("a tool result");
    let output: String = tool_result
        .content
        .iter()
        .map(|content| match content {
            octo_core::message::ResultContent::Text(text) => text.text.clone(),
            octo_core::message::ResultContent::Image(_) => String::new(),
        })
        .collect();
    assert!(
        output.starts_with("1000\n"),
        "the tool ran as uid 1000: {output:?}"
    );
    assert!(
        output.contains("Read-only file system"),
        "writing /etc failed inside: {output:?}"
    );
    assert_eq!(
        std::fs::read_to_string(workspace.join("made.txt")).expect("written in the workspace"),
        "hi\n"
    );
    assert!(
        !Path::new("/etc/octo-escape").exists(),
        "the host's /etc is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_ends_a_hanging_stream() {
    use octo_core::command::Abort;
    let mut session =
        Session::start(json!([{"text": "I will think for a long time", "hang": true}])).await;
    session.prompt(10, "Think.").await;
    // Wait until the answer streams, then abort.
    session
        .events_until(|events| {
            events
                .iter()
                .any(|e| matches!(e, Event::StreamTextDelta(_)))
        })
        .await;
    let abort = session
        .deliver(
            11,
            Command::Abort(Abort {}),
            json!({"id": "o11", "type": "abort"}),
        )
        .await;
    let events = session.events_until(run_ended).await;
    session.pi.kill().await.expect("killed");
    let Some(Event::AgentIdle(idle)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(idle.outcome, octo_core::event::IdleOutcome::Aborted);
    assert_eq!(
        idle.cause,
        Some(abort.offset),
        "the abort settles with the run's end"
    );
    let ended = first_answer(&events).expect("the partial answer ends");
    assert_eq!(
        ended.stop_reason,
        Some(octo_core::message::StopReason::Aborted)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while session
        .model
        .requests()
        .first()
        .and_then(|r| r.outcome.clone())
        .as_deref()
        != Some("aborted")
    {
        assert!(
            Instant::now() < deadline,
            "the model saw the abort: {:?}",
            session.model.requests()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_anthropic_api_streams_thinking_text_and_tools() {
    let mut session = Session::start_on(
        json!([
            {"thinking": "I should list files.", "text": "Listing.", "tool_calls": [{"name": "bash", "arguments": {"command": "echo ok"}}]},
            {"text": "All good."}
        ]),
        "fake-anthropic",
        "fake-claude",
    )
    .await;
    session.prompt(10, "List.").await;
    let events = session.events_until(run_ended).await;
    session.pi.kill().await.expect("killed");
    assert!(
        matches!(events.last(), Some(Event::AgentIdle(_))),
        "{events:?}"
    );
    let first_answer = first_answer(&events).expect("an answer");
    let kinds: Vec<&str> = first_answer
        .parts
        .iter()
        .map(|part| match part {
            Part::Thinking(_) => "thinking",
            Part::Text(_) => "text",
            Part::ToolCall(_) => "tool_call",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, vec!["thinking", "text", "tool_call"]);
    assert_eq!(first_answer.provider.as_deref(), Some("fake-anthropic"));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::StreamThinkingDelta(_))),
        "thinking streamed"
    );
    assert!(
        session
            .model
            .requests()
            .iter()
            .all(|r| r.path == "/v1/messages")
    );
}

mod supervised {
    use super::*;
    use octo_core::event::HarnessExitReason;
    use octo_runner::pi::session::PiSession;

    async fn until(session: &mut PiSession, done: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let mut events = Vec::new();
        while !done(&events) {
            let batch = tokio::time::timeout(Duration::from_secs(60), session.next_events())
                .await
                .unwrap_or_else(|_| panic!("no events in time; so far {events:?}"));
            events.extend(batch);
        }
        events
    }

    fn prompt(offset: u64, text: &str) -> Delivered {
        Delivered {
            offset: Offset::new(offset).expect("small"),
            command_id: CommandId::new(),
            command: Command::Prompt(Prompt {
                text: text.into(),
                ..Prompt::default()
            }),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_killed_pi_fails_its_run_and_the_next_prompt_restarts_it() {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
        let model =
            start_model(json!([{"text": "Working on it", "hang": true}, {"text": "Back again."}]))
                .await;
        let config = pi_config(dir.path(), model.addr().port(), "fake", "fake-model");
        let mut session = PiSession::new(config, Duration::from_secs(120));
        let started = session
            .try_deliver(prompt(10, "first"))
            .await
            .expect("pi starts");
        let [Event::HarnessStarted(first_start)] = &started[..] else {
            panic!("{started:?}")
        };
        assert!(!first_start.resumed);
        assert_eq!(first_start.cause, Some(Offset::new(10).expect("small")));
        until(&mut session, |events| {
            events
                .iter()
                .any(|e| matches!(e, Event::StreamTextDelta(_)))
        })
        .await;

        // kill -9 the sandbox (pi dies with it) mid-turn.
        let status = std::process::Command::new("kill")
            .args(["-9", &first_start.pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let events = until(&mut session, |events| {
            events.iter().any(|e| matches!(e, Event::HarnessExited(_)))
        })
        .await;
        let failed = events.iter().find_map(|e| match e {
            Event::RunFailed(failed) => Some(failed.clone()),
            _ => None,
        });
        let failed = failed.expect("the open run failed");
        assert!(failed.recoverable);
        assert_eq!(failed.error.code, octo_core::ErrorCode::HarnessExited);
        let Some(Event::HarnessExited(exited)) = events.last() else {
            panic!("{events:?}")
        };
        assert_eq!(exited.reason, HarnessExitReason::Crashed);
        assert!(!session.is_running());

        // The next prompt starts pi again and works.
        let started = session
            .try_deliver(prompt(20, "second"))
            .await
            .expect("pi restarts");
        assert!(
            matches!(started[..], [Event::HarnessStarted(_)]),
            "{started:?}"
        );
        let events = until(&mut session, run_ended).await;
        let answer = first_answer(&events).expect("an answer");
        assert!(
            matches!(&answer.parts[..], [Part::Text(text)] if text.text == "Back again."),
            "{answer:?}"
        );
        assert!(matches!(events.last(), Some(Event::AgentIdle(_))));
        assert_eq!(
            model.requests().len(),
            2,
            "the first prompt was not sent again"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_progress_times_the_run_out() {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
        let model = start_model(json!([{"text": "Thinking", "hang": true}])).await;
        let config = pi_config(dir.path(), model.addr().port(), "fake", "fake-model");
        let mut session = PiSession::new(config, Duration::from_millis(1500));
        session
            .try_deliver(prompt(10, "think"))
            .await
            .expect("pi starts");
        let events = until(&mut session, |events| {
            events.iter().any(|e| matches!(e, Event::RunTimedOut(_)))
        })
        .await;
        let Some(Event::RunTimedOut(timed_out)) = events.last() else {
            panic!("{events:?}")
        };
        assert_eq!(timed_out.limit_ms, 1500);
        let events = until(&mut session, |events| {
            events.iter().any(|e| matches!(e, Event::HarnessExited(_)))
        })
        .await;
        let Some(Event::HarnessExited(exited)) = events.last() else {
            panic!("{events:?}")
        };
        assert_eq!(exited.reason, HarnessExitReason::Killed);
        assert!(
            !events.iter().any(|e| matches!(e, Event::RunFailed(_))),
            "the run already ended: {events:?}"
        );
    }
}
