//! Octo's append-only event log: the [`EventLog`] trait, the fjall backend, subscriptions and the
//! backend-independent conformance suite.
//!
//! Everything users read is a fold over this log, so its guarantees are the product's
//! (PROTOCOL.md 2.2, ARCHITECTURE.md "The log"):
//! - offsets are assigned here, start at 1, strictly increase and are never reused;
//! - durable before visible: `append` returns, and readers and subscribers see an entry, only after
//!   the sync that covers it; a failed sync poisons the writer;
//! - idempotent: a command is keyed by `(user_id, command_id)`, a producer's events by
//!   `(producer_id, seq)`; a repeat has no second effect;
//! - a subscription replays and then tails live with no gap and no duplicate, and a slow one falls
//!   back to reading the log instead of losing entries or blocking appenders.
//!
//! Architecture invariant: nothing here knows projections, sockets or HTTP.

mod api;
pub mod fjall;
mod live;
mod record;
mod subscription;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use api::{
    AppendError, BlobHash, BlobRef, EventLog, LogFilter, NewEntry, PendingAppend, ReadBatch,
    ReadError, ReadQuery, Receipt, SeqSpec, TypePattern, blob_hash, blob_ref,
};
pub use live::{Listener, ListenerEvent, LiveHub, QueueBound};
pub use subscription::Subscription;
