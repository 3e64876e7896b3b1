//! Octo's tools: `octoctl`, the benchmarks, the scripted model, the test proxy, and the clients
//! of Octo's WebSocket and GraphQL they share.

pub mod bench;
pub mod client;
pub mod ctl;
pub mod graphql;
pub mod model;
pub mod proxy;

/// pi from the project's install: `harnesses/pi/node_modules/.bin/pi` beside the current
/// directory or beside the executable (`target/<profile>/...`), else `pi` on PATH.
pub fn find_pi() -> std::path::PathBuf {
    beside_checkout(
        "harnesses/pi/node_modules/.bin/pi",
        std::path::Path::is_file,
    )
    .unwrap_or_else(|| std::path::PathBuf::from("pi"))
}

/// The built web UI (`frontend/dist`, made by `npm run build`) beside the checkout, if it exists.
pub fn find_frontend() -> Option<std::path::PathBuf> {
    beside_checkout("frontend/dist", |dir| dir.join("index.html").is_file())
}

/// `relative` in the working directory or beside the running binary (up to four levels up, for
/// `target/<profile>/<bin>` and `target/<profile>/deps/<test>`), canonical, when `found` says so.
fn beside_checkout(
    relative: &str,
    found: impl Fn(&std::path::Path) -> bool,
) -> Option<std::path::PathBuf> {
    let mut candidates = vec![std::path::PathBuf::from(relative)];
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(
            exe.ancestors()
                .skip(1)
                .take(4)
                .map(|dir| dir.join(relative)),
        );
    }
    candidates
        .into_iter()
        .find(|path| found(path))
        .and_then(|path| path.canonicalize().ok())
}
