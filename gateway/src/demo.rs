//! Demo mode: with no LLM provider configured, `octo serve` runs pi against Octo's scripted model
//! on loopback, so a newcomer sees the whole flow offline (a session, a streamed answer, a tool
//! call in the sandbox). `hello.demo` is true, and the UI says so.

use std::path::{Path, PathBuf};

use octo_core::ModelRef;
use octo_tools::model::{ModelConfig, ModelHandle, ToolCall, Turn};
use serde_json::json;

/// The demo's provider and model, as pi sees them.
pub const DEMO_PROVIDER: &str = "octo-demo";
/// See [`DEMO_PROVIDER`].
pub const DEMO_MODEL: &str = "scripted";

/// The demo model's script: a first answer that runs a command in the workspace, a second that
/// explains, then an echo of whatever is asked.
pub fn demo_turns() -> Vec<Turn> {
    vec![
        Turn {
            text: "This is Octo's demo model: no LLM provider is configured, so a scripted model \
                   answers. Let me run a command in your sandboxed workspace."
                .to_owned(),
            tool_calls: vec![ToolCall {
                name: "bash".to_owned(),
                arguments: json!({"command": "echo \"hello from $(pwd)\"; ls -la | head -20"}),
                id: None,
            }],
            chunks: Some(8),
            chunk_delay_ms: Some(40),
            ..Turn::default()
        },
        Turn {
            text: "That ran inside bubblewrap, as an unprivileged user, in this session's \
                   workspace. Configure an LLM provider for pi (see the README) to talk to a real \
                   model; until then I echo what you send."
                .to_owned(),
            chunks: Some(8),
            chunk_delay_ms: Some(40),
            ..Turn::default()
        },
    ]
}

/// The running demo model and pi's configuration that points at it.
pub struct Demo {
    pub model: ModelHandle,
    /// An agent-dir template (`models.json`, `settings.json`) for every user's pi.
    pub pi_template: PathBuf,
}

impl Demo {
    /// The model every demo session uses.
    pub fn model_ref() -> ModelRef {
        ModelRef {
            provider: DEMO_PROVIDER.to_owned(),
            model_id: DEMO_MODEL.to_owned(),
        }
    }

    /// Starts the scripted model on loopback and writes pi's configuration for it under `dir`.
    ///
    /// # Errors
    /// When the model cannot listen or the files cannot be written.
    pub async fn start(dir: &Path) -> anyhow::Result<Demo> {
        let config = ModelConfig {
            echo_when_done: true,
            ..ModelConfig::default()
        };
        let model = octo_tools::model::serve(
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            demo_turns(),
            config,
        )
        .await?;
        let pi_template = dir.join("demo-pi");
        std::fs::create_dir_all(&pi_template)?;
        let models = json!({"providers": {DEMO_PROVIDER: {
            "baseUrl": format!("http://{}/v1", model.addr()), "api": "openai-completions",
            "apiKey": "demo",
            "compat": {"supportsDeveloperRole": false, "supportsReasoningEffort": false},
            "models": [{"id": DEMO_MODEL, "name": "Octo demo (scripted)", "reasoning": false,
                "input": ["text"], "contextWindow": 32000, "maxTokens": 4096,
                "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0}}]}}});
        std::fs::write(pi_template.join("models.json"), models.to_string())?;
        let settings = json!({"defaultProvider": DEMO_PROVIDER, "defaultModel": DEMO_MODEL,
            "quietStartup": true, "enableInstallTelemetry": false});
        std::fs::write(pi_template.join("settings.json"), settings.to_string())?;
        Ok(Demo { model, pi_template })
    }
}
