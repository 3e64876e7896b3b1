//! The pi harness (`pi --mode rpc`, HARNESSES.md sections 4 and 5, PROTOCOL.md section 15).
//!
//! [`translate`] holds the translator: a pure state machine from pi's stdout records (and the
//! commands delivered to pi) to canonical events. Process supervision joins it later.

pub mod factory;
pub mod file;
pub mod process;
pub mod session;
pub mod translate;
