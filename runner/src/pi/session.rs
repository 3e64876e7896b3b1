//! One session's pi, supervised: started on the first command (and again after it exits, resuming
//! its session file), commands mapped to pi's RPC, stdout translated and coalesced, probes sent,
//! no progress turned into `run.timed_out`, and an exit into the events of PROTOCOL.md 15.
//!
//! The caller (the runner) delivers commands and pulls events; it appends what it pulls.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use octo_core::command::Command;
use octo_core::event::{CommandFailed, HarnessExitReason, HarnessExited, HarnessStarted};
use octo_core::{Error, ErrorCode, Event, ModelRef, Ms, Offset};
use serde_json::{Value, json};

use super::process::{PiConfig, PiProcess, SpawnError};
use super::translate::{Delivered, FreshIds, Translator};
use crate::coalesce::Coalescer;
use crate::harness::Harness;
use crate::jsonl::Record;

/// The pi version this runner drives (harnesses/pi pins it).
pub const PI_VERSION: &str = "0.73.1";

/// How long pi may take to answer its first `get_state`.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A supervised pi for one session.
pub struct PiSession {
    config: PiConfig,
    no_progress: Duration,
    process: Option<PiProcess>,
    translator: Translator<FreshIds>,
    coalescer: Coalescer,
    epoch: Instant,
    last_progress: Instant,
    /// A timed-out run's pi is being stopped; its exit is reported as `killed`.
    killing: bool,
}

fn ms_since(epoch: Instant) -> Ms {
    Ms::try_from(epoch.elapsed().as_millis()).unwrap_or(Ms::MAX)
}

/// Sleeps until `at` ms after `epoch` (forever for `None`).
async fn sleep_until_ms(epoch: Instant, at: Option<Ms>) {
    match at {
        Some(at) => {
            let at = epoch + Duration::from_millis(u64::try_from(at).unwrap_or(0));
            tokio::time::sleep_until(at.into()).await;
        }
        None => std::future::pending().await,
    }
}

/// pi's RPC command for a canonical one (PROTOCOL.md 15, last paragraph).
fn to_pi(delivered: &Delivered, run_open: bool) -> Option<Value> {
    let id = format!("o{}", delivered.offset);
    Some(match &delivered.command {
        Command::Prompt(prompt) => {
            let mut message = prompt.text.clone();
            if !prompt.files.is_empty() {
                message.push_str(&format!("\nAttached files: {}", prompt.files.join(", ")));
            }
            let mut command = json!({"id": id, "type": "prompt", "message": message});
            if !prompt.images.is_empty() {
                command["images"] = prompt
                    .images
                    .iter()
                    .map(|image| {
                        json!({"type": "image", "mimeType": image.media_type.as_str(),
                            "data": base64::engine::general_purpose::STANDARD.encode(&image.data.0)})
                    })
                    .collect();
            }
            if run_open {
                let steer = matches!(prompt.when_busy, Some(octo_core::command::WhenBusy::Steer));
                command["streamingBehavior"] =
                    Value::from(if steer { "steer" } else { "followUp" });
            }
            command
        }
        Command::Abort(_) => json!({"id": id, "type": "abort"}),
        Command::SetModel(set) => {
            json!({"id": id, "type": "set_model", "provider": set.provider, "modelId": set.model_id})
        }
        Command::SetThinkingLevel(set) => {
            json!({"id": id, "type": "set_thinking_level", "level": set.level})
        }
        Command::Compact(compact) => match &compact.instructions {
            Some(instructions) => {
                json!({"id": id, "type": "compact", "customInstructions": instructions})
            }
            None => json!({"id": id, "type": "compact"}),
        },
        _ => return None,
    })
}

impl PiSession {
    /// A session whose pi is not started yet.
    pub fn new(config: PiConfig, no_progress: Duration) -> PiSession {
        let translator = Translator::new(FreshIds, &config.provider, &config.model_id);
        PiSession {
            config,
            no_progress,
            process: None,
            translator,
            coalescer: Coalescer::default(),
            epoch: Instant::now(),
            last_progress: Instant::now(),
            killing: false,
        }
    }

    /// Whether pi runs now.
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// Starts pi (resuming its session file if it has one) and returns `harness.started`.
    async fn start(&mut self, cause: Option<Offset>) -> Result<Event, SpawnError> {
        let resumed = self
            .config
            .session_file
            .as_ref()
            .is_some_and(|file| file.exists());
        if !resumed {
            self.config.session_file = None;
        }
        let mut process = PiProcess::spawn(&self.config)?;
        process
            .send(&json!({"id": "q0", "type": "get_state"}))
            .await?;
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let state = loop {
            let record = tokio::time::timeout_at(deadline, process.next_record())
                .await
                .map_err(|_| std::io::Error::other("pi did not answer get_state in time"))?
                .ok_or_else(|| {
                    std::io::Error::other(format!("pi exited at start: {}", process.stderr_tail()))
                })?;
            if let Record::Value(value) = record
                && value["id"] == "q0"
            {
                break value["data"].clone();
            }
        };
        let session_file = state["sessionFile"].as_str().map(PathBuf::from);
        self.config.session_file.clone_from(&session_file);
        self.translator = Translator::new(FreshIds, &self.config.provider, &self.config.model_id);
        self.killing = false;
        let pid = process.pid().unwrap_or(0);
        self.process = Some(process);
        self.last_progress = Instant::now();
        Ok(Event::HarnessStarted(HarnessStarted {
            harness: "pi".into(),
            version: PI_VERSION.into(),
            pid,
            harness_session_id: state["sessionId"].as_str().unwrap_or_default().to_owned(),
            harness_session_file: session_file.map(|file| file.display().to_string()),
            resumed,
            forked_from: None,
            model: Some(ModelRef {
                provider: self.config.provider.clone(),
                model_id: self.config.model_id.clone(),
            }),
            thinking_level: None,
            cause,
        }))
    }

    /// Delivers a command, starting pi first if it is not running. Returns the events that
    /// happened right away (`harness.started`).
    ///
    /// # Errors
    /// [`SpawnError`] when pi cannot be started; the caller reports `harness.exited{start_failed}`.
    pub async fn try_deliver(&mut self, delivered: Delivered) -> Result<Vec<Event>, SpawnError> {
        let mut events = Vec::new();
        if self.process.is_none() {
            events.push(self.start(Some(delivered.offset)).await?);
        }
        if matches!(delivered.command, Command::InputRespond(_)) {
            let output = self.translator.answer(&delivered);
            if let Some(process) = self.process.as_mut() {
                for record in &output.to_pi {
                    let _ = process.send(record).await;
                }
            }
            events.extend(output.events);
            return Ok(events);
        }
        let Some(command) = to_pi(&delivered, self.translator.run_open()) else {
            return Ok(events);
        };
        self.translator.delivered(delivered);
        if let Some(process) = self.process.as_mut() {
            // A failed write means pi is gone; its exit arrives through `next_events`.
            let _ = process.send(&command).await;
        }
        self.last_progress = Instant::now();
        Ok(events)
    }

    /// The next events: translated output, a timeout, or pi's exit.
    ///
    /// # Cancel safety
    /// Cancel safe: nothing is taken from pi before it is translated and returned.
    pub async fn next_events(&mut self) -> Vec<Event> {
        loop {
            let Some(process) = self.process.as_mut() else {
                return self.coalescer.take().into_iter().collect();
            };
            let timeout_at = self.last_progress + self.no_progress;
            let flush_in = Duration::from_millis(crate::coalesce::COALESCE_WINDOW_MS as u64 + 1);
            tokio::select! {
                record = process.next_record() => {
                    let now = ms_since(self.epoch);
                    match record {
                        Some(Record::Value(value)) => {
                            self.last_progress = Instant::now();
                            let output = self.translator.stdout(&value, now);
                            for probe in &output.to_pi {
                                let _ = process.send(probe).await;
                            }
                            let mut events = Vec::new();
                            for event in output.events {
                                events.extend(self.coalescer.push(event, now));
                            }
                            if !events.is_empty() {
                                return events;
                            }
                        }
                        Some(_) => {}
                        None => return self.exit().await,
                    }
                }
                () = tokio::time::sleep_until(timeout_at.into()), if self.translator.run_open() => {
                    let limit_ms = u64::try_from(self.no_progress.as_millis()).unwrap_or(u64::MAX);
                    let mut events: Vec<Event> = self.coalescer.take().into_iter().collect();
                    events.extend(self.translator.timed_out(limit_ms).events);
                    // The run's later output is dropped: stop this pi; the next command starts
                    // it again on its session file.
                    self.killing = true;
                    let _ = process.send(&json!({"id": "q-timeout", "type": "abort"})).await;
                    let _ = process.kill().await;
                    return events;
                }
                () = sleep_until_ms(self.epoch, self.translator.input_deadline()), if self.translator.input_deadline().is_some() => {
                    let output = self.translator.expire_inputs(ms_since(self.epoch));
                    for record in &output.to_pi {
                        let _ = process.send(record).await;
                    }
                    let mut events: Vec<Event> = self.coalescer.take().into_iter().collect();
                    events.extend(output.events);
                    if !events.is_empty() {
                        return events;
                    }
                }
                () = tokio::time::sleep(flush_in), if self.coalescer.is_holding() => {
                    if let Some(event) = self.coalescer.flush_due(ms_since(self.epoch)) {
                        return vec![event];
                    }
                }
            }
        }
    }

    async fn exit(&mut self) -> Vec<Event> {
        let reason = if self.killing {
            HarnessExitReason::Killed
        } else {
            HarnessExitReason::Crashed
        };
        self.exit_as(reason).await
    }

    async fn exit_as(&mut self, reason: HarnessExitReason) -> Vec<Event> {
        let Some(mut process) = self.process.take() else {
            return Vec::new();
        };
        let (code, signal) = process.wait().await.unwrap_or((None, None));
        let tail = process.stderr_tail();
        let mut events: Vec<Event> = self.coalescer.take().into_iter().collect();
        events.extend(
            self.translator
                .exited(reason, code, signal, (!tail.is_empty()).then_some(tail))
                .events,
        );
        events
    }
}

impl Harness for PiSession {
    async fn deliver(&mut self, delivered: Delivered) -> Vec<Event> {
        let (offset, command_id) = (delivered.offset, delivered.command_id);
        let creates = delivered.command.mints_session();
        match self.try_deliver(delivered).await {
            Ok(events) => events,
            Err(e) => {
                let error = Error::new(ErrorCode::HarnessStartFailed, e.to_string());
                let mut events = Vec::with_capacity(2);
                if !creates {
                    events.push(Event::CommandFailed(CommandFailed {
                        command_id,
                        error: error.clone(),
                        cause: offset,
                    }));
                }
                events.push(Event::HarnessExited(HarnessExited {
                    reason: HarnessExitReason::StartFailed,
                    code: None,
                    signal: None,
                    stderr_tail: None,
                    error: Some(error),
                    cause: Some(offset),
                }));
                events
            }
        }
    }

    async fn next_events(&mut self) -> Vec<Event> {
        PiSession::next_events(self).await
    }

    fn is_running(&self) -> bool {
        PiSession::is_running(self)
    }

    async fn stop(&mut self, reason: HarnessExitReason) -> Vec<Event> {
        if let Some(process) = self.process.as_mut() {
            let _ = process.kill().await;
        }
        self.exit_as(reason).await
    }
}
