//! `octo serve`: opens the log and the projections, settles what a previous process left
//! unsettled, starts the local runner and the dispatcher, and only then listens.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use octo_core::frame::{HarnessInfo, ModelInfo};
use octo_core::{ModelRef, ProducerId, ThinkingLevel};
use octo_log::EventLog;
use octo_log::fjall::{FjallConfig, FjallLog};
use octo_projections::analytics::Analytics;
use octo_projections::history::History;
use octo_projections::search::spawn_search;
use octo_projections::sessions::Sessions;
use octo_projections::ui_state::UiState;
use octo_projections::{ProjectionStore, spawn_projector};
use octo_runner::local::LocalRunner;
use octo_runner::pi::factory::{PI_HARNESS, PiFactory};
use octo_runner::pi::session::PI_VERSION;
use octo_runner::sandbox::{SandboxFile, SandboxPolicy};
use tokio::sync::{mpsc, oneshot};

use crate::app::{App, READ_YOUR_WRITES};
use crate::config::ServeConfig;
use crate::demo::Demo;
use crate::users::{User, UserStore};

/// The state every handler gets.
pub type SharedApp = Arc<App>;

/// A running server.
pub struct Server {
    addr: SocketAddr,
    user: User,
    token: String,
    app: SharedApp,
    runner: Arc<LocalRunner<PiFactory>>,
    shutdown: Option<oneshot::Sender<()>>,
    serve: Option<tokio::task::JoinHandle<()>>,
    dispatcher: Option<crate::dispatcher::Dispatcher>,
    /// The rerun driver (aborted on shutdown: it keeps no state, the log has it all).
    reruns: tokio::task::JoinHandle<()>,
    demo: Option<Demo>,
    hstry: Option<octo_hstry::HstryServer>,
}

impl Server {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where hstry's gRPC API listens, when it is on.
    pub fn hstry_addr(&self) -> Option<SocketAddr> {
        self.hstry.as_ref().map(|hstry| hstry.addr)
    }

    /// The first user.
    pub fn user(&self) -> &User {
        &self.user
    }

    /// The first user's token (also in `<data_dir>/token`).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The shared state (tests read the log through it).
    pub fn app(&self) -> &SharedApp {
        &self.app
    }

    /// The demo model, in demo mode.
    pub fn demo(&self) -> Option<&Demo> {
        self.demo.as_ref()
    }

    /// Stops listening, stops every harness (`harness.exited{runner_shutdown}`, appended), and
    /// waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(hstry) = self.hstry.take() {
            hstry.shutdown().await;
        }
        // Open WebSockets would hold a graceful shutdown forever: give them a moment, then go.
        if let Some(mut serve) = self.serve.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut serve)
                .await
                .is_err()
        {
            serve.abort();
        }
        self.reruns.abort();
        if let Some(dispatcher) = &self.dispatcher {
            dispatcher.stop_delivering();
        }
        self.runner.shutdown().await;
        if let Some(dispatcher) = self.dispatcher.take() {
            dispatcher.drain().await;
        }
        let head = self.app.log.head();
        let _ = self.app.ui.wait_for(head, READ_YOUR_WRITES).await;
    }

    /// Waits until the server stops (Ctrl-C or SIGTERM in the binary).
    pub async fn wait(&mut self) {
        if let Some(serve) = self.serve.as_mut() {
            let _ = serve.await;
        }
    }
}

/// How long open connections may hold a shutdown.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(serve) = &self.serve {
            serve.abort();
        }
        self.reruns.abort();
    }
}

/// The user's name for the first account: `$USER` when it is a valid name, else `admin`.
fn first_user_name() -> String {
    std::env::var("USER")
        .ok()
        .filter(|name| {
            !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        })
        .unwrap_or_else(|| "admin".to_owned())
}

/// pi's default model from its `settings.json`, if it names one.
fn settings_model(template: &Path) -> Option<ModelRef> {
    let text = std::fs::read_to_string(template.join("settings.json")).ok()?;
    let settings: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(ModelRef {
        provider: settings["defaultProvider"].as_str()?.to_owned(),
        model_id: settings["defaultModel"].as_str()?.to_owned(),
    })
}

/// The models pi's `models.json` offers (providers configured only by key are not listed).
fn template_models(template: Option<&Path>) -> Vec<ModelInfo> {
    let Some(text) = template.and_then(|dir| std::fs::read_to_string(dir.join("models.json")).ok())
    else {
        return Vec::new();
    };
    let Ok(config) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    let mut models = Vec::new();
    for (provider, spec) in config["providers"].as_object().into_iter().flatten() {
        for model in spec["models"].as_array().into_iter().flatten() {
            let Some(id) = model["id"].as_str() else {
                continue;
            };
            models.push(ModelInfo {
                provider: provider.clone(),
                model_id: id.to_owned(),
                name: model["name"].as_str().unwrap_or(id).to_owned(),
                context_window: model["contextWindow"].as_u64().unwrap_or(0) as u32,
                max_output_tokens: model["maxTokens"].as_u64().unwrap_or(0) as u32,
                reasoning: model["reasoning"].as_bool().unwrap_or(false),
                images: model["input"]
                    .as_array()
                    .is_some_and(|input| input.iter().any(|kind| kind == "image")),
            });
        }
    }
    models
}

fn pi_info(pi_bin: &Path, template: Option<&Path>) -> HarnessInfo {
    HarnessInfo {
        name: PI_HARNESS.to_owned(),
        version: PI_VERSION.to_owned(),
        available: pi_bin.is_file(),
        capabilities: [
            "images",
            "steer",
            "follow_up",
            "compact",
            "thinking",
            "input_requests",
        ]
        .iter()
        .map(|c| (*c).to_owned())
        .collect(),
        models: template_models(template),
        thinking_levels: vec![
            ThinkingLevel::Off,
            ThinkingLevel::Minimal,
            ThinkingLevel::Low,
            ThinkingLevel::Medium,
            ThinkingLevel::High,
            ThinkingLevel::Xhigh,
        ],
    }
}

/// The user's sandbox policy, with the data dir's secrets always hidden.
fn sandbox_policy(config: &ServeConfig) -> anyhow::Result<SandboxPolicy> {
    let file = match &config.sandbox_file {
        Some(path) if path.is_file() => {
            let text = std::fs::read_to_string(path)?;
            SandboxFile::parse(&path.display().to_string(), &text)?
        }
        _ => SandboxFile::default(),
    };
    let mut policy = SandboxPolicy::from_user_file(&file, &config.home)?;
    for secret in [
        "log",
        "projections",
        "users.json",
        "token",
        "cookie.key",
        "url",
    ] {
        policy.deny_read.insert(config.data_dir.join(secret));
    }
    Ok(policy)
}

/// Starts Octo.
///
/// # Errors
/// When the data dir, the log, the projections or the listener cannot be opened.
pub async fn start(config: ServeConfig) -> anyhow::Result<Server> {
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir)?;
    let data_dir = data_dir.canonicalize()?;
    let config = ServeConfig {
        data_dir: data_dir.clone(),
        ..config
    };
    let users = UserStore::open(&data_dir)?;
    let (user, token) = users.ensure_first_user(&first_user_name())?;
    let cookie_key = crate::auth::cookie_key(&data_dir)?;

    let demo = if config.demo {
        Some(Demo::start(&data_dir).await?)
    } else {
        None
    };
    let template: Option<PathBuf> = match &demo {
        Some(demo) => Some(demo.pi_template.clone()),
        None => config.pi_config.clone().filter(|dir| dir.is_dir()),
    };
    let default_model = match (&demo, &config.model) {
        (Some(_), _) => Demo::model_ref(),
        (None, Some(model)) => model.clone(),
        (None, None) => template
            .as_deref()
            .and_then(settings_model)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no model configured: pass --model PROVIDER/MODEL, set pi's defaultProvider and defaultModel, or use --demo"
                )
            })?,
    };
    let workspaces_root = match (&config.workspaces, &demo) {
        (Some(dir), _) => dir.clone(),
        (None, Some(_)) => data_dir.join("demo-workspace"),
        (None, None) => config.home.clone(),
    };
    std::fs::create_dir_all(&workspaces_root)?;
    let workspaces_root = workspaces_root.canonicalize()?;

    let log: Arc<dyn EventLog> = FjallLog::open(FjallConfig::new(data_dir.join("log")))?;
    let store = ProjectionStore::open(data_dir.join("projections"))?;
    let sessions = Arc::new(spawn_projector(Arc::clone(&log), store.clone(), Sessions).await?);
    let ui = spawn_projector(Arc::clone(&log), store.clone(), UiState).await?;
    let history = Arc::new(spawn_projector(Arc::clone(&log), store.clone(), History).await?);
    let analytics = Arc::new(spawn_projector(Arc::clone(&log), store.clone(), Analytics).await?);
    let searcher = spawn_search(Arc::clone(&log), data_dir.join("search")).await?;
    let hstry = match config.hstry_listen {
        None => None,
        Some(listen) => {
            let facade = Arc::new(octo_hstry::Hstry::new(
                Arc::clone(&log),
                store.clone(),
                Arc::clone(&history),
                Arc::clone(&sessions),
                searcher.clone(),
                user.id.clone(),
                &config.node_id,
            )?);
            let options = octo_hstry::ServeOptions {
                listen,
                unix: config.hstry_unix.clone(),
            };
            let server = octo_hstry::HstryServer::start(facade, options).await?;
            crate::users::write_private(
                &data_dir.join("hstry-addr"),
                server.addr.to_string().as_bytes(),
            )?;
            Some(server)
        }
    };
    let producer = ProducerId::new(format!("gw:{}", config.node_id))?;
    let app = Arc::new(App::new(
        Arc::clone(&log),
        sessions,
        ui,
        history,
        analytics,
        searcher,
        store,
        users,
        producer,
        demo.is_some(),
        workspaces_root,
        vec![pi_info(&config.pi_bin, template.as_deref())],
        config.max_frame_bytes,
        config.queue_bound,
        cookie_key,
    ));

    crate::dispatcher::settle_at_startup(&app).await?;
    let factory = PiFactory {
        pi_bin: config.pi_bin.clone(),
        state_root: data_dir.join("harness"),
        agent_template: template,
        home: config.home.clone(),
        sandbox: sandbox_policy(&config)?,
        env: config.harness_env.clone(),
        default_model,
        extensions: config.pi_extensions.clone(),
        no_progress: config.no_progress,
    };
    let (events_in, events) = mpsc::channel(crate::dispatcher::RUNNER_EVENTS_QUEUE);
    let runner = Arc::new(LocalRunner::new(factory, events_in));
    let dispatcher =
        crate::dispatcher::spawn(Arc::clone(&app), Arc::clone(&runner), events, log.head())?;

    let reruns = crate::rerun::spawn(Arc::clone(&app))?;

    let router = Router::new()
        .route("/api/ws", get(crate::ws::upgrade))
        .route("/api/login", post(crate::auth::login))
        .route("/api/logout", post(crate::auth::logout))
        .route(
            "/api/health",
            get(|| async { axum::Json(serde_json::json!({"ok": true})) }),
        )
        // An unknown API path is a 404 the client can read, never the web UI's index page.
        .route(
            "/api/{*rest}",
            axum::routing::any(|| async {
                (
                    axum::http::StatusCode::NOT_FOUND,
                    axum::Json(
                        serde_json::json!({"code": "not_found", "message": "no such API endpoint"}),
                    ),
                )
            }),
        )
        .with_state(Arc::clone(&app))
        .merge(crate::graphql::router(Arc::clone(&app)));
    let router = match &config.frontend {
        Some(dir) => router.fallback_service(frontend(dir)),
        None => router,
    };
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    // Frames are small and latency matters: no Nagle delay behind an unacknowledged segment.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    crate::users::write_private(&data_dir.join("url"), format!("http://{addr}").as_bytes())?;
    let (shutdown, stop) = oneshot::channel::<()>();
    let serve = tokio::spawn(async move {
        let stopped = async {
            let _ = stop.await;
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::error!(error = %e, "the server stopped");
        }
    });
    Ok(Server {
        addr,
        user,
        token,
        app,
        runner,
        shutdown: Some(shutdown),
        serve: Some(serve),
        dispatcher: Some(dispatcher),
        reruns,
        demo,
        hstry,
    })
}

/// The built web UI: its files, and `index.html` for every other path, so the UI's own routes
/// (`/s/<id>`, `/analytics`) load the app.
fn frontend(
    dir: &std::path::Path,
) -> tower_http::services::ServeDir<tower_http::services::ServeFile> {
    tower_http::services::ServeDir::new(dir)
        .fallback(tower_http::services::ServeFile::new(dir.join("index.html")))
}
