//! `octo`: Octo's server binary. Today it manages users on a data dir; `octo serve` joins it with
//! the end-to-end issue.

use std::path::PathBuf;

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
    /// Manage users and their credentials.
    #[command(subcommand)]
    Users(Users),
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

fn password_from_env() -> anyhow::Result<String> {
    std::env::var("OCTO_PASSWORD").map_err(|_| anyhow::anyhow!("set OCTO_PASSWORD to the password"))
}

fn main() -> std::process::ExitCode {
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
    let store = UserStore::open(&data_dir)?;
    match cli.command {
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
