//! Protocol conformance tests for octo-core: round trips through both codecs, snapshots of every
//! frame, command and event, the worked examples of PROTOCOL.md 16 and 17, hostile input, and the
//! field limits. One test binary so the crate links once.

mod arb;
mod bad_input;
mod fixtures;
mod roundtrip;
mod snapshots;
mod validation;
mod worked_example;
