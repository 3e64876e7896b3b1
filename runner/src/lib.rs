//! Octo's runner: it owns the harness processes of one user, each inside a bubblewrap sandbox,
//! and translates their native events into the canonical protocol.
//!
//! This crate starts with the [`sandbox`]: policies, their merge, and the bubblewrap command line.
//! The harnesses, the translator and the runner protocol join it with the end-to-end issue.

pub mod coalesce;
pub mod jsonl;
pub mod pi;
pub mod sandbox;
