//! Snapshots of the exact JSON of every command, event, part, log entry kind, client frame, server
//! frame and runner message (STYLE.md 9: a changed snapshot is a protocol change and must come
//! with a matching PROTOCOL.md change). Each snapshot is one compact JSON line per value, the form
//! PROTOCOL.md shows. Coverage tests make sure no variant is missing from the fixtures, and every
//! fixture also round-trips through both codecs.

use std::collections::BTreeSet;
use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

use octo_core::Encoding;
use octo_core::codec;
use octo_core::command::Command;
use octo_core::event::Event;
use octo_core::frame::{ClientFrame, ServerFrame, decode_client_frame};
use octo_core::message::Part;
use octo_core::runner::{GatewayToRunner, RunnerToGateway};

use crate::fixtures;

/// One compact JSON line per value.
fn lines<T: Serialize>(values: &[T]) -> String {
    values
        .iter()
        .map(|value| {
            String::from_utf8(codec::to_json(value).expect("encodable")).expect("JSON is UTF-8")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Hex of the msgpack encoding, 32 bytes a line.
fn hex(bytes: &[u8]) -> String {
    bytes
        .chunks(32)
        .map(|chunk| {
            chunk
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_round_trips<T>(values: &[T])
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    for value in values {
        let json = codec::to_json(value).expect("encodable");
        let from_json: T = codec::from_json(&json).expect("decodable JSON");
        assert_eq!(&from_json, value, "{}", String::from_utf8_lossy(&json));
        let msgpack = codec::to_msgpack(value).expect("encodable");
        let from_msgpack: T = codec::from_msgpack(&msgpack).expect("decodable msgpack");
        assert_eq!(&from_msgpack, value);
    }
}

fn names(found: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    found.into_iter().collect()
}

fn expected(all: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    all.into_iter().collect()
}

#[test]
fn fixtures_cover_every_variant() {
    assert_eq!(
        names(
            fixtures::commands()
                .iter()
                .map(|c| c.type_name().to_owned())
        ),
        expected(Command::TYPE_NAMES.iter().map(|name| (*name).to_owned())),
        "commands"
    );
    assert_eq!(
        names(fixtures::events().iter().map(|e| e.type_name().to_owned())),
        expected(Event::TYPE_NAMES.iter().map(|name| (*name).to_owned())),
        "events"
    );
    assert_eq!(
        names(fixtures::parts().iter().map(|p| p.type_name().to_owned())),
        expected(Part::TYPE_NAMES.iter().map(|name| (*name).to_owned())),
        "parts"
    );
    let client_all = ClientFrame::request_types()
        .map(|(channel, name)| format!("{channel}.{name}"))
        .chain(
            Command::TYPE_NAMES
                .iter()
                .map(|name| format!("agent.{name}")),
        );
    assert_eq!(
        names(fixtures::client_frames().iter().map(|frame| format!(
            "{}.{}",
            frame.channel(),
            frame.type_name()
        ))),
        expected(client_all),
        "client frames"
    );
    assert_eq!(
        names(fixtures::server_frames().iter().map(|frame| format!(
            "{}.{}",
            frame.channel(),
            frame.type_name()
        ))),
        expected(ServerFrame::types().map(|(channel, name)| format!("{channel}.{name}"))),
        "server frames"
    );
    assert_eq!(
        names(
            fixtures::runner_to_gateway()
                .iter()
                .map(|m| m.type_name().to_owned())
        ),
        expected(
            RunnerToGateway::TYPE_NAMES
                .iter()
                .map(|name| (*name).to_owned())
        ),
        "runner to gateway"
    );
    assert_eq!(
        names(
            fixtures::gateway_to_runner()
                .iter()
                .map(|m| m.type_name().to_owned())
        ),
        expected(
            GatewayToRunner::TYPE_NAMES
                .iter()
                .map(|name| (*name).to_owned())
        ),
        "gateway to runner"
    );
}

#[test]
fn every_fixture_round_trips() {
    let mut commands = fixtures::commands();
    commands.extend(fixtures::command_shapes());
    assert_round_trips(&commands);
    assert_round_trips(&fixtures::events());
    assert_round_trips(&fixtures::parts());
    assert_round_trips(&fixtures::log_entries());
    assert_round_trips(&fixtures::client_frames());
    assert_round_trips(&fixtures::server_frames());
    assert_round_trips(&fixtures::runner_to_gateway());
    assert_round_trips(&fixtures::gateway_to_runner());
    for frame in fixtures::client_frames() {
        for encoding in [Encoding::Json, Encoding::Msgpack] {
            let bytes = codec::encode(encoding, &frame).expect("encodable");
            assert_eq!(decode_client_frame(encoding, &bytes), Ok(frame.clone()));
        }
    }
}

#[test]
fn snapshot_commands() {
    let mut commands = fixtures::commands();
    commands.extend(fixtures::command_shapes());
    insta::assert_snapshot!("commands", lines(&commands));
}

#[test]
fn snapshot_events() {
    insta::assert_snapshot!("events", lines(&fixtures::events()));
}

#[test]
fn snapshot_parts() {
    insta::assert_snapshot!("parts", lines(&fixtures::parts()));
}

#[test]
fn snapshot_log_entries() {
    insta::assert_snapshot!("log_entries", lines(&fixtures::log_entries()));
}

#[test]
fn snapshot_client_frames() {
    insta::assert_snapshot!("client_frames", lines(&fixtures::client_frames()));
}

#[test]
fn snapshot_server_frames() {
    insta::assert_snapshot!("server_frames", lines(&fixtures::server_frames()));
}

#[test]
fn snapshot_runner_messages() {
    let mut text = lines(&fixtures::runner_to_gateway());
    text.push('\n');
    text.push_str(&lines(&fixtures::gateway_to_runner()));
    insta::assert_snapshot!("runner_messages", text);
}

/// The msgpack shape (named maps, `bin` for bytes) of a command frame with an image and of a
/// stored entry, pinned byte for byte.
#[test]
fn snapshot_msgpack_bytes() {
    let prompt = &fixtures::client_frames()[4];
    assert_eq!(prompt.type_name(), "prompt");
    let entry = &fixtures::log_entries()[0];
    let text = format!(
        "prompt frame:\n{}\nlog entry:\n{}",
        hex(&codec::to_msgpack(prompt).expect("encodable")),
        hex(&codec::to_msgpack(entry).expect("encodable")),
    );
    insta::assert_snapshot!("msgpack_bytes", text);
}
