//! Hostile input never panics (STYLE.md 6: bad input is not a bug): arbitrary bytes, mutated real
//! frames, wrong-typed fields, invalid ids, truncated msgpack, oversized and deeply nested input go
//! into every decoder, and each answers with a typed error or a value. Then a table of specific
//! bad frames pins the exact PROTOCOL.md 13 code, `ref` and reply target of each.

use proptest::prelude::*;
use serde_json::{Value, json};

use octo_core::Encoding;
use octo_core::codec;
use octo_core::command::Command;
use octo_core::entry::LogEntry;
use octo_core::error::ErrorCode;
use octo_core::event::Event;
use octo_core::frame::{
    AgentFrame, AgentServerFrame, Channel, ClientFrame, FrameError, ReplyTo, ServerFrame,
    decode_client_frame, decode_client_frame_with_limit,
};
use octo_core::limits::{DECODE_DEPTH_MAX, FRAME_BYTES_MAX};
use octo_core::runner::{GatewayToRunner, RunnerToGateway, decode_link_body};

use crate::arb::{self, check};
use crate::fixtures::{self, S};

const CASES: u32 = 512;

/// The codes a client frame decode may answer with.
const FRAME_CODES: [ErrorCode; 7] = [
    ErrorCode::MalformedFrame,
    ErrorCode::FrameTooLarge,
    ErrorCode::UnknownChannel,
    ErrorCode::UnknownType,
    ErrorCode::MissingField,
    ErrorCode::InvalidField,
    ErrorCode::InvalidId,
];

/// Decodes `bytes` as a client frame and checks the outcome: a frame re-encodes to itself; an
/// error has a frame code, a `ref` for every code but `malformed_frame`, and a reply frame that
/// encodes.
fn decode_checked(
    encoding: Encoding,
    bytes: &[u8],
) -> Result<Result<ClientFrame, FrameError>, TestCaseError> {
    let decoded = decode_client_frame(encoding, bytes);
    if let Ok(frame) = &decoded {
        // What decodes re-encodes to the same frame (the fuzz target's invariant too).
        let again = codec::encode(encoding, frame).expect("a decoded frame encodes");
        let redecoded = decode_client_frame(encoding, &again);
        prop_assert_eq!(redecoded.as_ref(), Ok(frame));
    }
    if let Err(error) = &decoded {
        prop_assert!(FRAME_CODES.contains(&error.code()), "{error:?}");
        let needs_ref = error.code() != ErrorCode::MalformedFrame;
        prop_assert_eq!(error.reference().is_some(), needs_ref, "{:?}", error);
        let reply = error.reply_frame();
        prop_assert!(codec::to_json(&reply).is_ok());
        prop_assert!(codec::to_msgpack(&reply).is_ok());
    }
    Ok(decoded)
}

/// Feeds `bytes` to every decoder; none may panic.
fn every_decoder(bytes: &[u8]) -> Result<(), TestCaseError> {
    let _ = decode_checked(Encoding::Json, bytes)?;
    let _ = decode_checked(Encoding::Msgpack, bytes)?;
    let _ = codec::from_msgpack::<LogEntry>(bytes);
    let _ = codec::from_json::<LogEntry>(bytes);
    let _ = codec::from_json::<ServerFrame>(bytes);
    let _ = codec::from_msgpack::<ServerFrame>(bytes);
    let _ = codec::from_json::<ClientFrame>(bytes);
    let _ = codec::from_msgpack::<ClientFrame>(bytes);
    let _ = codec::from_json::<Command>(bytes);
    let _ = codec::from_msgpack::<Event>(bytes);
    let _ = decode_link_body::<RunnerToGateway>(bytes);
    let _ = decode_link_body::<GatewayToRunner>(bytes);
    Ok(())
}

#[test]
fn arbitrary_bytes_never_panic() {
    check(
        CASES,
        || proptest::collection::vec(any::<u8>(), 0..256),
        |bytes| every_decoder(&bytes),
    );
}

#[test]
fn arbitrary_json_values_never_panic() {
    check(CASES, arb::json, |value| {
        every_decoder(&codec::to_json(&value).expect("encodable"))?;
        every_decoder(&codec::to_msgpack(&value).expect("encodable"))
    });
}

#[test]
fn json_ish_text_never_panics() {
    check(
        CASES,
        || "[{}\\[\\]\":,0-9a-z\\\\ .eE+-]{0,64}",
        |text: String| every_decoder(text.as_bytes()),
    );
}

/// A real client frame as a JSON map, with one field removed or replaced by any value.
fn mutated_frame() -> impl Strategy<Value = Value> {
    (
        arb::client_frame(),
        any::<prop::sample::Index>(),
        any::<bool>(),
        arb::json(),
    )
        .prop_map(|(frame, index, remove, replacement)| {
            let mut value: Value =
                serde_json::from_slice(&codec::to_json(&frame).expect("encodable")).expect("JSON");
            let map = value.as_object_mut().expect("a frame is a map");
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = index.get(&keys).clone();
            if remove {
                map.remove(&key);
            } else {
                map.insert(key, replacement);
            }
            value
        })
}

#[test]
fn mutated_frames_never_panic() {
    check(CASES, mutated_frame, |value| {
        for encoding in [Encoding::Json, Encoding::Msgpack] {
            let bytes = codec::encode(encoding, &value).expect("encodable");
            let _ = decode_checked(encoding, &bytes)?;
        }
        Ok(())
    });
}

#[test]
fn bad_command_ids_are_invalid_id() {
    let strategy = || {
        (
            arb::command_frame(),
            prop_oneof![
                "\\PC{0,40}",
                "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                "[0-9A-F]{8}-[0-9A-F]{4}-7[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}",
            ],
        )
    };
    check(CASES, strategy, |(frame, bad_id)| {
        prop_assume!(octo_core::CommandId::parse(&bad_id).is_err());
        let mut value: Value = serde_json::from_slice(
            &codec::to_json(&ClientFrame::Agent(AgentFrame::Command(frame))).expect("encodable"),
        )
        .expect("JSON");
        value["command_id"] = Value::String(bad_id);
        let bytes = codec::to_json(&value).expect("encodable");
        let error = decode_client_frame(Encoding::Json, &bytes).expect_err("a bad command_id");
        prop_assert_eq!(error.code(), ErrorCode::InvalidId);
        prop_assert_eq!(error.reference(), Some("command_id"));
        prop_assert_eq!(error.reply_to, ReplyTo::System);
        Ok(())
    });
}

#[test]
fn truncated_frames_are_malformed() {
    let strategy = || (arb::client_frame(), any::<prop::sample::Index>());
    check(CASES, strategy, |(frame, cut)| {
        for encoding in [Encoding::Json, Encoding::Msgpack] {
            let bytes = codec::encode(encoding, &frame).expect("encodable");
            let cut = cut.index(bytes.len());
            let error = decode_client_frame(encoding, &bytes[..cut]).expect_err("truncated");
            prop_assert_eq!(
                error.code(),
                ErrorCode::MalformedFrame,
                "{:?} at {}",
                encoding,
                cut
            );
        }
        Ok(())
    });
}

#[test]
fn truncated_entries_and_server_frames_are_errors() {
    let strategy = || (arb::server_frame(), any::<prop::sample::Index>());
    check(CASES, strategy, |(frame, cut)| {
        let bytes = codec::to_msgpack(&frame).expect("encodable");
        let cut = cut.index(bytes.len());
        prop_assert!(codec::from_msgpack::<ServerFrame>(&bytes[..cut]).is_err());
        let json = codec::to_json(&frame).expect("encodable");
        let cut = cut.min(json.len().saturating_sub(1));
        prop_assert!(codec::from_json::<ServerFrame>(&json[..cut]).is_err());
        Ok(())
    });
    let strategy = || (arb::log_entry(), any::<prop::sample::Index>());
    check(CASES, strategy, |(entry, cut)| {
        let bytes = codec::to_msgpack(&entry).expect("encodable");
        let cut = cut.index(bytes.len());
        prop_assert!(codec::from_msgpack::<LogEntry>(&bytes[..cut]).is_err());
        Ok(())
    });
}

/// A ping frame padded to exactly `len_bytes` of JSON.
fn padded_ping(len_bytes: usize) -> Vec<u8> {
    let head = r#"{"ch":"system","type":"ping","id":"p1","pad":""#;
    let tail = r#""}"#;
    let pad = len_bytes - head.len() - tail.len();
    format!("{head}{}{tail}", "x".repeat(pad)).into_bytes()
}

#[test]
fn frame_size_limit_at_n_and_n_plus_one() {
    let at_limit = padded_ping(FRAME_BYTES_MAX);
    assert_eq!(at_limit.len(), FRAME_BYTES_MAX);
    assert!(decode_client_frame(Encoding::Json, &at_limit).is_ok());
    let over = padded_ping(FRAME_BYTES_MAX + 1);
    let error = decode_client_frame(Encoding::Json, &over).expect_err("over the limit");
    assert_eq!(error.code(), ErrorCode::FrameTooLarge);
    assert_eq!(error.reference(), Some("max_frame_bytes"));
    assert_eq!(error.reply_to, ReplyTo::System);
    // A configured limit applies the same way, for msgpack too.
    let small =
        codec::to_msgpack(&json!({"ch": "system", "type": "ping", "id": "p1"})).expect("encodable");
    assert!(decode_client_frame_with_limit(Encoding::Msgpack, &small, small.len()).is_ok());
    let error = decode_client_frame_with_limit(Encoding::Msgpack, &small, small.len() - 1)
        .expect_err("over a configured limit");
    assert_eq!(error.code(), ErrorCode::FrameTooLarge);
}

/// Runs `work` on a thread with a 2 MiB stack (a default test or connection thread), so stack
/// exhaustion shows as a failure here rather than only in production.
fn on_small_stack(work: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(work)
        .expect("spawn")
        .join()
        .expect("decoding deeply nested input overflowed or panicked");
}

#[test]
fn deep_nesting_is_refused_without_exhausting_the_stack() {
    on_small_stack(|| {
        let depth = 100_000;
        let json = format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes();
        let mut msgpack = vec![0x91; depth];
        msgpack.push(0xc0);
        for encoding in [Encoding::Json, Encoding::Msgpack] {
            let bytes = if encoding == Encoding::Json {
                &json
            } else {
                &msgpack
            };
            let error = decode_client_frame(encoding, bytes).expect_err("too deep");
            assert_eq!(error.code(), ErrorCode::MalformedFrame);
        }
        // Nested inside an otherwise valid frame and entry.
        let nested_frame = format!(
            r#"{{"ch":"agent","type":"prompt","command_id":"{}","session_id":"{S}","text":"hi","x":{}{}}}"#,
            fixtures::cid(1),
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let error =
            decode_client_frame(Encoding::Json, nested_frame.as_bytes()).expect_err("too deep");
        assert_eq!(error.code(), ErrorCode::MalformedFrame);
        let mut entry = codec::to_msgpack(&fixtures::log_entries()[1]).expect("encodable");
        // Replace the last body field's value (`cause`: 103) by deep nesting.
        assert_eq!(entry.pop(), Some(103));
        entry.extend(std::iter::repeat_n(0x91, depth));
        entry.push(0xc0);
        assert!(codec::from_msgpack::<LogEntry>(&entry).is_err());
        let deep_json_entry = format!(
            r#"{{"offset":1,"ts_ms":0,"user_id":"u1","session_id":"{S}","kind":"event","producer":{{"id":"rn-u1","seq":1}},"body":{{"type":"tool.start","tool_call_id":"c","name":"n","input":{}{}}}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert!(codec::from_json::<LogEntry>(deep_json_entry.as_bytes()).is_err());
    });
}

#[test]
fn nesting_up_to_the_limit_decodes_on_a_small_stack() {
    on_small_stack(|| {
        // Harness data nested almost to DECODE_DEPTH_MAX is legitimate: it must decode in both
        // encodings, inside an entry inside a frame, on a connection thread's stack.
        let nested = |depth: usize| {
            let mut input = json!("leaf");
            for _ in 0..depth {
                input = json!([input]);
            }
            json!({
                "offset": 1, "ts_ms": 0, "user_id": "u1", "session_id": S, "kind": "event",
                "producer": {"id": "rn-u1", "seq": 1},
                "body": {"type": "tool.start", "tool_call_id": "c", "name": "n", "input": input},
            })
        };
        // The frame, entry and body maps take three levels, the leaf one.
        let deepest = DECODE_DEPTH_MAX - 4;
        let entry = nested(deepest);
        let json_bytes = serde_json::to_vec(&entry).expect("encodable");
        let from_json: LogEntry = codec::from_json(&json_bytes).expect("decodable JSON");
        let msgpack = codec::to_msgpack(&entry).expect("encodable");
        let decoded: LogEntry = codec::from_msgpack(&msgpack).expect("decodable msgpack");
        assert_eq!(decoded, from_json);
        let frame = ServerFrame::Agent(AgentServerFrame::Entry(octo_core::frame::EntryFrame {
            session_id: decoded.session_id,
            entry: decoded,
        }));
        let bytes = codec::to_msgpack(&frame).expect("encodable");
        assert_eq!(
            codec::from_msgpack::<ServerFrame>(&bytes).expect("decodable"),
            frame
        );
        // One level past the limit is refused, not a crash.
        let too_deep = codec::to_msgpack(&nested(DECODE_DEPTH_MAX)).expect("encodable");
        assert!(codec::from_msgpack::<LogEntry>(&too_deep).is_err());
    });
}

/// Where the error must go.
#[derive(Debug)]
enum Reply {
    System,
    Ack,
    Request(Channel, Option<&'static str>),
    Terminal,
}

struct Case {
    name: &'static str,
    encoding: Encoding,
    input: Vec<u8>,
    code: ErrorCode,
    reference: Option<&'static str>,
    reply: Reply,
}

fn case_json(
    name: &'static str,
    value: Value,
    code: ErrorCode,
    reference: Option<&'static str>,
    reply: Reply,
) -> Case {
    Case {
        name,
        encoding: Encoding::Json,
        input: serde_json::to_vec(&value).expect("encodable"),
        code,
        reference,
        reply,
    }
}

fn case_raw(
    name: &'static str,
    encoding: Encoding,
    input: &[u8],
    code: ErrorCode,
    reference: Option<&'static str>,
) -> Case {
    Case {
        name,
        encoding,
        input: input.to_vec(),
        code,
        reference,
        reply: Reply::System,
    }
}

fn prompt_with(field: &str, value: Value) -> Value {
    let mut frame = json!({
        "ch": "agent", "type": "prompt", "command_id": fixtures::cid(1).to_string(),
        "session_id": S, "text": "hi",
    });
    frame[field] = value;
    frame
}

fn without(mut frame: Value, field: &str) -> Value {
    frame.as_object_mut().expect("a map").remove(field);
    frame
}

fn respond(fields: Value) -> Value {
    let mut frame = json!({
        "ch": "agent", "type": "input.respond", "command_id": fixtures::cid(1).to_string(),
        "session_id": S, "request_id": "q1",
    });
    for (key, value) in fields.as_object().expect("a map") {
        frame[key] = value.clone();
    }
    frame
}

fn bad_frames() -> Vec<Case> {
    use ErrorCode as E;
    let c1 = fixtures::cid(1).to_string();
    let tid = fixtures::tid().to_string();
    let subscribe =
        json!({"ch": "agent", "type": "subscribe", "id": "r1", "session_id": S, "after": null});
    let read = json!({"ch": "files", "type": "read", "id": "f1", "session_id": S, "path": "a.txt"});
    let resize =
        json!({"ch": "terminal", "type": "resize", "terminal_id": tid, "cols": 80, "rows": 24});
    let create = json!({"ch": "agent", "type": "session.create", "command_id": c1, "harness": "pi", "workspace": "demo"});
    let mut int_key_map = vec![0x82, 0xa2, b'c', b'h', 0xa6];
    int_key_map.extend_from_slice(b"system");
    int_key_map.extend_from_slice(&[0x01, 0x02]);
    let ext_value = [0x81, 0xa2, b'c', b'h', 0xd4, 0x01, 0x00];
    let mut trailing =
        codec::to_msgpack(&json!({"ch": "system", "type": "ping", "id": "p"})).expect("encodable");
    trailing.push(0xc0);
    vec![
        // Shape.
        case_raw(
            "not json",
            Encoding::Json,
            b"hello",
            E::MalformedFrame,
            None,
        ),
        case_raw("empty", Encoding::Json, b"", E::MalformedFrame, None),
        case_raw(
            "json array",
            Encoding::Json,
            b"[1,2]",
            E::MalformedFrame,
            None,
        ),
        case_raw(
            "json string",
            Encoding::Json,
            br#""ping""#,
            E::MalformedFrame,
            None,
        ),
        case_raw(
            "trailing json",
            Encoding::Json,
            br#"{"ch":"system"} {}"#,
            E::MalformedFrame,
            None,
        ),
        case_raw(
            "duplicate key",
            Encoding::Json,
            br#"{"ch":"system","ch":"agent","type":"ping","id":"p"}"#,
            E::MalformedFrame,
            None,
        ),
        case_raw(
            "msgpack integer",
            Encoding::Msgpack,
            &[0x05],
            E::MalformedFrame,
            None,
        ),
        case_raw(
            "msgpack int key",
            Encoding::Msgpack,
            &int_key_map,
            E::MalformedFrame,
            None,
        ),
        case_raw(
            "msgpack ext type",
            Encoding::Msgpack,
            &ext_value,
            E::MalformedFrame,
            None,
        ),
        case_raw(
            "msgpack trailing byte",
            Encoding::Msgpack,
            &trailing,
            E::MalformedFrame,
            None,
        ),
        case_raw(
            "json on msgpack",
            Encoding::Msgpack,
            br#"{"ch":"system"}"#,
            E::MalformedFrame,
            None,
        ),
        case_json(
            "no ch",
            json!({"type": "ping", "id": "p"}),
            E::MissingField,
            Some("ch"),
            Reply::System,
        ),
        case_json(
            "null ch",
            json!({"ch": null, "type": "ping"}),
            E::MissingField,
            Some("ch"),
            Reply::System,
        ),
        case_json(
            "numeric ch",
            json!({"ch": 5, "type": "ping"}),
            E::InvalidField,
            Some("ch"),
            Reply::System,
        ),
        case_json(
            "unknown ch",
            json!({"ch": "video", "type": "x"}),
            E::UnknownChannel,
            Some("video"),
            Reply::System,
        ),
        case_json(
            "no type",
            json!({"ch": "agent"}),
            E::MissingField,
            Some("type"),
            Reply::System,
        ),
        case_json(
            "numeric type",
            json!({"ch": "agent", "type": 1}),
            E::InvalidField,
            Some("type"),
            Reply::System,
        ),
        case_json(
            "unknown type with id",
            json!({"ch": "agent", "type": "dance", "id": "r1"}),
            E::UnknownType,
            Some("dance"),
            Reply::Request(Channel::Agent, Some("r1")),
        ),
        case_json(
            "command type on system",
            json!({"ch": "system", "type": "prompt", "text": "hi"}),
            E::UnknownType,
            Some("prompt"),
            Reply::System,
        ),
        case_json(
            "server type from a client",
            json!({"ch": "files", "type": "read_result", "id": "f1"}),
            E::UnknownType,
            Some("read_result"),
            Reply::Request(Channel::Files, Some("f1")),
        ),
        // Command ids.
        case_json(
            "no command_id",
            without(prompt_with("text", json!("hi")), "command_id"),
            E::MissingField,
            Some("command_id"),
            Reply::System,
        ),
        case_json(
            "bad command_id",
            prompt_with("command_id", json!("nope")),
            E::InvalidId,
            Some("command_id"),
            Reply::System,
        ),
        case_json(
            "numeric command_id",
            prompt_with("command_id", json!(5)),
            E::InvalidId,
            Some("command_id"),
            Reply::System,
        ),
        case_json(
            "uppercase command_id",
            prompt_with("command_id", json!(c1.to_uppercase())),
            E::InvalidId,
            Some("command_id"),
            Reply::System,
        ),
        case_json(
            "v4 command_id",
            prompt_with("command_id", json!("9b2d8a3e-4f5c-4a1b-8c7d-6e5f4a3b2c1d")),
            E::InvalidId,
            Some("command_id"),
            Reply::System,
        ),
        case_json(
            "no session_id",
            without(prompt_with("text", json!("hi")), "session_id"),
            E::MissingField,
            Some("session_id"),
            Reply::Ack,
        ),
        case_json(
            "bad session_id",
            prompt_with("session_id", json!("S")),
            E::InvalidId,
            Some("session_id"),
            Reply::Ack,
        ),
        // Command fields.
        case_json(
            "no text",
            without(prompt_with("text", json!("hi")), "text"),
            E::MissingField,
            Some("text"),
            Reply::Ack,
        ),
        case_json(
            "null text",
            prompt_with("text", Value::Null),
            E::MissingField,
            Some("text"),
            Reply::Ack,
        ),
        case_json(
            "numeric text",
            prompt_with("text", json!(5)),
            E::InvalidField,
            Some("text"),
            Reply::Ack,
        ),
        case_json(
            "images not a list",
            prompt_with("images", json!("x")),
            E::InvalidField,
            Some("images"),
            Reply::Ack,
        ),
        case_json(
            "image media type",
            prompt_with("images", json!([{"media_type": "image/bmp", "data": ""}])),
            E::InvalidField,
            Some("images"),
            Reply::Ack,
        ),
        case_json(
            "image data not base64",
            prompt_with("images", json!([{"media_type": "image/png", "data": "!!"}])),
            E::InvalidField,
            Some("images"),
            Reply::Ack,
        ),
        case_json(
            "when_busy",
            prompt_with("when_busy", json!("later")),
            E::InvalidField,
            Some("when_busy"),
            Reply::Ack,
        ),
        case_json(
            "no harness",
            without(create.clone(), "harness"),
            E::MissingField,
            Some("harness"),
            Reply::Ack,
        ),
        case_json(
            "thinking level",
            json!({"ch": "agent", "type": "set_thinking_level", "command_id": c1, "session_id": S, "level": "ultra"}),
            E::InvalidField,
            Some("level"),
            Reply::Ack,
        ),
        case_json(
            "negative at_offset",
            json!({"ch": "agent", "type": "fork", "command_id": c1, "session_id": S, "at_offset": -1}),
            E::InvalidField,
            Some("at_offset"),
            Reply::Ack,
        ),
        case_json(
            "at_offset beyond 2^53",
            json!({"ch": "agent", "type": "fork", "command_id": c1, "session_id": S, "at_offset": 9_007_199_254_740_992u64}),
            E::InvalidField,
            Some("at_offset"),
            Reply::Ack,
        ),
        case_json(
            "respond without answer",
            respond(json!({})),
            E::MissingField,
            Some("value"),
            Reply::Ack,
        ),
        case_json(
            "respond with null answers",
            respond(json!({"value": null, "confirmed": null})),
            E::MissingField,
            Some("value"),
            Reply::Ack,
        ),
        case_json(
            "respond with two answers",
            respond(json!({"value": "a", "confirmed": true})),
            E::InvalidField,
            Some("confirmed"),
            Reply::Ack,
        ),
        case_json(
            "respond cancelled false",
            respond(json!({"cancelled": false})),
            E::InvalidField,
            Some("cancelled"),
            Reply::Ack,
        ),
        case_json(
            "respond confirmed text",
            respond(json!({"confirmed": "yes"})),
            E::InvalidField,
            Some("confirmed"),
            Reply::Ack,
        ),
        case_json(
            "respond without request_id",
            without(respond(json!({"value": "a"})), "request_id"),
            E::MissingField,
            Some("request_id"),
            Reply::Ack,
        ),
        // Request ids and fields.
        case_json(
            "subscribe without id",
            without(subscribe.clone(), "id"),
            E::MissingField,
            Some("id"),
            Reply::System,
        ),
        case_json(
            "id of 65 characters",
            {
                let mut frame = subscribe.clone();
                frame["id"] = json!("a".repeat(65));
                frame
            },
            E::InvalidId,
            Some("id"),
            Reply::System,
        ),
        case_json(
            "id with a space",
            {
                let mut frame = subscribe.clone();
                frame["id"] = json!("r 1");
                frame
            },
            E::InvalidId,
            Some("id"),
            Reply::System,
        ),
        case_json(
            "subscribe bad session",
            {
                let mut frame = subscribe.clone();
                frame["session_id"] = json!(S.to_uppercase());
                frame
            },
            E::InvalidId,
            Some("session_id"),
            Reply::Request(Channel::Agent, Some("r1")),
        ),
        case_json(
            "subscribe after text",
            {
                let mut frame = subscribe.clone();
                frame["after"] = json!("x");
                frame
            },
            E::InvalidField,
            Some("after"),
            Reply::Request(Channel::Agent, Some("r1")),
        ),
        case_json(
            "replay limit float",
            json!({"ch": "agent", "type": "replay", "id": "p1", "session_id": S, "after": 0, "limit": 1.5}),
            E::InvalidField,
            Some("limit"),
            Reply::Request(Channel::Agent, Some("p1")),
        ),
        case_json(
            "read without path",
            without(read.clone(), "path"),
            E::MissingField,
            Some("path"),
            Reply::Request(Channel::Files, Some("f1")),
        ),
        case_json(
            "read without session",
            without(read.clone(), "session_id"),
            E::MissingField,
            Some("session_id"),
            Reply::Request(Channel::Files, Some("f1")),
        ),
        case_json(
            "write mode",
            json!({"ch": "files", "type": "write", "id": "f1", "session_id": S, "path": "a", "data": "", "mode": "truncate"}),
            E::InvalidField,
            Some("mode"),
            Reply::Request(Channel::Files, Some("f1")),
        ),
        case_json(
            "write data not base64",
            json!({"ch": "files", "type": "write", "id": "f1", "session_id": S, "path": "a", "data": "%%", "mode": "create"}),
            E::InvalidField,
            Some("data"),
            Reply::Request(Channel::Files, Some("f1")),
        ),
        case_json(
            "resize without terminal_id",
            without(resize.clone(), "terminal_id"),
            E::MissingField,
            Some("terminal_id"),
            Reply::System,
        ),
        case_json(
            "resize bad terminal_id",
            {
                let mut frame = resize.clone();
                frame["terminal_id"] = json!(7);
                frame
            },
            E::InvalidId,
            Some("terminal_id"),
            Reply::System,
        ),
        case_json(
            "resize cols over u16",
            {
                let mut frame = resize.clone();
                frame["cols"] = json!(70_000);
                frame
            },
            E::InvalidField,
            Some("cols"),
            Reply::Terminal,
        ),
        case_json(
            "ping without id",
            json!({"ch": "system", "type": "ping"}),
            E::MissingField,
            Some("id"),
            Reply::System,
        ),
    ]
}

#[test]
fn bad_frames_get_the_exact_error() {
    let cases = bad_frames();
    assert!(cases.len() > 50);
    for case in cases {
        let error = match decode_client_frame(case.encoding, &case.input) {
            Ok(frame) => panic!("{}: decoded as {frame:?}", case.name),
            Err(error) => error,
        };
        assert_eq!(error.code(), case.code, "{}: {error}", case.name);
        assert_eq!(error.reference(), case.reference, "{}: {error}", case.name);
        let wire = error.to_error();
        assert_eq!(wire.code, case.code, "{}", case.name);
        assert_eq!(wire.reference.as_deref(), case.reference, "{}", case.name);
        match (&case.reply, &error.reply_to) {
            (Reply::System, ReplyTo::System) => {
                assert!(matches!(
                    error.reply_frame(),
                    ServerFrame::System(octo_core::frame::SystemServerFrame::Error(_))
                ));
            }
            (Reply::Ack, ReplyTo::Ack { command_id }) => {
                assert_eq!(*command_id, fixtures::cid(1), "{}", case.name);
                let ServerFrame::Agent(AgentServerFrame::Ack(ack)) = error.reply_frame() else {
                    panic!("{}: not an ack", case.name);
                };
                assert_eq!(ack.status, octo_core::frame::AckStatus::Rejected);
                assert_eq!(ack.error.map(|error| error.code), Some(case.code));
            }
            (
                Reply::Request(channel, id),
                ReplyTo::Request {
                    channel: got_channel,
                    id: got_id,
                    ..
                },
            ) => {
                assert_eq!(channel, got_channel, "{}", case.name);
                assert_eq!(*id, got_id.as_ref().map(|id| id.as_str()), "{}", case.name);
                assert_eq!(error.reply_frame().channel(), *channel, "{}", case.name);
            }
            (
                Reply::Terminal,
                ReplyTo::Request {
                    channel,
                    terminal_id,
                    ..
                },
            ) => {
                assert_eq!(*channel, Channel::Terminal, "{}", case.name);
                assert_eq!(*terminal_id, Some(fixtures::tid()), "{}", case.name);
            }
            (expected, got) => panic!("{}: reply to {got:?}, expected {expected:?}", case.name),
        }
    }
}

#[test]
fn lenient_where_the_protocol_says_so() {
    // Unknown fields are ignored, optional fields accept null, `session.create` needs no
    // session_id, and a client cannot choose the forked session's id.
    let cases = [
        prompt_with("future_field", json!({"any": "thing"})),
        prompt_with("images", Value::Null),
        prompt_with("when_busy", Value::Null),
        json!({"ch": "agent", "type": "session.create", "command_id": fixtures::cid(1).to_string(), "harness": "pi", "workspace": "demo", "title": null, "model": null}),
        json!({"ch": "agent", "type": "subscribe", "id": "r1", "session_id": S}),
        json!({"ch": "files", "type": "list", "id": "f1", "session_id": S, "path": "", "hidden": null}),
    ];
    for value in cases {
        let bytes = serde_json::to_vec(&value).expect("encodable");
        assert!(
            decode_client_frame(Encoding::Json, &bytes).is_ok(),
            "{value}"
        );
    }
    let fork = json!({"ch": "agent", "type": "fork", "command_id": fixtures::cid(1).to_string(), "session_id": S, "at_offset": 5, "new_session_id": fixtures::uuid(0x5e55)});
    let frame = decode_client_frame(
        Encoding::Json,
        &serde_json::to_vec(&fork).expect("encodable"),
    )
    .expect("a fork");
    let ClientFrame::Agent(AgentFrame::Command(command)) = frame else {
        panic!("not a command");
    };
    assert!(
        matches!(command.command, Command::Fork(ref fork) if fork.new_session_id.is_none()),
        "{command:?}"
    );
}

#[test]
fn msgpack_bin_where_text_belongs() {
    // A msgpack `bin` in a string field is read as its UTF-8 text (as rmp-serde does), never as
    // base64 or anything else; bytes that are not UTF-8 are `invalid_field`.
    #[derive(serde::Serialize)]
    struct PromptWithBinText {
        ch: &'static str,
        #[serde(rename = "type")]
        type_name: &'static str,
        command_id: String,
        session_id: &'static str,
        text: octo_core::Bytes,
    }
    let frame = |text: &[u8]| PromptWithBinText {
        ch: "agent",
        type_name: "prompt",
        command_id: fixtures::cid(1).to_string(),
        session_id: S,
        text: octo_core::Bytes(text.to_vec()),
    };
    let bytes = codec::to_msgpack(&frame(b"hi")).expect("encodable");
    let decoded = decode_client_frame(Encoding::Msgpack, &bytes).expect("UTF-8 bin");
    let ClientFrame::Agent(AgentFrame::Command(command)) = decoded else {
        panic!("not a command");
    };
    assert!(matches!(command.command, Command::Prompt(ref prompt) if prompt.text == "hi"));
    let bytes = codec::to_msgpack(&frame(&[0xff, 0xfe])).expect("encodable");
    let error = decode_client_frame(Encoding::Msgpack, &bytes).expect_err("not UTF-8");
    assert_eq!(error.code(), ErrorCode::InvalidField);
    assert_eq!(error.reference(), Some("text"));
}
