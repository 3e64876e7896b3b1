//! Fork (PROTOCOL.md 9) with the real pi and the scripted model: the model's own request log shows
//! that a fork's next request carries exactly the parent's context up to the fork point, whatever
//! kind of message the fork was made at; the parent is unchanged; a fork of a fork works; a fork
//! inside a run or at an offset outside the view is refused; a subscription to a fork delivers its
//! whole view once.

mod support;

use octo_core::frame::{Ack, AckStatus};
use octo_core::{Body, Command, ErrorCode, Event, LogEntry, Offset, SessionId};
use serde_json::{Value, json};
use support::{Agent, Octo, cid, event, types};

/// The conversation a model request carries: `(role, text)` without the system prompt.
fn conversation(body: &Value) -> Vec<(String, String)> {
    body["messages"]
        .as_array()
        .expect("an OpenAI-style request has messages")
        .iter()
        .filter(|message| message["role"] != "system" && message["role"] != "developer")
        .map(|message| {
            let text = match &message["content"] {
                Value::String(text) => text.clone(),
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(|part| part["text"].as_str())
                    .collect::<Vec<_>>()
                    .join(""),
                _ => String::new(),
            };
            (
                message["role"].as_str().unwrap_or_default().to_owned(),
                text,
            )
        })
        .collect()
}

fn turn(role: &str, text: &str) -> (String, String) {
    (role.to_owned(), text.to_owned())
}

/// The last model request's conversation.
fn last_request(octo: &Octo) -> Vec<(String, String)> {
    let requests = octo.model.requests();
    conversation(&requests.last().expect("the model was asked").body)
}

async fn fork(agent: &mut Agent, source: SessionId, at: Offset, command_id: &str) -> Ack {
    agent
        .command(
            json!({"ch": "agent", "type": "fork", "command_id": command_id,
            "session_id": source, "at_offset": at}),
        )
        .await
}

/// A connection subscribed to `session_id` from its first entry, waiting until its harness has
/// started (the fork starts it eagerly).
async fn open(octo: &Octo, session_id: SessionId) -> Agent {
    let mut agent = Agent::new(octo.client().await);
    agent.subscribe(session_id, None).await;
    agent
        .until(|_, entries| {
            entries
                .iter()
                .find(|e| {
                    e.session_id == session_id
                        && matches!(
                            event(e),
                            Some(Event::HarnessStarted(_) | Event::HarnessExited(_))
                        )
                })
                .map(|e| {
                    assert!(
                        matches!(event(e), Some(Event::HarnessStarted(_))),
                        "the fork's harness starts: {e:?}"
                    );
                })
        })
        .await;
    agent
}

/// Forks `source` at `at`, asks the fork `question`, and checks that the model was asked with
/// exactly `context` and then the question. Returns the fork and its connection.
async fn fork_and_ask(
    octo: &Octo,
    agent: &mut Agent,
    source: SessionId,
    at: Offset,
    question: &str,
    context: &[(&str, &str)],
) -> (SessionId, Agent) {
    let ack = fork(agent, source, at, &cid()).await;
    assert_eq!(ack.status, AckStatus::Accepted, "{ack:?}");
    let fork_id = ack.session_id.expect("the ack names the fork");
    assert_ne!(fork_id, source, "the ack names the new session");
    let mut connection = open(octo, fork_id).await;
    let prompt = connection.prompt(fork_id, question).await;
    connection.until_run_ends(prompt).await;
    let mut expected: Vec<(String, String)> = context
        .iter()
        .map(|(role, text)| turn(role, text))
        .collect();
    expected.push(turn("user", question));
    assert_eq!(
        last_request(octo),
        expected,
        "the fork at {at} asks with the context up to there"
    );
    (fork_id, connection)
}

/// The offset of the run's terminal event (where "fork here" on an assistant message forks).
fn run_end(run: &[LogEntry]) -> Offset {
    run.iter()
        .rev()
        .find(|e| {
            matches!(
                event(e),
                Some(Event::AgentIdle(_) | Event::RunFailed(_) | Event::RunTimedOut(_))
            )
        })
        .expect("the run ended")
        .offset
}

/// Where "fork here" on the user message of the prompt at `prompt` forks: the last entry of the
/// view before that prompt.
fn before(view: &[LogEntry], prompt: Offset) -> Offset {
    view.iter()
        .rev()
        .find(|e| e.offset < prompt)
        .expect("an entry before the prompt")
        .offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_carries_exactly_the_parents_context_up_to_the_fork_point() {
    let octo = Octo::start(json!([
        {"text": "Answer one."},
        {"text": "Answer two."},
        {"text": "Fork answer A."},
        {"text": "Fork answer B."},
        {"text": "Fork answer C."},
        {"text": "Fork answer D."},
        {"text": "Parent answer three."},
        {"text": "Grandchild answer."}
    ]))
    .await;
    let mut parent = Agent::new(octo.client().await);
    let (source, _) = parent.create_session().await;
    parent.subscribe(source, None).await;
    let first = parent.prompt(source, "Question one?").await;
    let run_one = parent.until_run_ends(first).await;
    let second = parent.prompt(source, "Question two?").await;
    let run_two = parent.until_run_ends(second).await;
    let parent_view = parent.entries.clone();
    let home = octo.config.data_dir.join("harness");
    let pi_files_before = pi_session_files(&home);

    // At an assistant message of run one: the fork keeps the whole answer (pi `fork` at the
    // second user message).
    let (child, mut a) = fork_and_ask(
        &octo,
        &mut parent,
        source,
        run_end(&run_one),
        "Fork question A?",
        &[("user", "Question one?"), ("assistant", "Answer one.")],
    )
    .await;
    // At an assistant message of the last run: everything (pi `clone`).
    let (b_id, _) = fork_and_ask(
        &octo,
        &mut parent,
        source,
        run_end(&run_two),
        "Fork question B?",
        &[
            ("user", "Question one?"),
            ("assistant", "Answer one."),
            ("user", "Question two?"),
            ("assistant", "Answer two."),
        ],
    )
    .await;
    // At the second user message: just before its prompt, so to ask differently.
    let (c_id, _) = fork_and_ask(
        &octo,
        &mut parent,
        source,
        before(&parent_view, second),
        "Question two, asked differently?",
        &[("user", "Question one?"), ("assistant", "Answer one.")],
    )
    .await;
    // At the first user message: nothing to inherit, a fresh pi.
    let (d_id, _) = fork_and_ask(
        &octo,
        &mut parent,
        source,
        before(&parent_view, first),
        "A first question, differently?",
        &[],
    )
    .await;

    // The parent is unchanged: its pi files got no entry from the forks, and its next request
    // carries its own context only.
    for (file, bytes) in &pi_files_before {
        assert_eq!(
            std::fs::read(file).expect("the parent's pi file"),
            *bytes,
            "{} changed",
            file.display()
        );
    }
    let third = parent.prompt(source, "Question three?").await;
    parent.until_run_ends(third).await;
    assert_eq!(
        last_request(&octo),
        [
            turn("user", "Question one?"),
            turn("assistant", "Answer one."),
            turn("user", "Question two?"),
            turn("assistant", "Answer two."),
            turn("user", "Question three?")
        ]
    );

    // A fork of a fork: at the end of fork A's own run.
    let a_run = a
        .entries
        .iter()
        .filter(|e| e.session_id == child)
        .cloned()
        .collect::<Vec<_>>();
    let ack = fork(&mut a, child, run_end(&a_run), &cid()).await;
    assert_eq!(ack.status, AckStatus::Accepted, "{ack:?}");
    let grandchild = ack.session_id.expect("id");
    let mut g = open(&octo, grandchild).await;
    let prompt = g.prompt(grandchild, "Grandchild question?").await;
    g.until_run_ends(prompt).await;
    assert_eq!(
        last_request(&octo),
        [
            turn("user", "Question one?"),
            turn("assistant", "Answer one."),
            turn("user", "Fork question A?"),
            turn("assistant", "Fork answer A."),
            turn("user", "Grandchild question?")
        ]
    );

    // The grandchild's view: the parent's entries up to fork A's point, fork A's up to its fork
    // point, then its own; increasing offsets, each once, the inherited ones under their own
    // session ids.
    let view: Vec<&LogEntry> = g.entries.iter().collect();
    let offsets: Vec<Offset> = view.iter().map(|e| e.offset).collect();
    let mut sorted = offsets.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(offsets, sorted, "one increasing cursor over the view");
    let from_source: Vec<Offset> = view
        .iter()
        .filter(|e| e.session_id == source)
        .map(|e| e.offset)
        .collect();
    let expected_source: Vec<Offset> = parent_view
        .iter()
        .filter(|e| e.offset <= run_end(&run_one))
        .map(|e| e.offset)
        .collect();
    assert_eq!(
        from_source, expected_source,
        "the source's part of the view"
    );
    assert!(
        view.iter()
            .any(|e| e.session_id == child && matches!(event(e), Some(Event::SessionForked(_)))),
        "fork A's part is in the view"
    );
    let forked = view
        .iter()
        .find(|e| e.session_id == grandchild)
        .expect("the grandchild's own entries");
    match event(forked) {
        Some(Event::SessionForked(forked)) => {
            assert_eq!(forked.parent_session_id, child);
            assert_eq!(
                forked.user_messages_inherited, 2,
                "question one and fork question A"
            );
        }
        other => panic!("a fork's first entry is session.forked: {other:?}"),
    }
    let started = view
        .iter()
        .find_map(|e| match event(e) {
            Some(Event::HarnessStarted(started)) if e.session_id == grandchild => Some(started),
            _ => None,
        })
        .expect("the grandchild's harness started");
    assert!(!started.resumed);
    assert!(
        started.forked_from.is_some(),
        "it started from fork A's pi session: {started:?}"
    );

    // The fork tree, as the sessions projection keeps it.
    let app = octo.server().app();
    let mut children =
        octo_projections::sessions::Sessions::children(app.sessions.keyspace(), &source)
            .expect("children");
    children.sort();
    let mut expected = vec![child, b_id, c_id, d_id];
    expected.sort();
    assert_eq!(children, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_inside_a_run_or_outside_the_view_is_refused_and_a_resent_fork_is_one_fork() {
    let octo = Octo::start(json!([{"text": "Answer one."}])).await;
    let mut agent = Agent::new(octo.client().await);
    let (source, _) = agent.create_session().await;
    agent.subscribe(source, None).await;
    let prompt = agent.prompt(source, "Question one?").await;
    let run = agent.until_run_ends(prompt).await;
    let log_before = octo.log().await.len();

    // Inside the run: at its agent.working and at its user message.
    let working = run
        .iter()
        .find(|e| matches!(event(e), Some(Event::AgentWorking(_))))
        .expect("agent.working");
    let run_id = match event(working) {
        Some(Event::AgentWorking(working)) => working.run_id,
        _ => unreachable!(),
    };
    let user_message = run
        .iter()
        .find(|e| matches!(event(e), Some(Event::MessageCreated(_))))
        .expect("the user message");
    for at in [working.offset, user_message.offset] {
        let ack = fork(&mut agent, source, at, &cid()).await;
        assert_eq!(ack.status, AckStatus::Rejected);
        let error = ack.error.expect("an error");
        assert_eq!(error.code, ErrorCode::ForkPointInRun, "{error:?}");
        assert_eq!(
            error.reference.as_deref(),
            Some(run_id.to_string().as_str())
        );
    }

    // Not in the view: another session's entry, beyond the head.
    let (other, other_created) = agent.create_session().await;
    let ack = fork(&mut agent, source, other_created, &cid()).await;
    assert_eq!(
        ack.error.as_ref().map(|e| e.code),
        Some(ErrorCode::InvalidOffset),
        "{ack:?}"
    );
    let ack = fork(
        &mut agent,
        source,
        Offset::new(1 << 40).expect("offset"),
        &cid(),
    )
    .await;
    assert_eq!(
        ack.error.as_ref().map(|e| e.code),
        Some(ErrorCode::InvalidOffset),
        "{ack:?}"
    );
    // Another user's or an unknown session: not found.
    let ack = fork(&mut agent, SessionId::new(), run_end(&run), &cid()).await;
    assert_eq!(
        ack.error.as_ref().map(|e| e.code),
        Some(ErrorCode::SessionNotFound)
    );
    let _ = other;
    let log = octo.log().await;
    let refused_appended: Vec<&str> = types(&log[log_before..])
        .into_iter()
        .filter(|t| *t == "fork" || *t == "session.forked")
        .collect();
    assert!(
        refused_appended.is_empty(),
        "refused forks append nothing: {refused_appended:?}"
    );

    // The same command id twice: one fork, the same session in both acks.
    let command_id = cid();
    let first = fork(&mut agent, source, run_end(&run), &command_id).await;
    let again = fork(&mut agent, source, run_end(&run), &command_id).await;
    assert_eq!(first.status, AckStatus::Accepted, "{first:?}");
    assert_eq!(again.status, AckStatus::Duplicate, "{again:?}");
    assert_eq!(first.session_id, again.session_id);
    assert_eq!(first.offset, again.offset);
    // Under the same id at another point: a conflict.
    let conflict = fork(&mut agent, source, prompt, &command_id).await;
    assert_eq!(
        conflict.error.as_ref().map(|e| e.code),
        Some(ErrorCode::IdempotencyConflict),
        "{conflict:?}"
    );
    let log = octo.log().await;
    let forks = log
        .iter()
        .filter(|e| matches!(&e.body, Body::Command(Command::Fork(_))))
        .count();
    assert_eq!(forks, 1, "one fork command in the log");
}

/// Every pi session file under `root`, with its bytes.
fn pi_session_files(root: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in read.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "jsonl") {
                let bytes = std::fs::read(&path).expect("read");
                files.push((path, bytes));
            }
        }
    }
    assert!(!files.is_empty(), "pi wrote session files under {root:?}");
    files
}
