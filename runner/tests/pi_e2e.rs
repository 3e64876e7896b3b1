//! The real pi (npm, pinned in harnesses/pi) in the real sandbox, driven through the translator
//! against a scripted model on loopback (the reference fake in ../shared/tools until Octo's own
//! scripted model lands): a prompt whose answer runs a bash tool inside the sandbox.
//!
//! Needs `npm ci --prefix harnesses/pi`, python3 and bwrap (scripts/test.sh sets them up).

use std::path::{Path, PathBuf};
use std::process::Stdio;
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

/// The scripted model: the reference fake, on an ephemeral port, killed on drop.
struct FakeModel {
    child: std::process::Child,
    port: u16,
}

impl FakeModel {
    fn start(dir: &Path, script: &serde_json::Value) -> FakeModel {
        let fake = workspace_root().join("../shared/tools/fake_llm.py");
        assert!(fake.exists(), "the scripted model is at {}", fake.display());
        let script_file = dir.join("script.json");
        std::fs::write(&script_file, script.to_string()).expect("write script");
        let port_file = dir.join("fake.port");
        let child = std::process::Command::new("python3")
            .arg(&fake)
            .args(["--port", "0", "--port-file"])
            .arg(&port_file)
            .arg("--script")
            .arg(&script_file)
            .arg("--log")
            .arg(dir.join("requests.jsonl"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the fake model");
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file)
                && let Ok(port) = text.trim().parse()
            {
                break port;
            }
            assert!(Instant::now() < deadline, "the fake model did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        FakeModel { child, port }
    }
}

impl Drop for FakeModel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent_dir(dir: &Path, port: u16) -> PathBuf {
    let agent = dir.join("agent");
    std::fs::create_dir_all(&agent).expect("mkdir");
    let models = json!({"providers": {"fake": {
        "baseUrl": format!("http://127.0.0.1:{port}/v1"), "api": "openai-completions", "apiKey": "fake-key",
        "compat": {"supportsDeveloperRole": false, "supportsReasoningEffort": false},
        "models": [{"id": "fake-model", "name": "Fake Model", "reasoning": false, "input": ["text"],
            "contextWindow": 32000, "maxTokens": 4096,
            "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0}}]}}});
    std::fs::write(agent.join("models.json"), models.to_string()).expect("write");
    let settings = json!({"defaultProvider": "fake", "defaultModel": "fake-model", "quietStartup": true,
        "enableInstallTelemetry": false,
        "retry": {"enabled": false, "maxRetries": 0, "baseDelayMs": 100, "provider": {"maxRetries": 0}}});
    std::fs::write(agent.join("settings.json"), settings.to_string()).expect("write");
    agent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_with_a_bash_tool_call_runs_in_the_sandbox() {
    let pi_bin = workspace_root().join("harnesses/pi/node_modules/.bin/pi");
    assert!(
        pi_bin.exists(),
        "pi is installed: npm ci --prefix harnesses/pi (scripts/test.sh does)"
    );
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let fake = FakeModel::start(
        dir.path(),
        &json!([
            {"text": "Let me check.", "tool_calls": [{"name": "bash", "arguments": {"command": "id -u; echo hi > made.txt; echo x > /etc/octo-escape"}}]},
            {"text": "Done: uid 1000."}
        ]),
    );
    let (workspace, home) = (dir.path().join("ws"), dir.path().join("home"));
    let sessions = dir.path().join("sessions");
    for path in [&workspace, &home, &sessions] {
        std::fs::create_dir_all(path).expect("mkdir");
    }
    let config = PiConfig {
        pi_bin,
        agent_dir: agent_dir(dir.path(), fake.port),
        session_dir: sessions,
        workspace: workspace.clone(),
        home: home.clone(),
        provider: "fake".into(),
        model_id: "fake-model".into(),
        session_file: None,
        sandbox: SandboxPolicy::from_user_file(
            &SandboxFile {
                profile: Some(Profile::Development),
                ..Default::default()
            },
            &home,
        )
        .expect("policy"),
        env: vec![("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into())],
    };
    let mut pi = PiProcess::spawn(&config).expect("pi starts");
    let mut translator = Translator::new(FreshIds, "fake", "fake-model");
    let prompt = Delivered {
        offset: Offset::new(10).expect("small"),
        command_id: CommandId::new(),
        command: Command::Prompt(Prompt {
            text: "Run the check.".into(),
            ..Prompt::default()
        }),
    };
    translator.delivered(prompt.clone());
    pi.send(&json!({"id": "o10", "type": "prompt", "message": "Run the check."}))
        .await
        .expect("pi takes the prompt");

    let started = Instant::now();
    let mut events = Vec::new();
    while !events
        .iter()
        .any(|e| matches!(e, Event::AgentIdle(_) | Event::RunFailed(_)))
    {
        let record = tokio::time::timeout(Duration::from_secs(60), pi.next_record())
            .await
            .unwrap_or_else(|_| panic!("pi went quiet; stderr: {}", pi.stderr_tail()))
            .unwrap_or_else(|| panic!("pi exited; stderr: {}", pi.stderr_tail()));
        let Record::Value(value) = record else {
            panic!("pi wrote a bad line: {record:?}")
        };
        let now_ms = started.elapsed().as_millis() as i64;
        let output = translator.stdout(&value, now_ms);
        events.extend(output.events);
        for probe in output.to_pi {
            pi.send(&probe).await.expect("probe sent");
        }
    }
    pi.kill().await.expect("killed");

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
