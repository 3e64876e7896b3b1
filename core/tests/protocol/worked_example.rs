//! The worked examples of PROTOCOL.md 16 and 17, copied from the document, decoded with these
//! types: proof that the types match the document. The symbolic ids (`S`, `C1`, `M1`, ...) are
//! replaced by real UUIDv7s, and the `ts_ms`, `user_id` and `session_id` the document leaves out
//! of the entries `E` are added, as the document says they are on the wire.
//!
//! Each line must decode, and encoding the decoded value must give back the same JSON (so no field
//! of the document is dropped or renamed).

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use octo_core::Encoding;
use octo_core::codec;
use octo_core::entry::{Body, LogEntry};
use octo_core::frame::{AgentFrame, ClientFrame, ServerFrame, decode_client_frame};
use octo_core::runner::{GatewayToRunner, RunnerToGateway};

/// The symbolic ids of sections 16 and 17 and the UUIDv7s that stand for them. Only whole quoted
/// strings are replaced, so `"P2"` never touches `"P20"`.
const IDS: &[(&str, &str)] = &[
    ("S", "0193f1a0-5c2e-7b40-9a11-3c5e7d9f0b21"),
    ("C1", "0193f1a0-5c2e-7b40-9a11-00000000c001"),
    ("C2", "0193f1a0-5c2e-7b40-9a11-00000000c002"),
    ("C3", "0193f1a0-5c2e-7b40-9a11-00000000c003"),
    ("R", "0193f1a0-5c2e-7b40-9a11-000000007000"),
    ("M1", "0193f1a0-5c2e-7b40-9a11-000000003001"),
    ("M2", "0193f1a0-5c2e-7b40-9a11-000000003002"),
    ("M3", "0193f1a0-5c2e-7b40-9a11-000000003003"),
    ("M4", "0193f1a0-5c2e-7b40-9a11-000000003004"),
    ("M9", "0193f1a0-5c2e-7b40-9a11-000000003009"),
    ("P1", "0193f1a0-5c2e-7b40-9a11-000000009001"),
    ("P2", "0193f1a0-5c2e-7b40-9a11-000000009002"),
    ("P3", "0193f1a0-5c2e-7b40-9a11-000000009003"),
    ("P4", "0193f1a0-5c2e-7b40-9a11-000000009004"),
    ("P5", "0193f1a0-5c2e-7b40-9a11-000000009005"),
    ("P6", "0193f1a0-5c2e-7b40-9a11-000000009006"),
    ("P20", "0193f1a0-5c2e-7b40-9a11-000000009020"),
];

/// Replaces every quoted symbolic id by its UUID.
fn real_ids(line: &str) -> String {
    IDS.iter().fold(line.to_owned(), |text, (symbol, uuid)| {
        text.replace(&format!("\"{symbol}\""), &format!("\"{uuid}\""))
    })
}

fn parse(line: &str) -> Value {
    serde_json::from_str(&real_ids(line)).expect("the document's line is JSON")
}

/// Decodes `value` as `T` from JSON and msgpack and checks that encoding it again gives `value`.
fn decode_exact<T: Serialize + DeserializeOwned>(value: &Value) -> T {
    let json = serde_json::to_vec(value).expect("encodable");
    let decoded: T = codec::from_json(&json).unwrap_or_else(|error| panic!("{error}: {value}"));
    let again: Value =
        serde_json::from_slice(&codec::to_json(&decoded).expect("encodable")).expect("JSON");
    assert_eq!(&again, value, "re-encoding changed the document's JSON");
    let msgpack = codec::to_msgpack(value).expect("encodable");
    let from_msgpack: T =
        codec::from_msgpack(&msgpack).unwrap_or_else(|error| panic!("msgpack: {error}: {value}"));
    let again: Value =
        serde_json::from_slice(&codec::to_json(&from_msgpack).expect("encodable")).expect("JSON");
    assert_eq!(
        &again, value,
        "msgpack decoding changed the document's values"
    );
    decoded
}

/// The section 16 entries `E`, verbatim.
const ENTRIES_16: &[&str] = &[
    r#"{"offset":102,"kind":"event","producer":{"id":"rn-u1","seq":1},"body":{"type":"harness.started","harness":"pi","version":"0.73.1","pid":4242,"harness_session_id":"01a20f11-f060-710e-9285-b01c7507ce4b","harness_session_file":"<pi sessions dir>/2026-11-24T19-39-23-617Z_01a20f11-f060-710e-9285-b01c7507ce4b.jsonl","resumed":false,"model":{"provider":"fake","model_id":"fake-model"},"thinking_level":"off","cause":100}}"#,
    r#"{"offset":103,"kind":"command","producer":{"id":"gw:n1","seq":502},"command_id":"C2","body":{"type":"prompt","text":"Run `echo hi` and tell me the output."}}"#,
    r#"{"offset":104,"kind":"event","producer":{"id":"rn-u1","seq":2},"body":{"type":"agent.working","run_id":"R","cause":103}}"#,
    r#"{"offset":106,"kind":"event","producer":{"id":"rn-u1","seq":3},"body":{"type":"message.created","message":{"id":"M1","role":"user","created_ms":1795549163664,"parts":[{"type":"text","id":"P1","text":"Run `echo hi` and tell me the output."}]},"command_id":"C2","cause":103}}"#,
    r#"{"offset":107,"kind":"event","producer":{"id":"rn-u1","seq":4},"body":{"type":"stream.message_start","message_id":"M2","run_id":"R","role":"assistant","provider":"fake","model_id":"fake-model"}}"#,
    r#"{"offset":108,"kind":"event","producer":{"id":"rn-u1","seq":5},"body":{"type":"stream.text_delta","message_id":"M2","part_id":"P2","index":0,"delta":"Running it."}}"#,
    r#"{"offset":109,"kind":"event","producer":{"id":"rn-u1","seq":6},"body":{"type":"stream.tool_call_delta","message_id":"M2","part_id":"P3","index":1,"tool_call_id":"call_93268fa1","name":"bash","delta":"{\"command\": \"echo hi\"}"}}"#,
    r#"{"offset":110,"kind":"event","producer":{"id":"rn-u1","seq":7},"body":{"type":"stream.message_end","message":{"id":"M2","role":"assistant","created_ms":1795549163752,"completed_ms":1795549163880,"provider":"fake","model_id":"fake-model","stop_reason":"tool_use","harness_ref":{"response_id":"chatcmpl-aeb22a9300d0"},"parts":[{"type":"text","id":"P2","text":"Running it."},{"type":"tool_call","id":"P3","tool_call_id":"call_93268fa1","name":"bash","input":{"command":"echo hi"}}]}}}"#,
    r#"{"offset":111,"kind":"event","producer":{"id":"rn-u1","seq":8},"body":{"type":"usage.recorded","run_id":"R","message_id":"M2","provider":"fake","model_id":"fake-model","input_tokens":10,"output_tokens":5,"cache_read_tokens":0,"cache_write_tokens":0,"cost_usd":0.0}}"#,
    r#"{"offset":112,"kind":"event","producer":{"id":"rn-u1","seq":9},"body":{"type":"tool.start","tool_call_id":"call_93268fa1","name":"bash","input":{"command":"echo hi"}}}"#,
    r#"{"offset":113,"kind":"event","producer":{"id":"rn-u1","seq":10},"body":{"type":"tool.progress","tool_call_id":"call_93268fa1","text":"hi\n"}}"#,
    r#"{"offset":114,"kind":"event","producer":{"id":"rn-u1","seq":11},"body":{"type":"tool.end","tool_call_id":"call_93268fa1","name":"bash","is_error":false,"duration_ms":148}}"#,
    r#"{"offset":115,"kind":"event","producer":{"id":"rn-u1","seq":12},"body":{"type":"message.created","message":{"id":"M3","role":"tool","created_ms":1795549163902,"parts":[{"type":"tool_result","id":"P4","tool_call_id":"call_93268fa1","name":"bash","is_error":false,"content":[{"type":"text","id":"P5","text":"hi\n"}]}]}}}"#,
    r#"{"offset":116,"kind":"event","producer":{"id":"rn-u1","seq":13},"body":{"type":"stream.message_start","message_id":"M4","run_id":"R","role":"assistant","provider":"fake","model_id":"fake-model"}}"#,
    r#"{"offset":117,"kind":"event","producer":{"id":"rn-u1","seq":14},"body":{"type":"stream.text_delta","message_id":"M4","part_id":"P6","index":0,"delta":"It printed: hi"}}"#,
    r#"{"offset":118,"kind":"event","producer":{"id":"rn-u1","seq":15},"body":{"type":"stream.message_end","message":{"id":"M4","role":"assistant","created_ms":1795549163904,"completed_ms":1795549163960,"provider":"fake","model_id":"fake-model","stop_reason":"stop","harness_ref":{"response_id":"chatcmpl-294c95ab79a7"},"parts":[{"type":"text","id":"P6","text":"It printed: hi"}]}}}"#,
    r#"{"offset":119,"kind":"event","producer":{"id":"rn-u1","seq":16},"body":{"type":"usage.recorded","run_id":"R","message_id":"M4","provider":"fake","model_id":"fake-model","input_tokens":10,"output_tokens":5,"cache_read_tokens":0,"cache_write_tokens":0,"cost_usd":0.0}}"#,
    r#"{"offset":120,"kind":"event","producer":{"id":"rn-u1","seq":17},"body":{"type":"agent.idle","run_id":"R","outcome":"completed"}}"#,
];

/// Section 16's entries, with the envelope fields the document leaves out.
fn entries_16() -> Vec<Value> {
    ENTRIES_16
        .iter()
        .map(|line| {
            let mut value = parse(line);
            let map = value.as_object_mut().expect("an entry is a map");
            map.insert("ts_ms".into(), Value::from(1_795_549_163_000i64));
            map.insert("user_id".into(), Value::from("u1"));
            map.insert("session_id".into(), Value::from(IDS[0].1));
            value
        })
        .collect()
}

#[test]
fn section_16_entries_decode_exactly() {
    let entries = entries_16();
    assert_eq!(entries.len(), 18);
    let mut previous = None;
    for value in &entries {
        let entry: LogEntry = decode_exact(value);
        assert!(entry.check().is_ok(), "{value}");
        assert!(
            !matches!(entry.body, Body::Unknown(_)),
            "the document's body {} is unknown to the types",
            entry.body.type_name()
        );
        assert!(previous < Some(entry.offset), "offsets increase");
        previous = Some(entry.offset);
        // Each arrives wrapped in an `entry` frame.
        let frame = serde_json::json!({
            "ch": "agent", "type": "entry", "session_id": IDS[0].1, "entry": value,
        });
        let _: ServerFrame = decode_exact(&frame);
    }
}

#[test]
fn section_16_frames_decode_exactly() {
    let client = [
        r#"{"ch":"agent","type":"session.create","command_id":"C1","harness":"pi","workspace":"demo","model":{"provider":"fake","model_id":"fake-model"}}"#,
        r#"{"ch":"agent","type":"subscribe","id":"r1","session_id":"S","after":null}"#,
        r#"{"ch":"agent","type":"prompt","command_id":"C2","session_id":"S","text":"Run `echo hi` and tell me the output."}"#,
    ];
    for line in client {
        let value = parse(line);
        let frame: ClientFrame = decode_exact(&value);
        for encoding in [Encoding::Json, Encoding::Msgpack] {
            let bytes = codec::encode(encoding, &value).expect("encodable");
            assert_eq!(decode_client_frame(encoding, &bytes), Ok(frame.clone()));
        }
    }
    let server = [
        r#"{"ch":"agent","type":"ack","command_id":"C1","status":"accepted","offset":100,"session_id":"S"}"#,
        r#"{"ch":"agent","type":"subscribed","id":"r1","session_id":"S","head":101}"#,
        r#"{"ch":"agent","type":"entry","session_id":"S","entry":{"offset":100,"ts_ms":1795549163000,"user_id":"u1","session_id":"S","kind":"command","producer":{"id":"gw:n1","seq":500},"command_id":"C1","body":{"type":"session.create","harness":"pi","workspace":"demo","model":{"provider":"fake","model_id":"fake-model"}}}}"#,
        r#"{"ch":"agent","type":"entry","session_id":"S","entry":{"offset":101,"ts_ms":1795549163000,"user_id":"u1","session_id":"S","kind":"event","producer":{"id":"gw:n1","seq":501},"body":{"type":"session.created","harness":"pi","workspace":"demo","model":{"provider":"fake","model_id":"fake-model"},"cause":100}}}"#,
        r#"{"ch":"agent","type":"ack","command_id":"C2","status":"accepted","offset":103,"session_id":"S"}"#,
    ];
    for line in server {
        let _: ServerFrame = decode_exact(&parse(line));
    }
}

#[test]
fn section_16_runner_link_decodes_exactly() {
    let command = parse(
        r#"{"type":"command","offset":103,"session_id":"S","command_id":"C2","body":{"type":"prompt","text":"Run `echo hi` and tell me the output."},"ctx":{"harness":"pi","workspace_root":"<user workspaces>/demo","model":{"provider":"fake","model_id":"fake-model"}}}"#,
    );
    assert!(matches!(
        decode_exact::<GatewayToRunner>(&command),
        GatewayToRunner::Command(_)
    ));
    let events = parse(
        r#"{"type":"events","events":[{"seq":2,"session_id":"S","body":{"type":"agent.working","run_id":"R","cause":103}},{"seq":3,"session_id":"S","body":{"type":"message.created","message":{"id":"M1","role":"user","created_ms":1795549163664,"parts":[{"type":"text","id":"P1","text":"Run `echo hi` and tell me the output."}]},"command_id":"C2","cause":103}}]}"#,
    );
    assert!(matches!(
        decode_exact::<RunnerToGateway>(&events),
        RunnerToGateway::Events(_)
    ));
    let acked = parse(r#"{"type":"acked","seq":3}"#);
    assert!(matches!(
        decode_exact::<GatewayToRunner>(&acked),
        GatewayToRunner::Acked(_)
    ));
}

#[test]
fn section_17_reconnect_decodes() {
    // FIXME(PROTOCOL.md 17): the document's hello predates section 12's `demo` and
    // `workspaces_root`. `demo` defaults to false; `workspaces_root` is required, so it is added
    // here, and `demo: false` is expected back.
    let mut hello = parse(
        r#"{"ch":"system","type":"hello","protocol":{"major":1,"minor":0},"encoding":"json","server_version":"0.1.0","connection_id":"0193f1a2-0b00-7e00-8000-000000000001","user":{"id":"u1","name":"alice"},"capabilities":["files","terminal"],"harnesses":[{"name":"pi","version":"0.73.1","available":true,"capabilities":["images","steer","follow_up","compact","fork","thinking","input_requests"],"models":[{"provider":"fake","model_id":"fake-model","name":"Fake Model","context_window":32000,"max_output_tokens":4096,"reasoning":false,"images":false}],"thinking_levels":["off"]}],"limits":{"max_frame_bytes":1048576,"max_entry_bytes":1048576,"max_subscriptions":64,"max_terminals":8,"max_prompt_bytes":262144,"max_images":8,"read_chunk_bytes":524288}}"#,
    );
    let without_root =
        codec::from_json::<ServerFrame>(&serde_json::to_vec(&hello).expect("encodable"));
    assert!(without_root.is_err(), "workspaces_root is required");
    let map = hello.as_object_mut().expect("a map");
    map.insert(
        "workspaces_root".into(),
        Value::from("/home/alice/workspaces"),
    );
    map.insert("demo".into(), Value::from(false));
    let _: ServerFrame = decode_exact(&hello);

    let subscribe =
        parse(r#"{"ch":"agent","type":"subscribe","id":"r2","session_id":"S","after":140}"#);
    let frame: ClientFrame = decode_exact(&subscribe);
    assert!(matches!(
        frame,
        ClientFrame::Agent(AgentFrame::Subscribe(_))
    ));
    let prompt = parse(
        r#"{"ch":"agent","type":"prompt","command_id":"C3","session_id":"S","text":"Now run `ls`."}"#,
    );
    let frame: ClientFrame = decode_exact(&prompt);
    assert!(matches!(frame, ClientFrame::Agent(AgentFrame::Command(_))));
    for line in [
        r#"{"ch":"agent","type":"subscribed","id":"r2","session_id":"S","head":151}"#,
        r#"{"ch":"agent","type":"ack","command_id":"C3","status":"duplicate","offset":142,"session_id":"S"}"#,
    ] {
        let _: ServerFrame = decode_exact(&parse(line));
    }
    // The document elides the harness list as `[...]`; an empty list stands for it.
    let runner_hello = parse(
        r#"{"type":"hello","proto":1,"runner_id":"rn-u1","boot_id":"0193f1a0-0000-7000-8000-00000000b001","version":"0.1.0","harnesses":[],"resume_after":142}"#,
    );
    let _: RunnerToGateway = decode_exact(&runner_hello);
    let welcome = parse(r#"{"type":"welcome","proto":1,"user_id":"u1","acked_seq":30}"#);
    let _: GatewayToRunner = decode_exact(&welcome);
    let events = parse(
        r#"{"type":"events","events":[{"seq":31,"session_id":"S","body":{"type":"stream.text_delta","message_id":"M9","part_id":"P20","index":0,"delta":"Here is"}}]}"#,
    );
    let _: RunnerToGateway = decode_exact(&events);
}
