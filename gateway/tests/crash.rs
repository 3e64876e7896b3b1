//! kill -9 of `octo` mid-turn, then a restart on the same data dir: nothing acked is lost, the
//! interrupted run and the undelivered follow-up are failed (`runner_lost`) and never run again,
//! and the session ends idle or in error, never stuck in working.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use octo_core::frame::{AckStatus, RunState};
use octo_core::{Encoding, ErrorCode, Event};
use octo_tools::client::Client;
use serde_json::json;
use support::{Agent, cid, config_in, event, types};

/// The `octo` child, killed if the test panics first.
struct Running(Child);

impl Running {
    fn kill(&mut self) -> std::io::Result<()> {
        self.0.kill()
    }

    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.0.wait()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_octo(dir: &Path, config: &octo_gateway::ServeConfig) -> (Running, String, String) {
    let _ = std::fs::remove_file(config.data_dir.join("url"));
    let child = Command::new(env!("CARGO_BIN_EXE_octo"))
        .arg("--data-dir")
        .arg(&config.data_dir)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--model",
            "fake/fake-model",
        ])
        .arg("--workspaces")
        .arg(config.workspaces.as_ref().expect("workspaces"))
        .arg("--pi")
        .arg(&config.pi_bin)
        .arg("--pi-config")
        .arg(config.pi_config.as_ref().expect("pi config"))
        .arg("--sandbox")
        .arg(dir.join("no-sandbox-file.toml"))
        .env_clear()
        .env("HOME", &config.home)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("octo starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = loop {
        if let Ok(url) = std::fs::read_to_string(config.data_dir.join("url")) {
            break url;
        }
        assert!(Instant::now() < deadline, "octo wrote its url");
        std::thread::sleep(Duration::from_millis(50));
    };
    let token = std::fs::read_to_string(config.data_dir.join("token")).expect("token");
    (Running(child), url, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_octo_mid_turn_loses_nothing_and_runs_nothing_twice() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let turns = serde_json::from_value(json!([
        {"text": "A long answer that never ends", "hang": true, "match": "interrupted"},
        {"text": "Fine again.", "match": "after"}
    ]))
    .expect("turns");
    let model = octo_tools::model::serve(
        "127.0.0.1:0".parse().expect("addr"),
        turns,
        Default::default(),
    )
    .await
    .expect("model");
    let config = config_in(dir.path(), model.addr().port());

    let (mut octo, url, token) = spawn_octo(dir.path(), &config);
    let mut agent = Agent::new(
        Client::connect(&url, &token, Encoding::Json)
            .await
            .expect("connects"),
    );
    let (session_id, _) = agent.create_session().await;
    agent.subscribe(session_id, None).await;
    let prompt = agent.prompt(session_id, "interrupted").await;
    agent.until_streaming(prompt).await;
    // A follow-up queued behind the open run: delivered to pi, not yet injected.
    let follow_up = agent.prompt(session_id, "queued behind").await;
    let seen_before = agent.entries.clone();
    let requests_before = model.requests().len();
    octo.kill().expect("kill -9");
    octo.wait().expect("reaped");
    drop(agent);

    let (mut octo, url, token) = spawn_octo(dir.path(), &config);
    let mut agent = Agent::new(
        Client::connect(&url, &token, Encoding::Json)
            .await
            .expect("reconnects"),
    );
    agent.subscribe(session_id, None).await;
    // Everything seen before the kill is still there, in order, with the same offsets.
    agent
        .until(|_, entries| (entries.len() >= seen_before.len()).then_some(()))
        .await;
    assert_eq!(
        &agent.entries[..seen_before.len()],
        &seen_before[..],
        "nothing acked or shown was lost or changed"
    );
    // The acked follow-up survived (it may come after what the first client had seen).
    agent
        .until(|_, entries| entries.iter().any(|e| e.offset == follow_up).then_some(()))
        .await;
    // The interrupted run and the unsettled follow-up are failed as runner_lost.
    let settled = agent
        .until(|_, entries| {
            let run_failed = find_event!(entries, Event::RunFailed)?;
            let command_failed = entries.iter().find_map(|e| match event(e) {
                Some(Event::CommandFailed(failed)) if failed.cause == follow_up => {
                    Some(failed.clone())
                }
                _ => None,
            })?;
            Some((run_failed, command_failed))
        })
        .await;
    assert_eq!(settled.0.error.code, ErrorCode::RunnerLost);
    assert!(settled.0.recoverable);
    assert_eq!(settled.1.error.code, ErrorCode::RunnerLost);
    let names = types(&agent.entries);
    assert!(names.contains(&"harness.exited"), "{names:?}");
    // Nothing was run again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        model.requests().len(),
        requests_before,
        "no model request after the restart"
    );
    // The next prompt works, on the session's resumed pi.
    let prompt = agent.prompt(session_id, "after the restart").await;
    let run = agent.until_run_ends(prompt).await;
    assert!(
        run.iter()
            .any(|e| matches!(event(e), Some(Event::AgentIdle(_)))),
        "{:?}",
        types(&run)
    );
    // A re-sent command id from before the crash is still a duplicate.
    let ack = agent
        .command(json!({"ch": "agent", "type": "session.rename", "command_id": cid(), "session_id": session_id, "title": "survivor"}))
        .await;
    assert_eq!(ack.status, AckStatus::Accepted);
    octo.kill().expect("kill");
    octo.wait().expect("reaped");

    // A third start, with no client: the session is idle, and the log is intact.
    let (mut octo, url, token) = spawn_octo(dir.path(), &config);
    let mut agent = Agent::new(
        Client::connect(&url, &token, Encoding::Json)
            .await
            .expect("reconnects"),
    );
    agent.subscribe(session_id, None).await;
    let ack = agent
        .command(
            json!({"ch": "agent", "type": "abort", "command_id": cid(), "session_id": session_id}),
        )
        .await;
    assert_eq!(
        ack.status,
        AckStatus::Rejected,
        "no run is open after restarts: {ack:?}"
    );
    octo.kill().expect("kill");
    octo.wait().expect("reaped");
    let _ = RunState::Idle;
}
