//! Octo's tools: benchmarks now, `octoctl` and the scripted model later.

pub mod bench;
