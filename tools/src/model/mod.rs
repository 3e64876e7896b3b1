//! The scripted model: an OpenAI chat-completions and Anthropic messages server on loopback, with
//! SSE streaming, tool calls, usage, scripted turns, errors, a turn that hangs until aborted, and
//! a request log. Tests drive harnesses against it; `octo serve --demo` runs on it so a newcomer
//! sees the whole flow offline. It stands in for the one thing a user never runs here: the LLM.
//!
//! Turns (a JSON list, see [`Turn`]) are taken in order: each request takes the first unused turn
//! whose `match` occurs in the request's JSON (no `match`: any); `sticky` turns are reused. When
//! none is left, the answer is an echo of the last user text (with `echo_when_done`) or a fixed
//! text. Control: `POST /_control/script` (`?append=1`), `/_control/reset`, `/_control/release`
//! (ends every hanging stream), `GET /_control/state`, `/_control/requests`.

mod stream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;

/// One scripted answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Turn {
    /// The answer's text, streamed in `chunks` pieces.
    pub text: String,
    /// Reasoning text, streamed before the answer.
    pub thinking: String,
    pub tool_calls: Vec<ToolCall>,
    /// Pieces of text and thinking (default 3).
    pub chunks: Option<usize>,
    /// Pause before each chunk (default 10 ms).
    pub chunk_delay_ms: Option<u64>,
    /// Pause before the response starts (model latency).
    pub first_byte_ms: Option<u64>,
    /// A non-200 reply instead of a stream.
    pub status: Option<u16>,
    pub error_body: Option<Value>,
    pub headers: HashMap<String, String>,
    /// After the text, hold the stream until the client goes away, a release, or `hang_ms`.
    pub hang: bool,
    pub hang_ms: Option<u64>,
    /// Close the connection after this many content chunks (no finish, no `[DONE]`).
    pub drop_after: Option<usize>,
    /// An in-stream error event after the text.
    pub stream_error: Option<String>,
    /// The text is `echo: <last user text>`.
    pub echo: bool,
    /// Reported usage (`prompt_tokens`, `completion_tokens`, `total_tokens`).
    pub usage: Option<Value>,
    #[serde(rename = "match")]
    pub matches: Option<String>,
    pub sticky: bool,
}

/// A scripted tool call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub name: String,
    #[serde(default)]
    pub arguments: Value,
    #[serde(default)]
    pub id: Option<String>,
}

/// One model request as received, and how it ended.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    pub path: String,
    pub body: Value,
    /// `ok`, `status:<code>`, `aborted`, `dropped`, `stream_error`, or null while streaming.
    pub outcome: Option<String>,
}

#[derive(Default)]
struct Script {
    turns: Vec<(Turn, bool)>,
    requests: Vec<RequestRecord>,
    open_streams: usize,
    aborted: usize,
}

/// Settings of a scripted model.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// Answer an echo of the last user text once the script is used up.
    pub echo_when_done: bool,
    /// The longest a `hang` turn waits.
    pub hang_cap: Duration,
}

impl Default for ModelConfig {
    fn default() -> ModelConfig {
        ModelConfig {
            echo_when_done: false,
            hang_cap: Duration::from_secs(60),
        }
    }
}

#[derive(Clone)]
struct Shared {
    script: Arc<Mutex<Script>>,
    release: Arc<watch::Sender<u64>>,
    config: ModelConfig,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script
            .lock()
            .expect("the script lock is never poisoned")
    }

    fn next_turn(&self, body: &Value) -> Turn {
        let text = body.to_string();
        let mut script = self.lock();
        for (turn, used) in &mut script.turns {
            if *used {
                continue;
            }
            if turn
                .matches
                .as_ref()
                .is_none_or(|needle| text.contains(needle.as_str()))
            {
                if !turn.sticky {
                    *used = true;
                }
                return turn.clone();
            }
        }
        if self.config.echo_when_done {
            Turn {
                echo: true,
                ..Turn::default()
            }
        } else {
            Turn {
                text: "(scripted model: script exhausted)".into(),
                ..Turn::default()
            }
        }
    }

    fn finish(&self, index: usize, outcome: &str) {
        let mut script = self.lock();
        if let Some(record) = script.requests.get_mut(index) {
            record.outcome = Some(outcome.to_owned());
        }
        if outcome == "aborted" {
            script.aborted += 1;
        }
    }
}

/// A running scripted model.
pub struct ModelHandle {
    addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl ModelHandle {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the script.
    pub fn script(&self, turns: Vec<Turn>) {
        self.shared.lock().turns = turns.into_iter().map(|turn| (turn, false)).collect();
    }

    /// Every model request so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().requests.clone()
    }
}

impl Drop for ModelHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn json_response(status: StatusCode, value: &Value, headers: &HashMap<String, String>) -> Response {
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        response = response.header(name.as_str(), value.as_str());
    }
    response
        .body(Body::from(value.to_string()))
        .unwrap_or_else(|_| Response::new(Body::from("{}")))
}

/// The text of the last user message that has any (OpenAI or Anthropic shape).
fn last_user_text(body: &Value) -> String {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return String::new();
    };
    for message in messages
        .iter()
        .rev()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
    {
        match message.get("content") {
            Some(Value::String(text)) if !text.is_empty() => return text.clone(),
            Some(Value::Array(parts)) => {
                let text: String = parts
                    .iter()
                    .filter(|p| {
                        matches!(
                            p.get("type").and_then(Value::as_str),
                            Some("text" | "input_text")
                        )
                    })
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect();
                if !text.is_empty() {
                    return text;
                }
            }
            _ => {}
        }
    }
    String::new()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    OpenAi,
    Anthropic,
}

async fn model_request(
    State(shared): State<Shared>,
    api: Api,
    path: &str,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| json!({"_raw": String::from_utf8_lossy(&body)}));
    let mut turn = shared.next_turn(&body);
    if turn.echo {
        turn.text = format!("echo: {}", last_user_text(&body));
    }
    let index = {
        let mut script = shared.lock();
        script.requests.push(RequestRecord {
            path: path.to_owned(),
            body: body.clone(),
            outcome: None,
        });
        script.requests.len() - 1
    };
    if let Some(delay_ms) = turn.first_byte_ms {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    if let Some(status) = turn.status.filter(|status| *status != 200) {
        shared.finish(index, &format!("status:{status}"));
        let body = turn.error_body.clone().unwrap_or_else(|| match api {
            Api::Anthropic => json!({"type": "error", "error": {"type": "api_error", "message": "scripted failure"}}),
            Api::OpenAi => json!({"error": {"message": "scripted failure", "type": "server_error"}}),
        });
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return json_response(status, &body, &turn.headers);
    }
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("fake-model")
        .to_owned();
    if api == Api::OpenAi && !body.get("stream").and_then(Value::as_bool).unwrap_or(false) {
        shared.finish(index, "ok");
        return json_response(
            StatusCode::OK,
            &stream::openai_whole(&turn, &model),
            &HashMap::new(),
        );
    }
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(16);
    let release = shared.release.subscribe();
    let task_shared = shared.clone();
    tokio::spawn(async move {
        task_shared.lock().open_streams += 1;
        let writer = stream::SseWriter::new(sender, release, task_shared.config.hang_cap);
        let outcome = match api {
            Api::OpenAi => stream::openai(writer, &turn, &model).await,
            Api::Anthropic => stream::anthropic(writer, &turn, &model).await,
        };
        task_shared.lock().open_streams -= 1;
        task_shared.finish(index, outcome);
    });
    let body = Body::from_stream(futures_util::stream::unfold(
        receiver,
        |mut receiver| async move {
            receiver
                .recv()
                .await
                .map(|bytes| (Ok::<_, std::convert::Infallible>(bytes), receiver))
        },
    ));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

#[derive(Deserialize)]
struct Append {
    append: Option<u8>,
}

async fn control_script(
    State(shared): State<Shared>,
    Query(query): Query<Append>,
    body: Bytes,
) -> Response {
    let Ok(turns) = serde_json::from_slice::<Vec<Turn>>(&body) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": "body must be a JSON list of turns"}),
            &HashMap::new(),
        );
    };
    let mut script = shared.lock();
    if query.append != Some(1) {
        script.turns.clear();
    }
    script
        .turns
        .extend(turns.into_iter().map(|turn| (turn, false)));
    let n = script.turns.len();
    json_response(
        StatusCode::OK,
        &json!({"ok": true, "turns": n}),
        &HashMap::new(),
    )
}

/// Serves the scripted model on `listen` with `turns`.
///
/// # Errors
/// When `listen` cannot be bound.
pub async fn serve(
    listen: SocketAddr,
    turns: Vec<Turn>,
    config: ModelConfig,
) -> std::io::Result<ModelHandle> {
    let (release, _) = watch::channel(0u64);
    let shared = Shared {
        script: Arc::new(Mutex::new(Script {
            turns: turns.into_iter().map(|turn| (turn, false)).collect(),
            ..Script::default()
        })),
        release: Arc::new(release),
        config,
    };
    let router = Router::new()
        .route("/health", get(|| async { json_response(StatusCode::OK, &json!({"ok": true}), &HashMap::new()) }))
        .route("/v1/models", get(|| async {
            json_response(StatusCode::OK, &json!({"object": "list", "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "octo"}]}), &HashMap::new())
        }))
        .route("/v1/chat/completions", post(|state, body| model_request(state, Api::OpenAi, "/v1/chat/completions", body)))
        .route("/chat/completions", post(|state, body| model_request(state, Api::OpenAi, "/chat/completions", body)))
        .route("/v1/messages", post(|state, body| model_request(state, Api::Anthropic, "/v1/messages", body)))
        .route("/messages", post(|state, body| model_request(state, Api::Anthropic, "/messages", body)))
        .route("/_control/script", post(control_script))
        .route("/_control/reset", post(|State(shared): State<Shared>| async move {
            let mut script = shared.lock();
            script.turns.clear();
            script.requests.clear();
            script.aborted = 0;
            json_response(StatusCode::OK, &json!({"ok": true}), &HashMap::new())
        }))
        .route("/_control/release", post(|State(shared): State<Shared>| async move {
            shared.release.send_modify(|generation| *generation += 1);
            json_response(StatusCode::OK, &json!({"ok": true}), &HashMap::new())
        }))
        .route("/_control/state", get(|State(shared): State<Shared>| async move {
            let script = shared.lock();
            let used = script.turns.iter().filter(|(_, used)| *used).count();
            json_response(StatusCode::OK, &json!({"turns": script.turns.len(), "used": used,
                "requests": script.requests.len(), "open_streams": script.open_streams, "aborted": script.aborted}), &HashMap::new())
        }))
        .route("/_control/requests", get(|State(shared): State<Shared>| async move {
            let requests = shared.lock().requests.clone();
            json_response(StatusCode::OK, &serde_json::to_value(requests).unwrap_or(Value::Null), &HashMap::new())
        }))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            eprintln!("scripted model stopped: {e}");
        }
    });
    Ok(ModelHandle { addr, shared, task })
}
