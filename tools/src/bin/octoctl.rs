//! `octoctl`: Octo from the command line. This first version creates sessions and prompts them,
//! following the streamed answer and its tool calls.
//!
//! The server and token come from `--url`/`OCTO_URL` and `--token`/`OCTO_TOKEN`, else from the
//! local data dir (`url` and `token`, written by `octo serve`). Exit codes: 0 done, 1 the run or
//! command failed, 2 usage or connection errors.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use octo_core::frame::{AckStatus, AgentServerFrame, ServerFrame};
use octo_core::message::{Part, ResultContent};
use octo_core::{Body, Encoding, Event, LogEntry, Offset};
use octo_tools::client::Client;
use serde_json::json;

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
    /// Output: human text or one JSON value per line.
    #[arg(long, value_enum, default_value_t = Format::Pretty, global = true)]
    format: Format,
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Pretty,
    Json,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// Sessions.
    #[command(subcommand)]
    Session(SessionCommand),
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
}

#[derive(Debug, Subcommand)]
enum SessionCommand {
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
}

/// Why octoctl stopped early.
enum Failure {
    /// Exit 1: the server refused the command or the run failed.
    Refused(String),
    /// Exit 2: bad arguments, no server, a broken connection.
    Usage(String),
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure::Usage(error.to_string())
    }
}

fn default_data_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("octo"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share/octo"))
}

fn server(cli: &Cli) -> Result<(String, String), Failure> {
    let data_dir = cli.data_dir.clone().or_else(default_data_dir);
    let from_file = |name: &str| {
        data_dir
            .as_ref()
            .and_then(|dir| std::fs::read_to_string(dir.join(name)).ok())
            .map(|text| text.trim().to_owned())
    };
    let url = cli
        .url
        .clone()
        .or_else(|| from_file("url"))
        .ok_or_else(|| {
            Failure::Usage(
                "no server: pass --url or OCTO_URL, or start `octo serve` on this machine".into(),
            )
        })?;
    let token = cli
        .token
        .clone()
        .or_else(|| from_file("token"))
        .ok_or_else(|| {
            Failure::Usage(
                "no token: pass --token or OCTO_TOKEN (`octo users token NAME` issues one)".into(),
            )
        })?;
    Ok((url, token))
}

fn main() -> ExitCode {
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
    match runtime.block_on(run(&cli)) {
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

async fn run(cli: &Cli) -> Result<(), Failure> {
    let (url, token) = server(cli)?;
    let mut client = Client::connect(&url, &token, Encoding::Json).await?;
    match &cli.command {
        Top::Session(SessionCommand::Create {
            workspace,
            harness,
            model,
            title,
        }) => {
            let mut frame = json!({"ch": "agent", "type": "session.create",
                "command_id": octo_core::CommandId::new(), "harness": harness, "workspace": workspace});
            if let Some(model) = model {
                let (provider, model_id) = model.split_once('/').ok_or_else(|| {
                    Failure::Usage(format!("--model takes PROVIDER/MODEL, got {model:?}"))
                })?;
                frame["model"] = json!({"provider": provider, "model_id": model_id});
            }
            if let Some(title) = title {
                frame["title"] = json!(title);
            }
            let (session_id, offset) = command(&mut client, frame).await?;
            match cli.format {
                Format::Pretty => println!("{session_id}"),
                Format::Json => println!("{}", json!({"session_id": session_id, "offset": offset})),
            }
            Ok(())
        }
        Top::Prompt {
            session,
            text,
            follow,
        } => {
            let frame = json!({"ch": "agent", "type": "prompt", "command_id": octo_core::CommandId::new(),
                "session_id": session, "text": text});
            let (session_id, offset) = command(&mut client, frame).await?;
            if !follow {
                match cli.format {
                    Format::Pretty => println!("prompt accepted at offset {offset}"),
                    Format::Json => {
                        println!("{}", json!({"session_id": session_id, "offset": offset}))
                    }
                }
                return Ok(());
            }
            // Everything from the prompt on: `after` is a bound, not a neighbour.
            let after = offset.get().saturating_sub(1);
            client
                .send(&json!({"ch": "agent", "type": "subscribe", "id": "follow",
                    "session_id": session_id, "after": after}))
                .await?;
            follow_run(&mut client, offset, cli.format).await
        }
    }
}

/// Sends a command and waits for its ack: (session id, offset).
async fn command(
    client: &mut Client,
    frame: serde_json::Value,
) -> Result<(octo_core::SessionId, Offset), Failure> {
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

fn wire(code: &octo_core::ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Prints the run the prompt at `prompt` started, until it ends.
async fn follow_run(client: &mut Client, prompt: Offset, format: Format) -> Result<(), Failure> {
    let mut stdout = std::io::stdout();
    loop {
        let frame = client.next_frame().await?;
        let entry = match frame {
            ServerFrame::Agent(AgentServerFrame::Entry(entry)) => entry.entry,
            ServerFrame::Agent(AgentServerFrame::Error(e)) => {
                return Err(Failure::Usage(e.error.message));
            }
            _ => continue,
        };
        if format == Format::Json {
            println!("{}", serde_json::to_string(&entry)?);
        } else {
            print_pretty(&mut stdout, &entry)?;
        }
        if let Some(outcome) = run_outcome(&entry, prompt) {
            if format == Format::Pretty {
                println!();
            }
            return outcome;
        }
    }
}

/// Whether `entry` ends the followed run, and how.
fn run_outcome(entry: &LogEntry, prompt: Offset) -> Option<Result<(), Failure>> {
    let Body::Event(event) = &entry.body else {
        return None;
    };
    match event {
        Event::AgentIdle(_) => Some(Ok(())),
        Event::RunFailed(failed) => Some(Err(Failure::Refused(format!(
            "the run failed: {}",
            failed.error.message
        )))),
        Event::RunTimedOut(timed_out) => Some(Err(Failure::Refused(format!(
            "the run timed out after {} ms without progress",
            timed_out.limit_ms
        )))),
        Event::CommandFailed(failed) if failed.cause == prompt => Some(Err(Failure::Refused(
            format!("the prompt failed: {}", failed.error.message),
        ))),
        _ => None,
    }
}

fn print_pretty(out: &mut std::io::Stdout, entry: &LogEntry) -> std::io::Result<()> {
    let Body::Event(event) = &entry.body else {
        return Ok(());
    };
    match event {
        Event::StreamTextDelta(delta) => write!(out, "{}", delta.delta)?,
        Event::StreamMessageEnd(_) => writeln!(out)?,
        Event::ToolStart(tool) => writeln!(out, "[tool] {} {}", tool.name, tool.input)?,
        Event::ToolEnd(tool) => writeln!(
            out,
            "[tool] {} {} in {} ms",
            tool.name,
            if tool.is_error { "failed" } else { "done" },
            tool.duration_ms
        )?,
        Event::MessageCreated(created) => {
            for part in &created.message.parts {
                if let Part::ToolResult(result) = part {
                    for content in &result.content {
                        if let ResultContent::Text(text) = content {
                            for line in text.text.lines().take(20) {
                                writeln!(out, "  | {line}")?;
                            }
                        }
                    }
                }
            }
        }
        Event::RunFailed(failed) => writeln!(out, "[run failed] {}", failed.error.message)?,
        Event::Notice(notice) => writeln!(out, "[notice] {}", notice.text)?,
        _ => {}
    }
    out.flush()
}
