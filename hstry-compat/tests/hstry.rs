//! hstry's API against Octo (HSTRY_API.md section 9): the Python grpcio conformance suite and the
//! grpcurl smoke over real sockets, and the Octo-only checks: rejected requests append nothing,
//! a rebuild from offset 0 answers byte for byte the same, and an acknowledged write survives
//! kill -9.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use octo_core::UserId;
use octo_hstry::proto::read_service_client::ReadServiceClient;
use octo_hstry::proto::search_service_client::SearchServiceClient;
use octo_hstry::proto::write_service_client::WriteServiceClient;
use octo_hstry::proto::{self};
use octo_hstry::{Hstry, HstryServer, ServeOptions};
use octo_log::EventLog;
use octo_log::fjall::{FjallConfig, FjallLog};
use octo_projections::history::History;
use octo_projections::search::spawn_search;
use octo_projections::sessions::Sessions;
use octo_projections::{ProjectionStore, spawn_projector};
use prost::Message as _;
use tonic::Code;
use tonic::transport::Channel;

const USER: &str = "u-hstry-test";

/// The status of a call that must fail.
fn err<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
) -> Result<tonic::Status, String> {
    match result {
        Ok(response) => Err(format!("accepted: {response:?}")),
        Err(status) => Ok(status),
    }
}

/// A facade over a log: its own projection store and search index under `state`.
struct Facade {
    server: HstryServer,
}

async fn facade(log: Arc<dyn EventLog>, state: &Path, unix: Option<PathBuf>) -> Facade {
    let store = ProjectionStore::open(state.join("projections")).expect("store opens");
    let sessions = Arc::new(
        spawn_projector(Arc::clone(&log), store.clone(), Sessions)
            .await
            .expect("sessions"),
    );
    let history = Arc::new(
        spawn_projector(Arc::clone(&log), store.clone(), History)
            .await
            .expect("history"),
    );
    let searcher = spawn_search(Arc::clone(&log), state.join("search"))
        .await
        .expect("search");
    let hstry = Hstry::new(
        log,
        store,
        history,
        sessions,
        searcher,
        UserId::new(USER).expect("user id"),
        "test",
    )
    .expect("facade");
    let server = HstryServer::start(
        Arc::new(hstry),
        ServeOptions {
            listen: "127.0.0.1:0".parse().expect("addr"),
            unix,
        },
    )
    .await
    .expect("serves");
    Facade { server }
}

fn open_log(dir: &Path) -> Arc<dyn EventLog> {
    FjallLog::open(FjallConfig::new(dir.join("log"))).expect("log opens")
}

async fn channel(addr: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connects")
}

struct Clients {
    read: ReadServiceClient<Channel>,
    write: WriteServiceClient<Channel>,
    search: SearchServiceClient<Channel>,
}

async fn clients(addr: std::net::SocketAddr) -> Clients {
    let channel = channel(addr).await;
    Clients {
        read: ReadServiceClient::new(channel.clone()),
        write: WriteServiceClient::new(channel.clone()),
        search: SearchServiceClient::new(channel),
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn conformance_dir() -> PathBuf {
    repo_root().join("hstry-compat/tests/conformance")
}

/// The Python venv with grpcio and the generated stubs (created on first use).
fn python() -> PathBuf {
    let status = Command::new(conformance_dir().join("setup.sh"))
        .status()
        .expect("setup.sh runs");
    assert!(status.success(), "the conformance venv sets up");
    let venv = std::env::var_os("OCTO_PYENV")
        .map_or_else(|| repo_root().join("target/pyenv"), PathBuf::from);
    venv.join("bin/python")
}

fn message(idx: i32, role: &str, content: &str, parts: serde_json::Value) -> proto::Message {
    proto::Message {
        idx,
        role: role.to_owned(),
        content: content.to_owned(),
        parts_json: parts.to_string(),
        created_at_ms: Some(1_700_000_000_000 + i64::from(idx) * 1_500),
        ..Default::default()
    }
}

fn conversation(external_id: &str) -> proto::Conversation {
    proto::Conversation {
        source_id: "pi".to_owned(),
        external_id: external_id.to_owned(),
        title: Some(format!("talk {external_id}")),
        created_at_ms: 1_700_000_000_000,
        workspace: Some("/work/octo".to_owned()),
        model: Some("gpt-test".to_owned()),
        harness: Some("pi".to_owned()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpcio_conformance_suite_and_grpcurl_pass_over_tcp_and_a_unix_socket() {
    let python = tokio::task::spawn_blocking(python).await.expect("setup");
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let socket = dir.path().join("hstry.sock");
    let log = open_log(dir.path());
    let facade = facade(log, dir.path(), Some(socket.clone())).await;
    let addr = facade.server.addr.to_string();
    let suite = {
        let (python, addr, socket) = (python.clone(), addr.clone(), socket.clone());
        tokio::task::spawn_blocking(move || {
            Command::new(python)
                .arg(conformance_dir().join("test_conformance.py"))
                .env("HSTRY_ADDR", addr)
                .env("HSTRY_UNIX", socket)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .output()
                .expect("the suite runs")
        })
        .await
        .expect("suite task")
    };
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&suite.stdout),
        String::from_utf8_lossy(&suite.stderr)
    );
    println!("{report}");
    assert!(suite.status.success(), "the conformance suite passes");
    assert!(
        report.contains("0 failed, 0 skipped"),
        "nothing is skipped with a Unix socket given"
    );
    let smoke = tokio::task::spawn_blocking(move || {
        Command::new(conformance_dir().join("grpcurl_smoke.sh"))
            .env("HSTRY_ADDR", addr)
            .output()
            .expect("the smoke runs")
    })
    .await
    .expect("smoke task");
    println!(
        "{}{}",
        String::from_utf8_lossy(&smoke.stdout),
        String::from_utf8_lossy(&smoke.stderr)
    );
    assert!(
        smoke.status.success(),
        "grpcurl lists, describes, writes and reads"
    );
    facade.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_requests_leave_the_log_unchanged() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let log = open_log(dir.path());
    let facade = facade(Arc::clone(&log), dir.path(), None).await;
    let mut c = clients(facade.server.addr).await;
    let written = c
        .write
        .write_conversation(proto::WriteConversationRequest {
            conversation: Some(conversation("kept")),
            messages: vec![message(0, "user", "hello there", serde_json::json!([]))],
        })
        .await
        .expect("a valid write")
        .into_inner();
    let head = log.head();
    let expect = |result: Result<tonic::Status, String>, code: Code, what: &str| {
        let status = result.expect(what);
        assert_eq!(status.code(), code, "{what}: {status:?}");
    };
    let unknown = || ("pi".to_owned(), "no-such-conversation".to_owned());
    expect(
        err(c
            .write
            .append_messages(proto::AppendMessagesRequest {
                source_id: unknown().0,
                external_id: unknown().1,
                messages: vec![message(0, "user", "x", serde_json::json!([]))],
                updated_at_ms: Some(5),
            })
            .await),
        Code::NotFound,
        "append to an unknown key",
    );
    expect(
        err(c
            .write
            .update_conversation(proto::UpdateConversationRequest {
                source_id: unknown().0,
                external_id: unknown().1,
                title: Some("t".into()),
                ..Default::default()
            })
            .await),
        Code::NotFound,
        "update of an unknown key",
    );
    expect(
        err(c
            .write
            .delete_conversation(proto::DeleteConversationRequest {
                source_id: unknown().0,
                external_id: unknown().1,
            })
            .await),
        Code::NotFound,
        "delete of an unknown key",
    );
    expect(
        err(c
            .write
            .update_conversation(proto::UpdateConversationRequest {
                source_id: String::new(),
                external_id: "kept".into(),
                ..Default::default()
            })
            .await),
        Code::InvalidArgument,
        "update without a source",
    );
    expect(
        err(c
            .write
            .delete_conversation(proto::DeleteConversationRequest {
                source_id: "pi".into(),
                external_id: String::new(),
            })
            .await),
        Code::InvalidArgument,
        "delete without an external id",
    );
    expect(
        err(c
            .write
            .write_conversation(proto::WriteConversationRequest {
                conversation: None,
                messages: Vec::new(),
            })
            .await),
        Code::InvalidArgument,
        "a write without a conversation",
    );
    expect(
        err(c
            .write
            .add_tag(proto::AddTagRequest {
                conversation_id: "nope".into(),
                tag: "x".into(),
            })
            .await),
        Code::InvalidArgument,
        "a tag on a malformed id",
    );
    expect(
        err(c
            .write
            .add_tag(proto::AddTagRequest {
                conversation_id: uuid::Uuid::now_v7().to_string(),
                tag: "x".into(),
            })
            .await),
        Code::NotFound,
        "a tag on an unknown conversation",
    );
    expect(
        err(c
            .write
            .upload_attachment(proto::UploadAttachmentRequest {
                message_id: "nope".into(),
                mime_type: "text/plain".into(),
                filename: None,
                data: b"x".to_vec(),
            })
            .await),
        Code::InvalidArgument,
        "an attachment on a malformed id",
    );
    expect(
        err(c
            .write
            .upload_attachment(proto::UploadAttachmentRequest {
                message_id: uuid::Uuid::now_v7().to_string(),
                mime_type: "text/plain".into(),
                filename: None,
                data: b"x".to_vec(),
            })
            .await),
        Code::NotFound,
        "an attachment on an unknown message",
    );
    expect(
        err(c
            .search
            .search(proto::SearchRequest {
                query: "  * ".into(),
                ..Default::default()
            })
            .await),
        Code::InvalidArgument,
        "an empty search",
    );
    // No-ops that are not errors append nothing either.
    let again = c
        .write
        .add_tag(proto::AddTagRequest {
            conversation_id: written.conversation_id.clone(),
            tag: "   ".into(),
        })
        .await
        .expect("an empty tag is answered")
        .into_inner();
    assert!(!again.added);
    let removed = c
        .write
        .remove_tag(proto::RemoveTagRequest {
            conversation_id: written.conversation_id.clone(),
            tag: "never-added".into(),
        })
        .await
        .expect("removing an absent tag is answered")
        .into_inner();
    assert!(!removed.removed);
    assert_eq!(log.head(), head, "no rejected request appended anything");
    facade.server.shutdown().await;
}

/// Every read of the conformance checks, encoded: what must come back byte for byte after a
/// rebuild.
async fn every_read(c: &mut Clients, ids: &[String]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for id in ids {
        let by_id = |id: &str| proto::GetConversationRequest {
            conversation_id: id.to_owned(),
            ..Default::default()
        };
        out.push(
            c.read
                .get_conversation(by_id(id))
                .await
                .expect("get")
                .into_inner()
                .encode_to_vec(),
        );
        out.push(
            c.read
                .get_messages(proto::GetMessagesRequest {
                    conversation_id: id.clone(),
                    ..Default::default()
                })
                .await
                .expect("messages")
                .into_inner()
                .encode_to_vec(),
        );
        out.push(
            c.read
                .get_message_events(proto::GetMessageEventsRequest {
                    conversation_id: id.clone(),
                    ..Default::default()
                })
                .await
                .expect("events")
                .into_inner()
                .encode_to_vec(),
        );
    }
    out.push(
        c.read
            .list_conversations(proto::ListConversationsRequest::default())
            .await
            .expect("list")
            .into_inner()
            .encode_to_vec(),
    );
    for query in ["tests", "src/foo_bar.rs", "work*", "hello"] {
        out.push(
            c.search
                .search(proto::SearchRequest {
                    query: query.to_owned(),
                    ..Default::default()
                })
                .await
                .expect("search")
                .into_inner()
                .encode_to_vec(),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_from_offset_zero_answers_byte_for_byte_the_same() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let log = open_log(dir.path());
    let first = facade(Arc::clone(&log), &dir.path().join("first"), None).await;
    let mut c = clients(first.server.addr).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let external = format!("conv-{n}");
        let written = c
            .write
            .write_conversation(proto::WriteConversationRequest {
                conversation: Some(conversation(&external)),
                messages: vec![
                    message(0, "Human", "please run the tests in my workspace", serde_json::json!([])),
                    message(
                        1,
                        "assistant",
                        "",
                        serde_json::json!([
                            {"type": "text", "id": "p1", "text": "running them: edit src/foo_bar.rs"},
                            {"type": "tool_call", "id": "p2", "toolCallId": "c1", "name": "bash", "input": {"command": "cargo test"}}
                        ]),
                    ),
                    message(
                        2,
                        "tool",
                        "ok",
                        serde_json::json!([{"type": "tool_result", "id": "p3", "toolCallId": "c1", "output": "ok", "isError": false}]),
                    ),
                ],
            })
            .await
            .expect("write")
            .into_inner();
        c.write
            .append_messages(proto::AppendMessagesRequest {
                source_id: "pi".into(),
                external_id: external.clone(),
                messages: vec![
                    message(
                        1,
                        "assistant",
                        "hello again, tests pass",
                        serde_json::json!([]),
                    ),
                    message(3, "user", "thanks", serde_json::json!([])),
                ],
                updated_at_ms: Some(1_700_000_100_000 + n),
            })
            .await
            .expect("append");
        c.write
            .add_tag(proto::AddTagRequest {
                conversation_id: written.conversation_id.clone(),
                tag: "Bug".into(),
            })
            .await
            .expect("tag");
        ids.push(written.conversation_id);
    }
    c.write
        .delete_conversation(proto::DeleteConversationRequest {
            source_id: "pi".into(),
            external_id: "conv-1".into(),
        })
        .await
        .expect("delete");
    let before = every_read(&mut c, &ids).await;

    let second = facade(Arc::clone(&log), &dir.path().join("second"), None).await;
    let mut rebuilt = clients(second.server.addr).await;
    let after = every_read(&mut rebuilt, &ids).await;
    assert_eq!(before.len(), after.len());
    for (n, (a, b)) in before.iter().zip(&after).enumerate() {
        assert_eq!(a, b, "read {n} differs after a rebuild from offset 0");
    }
    assert!(
        before.iter().any(|bytes| bytes.len() > 200),
        "the reads returned data"
    );
    first.server.shutdown().await;
    second.server.shutdown().await;
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_standalone(data_dir: &Path) -> (Child, std::net::SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_octo-hstry"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--user", USER, "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("octo-hstry starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
        .expect("reads its address");
    let addr = line
        .trim()
        .strip_prefix("hstry gRPC listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .expect("an address");
    (Child(child), addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_acknowledged_before_kill_9_is_readable_after_a_restart() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let (mut child, addr) = spawn_standalone(dir.path());
    let mut c = clients(addr).await;
    let written = c
        .write
        .write_conversation(proto::WriteConversationRequest {
            conversation: Some(conversation("survivor")),
            messages: (0..5)
                .map(|idx| {
                    message(
                        idx,
                        "user",
                        &format!("message {idx} of the survivor"),
                        serde_json::json!([]),
                    )
                })
                .collect(),
        })
        .await
        .expect("write")
        .into_inner();
    // SIGKILL right after the acknowledgement: no shutdown path runs.
    child.0.kill().expect("kill -9");
    child.0.wait().expect("reaped");
    drop(c);

    let deadline = Instant::now() + Duration::from_secs(30);
    let (_child, addr) = loop {
        // The killed process's fjall lock goes with it; retry briefly all the same.
        let attempt = std::panic::catch_unwind(|| spawn_standalone(dir.path()));
        match attempt {
            Ok(running) => break running,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => std::panic::resume_unwind(e),
        }
    };
    let mut c = clients(addr).await;
    let messages = c
        .read
        .get_messages(proto::GetMessagesRequest {
            conversation_id: written.conversation_id.clone(),
            ..Default::default()
        })
        .await
        .expect("read after restart")
        .into_inner();
    assert_eq!(messages.conversation_id, written.conversation_id);
    assert_eq!(messages.messages.len(), 5);
    let hits = c
        .search
        .search(proto::SearchRequest {
            query: "survivor".into(),
            ..Default::default()
        })
        .await
        .expect("search after restart")
        .into_inner();
    assert_eq!(
        hits.hits.len(),
        5,
        "the search index caught up after the restart"
    );
}

/// An Octo session long enough that a whole read is encoded in several runs on several threads:
/// all of it and its last page carry every message once, in order, with its idx and id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_sessions_messages_come_whole_and_in_order() {
    use octo_core::{Event, MessageId, PartId, ProducerId, SessionId};
    use octo_log::{NewEntry, SeqSpec};
    const MESSAGES: usize = 1_000;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let log = open_log(dir.path());
    let user = UserId::new(USER).expect("user id");
    let producer = ProducerId::new("test:seed").expect("producer");
    let session = SessionId::new();
    let entry = |value: serde_json::Value| {
        let event: Event = serde_json::from_value(value).expect("an event");
        NewEntry::event(
            user.clone(),
            session,
            producer.clone(),
            SeqSpec::Next,
            event,
        )
    };
    let ids: Vec<MessageId> = (0..MESSAGES).map(|_| MessageId::new()).collect();
    let mut entries = vec![entry(
        serde_json::json!({"type": "session.created", "harness": "pi",
        "workspace": "w", "title": "long", "cause": 0,
        "model": {"provider": "fake", "model_id": "fake-model"}}),
    )];
    entries.extend(ids.iter().enumerate().map(|(n, id)| {
        entry(serde_json::json!({"type": "message.created", "message": {
            "id": id, "role": if n % 2 == 0 { "user" } else { "assistant" },
            "created_ms": 1_795_000_000_000i64 + n as i64,
            "parts": [{"type": "text", "id": PartId::new(), "text": format!("message number {n}")}]}}))
    }));
    for chunk in entries.chunks(256) {
        log.append(chunk.to_vec()).await.expect("appended");
    }
    let facade = facade(log, dir.path(), None).await;
    let c = clients(facade.server.addr).await;
    let read = |limit: i64| {
        let mut read = c.read.clone();
        async move {
            read.get_messages(proto::GetMessagesRequest {
                conversation_id: session.to_string(),
                limit,
                ..Default::default()
            })
            .await
            .expect("read")
            .into_inner()
            .messages
        }
    };
    let all = read(0).await;
    let last_page = read(100).await;
    assert_eq!(all.len(), MESSAGES);
    for (n, (message, id)) in all.iter().zip(&ids).enumerate() {
        assert_eq!(message.idx, i32::try_from(n).expect("idx"));
        assert_eq!(message.id.as_deref(), Some(id.to_string().as_str()));
        assert_eq!(message.content, format!("message number {n}"));
    }
    assert_eq!(last_page, all[MESSAGES - 100..]);
}
