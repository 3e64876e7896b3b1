//! One pi process: `pi --mode rpc` inside the sandbox, its stdin for commands, its stdout decoded
//! into records by [`crate::jsonl`], and the tail of its stderr for `harness.exited`.
//!
//! pi keeps stdin open for its whole life (stdin EOF makes it exit at once, dropping a run), so
//! the handle owns stdin until [`PiProcess::kill`]. Reading stdout stops while the record queue is
//! full: a slow consumer delays pi, never loses its output.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use octo_core::message::ThinkingLevel;
use octo_core::runner::ForkCtx;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::jsonl::{LineDecoder, Record};
use crate::sandbox::{SandboxError, SandboxPaths, SandboxPolicy, bwrap_args};

/// Records waiting for the consumer; past this, stdout is not read (backpressure).
pub const RECORD_QUEUE_MAX: usize = 1024;

/// Bytes of stderr kept for `harness.exited.stderr_tail`.
pub const STDERR_TAIL_BYTES: usize = octo_core::limits::STDERR_TAIL_BYTES_MAX;

/// How to start pi.
#[derive(Debug, Clone)]
pub struct PiConfig {
    /// The `pi` executable (the project-local npm install).
    pub pi_bin: PathBuf,
    /// `PI_CODING_AGENT_DIR`: models, settings, auth for this user.
    pub agent_dir: PathBuf,
    /// Where pi writes its session files.
    pub session_dir: PathBuf,
    pub workspace: PathBuf,
    pub home: PathBuf,
    pub provider: String,
    pub model_id: String,
    pub thinking_level: Option<ThinkingLevel>,
    /// Resume this session file.
    pub session_file: Option<PathBuf>,
    /// Pass `--provider`/`--model`. Off when pi opens an ancestor's session file to fork it:
    /// that file must get no new entries (PROTOCOL.md 9.3).
    pub pin_model: bool,
    /// How to start from an ancestor's state when the session has no file of its own (a fork).
    pub fork: Option<ForkCtx>,
    pub sandbox: SandboxPolicy,
    /// Environment passed through (PATH, provider API keys).
    pub env: Vec<(String, String)>,
    /// Extensions loaded explicitly (`-e`); discovery stays off.
    pub extensions: Vec<PathBuf>,
}

/// Why pi could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// Configuration error: the sandbox cannot be built.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// Stop: bwrap or pi could not be executed.
    #[error("cannot start pi under bwrap: {0}")]
    Io(#[from] std::io::Error),
    /// The ancestor's harness state a fork needs is gone or does not match the view
    /// (`harness_state_missing`).
    #[error("{0}")]
    StateMissing(String),
    /// pi refused a command of its start sequence.
    #[error("pi refused {command}: {message}")]
    Refused { command: String, message: String },
}

/// A running pi.
pub struct PiProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    records: mpsc::Receiver<Record>,
    stderr_tail: Arc<Mutex<Vec<u8>>>,
}

impl PiConfig {
    /// The full command line: bwrap, its arguments, then pi's.
    ///
    /// # Errors
    /// [`SandboxError`] when the policy cannot be enforced.
    pub fn command_line(&self) -> Result<Vec<OsString>, SandboxError> {
        let paths = SandboxPaths {
            workspace: self.workspace.clone(),
            home: self.home.clone(),
            state_dirs: vec![self.agent_dir.clone(), self.session_dir.clone()],
            read_only: self
                .pi_bin
                .ancestors()
                .nth(3)
                .map(PathBuf::from)
                .into_iter()
                .collect(),
        };
        let mut line: Vec<OsString> = bwrap_args(&self.sandbox, &paths)?;
        line.push("--setenv".into());
        line.push("PI_CODING_AGENT_DIR".into());
        line.push(self.agent_dir.clone().into());
        line.push("--setenv".into());
        line.push("PI_OFFLINE".into());
        line.push("1".into());
        line.push("--".into());
        line.push(self.pi_bin.clone().into());
        line.push("--mode".into());
        line.push("rpc".into());
        if self.pin_model {
            for arg in ["--provider", &self.provider, "--model", &self.model_id] {
                line.push(arg.into());
            }
        }
        match &self.session_file {
            Some(file) => {
                line.push("--session".into());
                line.push(file.clone().into());
            }
            None => {
                line.push("--session-dir".into());
                line.push(self.session_dir.clone().into());
            }
        }
        for extension in &self.extensions {
            line.push("--extension".into());
            line.push(extension.clone().into());
        }
        for flag in [
            "--no-extensions",
            "--no-skills",
            "--no-prompt-templates",
            "--no-themes",
            "--no-context-files",
        ] {
            line.push(flag.into());
        }
        Ok(line)
    }
}

impl PiProcess {
    /// Starts pi in its sandbox.
    ///
    /// # Errors
    /// [`SpawnError`].
    pub fn spawn(config: &PiConfig) -> Result<PiProcess, SpawnError> {
        let line = config.command_line()?;
        let mut command = Command::new("bwrap");
        command
            .args(&line)
            .env_clear()
            .envs(config.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn()?;
        let stdin = child.stdin.take();
        let mut stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout pipe"))?;
        let mut stderr = child
            .stderr
            .take()
            .ok_or_else(|| std::io::Error::other("no stderr pipe"))?;
        let (sender, records) = mpsc::channel(RECORD_QUEUE_MAX);
        tokio::spawn(async move {
            let mut decoder = LineDecoder::default();
            let mut buffer = vec![0u8; 64 << 10];
            let mut decoded = Vec::new();
            loop {
                let n = match stdout.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                decoder.push(&buffer[..n], &mut decoded);
                for record in decoded.drain(..) {
                    if sender.send(record).await.is_err() {
                        return;
                    }
                }
            }
            decoder.finish(&mut decoded);
            for record in decoded {
                let _ = sender.send(record).await;
            }
        });
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        let tail = Arc::clone(&stderr_tail);
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 8 << 10];
            while let Ok(n) = stderr.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
                let mut tail = tail.lock().expect("stderr lock is never poisoned");
                tail.extend_from_slice(&buffer[..n]);
                let excess = tail.len().saturating_sub(STDERR_TAIL_BYTES);
                tail.drain(..excess);
            }
        });
        Ok(PiProcess {
            child,
            stdin,
            records,
            stderr_tail,
        })
    }

    /// Writes one command to pi's stdin.
    ///
    /// # Errors
    /// When pi's stdin is closed (pi exited).
    pub async fn send(&mut self, command: &Value) -> std::io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| std::io::Error::other("pi's stdin is closed"))?;
        let mut line = serde_json::to_vec(command).map_err(std::io::Error::other)?;
        line.push(b'\n');
        stdin.write_all(&line).await?;
        stdin.flush().await
    }

    /// The next record of pi's stdout; `None` once stdout closed (pi exited).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn next_record(&mut self) -> Option<Record> {
        self.records.recv().await
    }

    /// The last bytes pi wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        let tail = self
            .stderr_tail
            .lock()
            .expect("stderr lock is never poisoned");
        String::from_utf8_lossy(&tail).into_owned()
    }

    /// The process id of bwrap (pi's parent inside the sandbox).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits for the exit: (code, signal).
    ///
    /// # Errors
    /// When waiting fails.
    pub async fn wait(&mut self) -> std::io::Result<(Option<i32>, Option<i32>)> {
        use std::os::unix::process::ExitStatusExt;
        let status = self.child.wait().await?;
        Ok((status.code(), status.signal()))
    }

    /// Closes stdin and kills the process tree (bwrap dies with its child and vice versa).
    ///
    /// # Errors
    /// When the kill fails.
    pub async fn kill(&mut self) -> std::io::Result<()> {
        self.stdin = None;
        self.child.kill().await
    }
}
