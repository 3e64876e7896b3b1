//! `octoctl` against a real `octo` in demo mode (no LLM key: the built-in scripted model): create
//! a session, prompt it with `--follow`, and see the streamed answer and the tool call that ran in
//! the sandbox. Also the exit codes scripts rely on.

use std::path::Path;
use std::process::Command;

fn pi_bin() -> std::path::PathBuf {
    let pi = Path::new(env!("CARGO_MANIFEST_DIR")).join("../harnesses/pi/node_modules/.bin/pi");
    assert!(pi.exists(), "pi is installed: npm ci --prefix harnesses/pi");
    pi
}

fn octoctl(data_dir: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_octoctl"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("OCTO_URL")
        .env_remove("OCTO_TOKEN")
        .output()
        .expect("octoctl runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_mode_session_create_and_prompt_follow() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let data_dir = dir.path().join("data");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("mkdir");
    let mut config = octo_gateway::ServeConfig::new(&data_dir, pi_bin());
    config.demo = true;
    config.home = home;
    config.harness_env = vec![("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into())];
    let server = octo_gateway::start(config)
        .await
        .expect("octo starts in demo mode");
    let data = data_dir.clone();
    let (code, session, stderr) =
        tokio::task::spawn_blocking(move || octoctl(&data, &["session", "create"]))
            .await
            .expect("joins");
    assert_eq!(code, 0, "{stderr}");
    let session = session.trim().to_owned();
    assert_eq!(session.len(), 36, "a session id: {session}");
    let data = data_dir.clone();
    let id = session.clone();
    let (code, out, stderr) = tokio::task::spawn_blocking(move || {
        octoctl(
            &data,
            &["prompt", &id, "What is in my workspace?", "--follow"],
        )
    })
    .await
    .expect("joins");
    assert_eq!(code, 0, "{out}\n{stderr}");
    assert!(
        out.contains("demo model"),
        "the demo's answer streamed: {out}"
    );
    assert!(out.contains("[tool] bash"), "the tool call: {out}");
    assert!(
        out.contains("hello from"),
        "the tool's output from the sandbox: {out}"
    );
    assert!(
        out.contains("inside bubblewrap"),
        "the second answer: {out}"
    );
    assert!(
        data_dir.join("demo-workspace").is_dir(),
        "demo mode makes its workspace in the data dir"
    );

    // JSON output: one entry per line, ending with agent.idle.
    let data = data_dir.clone();
    let id = session.clone();
    let (code, out, stderr) = tokio::task::spawn_blocking(move || {
        octoctl(
            &data,
            &["--format", "json", "prompt", &id, "echo me", "--follow"],
        )
    })
    .await
    .expect("joins");
    assert_eq!(code, 0, "{stderr}");
    let last: serde_json::Value =
        serde_json::from_str(out.lines().last().expect("lines")).expect("json lines");
    assert_eq!(last["body"]["type"], "agent.idle");
    assert!(
        out.contains("echo: echo me"),
        "the demo echoes once its script is done: {out}"
    );

    // Exit codes: a refused command is 1, a missing server is 2.
    let data = data_dir.clone();
    let (code, _, stderr) = tokio::task::spawn_blocking(move || {
        octoctl(
            &data,
            &["prompt", "0193f1a0-5c2e-7b40-9a11-3c5e7d9f0b21", "hi"],
        )
    })
    .await
    .expect("joins");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("session_not_found"), "{stderr}");
    let empty = dir.path().join("nothing-here");
    let (code, _, stderr) =
        tokio::task::spawn_blocking(move || octoctl(&empty, &["session", "create"]))
            .await
            .expect("joins");
    assert_eq!(code, 2, "{stderr}");
    server.shutdown().await;
}
