//! Every type round-trips through both codecs (PROTOCOL.md 1.2): JSON and named msgpack decode to
//! exactly the value that was encoded.

use std::fmt::Debug;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde::Serialize;
use serde::de::DeserializeOwned;

use octo_core::Encoding;
use octo_core::codec;
use octo_core::entry::Body;
use octo_core::frame::decode_client_frame;

use crate::arb::{self, check};

const CASES: u32 = 256;

/// Encodes `value` in both encodings and checks that each decodes back to it.
pub fn round_trip<T>(value: &T) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let json = codec::to_json(value).map_err(|error| TestCaseError::fail(error.to_string()))?;
    let from_json: T = codec::from_json(&json).map_err(|error| {
        TestCaseError::fail(format!("{error}: {}", String::from_utf8_lossy(&json)))
    })?;
    prop_assert_eq!(&from_json, value, "json {}", String::from_utf8_lossy(&json));
    let msgpack =
        codec::to_msgpack(value).map_err(|error| TestCaseError::fail(error.to_string()))?;
    let from_msgpack: T = codec::from_msgpack(&msgpack).map_err(|error| {
        TestCaseError::fail(format!(
            "{error}: msgpack of {}",
            String::from_utf8_lossy(&json)
        ))
    })?;
    prop_assert_eq!(&from_msgpack, value, "msgpack");
    Ok(())
}

#[test]
fn parts_round_trip() {
    check(CASES, arb::part, |part| round_trip(&part));
}

#[test]
fn messages_round_trip() {
    check(CASES, arb::message, |message| round_trip(&message));
}

#[test]
fn commands_round_trip() {
    check(CASES, arb::command, |command| round_trip(&command));
}

#[test]
fn events_round_trip() {
    check(CASES * 2, arb::event, |event| round_trip(&event));
}

#[test]
fn log_entries_round_trip() {
    check(CASES, arb::log_entry, |entry| {
        round_trip(&entry)?;
        let shape = entry.check();
        if matches!(entry.body, Body::Unknown(_)) {
            prop_assert!(shape.is_err(), "an unknown body passed the shape check");
        } else {
            prop_assert!(shape.is_ok(), "{shape:?}");
        }
        Ok(())
    });
}

#[test]
fn client_frames_round_trip() {
    check(CASES, arb::client_frame, |frame| {
        round_trip(&frame)?;
        for encoding in [Encoding::Json, Encoding::Msgpack] {
            let bytes = codec::encode(encoding, &frame)
                .map_err(|error| TestCaseError::fail(error.to_string()))?;
            let decoded = decode_client_frame(encoding, &bytes);
            prop_assert_eq!(decoded.as_ref(), Ok(&frame), "{:?}", encoding);
        }
        Ok(())
    });
}

#[test]
fn server_frames_round_trip() {
    check(CASES, arb::server_frame, |frame| round_trip(&frame));
}

#[test]
fn runner_messages_round_trip() {
    check(CASES, arb::runner_to_gateway, |message| {
        round_trip(&message)
    });
    check(CASES, arb::gateway_to_runner, |message| {
        round_trip(&message)
    });
}

#[test]
fn shared_records_round_trip() {
    check(CASES, arb::session_summary, |summary| round_trip(&summary));
    check(CASES, arb::harness_info, |harness| round_trip(&harness));
    check(CASES, arb::reply_result, |result| round_trip(&result));
    check(CASES, arb::json, |value| round_trip(&value));
}
