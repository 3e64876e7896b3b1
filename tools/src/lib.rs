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
    let relative = "harnesses/pi/node_modules/.bin/pi";
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
        .find(|path| path.is_file())
        .and_then(|path| path.canonicalize().ok())
        .unwrap_or_else(|| std::path::PathBuf::from("pi"))
}
