//! What `octo serve` runs with. Binaries fill it from flags and the environment; tests build it
//! directly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use octo_core::ModelRef;
use octo_core::limits::FRAME_BYTES_MAX;
use octo_log::QueueBound;

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where to listen (port 0: any free port).
    pub listen: SocketAddr,
    /// The log, projections, users and harness state.
    pub data_dir: PathBuf,
    /// Every session's workspace lies under it. `None`: the user's home, or in demo mode a
    /// `demo-workspace` folder in the data dir.
    pub workspaces: Option<PathBuf>,
    /// Run harnesses on the built-in scripted model.
    pub demo: bool,
    /// The `pi` executable.
    pub pi_bin: PathBuf,
    /// pi's provider configuration to give each user (`models.json`, `auth.json`,
    /// `settings.json`), e.g. `~/.pi/agent`. Ignored in demo mode.
    pub pi_config: Option<PathBuf>,
    /// The model of sessions that name none. `None`: pi's `settings.json` default, else the demo.
    pub model: Option<ModelRef>,
    /// `run.no_progress_ms`.
    pub no_progress: Duration,
    /// The user's sandbox file (`~/.config/octo/sandbox.toml`); missing: the default profile.
    pub sandbox_file: Option<PathBuf>,
    /// `HOME` for harnesses and for `~` in sandbox files.
    pub home: PathBuf,
    /// `max_frame_bytes`.
    pub max_frame_bytes: usize,
    /// Live queue bound per subscription (tests lower it to 1).
    pub queue_bound: QueueBound,
    /// This node's id: the gateway's producer is `gw:<node_id>`.
    pub node_id: String,
    /// Environment passed to harnesses (PATH and provider keys).
    pub harness_env: Vec<(String, String)>,
    /// pi extensions loaded in every session (their dialogs become `input.requested`).
    pub pi_extensions: Vec<PathBuf>,
    /// hstry's gRPC API, on loopback (port 0: any free port); `None` turns it off.
    pub hstry_listen: Option<SocketAddr>,
    /// hstry's gRPC API on a Unix socket too (mode 0600).
    pub hstry_unix: Option<PathBuf>,
    /// The built web UI (`frontend/dist`), served at `/`; `None` serves the API alone.
    pub frontend: Option<PathBuf>,
}

/// The default run.no_progress_ms (PROTOCOL.md 8).
pub const NO_PROGRESS_DEFAULT: Duration = Duration::from_secs(900);

impl ServeConfig {
    /// A configuration with defaults for everything but the data dir and pi.
    pub fn new(data_dir: impl Into<PathBuf>, pi_bin: impl Into<PathBuf>) -> ServeConfig {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from);
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            workspaces: None,
            demo: false,
            pi_bin: pi_bin.into(),
            pi_config: None,
            model: None,
            no_progress: NO_PROGRESS_DEFAULT,
            sandbox_file: None,
            home,
            max_frame_bytes: FRAME_BYTES_MAX,
            queue_bound: QueueBound::default(),
            node_id: "n1".to_owned(),
            harness_env: harness_env_from_process(),
            pi_extensions: Vec::new(),
            hstry_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            hstry_unix: None,
            frontend: None,
        }
    }
}

/// Environment variables harnesses get from the server's: `PATH`, locale, and provider keys
/// (`*_API_KEY`, `*_BASE_URL`, `*_TOKEN` of known providers). Nothing else leaks in.
pub fn harness_env_from_process() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(name, _)| {
            matches!(name.as_str(), "PATH" | "LANG" | "LC_ALL" | "TZ" | "TERM")
                || name.ends_with("_API_KEY")
                || name.ends_with("_BASE_URL")
                || name == "ANTHROPIC_OAUTH_TOKEN"
        })
        .collect()
}

/// Whether the environment or pi's own configuration names an LLM provider.
pub fn provider_configured(pi_config: Option<&std::path::Path>) -> bool {
    let key_in_env =
        std::env::vars().any(|(name, value)| name.ends_with("_API_KEY") && !value.is_empty());
    let pi_files = pi_config.is_some_and(|dir| {
        ["models.json", "auth.json"]
            .iter()
            .any(|name| dir.join(name).is_file())
    });
    key_in_env || pi_files
}
