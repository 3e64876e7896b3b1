//! `doctor`: whether Octo can run here, each check with what to do when it fails.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use super::{Ctx, Failure, Format};

/// One check's outcome.
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    match Command::new(program).args(args).output() {
        Ok(output) if output.status.success() => {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        }
        Ok(output) => Err(format!(
            "{program} exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run {program}: {e}")),
    }
}

fn check(name: &'static str, outcome: Result<String, String>) -> Check {
    match outcome {
        Ok(detail) => Check {
            name,
            ok: true,
            detail,
        },
        Err(detail) => Check {
            name,
            ok: false,
            detail,
        },
    }
}

fn writable(dir: &Path) -> Result<String, String> {
    if !dir.is_dir() {
        return Err(format!(
            "{} does not exist (the first `octo serve` creates it)",
            dir.display()
        ));
    }
    let probe = dir.join(".octoctl-doctor");
    std::fs::write(&probe, b"ok").map_err(|e| format!("{} is not writable: {e}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(dir.display().to_string())
}

async fn reachable(address: &str) -> Result<String, String> {
    let connect = tokio::net::TcpStream::connect(address);
    match tokio::time::timeout(Duration::from_secs(3), connect).await {
        Ok(Ok(_)) => Ok(address.to_owned()),
        Ok(Err(e)) => Err(format!("{address}: {e}")),
        Err(_) => Err(format!("{address}: no answer in 3 s")),
    }
}

pub async fn doctor(ctx: &Ctx) -> Result<(), Failure> {
    let mut checks = Vec::new();
    let pi = crate::find_pi();
    checks.push(check(
        "pi",
        run(&pi.display().to_string(), &["--version"]).and_then(|version| {
            if version.contains(octo_runner::pi::session::PI_VERSION) {
                Ok(format!("{} {version}", pi.display()))
            } else {
                Err(format!(
                    "{} is {version}, Octo drives {} (npm ci --prefix harnesses/pi)",
                    pi.display(),
                    octo_runner::pi::session::PI_VERSION
                ))
            }
        }),
    ));
    checks.push(check("node", run("node", &["--version"])));
    checks.push(check("bubblewrap", run("bwrap", &["--version"])));
    checks.push(check(
        "sandbox",
        run(
            "bwrap",
            &[
                "--ro-bind",
                "/",
                "/",
                "--dev",
                "/dev",
                "--proc",
                "/proc",
                "--unshare-all",
                "--share-net",
                "--cap-drop",
                "ALL",
                "--uid",
                "1000",
                "--gid",
                "1000",
                "--",
                "true",
            ],
        )
        .map(|_| "a sandbox starts (no capabilities, uid 1000)".to_owned())
        .map_err(|e| {
            format!("{e} (user namespaces may be off: sysctl kernel.unprivileged_userns_clone=1)")
        }),
    ));
    let data_dir = ctx.data_dir();
    match &data_dir {
        Ok(dir) => checks.push(check("data dir", writable(dir))),
        Err(_) => checks.push(check(
            "data dir",
            Err("no data dir: pass --data-dir".into()),
        )),
    }
    match ctx.server() {
        Ok((url, token)) => {
            let address = url
                .trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            checks.push(check("port", reachable(&address).await));
            let hello =
                crate::client::Client::connect(&url, &token, octo_core::Encoding::Json).await;
            checks.push(check(
                "server",
                hello
                    .map(|client| {
                        let hello = &client.hello;
                        let harnesses: Vec<String> = hello
                            .harnesses
                            .iter()
                            .map(|h| {
                                format!(
                                    "{} {}{}",
                                    h.name,
                                    h.version,
                                    if h.available { "" } else { " (unavailable)" }
                                )
                            })
                            .collect();
                        format!(
                            "octo {} at {url}, signed in as {}, harnesses: {}{}",
                            hello.server_version,
                            hello.user.name,
                            harnesses.join(", "),
                            if hello.demo { ", demo model" } else { "" }
                        )
                    })
                    .map_err(|e| format!("{url}: {e}")),
            ));
            if let Ok(dir) = &data_dir
                && let Ok(hstry) = std::fs::read_to_string(dir.join("hstry-addr"))
            {
                checks.push(check("hstry port", reachable(hstry.trim()).await));
            }
        }
        Err(Failure::Usage(e) | Failure::Refused(e)) => checks.push(check("server", Err(e))),
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    for c in &checks {
        match ctx.format {
            Format::Json => println!(
                "{}",
                json!({"check": c.name, "ok": c.ok, "detail": c.detail})
            ),
            Format::Pretty => println!(
                "{} {:<11} {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.name,
                c.detail
            ),
        }
    }
    if failed > 0 {
        return Err(Failure::Refused(format!("{failed} checks failed")));
    }
    Ok(())
}
