//! `octoctl`: Octo from the command line.
//!
//! The server and token come from `--url`/`OCTO_URL` and `--token`/`OCTO_TOKEN`, else from the
//! local data dir (`url` and `token`, written by `octo serve`). Human output by default,
//! `--format json` (one JSON value per line) everywhere.
//!
//! Exit codes: 0 done; 1 the server refused, a run failed, or `doctor` found a problem; 2 bad
//! arguments, no server, or a broken connection.

mod doctor;
mod export;
mod import;
mod log;
mod projections;
mod read;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use octo_core::frame::{AckStatus, AgentServerFrame, ServerFrame};
use octo_core::{Encoding, Offset, SessionId};
use serde_json::{Value, json};

use crate::client::Client;

#[derive(Debug, Parser)]
#[command(name = "octoctl", version, about = "Octo from the command line")]
struct Cli {
    /// The server, e.g. http://127.0.0.1:8477.
    #[arg(long, env = "OCTO_URL", global = true)]
    url: Option<String>,
    /// A bearer token (`octo users token NAME`).
    #[arg(long, env = "OCTO_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// The data dir to read `url` and `token` from (default: $XDG_DATA_HOME/octo).
    #[arg(long, env = "OCTO_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Output: human text, or one JSON value per line.
    #[arg(long, value_enum, default_value_t = Format::Pretty, global = true)]
    format: Format,
    #[command(subcommand)]
    command: Top,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Pretty,
    Json,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// Sessions: create, list, show.
    #[command(subcommand, alias = "session")]
    Sessions(SessionsCommand),
    /// Send a prompt to a session.
    Prompt {
        /// The session id.
        session: String,
        /// The prompt's text.
        text: String,
        /// Print the streamed answer and tool calls until the run ends.
        #[arg(long)]
        follow: bool,
    },
    /// The log.
    #[command(subcommand)]
    Log(LogCommand),
    /// Play a session's entries back, paced by their timestamps.
    Replay {
        session: String,
        /// Start after this offset (default: the first entry).
        #[arg(long)]
        after: Option<u64>,
        /// Stop at this offset (default: the session's newest entry).
        #[arg(long)]
        until: Option<u64>,
        /// Playback speed: 1 is real time, 0 as fast as possible. Pauses are capped at 2 s.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
    },
    /// Fork a session at an offset of its view (not inside a run), or at a message by the rule
    /// every client uses: a user message just before its prompt, an answer at its run's end.
    Fork {
        session: String,
        /// The offset to fork at.
        #[arg(long, required_unless_present = "message", conflicts_with = "message")]
        at: Option<u64>,
        /// The id of the message to fork at ("fork here").
        #[arg(long)]
        message: Option<String>,
        #[arg(long)]
        title: Option<String>,
    },
    /// A new session on another model, sent the source's prompts one after another.
    Rerun {
        session: String,
        /// PROVIDER/MODEL (default: the source's).
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        title: Option<String>,
    },
    /// Full-text search over your messages and session titles.
    Search {
        query: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Tokens, cost, turns and time, as a table.
    Stats {
        /// Group by any of: day, user, harness, provider, model.
        #[arg(long, value_delimiter = ',', default_value = "day")]
        by: Vec<String>,
        /// First day, YYYY-MM-DD (default: 29 days before `--to`).
        #[arg(long)]
        from: Option<String>,
        /// Last day, YYYY-MM-DD (default: today, UTC).
        #[arg(long)]
        to: Option<String>,
    },
    /// The projections: how far each has applied the log; rebuild one from offset 0.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
    /// A session as JSONL (its view's log entries) or as a standalone HTML page.
    Export {
        session: String,
        /// jsonl or html.
        #[arg(long = "as", value_enum, default_value_t = export::ExportAs::Jsonl)]
        export_as: export::ExportAs,
        /// Write here instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Import pi session files as hstry conversations (through the hstry API; idempotent).
    Import {
        /// pi session files (`*.jsonl`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The hstry gRPC address (default: the data dir's `hstry-addr`).
        #[arg(long, env = "OCTO_HSTRY")]
        hstry: Option<String>,
    },
    /// Check that Octo can run here: pi, bubblewrap, Node, the data dir, the server and ports.
    Doctor,
}

#[derive(Debug, Subcommand)]
enum SessionsCommand {
    /// Create a session and print its id.
    Create {
        /// The workspace, relative to the server's workspaces root.
        #[arg(long, default_value = ".")]
        workspace: String,
        #[arg(long, default_value = "pi")]
        harness: String,
        /// PROVIDER/MODEL (default: the server's).
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        title: Option<String>,
    },
    /// Your sessions, most recently updated first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Only sessions whose title or preview contains this.
        #[arg(long)]
        text: Option<String>,
    },
    /// A session's summary and messages.
    Show {
        session: String,
        /// Only the newest N messages.
        #[arg(long)]
        last: Option<usize>,
    },
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// Print log entries: your sessions' (or one session's view), after an offset.
    Tail {
        /// Keep printing entries as they are appended.
        #[arg(long, short)]
        follow: bool,
        /// One session's view.
        #[arg(long)]
        session: Option<String>,
        /// command or event.
        #[arg(long)]
        kind: Option<KindArg>,
        /// Body types (repeatable); `stream.*` matches a prefix.
        #[arg(long = "type")]
        types: Vec<String>,
        /// Only entries after this offset (resume with the last one printed).
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum KindArg {
    Command,
    Event,
}

#[derive(Debug, Subcommand)]
enum ProjectionsCommand {
    /// Each projection's version and applied offset against the log's head (asks the server).
    Status,
    /// Rebuild projections from offset 0 in the data dir (stop `octo serve` first).
    Rebuild {
        /// sessions, ui_state, history, analytics, search, or all.
        #[arg(default_value = "all")]
        name: String,
    },
}

/// Why octoctl stopped early.
pub enum Failure {
    /// Exit 1: the server refused the command, the run failed, a check failed.
    Refused(String),
    /// Exit 2: bad arguments, no server, a broken connection.
    Usage(String),
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure::Usage(error.to_string())
    }
}

/// What every command needs: where the server is, and how to print.
pub struct Ctx {
    data_dir: Option<PathBuf>,
    url: Option<String>,
    token: Option<String>,
    pub format: Format,
}

fn default_data_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("octo"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share/octo"))
}

impl Ctx {
    fn data_file(&self, name: &str) -> Option<String> {
        self.data_dir
            .as_ref()
            .and_then(|dir| std::fs::read_to_string(dir.join(name)).ok())
            .map(|text| text.trim().to_owned())
    }

    /// The data dir (`--data-dir`, else the default).
    pub fn data_dir(&self) -> Result<PathBuf, Failure> {
        self.data_dir
            .clone()
            .ok_or_else(|| Failure::Usage("no data dir: pass --data-dir or OCTO_DATA_DIR".into()))
    }

    /// The server's URL and a token.
    pub fn server(&self) -> Result<(String, String), Failure> {
        let url = self
            .url
            .clone()
            .or_else(|| self.data_file("url"))
            .ok_or_else(|| {
                Failure::Usage(
                    "no server: pass --url or OCTO_URL, or start `octo serve` on this machine"
                        .into(),
                )
            })?;
        let token = self
            .token
            .clone()
            .or_else(|| self.data_file("token"))
            .ok_or_else(|| {
                Failure::Usage(
                    "no token: pass --token or OCTO_TOKEN (`octo users token NAME` issues one)"
                        .into(),
                )
            })?;
        Ok((url, token))
    }

    /// A WebSocket connection to the server.
    pub async fn connect(&self) -> Result<Client, Failure> {
        let (url, token) = self.server()?;
        Ok(Client::connect(&url, &token, Encoding::Json).await?)
    }

    /// Runs a GraphQL operation; a protocol error is exit 1, anything else exit 2.
    pub async fn graphql(&self, query: &str, variables: Value) -> Result<Value, Failure> {
        let (url, token) = self.server()?;
        crate::graphql::request(&url, &token, query, variables)
            .await
            .map_err(|e| match &e {
                crate::graphql::GraphqlError::Graphql {
                    code: Some(code),
                    message,
                } => Failure::Refused(format!("{message} ({code})")),
                _ => Failure::Usage(e.to_string()),
            })
    }

    /// Prints one JSON value (json) or the text (pretty).
    pub fn emit(&self, value: &Value, pretty: impl FnOnce() -> String) {
        match self.format {
            Format::Json => println!("{value}"),
            Format::Pretty => {
                let text = pretty();
                if !text.is_empty() {
                    println!("{text}");
                }
            }
        }
    }
}

/// Runs `octoctl` with the process's arguments.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("octoctl: {e}");
            return ExitCode::from(2);
        }
    };
    let ctx = Ctx {
        data_dir: cli.data_dir.clone().or_else(default_data_dir),
        url: cli.url.clone(),
        token: cli.token.clone(),
        format: cli.format,
    };
    match runtime.block_on(dispatch(&ctx, cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(message)) => {
            eprintln!("octoctl: {message}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(message)) => {
            eprintln!("octoctl: {message}");
            ExitCode::from(2)
        }
    }
}

async fn dispatch(ctx: &Ctx, command: Top) -> Result<(), Failure> {
    match command {
        Top::Sessions(SessionsCommand::Create {
            workspace,
            harness,
            model,
            title,
        }) => run::create(ctx, &workspace, &harness, model.as_deref(), title).await,
        Top::Sessions(SessionsCommand::List { limit, text }) => read::list(ctx, limit, text).await,
        Top::Sessions(SessionsCommand::Show { session, last }) => {
            read::show(ctx, &session, last).await
        }
        Top::Prompt {
            session,
            text,
            follow,
        } => run::prompt(ctx, &session, &text, follow).await,
        Top::Log(LogCommand::Tail {
            follow,
            session,
            kind,
            types,
            after,
        }) => {
            let kind = kind.map(|kind| match kind {
                KindArg::Command => "command",
                KindArg::Event => "event",
            });
            log::tail(ctx, follow, session.as_deref(), kind, &types, after).await
        }
        Top::Replay {
            session,
            after,
            until,
            speed,
        } => log::replay(ctx, &session, after, until, speed).await,
        Top::Fork {
            session,
            at,
            message,
            title,
        } => {
            let at = match (at, message) {
                (Some(at), _) => at,
                (None, Some(message)) => run::fork_point(ctx, &session, &message).await?,
                (None, None) => return Err(Failure::Usage("pass --at or --message".into())),
            };
            run::fork(ctx, &session, at, title).await
        }
        Top::Rerun {
            session,
            model,
            title,
        } => run::rerun(ctx, &session, model.as_deref(), title).await,
        Top::Search { query, limit } => read::search(ctx, &query, limit).await,
        Top::Stats { by, from, to } => read::stats(ctx, &by, from, to).await,
        Top::Projections(ProjectionsCommand::Status) => projections::status(ctx).await,
        Top::Projections(ProjectionsCommand::Rebuild { name }) => {
            projections::rebuild(ctx, &name).await
        }
        Top::Export {
            session,
            export_as,
            output,
        } => export::export(ctx, &session, export_as, output).await,
        Top::Import { files, hstry } => import::import(ctx, &files, hstry).await,
        Top::Doctor => doctor::doctor(ctx).await,
    }
}

/// A session id argument.
pub fn session_arg(text: &str) -> Result<SessionId, Failure> {
    text.parse::<SessionId>()
        .map_err(|e| Failure::Usage(format!("{text:?} is not a session id: {e}")))
}

/// `PROVIDER/MODEL`.
pub fn model_arg(text: &str) -> Result<(String, String), Failure> {
    text.split_once('/')
        .map(|(p, m)| (p.to_owned(), m.to_owned()))
        .ok_or_else(|| Failure::Usage(format!("--model takes PROVIDER/MODEL, got {text:?}")))
}

/// Sends a command and waits for its ack: (session id, offset).
pub async fn command(client: &mut Client, frame: Value) -> Result<(SessionId, Offset), Failure> {
    client.send(&frame).await?;
    loop {
        match client.next_frame_within(Duration::from_secs(60)).await? {
            ServerFrame::Agent(AgentServerFrame::Ack(ack)) => {
                return match (ack.status, ack.session_id, ack.offset) {
                    (
                        AckStatus::Accepted | AckStatus::Duplicate,
                        Some(session_id),
                        Some(offset),
                    ) => Ok((session_id, offset)),
                    _ => Err(Failure::Refused(match ack.error {
                        Some(error) => {
                            format!("refused: {} ({})", error.message, wire(&error.code))
                        }
                        None => "refused".to_owned(),
                    })),
                };
            }
            ServerFrame::System(octo_core::frame::SystemServerFrame::Error(e)) => {
                return Err(Failure::Usage(format!(
                    "{} ({})",
                    e.error.message,
                    wire(&e.error.code)
                )));
            }
            _ => {}
        }
    }
}

/// An error code as the wire spells it.
pub fn wire(code: &octo_core::ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A fresh command id as JSON.
pub fn command_id() -> Value {
    json!(octo_core::CommandId::new())
}

/// `text` cut to `max` characters on one line.
pub fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        flat
    }
}
