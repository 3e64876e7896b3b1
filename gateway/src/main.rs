//! `octo`: Octo's server binary: `octo serve` runs the server, `octo users` manages accounts on a
//! data dir.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use octo_gateway::users::UserStore;

/// Octo: run AI coding agents from a web UI.
#[derive(Debug, Parser)]
#[command(name = "octo", version)]
struct Cli {
    /// The data dir (default: $XDG_DATA_HOME/octo).
    #[arg(long, env = "OCTO_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// Run the server: the log, the projections, the local runner and the WebSocket.
    Serve(Box<Serve>),
    /// Manage users and their credentials.
    #[command(subcommand)]
    Users(Users),
}

#[derive(Debug, clap::Args)]
struct Serve {
    /// Where to listen.
    #[arg(long, env = "OCTO_LISTEN", default_value = "127.0.0.1:8477")]
    listen: SocketAddr,
    /// Every session's workspace lies under this folder (default: your home; in demo mode a
    /// demo-workspace folder in the data dir).
    #[arg(long, env = "OCTO_WORKSPACES")]
    workspaces: Option<PathBuf>,
    /// Run pi against Octo's built-in scripted model (the default when no LLM provider is
    /// configured).
    #[arg(long)]
    demo: bool,
    /// The pi executable (default: harnesses/pi/node_modules/.bin/pi beside the checkout, else
    /// `pi` on PATH).
    #[arg(long, env = "OCTO_PI")]
    pi: Option<PathBuf>,
    /// The built web UI to serve at / (default: frontend/dist beside the checkout, when built).
    #[arg(long, env = "OCTO_FRONTEND")]
    frontend: Option<PathBuf>,
    /// pi's own configuration to give every user (models.json, auth.json, settings.json).
    #[arg(long, env = "OCTO_PI_CONFIG")]
    pi_config: Option<PathBuf>,
    /// The model of sessions that name none, as PROVIDER/MODEL.
    #[arg(long, env = "OCTO_MODEL")]
    model: Option<String>,
    /// A run with no harness output for this long ends with run.timed_out.
    #[arg(long, env = "OCTO_NO_PROGRESS_MS", default_value_t = 900_000)]
    no_progress_ms: u64,
    /// The user's sandbox file (default: ~/.config/octo/sandbox.toml).
    #[arg(long, env = "OCTO_SANDBOX")]
    sandbox: Option<PathBuf>,
    /// A pi extension to load in every session (repeatable); its dialogs reach the UI as input
    /// requests.
    #[arg(
        long = "pi-extension",
        env = "OCTO_PI_EXTENSIONS",
        value_delimiter = ','
    )]
    pi_extensions: Vec<PathBuf>,
    /// This node's id (the gateway's producer is gw:<node>).
    #[arg(long, env = "OCTO_NODE_ID", default_value = "n1")]
    node_id: String,
    /// Where hstry's gRPC API listens, loopback only (port 0: any free port; it is written to
    /// <data dir>/hstry-addr).
    #[arg(long, env = "OCTO_HSTRY_LISTEN", default_value = "127.0.0.1:0")]
    hstry_listen: std::net::SocketAddr,
    /// Also serve hstry's API on this Unix socket (mode 0600), e.g.
    /// ~/.local/state/hstry/service.sock for unmodified hstry clients.
    #[arg(long, env = "OCTO_HSTRY_UNIX")]
    hstry_unix: Option<PathBuf>,
    /// Do not serve hstry's gRPC API.
    #[arg(long)]
    no_hstry: bool,
}

#[derive(Debug, Subcommand)]
enum Users {
    /// Add a user and print their first token.
    Add {
        name: String,
        /// Also set a password (read from OCTO_PASSWORD, so it stays out of shell history).
        #[arg(long)]
        with_password: bool,
    },
    /// List users.
    List,
    /// Remove a user.
    Remove { name: String },
    /// Set a user's password (read from OCTO_PASSWORD).
    Passwd { name: String },
    /// Issue a new token for a user and print it.
    Token {
        name: String,
        /// Make every older token of the user stop working.
        #[arg(long)]
        revoke_others: bool,
    },
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|dir| !dir.is_empty()) {
        return Ok(PathBuf::from(dir).join("octo"));
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| anyhow::anyhow!("set HOME, XDG_DATA_HOME or --data-dir"))?;
    Ok(PathBuf::from(home).join(".local/share/octo"))
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

fn parse_model(text: &str) -> anyhow::Result<octo_core::ModelRef> {
    let (provider, model_id) = text
        .split_once('/')
        .filter(|(p, m)| !p.is_empty() && !m.is_empty())
        .ok_or_else(|| anyhow::anyhow!("--model takes PROVIDER/MODEL, got {text:?}"))?;
    Ok(octo_core::ModelRef {
        provider: provider.to_owned(),
        model_id: model_id.to_owned(),
    })
}

fn serve(data_dir: PathBuf, args: Serve) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let home = home();
    let pi_config = args.pi_config.or_else(|| {
        let default = home.join(".pi/agent");
        default.is_dir().then_some(default)
    });
    let demo = args.demo
        || (args.model.is_none()
            && !octo_gateway::config::provider_configured(pi_config.as_deref()));
    let mut config =
        octo_gateway::ServeConfig::new(&data_dir, args.pi.unwrap_or_else(octo_tools::find_pi));
    config.listen = args.listen;
    config.workspaces = args.workspaces;
    config.demo = demo;
    config.pi_config = pi_config;
    config.model = args.model.as_deref().map(parse_model).transpose()?;
    config.no_progress = Duration::from_millis(args.no_progress_ms);
    config.sandbox_file = Some(
        args.sandbox
            .unwrap_or_else(|| home.join(".config/octo/sandbox.toml")),
    );
    config.home = home;
    config.node_id = args.node_id;
    config.pi_extensions = args.pi_extensions;
    if !args.hstry_listen.ip().is_loopback() {
        anyhow::bail!(
            "--hstry-listen {}: hstry's API has no authentication, so it listens on loopback only",
            args.hstry_listen
        );
    }
    config.hstry_listen = (!args.no_hstry).then_some(args.hstry_listen);
    config.hstry_unix = args.hstry_unix;
    config.frontend = args.frontend.or_else(octo_tools::find_frontend);
    if config.frontend.is_none() {
        tracing::warn!(
            "no built web UI (frontend/dist): serving the API only; build it with `npm run build --prefix frontend`"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let server = octo_gateway::start(config).await?;
        if server.demo().is_some() {
            eprintln!(
                "octo: DEMO MODE: no LLM provider is configured; pi talks to a scripted model"
            );
        }
        eprintln!("octo: listening on {}", server.url());
        println!("Octo is running at {}", server.url());
        println!("user:  {}", server.user().name);
        println!("token: {}", server.token());
        println!(
            "(the token is also in {})",
            data_dir.join("token").display()
        );
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        eprintln!("octo: shutting down");
        server.shutdown().await;
        anyhow::Ok(())
    })
}

fn password_from_env() -> anyhow::Result<String> {
    std::env::var("OCTO_PASSWORD").map_err(|_| anyhow::anyhow!("set OCTO_PASSWORD to the password"))
}

/// mimalloc, tuned (`octo_core::alloc`).
#[global_allocator]
static ALLOCATOR: octo_core::alloc::Allocator = octo_core::alloc::Allocator;

fn main() -> std::process::ExitCode {
    octo_core::alloc::tune();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("octo: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let data_dir = match cli.data_dir {
        Some(dir) => dir,
        None => default_data_dir()?,
    };
    if let Top::Serve(args) = cli.command {
        return serve(data_dir, *args);
    }
    let store = UserStore::open(&data_dir)?;
    match cli.command {
        Top::Serve(_) => unreachable!("handled above"),
        Top::Users(Users::Add {
            name,
            with_password,
        }) => {
            let password = if with_password {
                Some(password_from_env()?)
            } else {
                None
            };
            let (user, token) = store.add(&name, password.as_deref())?;
            println!("added {} ({})\ntoken: {token}", user.name, user.id);
        }
        Top::Users(Users::List) => {
            for user in store.list()? {
                let password = if user.password_hash.is_some() {
                    "password"
                } else {
                    "token only"
                };
                println!(
                    "{}\t{}\t{password}\t{} token(s)",
                    user.name,
                    user.id,
                    user.token_hashes.len()
                );
            }
        }
        Top::Users(Users::Remove { name }) => {
            store.remove(&name)?;
            println!("removed {name}");
        }
        Top::Users(Users::Passwd { name }) => {
            store.set_password(&name, &password_from_env()?)?;
            println!("password set for {name}");
        }
        Top::Users(Users::Token {
            name,
            revoke_others,
        }) => {
            println!("{}", store.issue_token(&name, revoke_others)?);
        }
    }
    Ok(())
}
