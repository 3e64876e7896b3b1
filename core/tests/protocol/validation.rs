//! Field rules and limits (PROTOCOL.md 3.4, 4.2, 10, 11): each limit at N (accepted) and N+1
//! (refused with the exact code and `ref`), through the whole inbound path: encode, decode, then
//! validate.

use serde_json::{Value, json};

use octo_core::Encoding;
use octo_core::codec;
use octo_core::error::ErrorCode;
use octo_core::frame::{AgentServerFrame, ClientFrame, ServerFrame, decode_client_frame};
use octo_core::limits::{
    COMPACT_INSTRUCTIONS_BYTES_MAX, PATH_BYTES_MAX, PROMPT_FILES_MAX, PROMPT_IMAGES_MAX,
    PROMPT_TEXT_BYTES_MAX, READ_CHUNK_BYTES_MAX, REPLAY_LIMIT_MAX, REQ_ID_CHARS_MAX,
    TITLE_CHARS_MAX,
};
use octo_core::validate::{FieldLimits, validate_client_frame};

use crate::fixtures::{S, cid};

/// Decodes `value` (in both encodings, which must agree) and validates it with `field_limits`.
fn inbound_with(
    value: &Value,
    field_limits: &FieldLimits,
) -> Result<ClientFrame, (ErrorCode, Option<String>)> {
    let mut outcomes = [Encoding::Json, Encoding::Msgpack].map(|encoding| {
        let bytes = codec::encode(encoding, value).expect("encodable");
        let frame = decode_client_frame(encoding, &bytes)
            .map_err(|error| (error.code(), error.reference().map(str::to_owned)))?;
        validate_client_frame(&frame, field_limits)
            .map_err(|error| (error.code(), Some(error.reference().to_owned())))?;
        Ok(frame)
    });
    let [json, msgpack] = &mut outcomes;
    assert_eq!(json, msgpack, "the encodings disagree on {value}");
    outcomes.into_iter().next().expect("two outcomes")
}

fn inbound(value: &Value) -> Result<ClientFrame, (ErrorCode, Option<String>)> {
    inbound_with(value, &FieldLimits::default())
}

fn command(type_name: &str, fields: Value) -> Value {
    let mut frame = json!({
        "ch": "agent", "type": type_name, "command_id": cid(1).to_string(), "session_id": S,
    });
    for (key, value) in fields.as_object().expect("a map") {
        frame[key] = value.clone();
    }
    frame
}

fn prompt(fields: Value) -> Value {
    command("prompt", fields)
}

fn refused(code: ErrorCode, reference: &str) -> Result<ClientFrame, (ErrorCode, Option<String>)> {
    Err((code, Some(reference.to_owned())))
}

#[track_caller]
fn assert_refused(value: &Value, code: ErrorCode, reference: &str) {
    let outcome = inbound(value);
    assert_eq!(outcome, refused(code, reference));
}

#[track_caller]
fn assert_accepted(value: &Value) {
    let outcome = inbound(value);
    assert!(outcome.is_ok(), "{outcome:?}");
}

fn image() -> Value {
    json!({"media_type": "image/png", "data": "iVBORw=="})
}

#[test]
fn prompt_text_bytes() {
    // Counted in UTF-8 bytes: a two-byte character at the end crosses the limit.
    let at_limit = "a".repeat(PROMPT_TEXT_BYTES_MAX);
    assert_accepted(&prompt(json!({"text": at_limit})));
    let over = format!("{}é", "a".repeat(PROMPT_TEXT_BYTES_MAX - 1));
    assert_eq!(over.len(), PROMPT_TEXT_BYTES_MAX + 1);
    assert_refused(
        &prompt(json!({"text": over})),
        ErrorCode::InvalidField,
        "text",
    );
}

#[test]
fn prompt_needs_text_or_an_image() {
    assert_refused(
        &prompt(json!({"text": ""})),
        ErrorCode::MissingField,
        "text",
    );
    assert_accepted(&prompt(json!({"text": "", "images": [image()]})));
    assert_accepted(&prompt(json!({"text": " "})));
}

#[test]
fn prompt_images_count() {
    let images = |count: usize| Value::Array(vec![image(); count]);
    assert_accepted(&prompt(
        json!({"text": "x", "images": images(PROMPT_IMAGES_MAX)}),
    ));
    assert_refused(
        &prompt(json!({"text": "x", "images": images(PROMPT_IMAGES_MAX + 1)})),
        ErrorCode::InvalidField,
        "images",
    );
}

#[test]
fn prompt_files_count_and_paths() {
    let files =
        |count: usize| Value::Array((0..count).map(|idx| json!(format!("f{idx}.rs"))).collect());
    assert_accepted(&prompt(
        json!({"text": "x", "files": files(PROMPT_FILES_MAX)}),
    ));
    assert_refused(
        &prompt(json!({"text": "x", "files": files(PROMPT_FILES_MAX + 1)})),
        ErrorCode::InvalidField,
        "files",
    );
    assert_refused(
        &prompt(json!({"text": "x", "files": ["../secret"]})),
        ErrorCode::PathOutsideRoot,
        "../secret",
    );
}

#[test]
fn titles_are_1_to_200_characters() {
    // Counted in characters, not bytes.
    let at_limit = "é".repeat(TITLE_CHARS_MAX);
    let over = "é".repeat(TITLE_CHARS_MAX + 1);
    let create = |title: &str| {
        let mut frame = command(
            "session.create",
            json!({"harness": "pi", "workspace": "demo", "title": title}),
        );
        frame.as_object_mut().expect("a map").remove("session_id");
        frame
    };
    let rename = |title: &str| command("session.rename", json!({"title": title}));
    let fork = |title: &str| command("fork", json!({"at_offset": 5, "title": title}));
    for build in [&create as &dyn Fn(&str) -> Value, &rename, &fork] {
        assert_accepted(&build(&at_limit));
        assert_accepted(&build("x"));
        assert_refused(&build(&over), ErrorCode::InvalidField, "title");
        assert_refused(&build(""), ErrorCode::InvalidField, "title");
    }
}

#[test]
fn compact_instructions_bytes() {
    let at_limit = "a".repeat(COMPACT_INSTRUCTIONS_BYTES_MAX);
    assert_accepted(&command("compact", json!({"instructions": at_limit})));
    let over = "a".repeat(COMPACT_INSTRUCTIONS_BYTES_MAX + 1);
    assert_refused(
        &command("compact", json!({"instructions": over})),
        ErrorCode::InvalidField,
        "instructions",
    );
    assert_accepted(&command("compact", json!({})));
}

#[test]
fn req_id_characters() {
    let ping = |id: &str| json!({"ch": "system", "type": "ping", "id": id});
    assert_accepted(&ping(&"a".repeat(REQ_ID_CHARS_MAX)));
    assert_refused(
        &ping(&"a".repeat(REQ_ID_CHARS_MAX + 1)),
        ErrorCode::InvalidId,
        "id",
    );
    assert_refused(&ping(""), ErrorCode::InvalidId, "id");
    assert_refused(&ping("r/1"), ErrorCode::InvalidId, "id");
    assert_accepted(&ping("A-z_0.9:x"));
}

#[test]
fn files_read_chunk() {
    let read = |length: usize| json!({"ch": "files", "type": "read", "id": "f1", "session_id": S, "path": "a", "length": length});
    assert_accepted(&read(READ_CHUNK_BYTES_MAX));
    assert_refused(
        &read(READ_CHUNK_BYTES_MAX + 1),
        ErrorCode::InvalidField,
        "length",
    );
}

#[test]
fn replay_limit_is_1_to_1000() {
    let replay = |limit: u32| json!({"ch": "agent", "type": "replay", "id": "p1", "session_id": S, "after": null, "limit": limit});
    assert_accepted(&replay(REPLAY_LIMIT_MAX));
    assert_accepted(&replay(1));
    assert_refused(
        &replay(REPLAY_LIMIT_MAX + 1),
        ErrorCode::InvalidField,
        "limit",
    );
    assert_refused(&replay(0), ErrorCode::InvalidField, "limit");
}

#[test]
fn paths() {
    let stat = |path: &str| json!({"ch": "files", "type": "stat", "id": "f1", "session_id": S, "path": path});
    let delete = |path: &str| json!({"ch": "files", "type": "delete", "id": "f1", "session_id": S, "path": path});
    assert_accepted(&stat(&"a".repeat(PATH_BYTES_MAX)));
    let long = "a".repeat(PATH_BYTES_MAX + 1);
    assert_refused(&stat(&long), ErrorCode::InvalidPath, &long);
    assert_refused(&stat("a\0b"), ErrorCode::InvalidPath, "a\0b");
    assert_refused(
        &stat("/etc/passwd"),
        ErrorCode::PathOutsideRoot,
        "/etc/passwd",
    );
    assert_refused(&stat("a/../../b"), ErrorCode::PathOutsideRoot, "a/../../b");
    assert_accepted(&stat(""));
    assert_accepted(&stat("."));
    assert_accepted(&stat("a..b/c"));
    assert_refused(&delete("."), ErrorCode::InvalidPath, ".");
    assert_accepted(&delete("docs"));
    let rename = json!({"ch": "files", "type": "rename", "id": "f1", "session_id": S, "from": "", "to": "b"});
    assert_refused(&rename, ErrorCode::InvalidPath, "");
    let mut create = command(
        "session.create",
        json!({"harness": "pi", "workspace": "../other"}),
    );
    create.as_object_mut().expect("a map").remove("session_id");
    assert_refused(&create, ErrorCode::PathOutsideRoot, "../other");
}

#[test]
fn required_content() {
    let mut create = command(
        "session.create",
        json!({"harness": "", "workspace": "demo"}),
    );
    create.as_object_mut().expect("a map").remove("session_id");
    assert_refused(&create, ErrorCode::MissingField, "harness");
    assert_refused(
        &command("set_model", json!({"provider": "", "model_id": "m"})),
        ErrorCode::MissingField,
        "provider",
    );
    assert_refused(
        &command("set_model", json!({"provider": "p", "model_id": ""})),
        ErrorCode::MissingField,
        "model_id",
    );
    assert_refused(
        &command(
            "input.respond",
            json!({"request_id": "", "cancelled": true}),
        ),
        ErrorCode::MissingField,
        "request_id",
    );
}

#[test]
fn terminal_size_is_at_least_one() {
    let open = |cols: u16, rows: u16| json!({"ch": "terminal", "type": "open", "id": "t1", "session_id": S, "cols": cols, "rows": rows});
    assert_accepted(&open(1, 1));
    assert_accepted(&open(u16::MAX, u16::MAX));
    assert_refused(&open(0, 24), ErrorCode::InvalidField, "cols");
    assert_refused(&open(80, 0), ErrorCode::InvalidField, "rows");
}

#[test]
fn configured_limits_apply() {
    let field_limits = FieldLimits {
        prompt_text_bytes_max: 4,
        ..FieldLimits::default()
    };
    assert!(inbound_with(&prompt(json!({"text": "abcd"})), &field_limits).is_ok());
    assert_eq!(
        inbound_with(&prompt(json!({"text": "abcde"})), &field_limits),
        refused(ErrorCode::InvalidField, "text")
    );
}

#[test]
fn a_refused_command_is_answered_by_a_rejected_ack() {
    let value = prompt(json!({"text": ""}));
    let bytes = codec::to_json(&value).expect("encodable");
    let frame = decode_client_frame(Encoding::Json, &bytes).expect("well formed");
    let error = validate_client_frame(&frame, &FieldLimits::default()).expect_err("empty prompt");
    let reply = frame.reply_to().error_frame(error.to_error());
    let ServerFrame::Agent(AgentServerFrame::Ack(ack)) = reply else {
        panic!("not an ack: {reply:?}");
    };
    assert_eq!(ack.command_id, cid(1));
    assert_eq!(ack.status, octo_core::frame::AckStatus::Rejected);
    let wire = ack.error.expect("an error");
    assert_eq!(wire.code, ErrorCode::MissingField);
    assert_eq!(wire.reference.as_deref(), Some("text"));
}
