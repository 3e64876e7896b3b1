//! Octo's projections: everything users read is a fold over the log (ARCHITECTURE.md
//! "Projections").
//!
//! A [`Projection`] is `apply(&LogEntry, &mut Txn)`: deterministic, no clock, no I/O beyond its own
//! state. The [`store`] keeps each projection's state and the offset it has applied in one atomic
//! batch, so after a crash it resumes exactly where it stopped; a changed `VERSION` starts a fresh
//! keyspace from offset 0. The [`projector`] tails the log and applies entries; readers can wait
//! until a given offset is applied ("read your writes").
//!
//! Architecture invariant: no sockets and no processes here; the log is the only input.

pub mod analytics;
pub mod history;
pub mod projector;
pub mod search;
pub mod sessions;
pub mod store;
pub mod ui_state;

pub use projector::{ProjectionHandle, WaitError, spawn_projector};
pub use store::{ProjectionStore, StoreError, StoreSnapshot, Txn};

use octo_core::{Kind, LogEntry};

/// A deterministic fold over the log.
pub trait Projection: Send + Sync + 'static {
    /// The projection's name, part of its keyspace's name.
    const NAME: &'static str;
    /// Bumped whenever `apply` changes what it stores; a new version rebuilds from offset 0.
    const VERSION: u32;
    /// Body types (`name`, or `prefix*`) for which `apply` never changes the state. Catching up
    /// skips them without decoding them; live entries come decoded and are all applied, so a
    /// type listed here wrongly would make a rebuild differ from incremental apply
    /// (`tests/folds.rs` rebuilds through this filter and compares with applying everything).
    /// A type not listed is always applied: new types are safe by default.
    const SKIPS: &'static [&'static str] = &[];
    /// The only kind of entry that changes the state, if one: the other is skipped as `SKIPS`.
    const KIND: Option<Kind> = None;

    /// Folds one entry into the state. Must not fail and must not look at anything but the entry
    /// and `txn` (no clock, no randomness), so a rebuild from offset 0 equals incremental apply.
    fn apply(&self, entry: &LogEntry, txn: &mut Txn<'_>);
}
