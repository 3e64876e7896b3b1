//! Octo's tools: benchmarks and the test proxy now, `octoctl` and the scripted model later.

pub mod bench;
pub mod client;
pub mod graphql;
pub mod model;
pub mod proxy;
