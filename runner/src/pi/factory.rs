//! Makes each session's [`PiSession`] from the gateway's [`SessionCtx`]: the user's own pi agent
//! and session dirs, the workspace's sandbox policy (which can only tighten the user's), the model,
//! and the session file to resume.

use std::path::{Path, PathBuf};
use std::time::Duration;

use octo_core::runner::SessionCtx;
use octo_core::{ModelRef, SessionId, UserId};

use super::process::PiConfig;
use super::session::PiSession;
use crate::harness::HarnessFactory;
use crate::sandbox::{SandboxFile, SandboxPolicy};

/// Files of pi's agent dir taken from the template on every start (provider configuration).
const TEMPLATE_FILES: [&str; 2] = ["models.json", "auth.json"];

/// Files taken from the template only when the user's agent dir has none (pi rewrites them).
const TEMPLATE_SEEDS: [&str; 1] = ["settings.json"];

/// How the runner starts pi for every session.
#[derive(Debug, Clone)]
pub struct PiFactory {
    /// The `pi` executable.
    pub pi_bin: PathBuf,
    /// Per-user state: `<root>/<user id>/pi/{agent,sessions}`. Must not lie inside a denied path.
    pub state_root: PathBuf,
    /// pi's provider configuration to copy into each user's agent dir (`models.json`, `auth.json`,
    /// `settings.json`), e.g. `~/.pi/agent` or the demo's.
    pub agent_template: Option<PathBuf>,
    /// `HOME` of the harness.
    pub home: PathBuf,
    /// The user's sandbox policy (`~/.config/octo/sandbox.toml`).
    pub sandbox: SandboxPolicy,
    /// Environment passed through (PATH, provider API keys).
    pub env: Vec<(String, String)>,
    /// The model when the session names none.
    pub default_model: ModelRef,
    /// pi extensions to load in every session (`--extension`).
    pub extensions: Vec<PathBuf>,
    /// `run.no_progress_ms`.
    pub no_progress: Duration,
}

/// The name under which pi is offered.
pub const PI_HARNESS: &str = "pi";

fn copy_template(template: &Path, agent_dir: &Path) -> std::io::Result<()> {
    for name in TEMPLATE_FILES {
        let from = template.join(name);
        if from.is_file() {
            std::fs::copy(&from, agent_dir.join(name))?;
        }
    }
    for name in TEMPLATE_SEEDS {
        let (from, to) = (template.join(name), agent_dir.join(name));
        if from.is_file() && !to.exists() {
            std::fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

impl PiFactory {
    /// The user's pi agent dir and session dir, created.
    ///
    /// # Errors
    /// When they cannot be created.
    pub fn user_dirs(&self, user_id: &UserId) -> std::io::Result<(PathBuf, PathBuf)> {
        let base = self.state_root.join(user_id.as_str()).join("pi");
        let (agent, sessions) = (base.join("agent"), base.join("sessions"));
        for dir in [&agent, &sessions] {
            std::fs::create_dir_all(dir)?;
        }
        if let Some(template) = &self.agent_template {
            copy_template(template, &agent)?;
        }
        Ok((agent, sessions))
    }

    /// The configuration of a session's pi.
    ///
    /// # Errors
    /// A message for `harness.exited{start_failed}`.
    pub fn config(&self, user_id: &UserId, ctx: &SessionCtx) -> Result<PiConfig, String> {
        if ctx.harness != PI_HARNESS {
            return Err(format!("this runner has no harness {:?}", ctx.harness));
        }
        let workspace = PathBuf::from(&ctx.workspace_root);
        let workspace_file = workspace.join(".octo/sandbox.toml");
        let sandbox = if workspace_file.is_file() {
            let text = std::fs::read_to_string(&workspace_file)
                .map_err(|e| format!("cannot read {}: {e}", workspace_file.display()))?;
            let file = SandboxFile::parse(&workspace_file.display().to_string(), &text)
                .map_err(|e| e.to_string())?;
            self.sandbox
                .restrict(&file, &workspace, &self.home)
                .map_err(|e| e.to_string())?
        } else {
            self.sandbox.clone()
        };
        let (agent_dir, session_dir) = self
            .user_dirs(user_id)
            .map_err(|e| format!("cannot prepare pi's dirs: {e}"))?;
        let model = ctx
            .model
            .clone()
            .unwrap_or_else(|| self.default_model.clone());
        Ok(PiConfig {
            pi_bin: self.pi_bin.clone(),
            agent_dir,
            session_dir,
            workspace,
            home: self.home.clone(),
            provider: model.provider,
            model_id: model.model_id,
            thinking_level: ctx.thinking_level,
            session_file: ctx.harness_session_file.as_ref().map(PathBuf::from),
            pin_model: true,
            fork: ctx.fork.clone(),
            sandbox,
            env: self.env.clone(),
            extensions: self.extensions.clone(),
        })
    }
}

impl HarnessFactory for PiFactory {
    type Harness = PiSession;

    fn create(
        &self,
        user_id: &UserId,
        _session_id: &SessionId,
        ctx: &SessionCtx,
    ) -> Result<PiSession, String> {
        Ok(PiSession::new(self.config(user_id, ctx)?, self.no_progress))
    }
}
