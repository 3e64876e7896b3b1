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
    let server = demo_server(dir.path()).await;
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

/// A demo-mode server in `dir`.
async fn demo_server(dir: &Path) -> octo_gateway::Server {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).expect("mkdir");
    let mut config = octo_gateway::ServeConfig::new(dir.join("data"), pi_bin());
    config.demo = true;
    config.home = home;
    config.harness_env = vec![("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into())];
    octo_gateway::start(config)
        .await
        .expect("octo starts in demo mode")
}

async fn ctl(data_dir: &Path, args: &[&str]) -> (i32, String, String) {
    let data = data_dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        octoctl(&data, &args)
    })
    .await
    .expect("joins")
}

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

async fn all_entries(server: &octo_gateway::Server) -> Vec<octo_core::LogEntry> {
    let log = &server.app().log;
    let batch = log
        .read(octo_log::ReadQuery {
            filter: octo_log::LogFilter::all(),
            after: octo_core::Offset::ZERO,
            until: None,
            limit: 100_000,
        })
        .await
        .expect("reads");
    batch.entries.iter().map(|e| (**e).clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_tail_follows_appends_and_resumes_after_an_offset() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let server = demo_server(dir.path()).await;
    let data_dir = dir.path().join("data");
    let (code, session, stderr) = ctl(&data_dir, &["sessions", "create"]).await;
    assert_eq!(code, 0, "{stderr}");
    let session = session.trim().to_owned();

    // Follow from the start, in the background.
    let mut tail = tokio::process::Command::new(env!("CARGO_BIN_EXE_octoctl"))
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--format", "json", "log", "tail", "--follow"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("tail runs");
    let stdout = tail.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let mut seen: Vec<serde_json::Value> = Vec::new();
    let mut next_line = async || -> serde_json::Value {
        let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
            .await
            .expect("a line in time")
            .expect("reads")
            .expect("the tail keeps running");
        serde_json::from_str(&line).expect("a JSON entry")
    };
    while !seen.iter().any(|e| e["body"]["type"] == "session.created") {
        seen.push(next_line().await);
    }
    // A prompt appended now is printed as it happens.
    let (code, _, stderr) = ctl(&data_dir, &["prompt", &session, "echo live"]).await;
    assert_eq!(code, 0, "{stderr}");
    while !seen.iter().any(|e| e["body"]["type"] == "agent.idle") {
        seen.push(next_line().await);
    }
    tail.kill().await.expect("stops");
    let log = all_entries(&server).await;
    let printed: Vec<u64> = seen
        .iter()
        .map(|e| e["offset"].as_u64().expect("offset"))
        .collect();
    let expected: Vec<u64> = log
        .iter()
        .map(|e| e.offset.get())
        .filter(|o| *o <= *printed.last().expect("some"))
        .collect();
    assert_eq!(printed, expected, "every entry once, in order, live");

    // Resume after an offset (not following): exactly the later entries, to the head.
    let middle = printed[printed.len() / 2];
    let (code, out, stderr) = ctl(
        &data_dir,
        &[
            "--format",
            "json",
            "log",
            "tail",
            "--after",
            &middle.to_string(),
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let resumed: Vec<u64> = json_lines(&out)
        .iter()
        .map(|e| e["offset"].as_u64().expect("offset"))
        .collect();
    let log = all_entries(&server).await;
    let later: Vec<u64> = log
        .iter()
        .map(|e| e.offset.get())
        .filter(|o| *o > middle)
        .collect();
    assert_eq!(resumed, later);
    // Filters: one session's view, one type family; and pretty output by default.
    let (code, out, stderr) = ctl(
        &data_dir,
        &[
            "--format",
            "json",
            "log",
            "tail",
            "--session",
            &session,
            "--type",
            "stream.*",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let streamed = json_lines(&out);
    assert!(!streamed.is_empty());
    assert!(streamed.iter().all(|e| {
        e["body"]["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("stream."))
    }));
    let (code, out, _) = ctl(&data_dir, &["log", "tail", "--kind", "command"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("prompt") && out.contains("echo live"), "{out}");
    assert!(!out.contains("agent.idle"));
    // A cursor beyond the head is refused (exit 1, invalid_offset).
    let (code, _, stderr) = ctl(&data_dir, &["log", "tail", "--after", "999999999"]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("invalid_offset"), "{stderr}");

    // Replay plays the session back; JSON gives exactly the view's entries.
    let (code, out, stderr) = ctl(
        &data_dir,
        &["--format", "json", "replay", &session, "--speed", "0"],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let own: Vec<u64> = log
        .iter()
        .filter(|e| e.session_id.to_string() == session)
        .map(|e| e.offset.get())
        .collect();
    let replayed: Vec<u64> = json_lines(&out)
        .iter()
        .map(|e| e["offset"].as_u64().expect("offset"))
        .collect();
    assert_eq!(replayed, own);
    let (code, out, _) = ctl(&data_dir, &["replay", &session, "--speed", "50"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("> echo live"), "{out}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_fork_rerun_search_stats_export_import_and_projections() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let server = demo_server(dir.path()).await;
    let data_dir = dir.path().join("data");
    let (_, session, _) = ctl(
        &data_dir,
        &["sessions", "create", "--title", "Octoctl <b>test</b>"],
    )
    .await;
    let session = session.trim().to_owned();
    let (code, _, stderr) = ctl(
        &data_dir,
        &["prompt", &session, "zebra crossing", "--follow"],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");

    // sessions list and show.
    let (code, out, _) = ctl(&data_dir, &["sessions", "list"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains(&session) && out.contains("Octoctl <b>test</b>"),
        "{out}"
    );
    let (code, out, _) = ctl(
        &data_dir,
        &["--format", "json", "sessions", "show", &session],
    )
    .await;
    assert_eq!(code, 0);
    let shown: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(shown["messages"][0]["text"], "zebra crossing");

    // search and stats.
    let (code, out, _) = ctl(&data_dir, &["search", "zebra"]).await;
    assert_eq!(code, 0);
    assert!(out.contains(&session), "{out}");
    let (code, out, _) = ctl(
        &data_dir,
        &["--format", "json", "stats", "--by", "day,model"],
    )
    .await;
    assert_eq!(code, 0);
    let rows = json_lines(&out);
    assert!(rows.iter().any(|r| r["turns"].as_u64() >= Some(1)), "{out}");
    let (code, _, stderr) = ctl(&data_dir, &["stats", "--by", "colour"]).await;
    assert_eq!(code, 2, "{stderr}");

    // fork at the end of the run, and rerun.
    let log = all_entries(&server).await;
    let end = log
        .iter()
        .rfind(|e| e.session_id.to_string() == session && e.body.type_name() == "agent.idle")
        .expect("the run ended")
        .offset;
    let (code, fork, stderr) = ctl(&data_dir, &["fork", &session, "--at", &end.to_string()]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(fork.trim().len(), 36);
    let (code, rerun, stderr) = ctl(&data_dir, &["rerun", &session]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(rerun.trim().len(), 36);
    let (code, _, stderr) = ctl(&data_dir, &["fork", &session, "--at", "999999999"]).await;
    assert_eq!(code, 1, "{stderr}");
    // "Fork here" on the answer: the server's rule puts it at the run's end.
    let answer = shown["messages"]
        .as_array()
        .and_then(|m| m.iter().rfind(|m| m["role"] == "assistant"))
        .expect("an answer")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (code, out, stderr) = ctl(
        &data_dir,
        &["--format", "json", "fork", &session, "--message", &answer],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let forked: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(forked["parent"]["offset"], end.get());

    // export: JSONL is the view's entries; the HTML page opens in Chromium.
    let (code, out, _) = ctl(&data_dir, &["export", &session]).await;
    assert_eq!(code, 0);
    let exported = json_lines(&out);
    let own = all_entries(&server)
        .await
        .into_iter()
        .filter(|e| e.session_id.to_string() == session)
        .count();
    assert_eq!(exported.len(), own);
    let page = dir.path().join("session.html");
    let (code, _, stderr) = ctl(
        &data_dir,
        &[
            "export",
            &session,
            "--as",
            "html",
            "-o",
            page.to_str().expect("utf-8"),
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let dom = tokio::task::spawn_blocking({
        let page = page.clone();
        let profile = dir.path().join("chromium-profile");
        move || {
            Command::new("chromium")
                .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
                .arg(format!("--user-data-dir={}", profile.display()))
                .arg(format!("file://{}", page.display()))
                .output()
                .expect("chromium runs (apt install chromium; scripts/test.sh does)")
        }
    })
    .await
    .expect("joins");
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("zebra crossing"),
        "the page renders the messages: {dom}"
    );
    assert!(
        dom.contains("Octoctl &lt;b&gt;test&lt;/b&gt;"),
        "titles are text, not markup"
    );

    // import: the same pi session file twice is one conversation, the second time a no-op.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../runner/tests/fixtures/pi-0.73.1-session.jsonl");
    let fixture = fixture.to_str().expect("utf-8");
    let (code, out, stderr) = ctl(&data_dir, &["--format", "json", "import", fixture]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json_lines(&out)[0]["outcome"], "written", "{out}");
    // The sessions with a harness (the source, its forks and its rerun) may still be appending
    // (a fork's `harness.started`, the rerun's prompts); everything else is the import's.
    let running: Vec<String> = [
        session.clone(),
        fork.trim().to_owned(),
        forked["session_id"].as_str().expect("a fork").to_owned(),
        rerun.trim().to_owned(),
    ]
    .into();
    let imported = |entries: &[octo_core::LogEntry]| {
        entries
            .iter()
            .filter(|e| !running.contains(&e.session_id.to_string()))
            .count()
    };
    let before = imported(&all_entries(&server).await);
    let (code, out, stderr) = ctl(&data_dir, &["--format", "json", "import", fixture]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json_lines(&out)[0]["outcome"], "unchanged", "{out}");
    let after = all_entries(&server).await;
    assert_eq!(imported(&after), before, "a re-import appends nothing");
    let conversations = after
        .iter()
        .filter(|e| e.body.type_name() == "history.conversation_upserted")
        .count();
    assert_eq!(conversations, 1);
    let (code, _, stderr) = ctl(&data_dir, &["import", "/etc/hostname"]).await;
    assert_eq!(code, 1, "{stderr}");

    // projections: status from the server; rebuild on the stopped data dir.
    let (code, out, _) = ctl(&data_dir, &["--format", "json", "projections", "status"]).await;
    assert_eq!(code, 0);
    let status = json_lines(&out);
    assert_eq!(status.len(), 5, "{out}");
    let (code, _, stderr) = ctl(&data_dir, &["projections", "rebuild", "history"]).await;
    assert_eq!(code, 2, "the running server holds the data dir: {stderr}");
    let (code, out, stderr) = ctl(&data_dir, &["doctor"]).await;
    assert!(out.contains("ok   server"), "{out}\n{stderr}");
    assert!(code == 0 || code == 1, "{stderr}");
    server.shutdown().await;
    let (code, out, stderr) = ctl(
        &data_dir,
        &["--format", "json", "projections", "rebuild", "all"],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json_lines(&out).len(), 5, "{out}");
    // The rebuilt projections serve the same listing.
    let server = demo_server(dir.path()).await;
    let (code, out, _) = ctl(
        &data_dir,
        &["--format", "json", "sessions", "show", &session],
    )
    .await;
    assert_eq!(code, 0);
    let again: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(again["messages"], shown["messages"]);
    server.shutdown().await;
}
