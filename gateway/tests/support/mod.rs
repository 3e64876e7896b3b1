//! What the gateway's tests share: a real `octo` server (in process, or the binary) on a temp
//! data dir, the real pi in bubblewrap, Octo's scripted model on loopback, and a WebSocket client.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use octo_core::frame::{AckStatus, AgentServerFrame, ServerFrame};
use octo_core::{Body, Encoding, Event, LogEntry, Message, Offset, SessionId};
use octo_gateway::{ServeConfig, Server};
use octo_tools::client::Client;
use octo_tools::model::{ModelConfig, ModelHandle};
use serde_json::{Value, json};

/// How long a test waits for anything the server or pi does.
pub const PATIENCE: Duration = Duration::from_secs(90);

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn pi_bin() -> PathBuf {
    let pi = repo_root().join("harnesses/pi/node_modules/.bin/pi");
    assert!(
        pi.exists(),
        "pi is installed: npm ci --prefix harnesses/pi (scripts/test.sh does)"
    );
    pi
}

/// A fresh command id.
pub fn cid() -> String {
    octo_core::CommandId::new().to_string()
}

/// pi's configuration for the scripted model at `port` (provider `fake`, model `fake-model`), with
/// pi's own retries off so a failure shows at once.
pub fn write_pi_config(dir: &Path, port: u16) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let models = json!({"providers": {"fake": {
        "baseUrl": format!("http://127.0.0.1:{port}/v1"), "api": "openai-completions", "apiKey": "fake-key",
        "compat": {"supportsDeveloperRole": false, "supportsReasoningEffort": false},
        "models": [
            {"id": "fake-model", "name": "Fake Model", "reasoning": false, "input": ["text"],
             "contextWindow": 32000, "maxTokens": 4096,
             "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0}},
            {"id": "fake-model-2", "name": "Fake Model 2", "reasoning": false, "input": ["text"],
             "contextWindow": 32000, "maxTokens": 4096,
             "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0}}]}}});
    std::fs::write(dir.join("models.json"), models.to_string()).expect("write");
    let settings = json!({"defaultProvider": "fake", "defaultModel": "fake-model", "quietStartup": true,
        "enableInstallTelemetry": false,
        "retry": {"enabled": false, "maxRetries": 0, "baseDelayMs": 100, "provider": {"maxRetries": 0}}});
    std::fs::write(dir.join("settings.json"), settings.to_string()).expect("write");
}

/// A server, its scripted model and its folders.
pub struct Octo {
    pub dir: tempfile::TempDir,
    pub model: ModelHandle,
    pub server: Option<Server>,
    pub config: ServeConfig,
}

impl Octo {
    /// A server on a fresh data dir whose pi talks to a scripted model playing `turns`.
    pub async fn start(turns: Value) -> Octo {
        Octo::start_with(turns, |_| {}).await
    }

    pub async fn start_with(turns: Value, adjust: impl FnOnce(&mut ServeConfig)) -> Octo {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
        let turns = serde_json::from_value(turns).expect("turns");
        let model = octo_tools::model::serve(
            "127.0.0.1:0".parse().expect("addr"),
            turns,
            ModelConfig::default(),
        )
        .await
        .expect("the scripted model starts");
        let config = config_in(dir.path(), model.addr().port());
        let mut config = config;
        adjust(&mut config);
        let server = octo_gateway::start(config.clone())
            .await
            .expect("octo starts");
        Octo {
            dir,
            model,
            server: Some(server),
            config,
        }
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("running")
    }

    pub fn url(&self) -> String {
        self.server().url()
    }

    pub fn token(&self) -> String {
        self.server().token().to_owned()
    }

    pub fn home(&self) -> PathBuf {
        self.config.home.clone()
    }

    pub fn workspace(&self, name: &str) -> PathBuf {
        self.config
            .workspaces
            .clone()
            .expect("tests set a workspaces root")
            .join(name)
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.url(), &self.token(), Encoding::Json)
            .await
            .expect("connects")
    }

    /// Every entry of the log, in order.
    pub async fn log(&self) -> Vec<LogEntry> {
        read_log(self.server().app().log.as_ref()).await
    }
}

/// A server configuration in `dir` for a scripted model on `port`.
pub fn config_in(dir: &Path, port: u16) -> ServeConfig {
    let pi_config = dir.join("pi-config");
    write_pi_config(&pi_config, port);
    let (home, workspaces) = (dir.join("home"), dir.join("workspaces"));
    for path in [&home, &workspaces.join("demo"), &home.join(".ssh")] {
        std::fs::create_dir_all(path).expect("mkdir");
    }
    std::fs::write(home.join(".ssh/id_secret"), "TOP-SECRET-KEY").expect("write");
    let mut config = ServeConfig::new(dir.join("data"), pi_bin());
    config.workspaces = Some(workspaces);
    config.pi_config = Some(pi_config);
    config.home = home;
    config.harness_env = vec![("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into())];
    config
}

pub async fn read_log(log: &dyn octo_log::EventLog) -> Vec<LogEntry> {
    let mut entries = Vec::new();
    let mut after = Offset::ZERO;
    loop {
        let batch = log
            .read(octo_log::ReadQuery {
                filter: octo_log::LogFilter::all(),
                after,
                until: None,
                limit: 1000,
            })
            .await
            .expect("reads");
        entries.extend(batch.entries.iter().map(|entry| (**entry).clone()));
        after = batch.scanned_through;
        if batch.reached_end {
            return entries;
        }
    }
}

/// The type names of a list of entries.
pub fn types(entries: &[LogEntry]) -> Vec<&str> {
    entries.iter().map(|entry| entry.body.type_name()).collect()
}

pub fn event(entry: &LogEntry) -> Option<&Event> {
    match &entry.body {
        Body::Event(event) => Some(event),
        _ => None,
    }
}

/// The first event of a variant among entries, cloned: `find_event!(entries, Event::ToolEnd)`.
#[macro_export]
macro_rules! find_event {
    ($entries:expr, $variant:path) => {
        $entries
            .iter()
            .find_map(|entry| match $crate::support::event(entry) {
                Some($variant(found)) => Some(found.clone()),
                _ => None,
            })
    };
}

/// Whether a run's terminal event is among `entries`.
pub fn run_ended(entries: &[LogEntry]) -> bool {
    entries.iter().any(|entry| {
        matches!(
            event(entry),
            Some(Event::AgentIdle(_) | Event::RunFailed(_) | Event::RunTimedOut(_))
        )
    })
}

/// A connected client with helpers for the agent channel.
pub struct Agent {
    pub client: Client,
    /// Entries of subscriptions, as received.
    pub entries: Vec<LogEntry>,
    /// Other frames that arrived while waiting for something.
    pub others: Vec<ServerFrame>,
}

impl Agent {
    pub fn new(client: Client) -> Agent {
        Agent {
            client,
            entries: Vec::new(),
            others: Vec::new(),
        }
    }

    /// Reads frames until `pick` returns something, keeping entries and the rest.
    pub async fn until<T>(
        &mut self,
        mut pick: impl FnMut(&ServerFrame, &[LogEntry]) -> Option<T>,
    ) -> T {
        // Already true of what arrived (entries, or a frame that came while waiting for another).
        let nothing_new = ServerFrame::System(octo_core::frame::SystemServerFrame::Pong(
            octo_core::frame::Pong {
                id: octo_core::ReqId::new("-").expect("valid"),
                ts_ms: 0,
            },
        ));
        if let Some(found) = pick(&nothing_new, &self.entries) {
            return found;
        }
        let mut earlier = std::mem::take(&mut self.others);
        if let Some(index) = earlier
            .iter()
            .position(|frame| pick(frame, &self.entries).is_some())
        {
            let frame = earlier.remove(index);
            self.others = earlier;
            return pick(&frame, &self.entries).expect("it matched just now");
        }
        self.others = earlier;
        loop {
            let frame = self
                .client
                .next_frame_within(PATIENCE)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "waiting for a frame: {e}; entries so far: {:?}",
                        types(&self.entries)
                    )
                });
            if let ServerFrame::Agent(AgentServerFrame::Entry(entry)) = &frame {
                self.entries.push(entry.entry.clone());
            }
            if let Some(found) = pick(&frame, &self.entries) {
                return found;
            }
            if !matches!(frame, ServerFrame::Agent(AgentServerFrame::Entry(_))) {
                self.others.push(frame);
            }
        }
    }

    /// Sends a command and returns its ack.
    pub async fn command(&mut self, frame: Value) -> octo_core::frame::Ack {
        let command_id = frame["command_id"]
            .as_str()
            .expect("a command_id")
            .to_owned();
        self.client.send(&frame).await.expect("sends");
        self.until(|frame, _| match frame {
            ServerFrame::Agent(AgentServerFrame::Ack(ack))
                if ack.command_id.to_string() == command_id =>
            {
                Some(ack.clone())
            }
            _ => None,
        })
        .await
    }

    /// Creates a session in workspace `demo` and returns its id and the command's offset.
    pub async fn create_session(&mut self) -> (SessionId, Offset) {
        let ack = self
            .command(json!({"ch": "agent", "type": "session.create", "command_id": cid(),
                "harness": "pi", "workspace": "demo", "model": {"provider": "fake", "model_id": "fake-model"}}))
            .await;
        assert_eq!(ack.status, AckStatus::Accepted, "{ack:?}");
        (
            ack.session_id.expect("a session"),
            ack.offset.expect("an offset"),
        )
    }

    /// Creates a session and waits for its harness to start: until it is sent a command, nothing
    /// more is appended to it (its `harness.started` moves its listing entry, for one).
    pub async fn create_started_session(&mut self) -> (SessionId, Offset) {
        let (session_id, offset) = self.create_session().await;
        self.subscribe(session_id, None).await;
        self.until(|_, entries| {
            entries
                .iter()
                .any(|e| {
                    e.session_id == session_id && matches!(event(e), Some(Event::HarnessStarted(_)))
                })
                .then_some(())
        })
        .await;
        (session_id, offset)
    }

    pub async fn subscribe(&mut self, session_id: SessionId, after: Option<Offset>) -> Offset {
        let id = format!("s{}", rand::random::<u32>());
        self.client
            .send(&json!({"ch": "agent", "type": "subscribe", "id": id, "session_id": session_id, "after": after}))
            .await
            .expect("sends");
        self.until(|frame, _| match frame {
            ServerFrame::Agent(AgentServerFrame::Subscribed(subscribed))
                if subscribed.id.as_str() == id =>
            {
                Some(subscribed.head)
            }
            _ => None,
        })
        .await
    }

    pub async fn prompt(&mut self, session_id: SessionId, text: &str) -> Offset {
        let ack = self
            .command(json!({"ch": "agent", "type": "prompt", "command_id": cid(),
                "session_id": session_id, "text": text}))
            .await;
        assert_eq!(ack.status, AckStatus::Accepted, "{ack:?}");
        ack.offset.expect("an offset")
    }

    /// Reads until the run that `prompt` started has streamed some text.
    pub async fn until_streaming(&mut self, prompt: Offset) {
        self.until(|_, entries| {
            entries
                .iter()
                .any(|e| e.offset > prompt && matches!(event(e), Some(Event::StreamTextDelta(_))))
                .then_some(())
        })
        .await;
    }

    /// Reads until the run that `prompt` started has ended; returns that run's entries from the
    /// prompt on.
    pub async fn until_run_ends(&mut self, prompt: Offset) -> Vec<LogEntry> {
        self.until(|_, entries| {
            let from_prompt: Vec<LogEntry> = entries
                .iter()
                .filter(|e| e.offset >= prompt)
                .cloned()
                .collect();
            run_ended(&from_prompt).then_some(from_prompt)
        })
        .await
    }
}

/// Completed messages as a full replay of `entries` gives them, in order.
pub fn messages_of(entries: &[LogEntry]) -> Vec<Message> {
    entries
        .iter()
        .filter_map(|e| match event(e) {
            Some(Event::MessageCreated(created)) => Some(created.message.clone()),
            Some(Event::StreamMessageEnd(end)) => Some(end.message.clone()),
            _ => None,
        })
        .collect()
}
