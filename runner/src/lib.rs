//! Octo's runner: it owns the harness processes of one user, each inside a bubblewrap sandbox,
//! and translates their native events into the canonical protocol.
//!
//! - [`sandbox`]: policies, their merge, and the bubblewrap command line;
//! - [`harness`]: the `Harness` trait; [`pi`] implements it (process, translator, supervision);
//! - [`local`]: the runner inside `octo` (local mode), one task per session.

pub mod coalesce;
pub mod harness;
pub mod jsonl;
pub mod local;
pub mod pi;
pub mod sandbox;
