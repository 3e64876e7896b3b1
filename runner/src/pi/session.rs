//! One session's pi, supervised: started on the first command (and again after it exits, resuming
//! its session file), commands mapped to pi's RPC, stdout translated and coalesced, probes sent,
//! no progress turned into `run.timed_out`, and an exit into the events of PROTOCOL.md 15.
//!
//! The caller (the runner) delivers commands and pulls events; it appends what it pulls.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use octo_core::command::Command;
use octo_core::event::{
    CommandFailed, ForkedFrom, HarnessExitReason, HarnessExited, HarnessStarted,
};
use octo_core::runner::ForkCtx;
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
    clock: Clock,
    last_progress: Instant,
    /// A timed-out run's pi is being stopped; its exit is reported as `killed`.
    killing: bool,
}

/// Unix milliseconds that never go back: the wall clock when the session started plus the
/// monotonic time since. Messages' `created_ms` are Unix time (PROTOCOL.md 7), and deadlines and
/// coalescing windows measured on it are immune to the wall clock being set back.
#[derive(Debug, Clone, Copy)]
struct Clock {
    start: Instant,
    start_ms: Ms,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            start: Instant::now(),
            start_ms: octo_core::now_ms(),
        }
    }

    fn now_ms(self) -> Ms {
        let elapsed = Ms::try_from(self.start.elapsed().as_millis()).unwrap_or(Ms::MAX);
        self.start_ms.saturating_add(elapsed)
    }

    /// Sleeps until the clock reads `at` (forever for `None`).
    async fn sleep_until(self, at: Option<Ms>) {
        match at {
            Some(at) => {
                let after = u64::try_from(at.saturating_sub(self.start_ms)).unwrap_or(0);
                let at = self.start + Duration::from_millis(after);
                tokio::time::sleep_until(at.into()).await;
            }
            None => std::future::pending().await,
        }
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
            clock: Clock::new(),
            last_progress: Instant::now(),
            killing: false,
        }
    }

    /// Whether pi runs now.
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// Starts pi (resuming its session file if it has one, else forking its nearest ancestor's
    /// when the session is a fork) and returns `harness.started`.
    async fn start(&mut self, cause: Option<Offset>) -> Result<Event, SpawnError> {
        let resumed = self
            .config
            .session_file
            .as_ref()
            .is_some_and(|file| file.exists());
        if !resumed {
            self.config.session_file = None;
        }
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let fork = self
            .config
            .fork
            .clone()
            .filter(|fork| !resumed && fork.user_messages_inherited > 0);
        let (mut process, forked_from) = match fork {
            Some(fork) => {
                let mut process = PiProcess::spawn(&self.forking_config(&fork)?)?;
                match fork_on_pi(&mut process, &fork, &self.config, deadline).await {
                    Ok(forked_from) => (process, Some(forked_from)),
                    Err(e) => {
                        let _ = process.kill().await;
                        return Err(e);
                    }
                }
            }
            None => (PiProcess::spawn(&self.config)?, None),
        };
        let state = match call(&mut process, json!({"type": "get_state"}), deadline).await {
            Ok(state) => state,
            Err(e) => {
                let _ = process.kill().await;
                return Err(e);
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
            forked_from,
            model: Some(ModelRef {
                provider: self.config.provider.clone(),
                model_id: self.config.model_id.clone(),
            }),
            thinking_level: self.config.thinking_level,
            cause,
        }))
    }

    /// pi opened on the nearest ancestor's session file, without `--provider`/`--model`, so that
    /// file gets no new entries (9.3, step 1).
    fn forking_config(&self, fork: &ForkCtx) -> Result<PiConfig, SpawnError> {
        let missing = |why: &str| {
            SpawnError::StateMissing(format!(
                "cannot start the fork from its ancestor's pi session: {why}"
            ))
        };
        let file = fork
            .ancestor_harness_session_file
            .as_ref()
            .map(PathBuf::from)
            .ok_or_else(|| missing("no ancestor's pi ever started"))?;
        if !file.is_file() {
            return Err(missing(&format!("{} does not exist", file.display())));
        }
        Ok(PiConfig {
            session_file: Some(file),
            pin_model: false,
            ..self.config.clone()
        })
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
                    let now = self.clock.now_ms();
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
                () = self.clock.sleep_until(self.translator.input_deadline()), if self.translator.input_deadline().is_some() => {
                    let output = self.translator.expire_inputs(self.clock.now_ms());
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
                    if let Some(event) = self.coalescer.flush_due(self.clock.now_ms()) {
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

/// Sends `command` to pi with a fresh id and returns the `data` of its response.
///
/// # Errors
/// [`SpawnError::Refused`] when pi answers `success: false`; [`SpawnError::Io`] when pi exits or
/// does not answer by `deadline`.
async fn call(
    process: &mut PiProcess,
    mut command: Value,
    deadline: tokio::time::Instant,
) -> Result<Value, SpawnError> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = format!(
        "q{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let name = command["type"].as_str().unwrap_or_default().to_owned();
    command["id"] = Value::from(id.as_str());
    process.send(&command).await?;
    loop {
        let record = tokio::time::timeout_at(deadline, process.next_record())
            .await
            .map_err(|_| std::io::Error::other(format!("pi did not answer {name} in time")))?
            .ok_or_else(|| {
                std::io::Error::other(format!("pi exited at start: {}", process.stderr_tail()))
            })?;
        if let Record::Value(value) = record
            && value["id"] == id.as_str()
        {
            if value["success"] == false {
                return Err(SpawnError::Refused {
                    command: name,
                    message: value["error"]
                        .as_str()
                        .unwrap_or("no reason given")
                        .to_owned(),
                });
            }
            return Ok(value["data"].clone());
        }
    }
}

/// Steps 2 and 3 of PROTOCOL.md 9.3 on a pi opened on the ancestor's file: cut its user messages
/// after the `k`-th (`fork`), or keep them all (`clone`), into a new file, then set the inherited
/// model. Returns where the fork started from.
async fn fork_on_pi(
    process: &mut PiProcess,
    fork: &ForkCtx,
    config: &PiConfig,
    deadline: tokio::time::Instant,
) -> Result<ForkedFrom, SpawnError> {
    let ancestor = fork
        .ancestor_harness_session_file
        .clone()
        .unwrap_or_default();
    let listed = call(process, json!({"type": "get_fork_messages"}), deadline).await?;
    let messages = listed["messages"].as_array().cloned().unwrap_or_default();
    let k = fork.user_messages_inherited as usize;
    let missing = |why: String| SpawnError::StateMissing(why);
    if messages.len() < k {
        return Err(missing(format!(
            "{ancestor} holds {} user messages; the fork inherits {k}",
            messages.len()
        )));
    }
    if let (Some(expected), Some(item)) = (&fork.last_inherited_user_text, messages.get(k - 1)) {
        let text = item["text"].as_str().unwrap_or_default();
        if !text.starts_with(expected.as_str()) {
            return Err(missing(format!(
                "user message {k} of {ancestor} is not the view's: {text:?}"
            )));
        }
    }
    let entry_id = match messages.get(k) {
        Some(next) => {
            let entry_id = next["entryId"].as_str().unwrap_or_default().to_owned();
            let answer = call(
                process,
                json!({"type": "fork", "entryId": entry_id}),
                deadline,
            )
            .await?;
            if answer["cancelled"] == true {
                return Err(SpawnError::Refused {
                    command: "fork".into(),
                    message: "cancelled".into(),
                });
            }
            Some(entry_id)
        }
        None => {
            let answer = call(process, json!({"type": "clone"}), deadline).await?;
            if answer["cancelled"] == true {
                return Err(SpawnError::Refused {
                    command: "clone".into(),
                    message: "cancelled".into(),
                });
            }
            None
        }
    };
    call(
        process,
        json!({"type": "set_model", "provider": config.provider, "modelId": config.model_id}),
        deadline,
    )
    .await?;
    if let Some(level) = config.thinking_level {
        // A model without reasoning keeps "off"; that is no reason to fail the fork.
        let _ = call(
            process,
            json!({"type": "set_thinking_level", "level": level}),
            deadline,
        )
        .await;
    }
    Ok(ForkedFrom {
        harness_session_file: ancestor,
        entry_id,
    })
}

impl Harness for PiSession {
    async fn deliver(&mut self, delivered: Delivered) -> Vec<Event> {
        let (offset, command_id) = (delivered.offset, delivered.command_id);
        let creates = delivered.command.starts_harness();
        match self.try_deliver(delivered).await {
            Ok(events) => events,
            Err(e) => {
                let code = match e {
                    SpawnError::StateMissing(_) => ErrorCode::HarnessStateMissing,
                    _ => ErrorCode::HarnessStartFailed,
                };
                let error = Error::new(code, e.to_string());
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
