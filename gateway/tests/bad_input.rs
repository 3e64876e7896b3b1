//! Bad input gets its typed error and changes nothing (ARCHITECTURE.md invariant 6): a table of
//! classes, each sent to a real server, each answered with its section 13 code where the protocol
//! says (a rejected ack, an error on the request's channel, or system.error), with the log's head
//! unchanged.

mod support;

use octo_core::frame::{AckStatus, AgentServerFrame, ServerFrame, SystemServerFrame};
use octo_core::{Encoding, Event};
use octo_tools::client::{Client, ClientError};
use serde_json::{Value, json};
use support::{Agent, Octo, PATIENCE, cid, event};
use tokio_tungstenite::tungstenite::Message;

/// Where an error is expected.
#[derive(Debug, Clone, Copy, PartialEq)]
enum At {
    System,
    Ack,
    Agent,
    Files,
}

/// The (code, ref) of the next error-bearing frame, and where it came.
async fn next_error(client: &mut Client) -> (At, String, Option<String>) {
    loop {
        let frame = client.next_frame_within(PATIENCE).await.expect("an answer");
        match frame {
            ServerFrame::System(SystemServerFrame::Error(e)) => {
                return (At::System, e.error.code.wire_name(), e.error.reference);
            }
            ServerFrame::Agent(AgentServerFrame::Ack(ack)) => {
                assert_eq!(ack.status, AckStatus::Rejected, "{ack:?}");
                let error = ack.error.expect("a rejected ack has an error");
                return (At::Ack, error.code.wire_name(), error.reference);
            }
            ServerFrame::Agent(AgentServerFrame::Error(e)) => {
                return (At::Agent, e.error.code.wire_name(), e.error.reference);
            }
            ServerFrame::Files(octo_core::frame::FilesServerFrame::Error(e)) => {
                return (At::Files, e.error.code.wire_name(), e.error.reference);
            }
            // Entries of an earlier subscription may still arrive.
            ServerFrame::Agent(AgentServerFrame::Entry(_)) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

fn text(value: Value) -> Message {
    Message::Text(value.to_string().into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_class_of_bad_input_gets_its_error_and_changes_nothing() {
    let octo = Octo::start_with(json!([]), |config| config.max_frame_bytes = 64 << 10).await;
    let mut agent = Agent::new(octo.client().await);
    let (session_id, _) = agent.create_session().await;
    agent.subscribe(session_id, None).await;
    agent
        .until(|_, entries| {
            entries
                .iter()
                .any(|e| matches!(event(e), Some(Event::HarnessStarted(_))))
                .then_some(())
        })
        .await;
    let (bob, bob_token) = octo
        .server()
        .app()
        .users
        .add("bob", None)
        .expect("adds bob");
    let mut bob_client = Client::connect(&octo.url(), &bob_token, Encoding::Json)
        .await
        .expect("bob connects");
    assert_eq!(bob_client.hello.user.id, bob.id);
    let head = octo.server().app().log.head();
    let other = octo_core::SessionId::new();
    let too_big = "x".repeat(70 << 10);
    let far = head.get() + 1000;

    let cases: Vec<(&str, Message, At, &str, Option<&str>)> = vec![
        (
            "malformed JSON",
            Message::Text("{\"ch\": \"agent\",".into()),
            At::System,
            "malformed_frame",
            None,
        ),
        (
            "not a map",
            text(json!([1, 2, 3])),
            At::System,
            "malformed_frame",
            None,
        ),
        (
            "binary on a JSON connection",
            Message::Binary(vec![0x81, 0xa2, 0x63, 0x68].into()),
            At::System,
            "malformed_frame",
            None,
        ),
        (
            "oversized frame",
            text(
                json!({"ch": "agent", "type": "prompt", "command_id": cid(), "session_id": session_id, "text": too_big}),
            ),
            At::System,
            "frame_too_large",
            Some("max_frame_bytes"),
        ),
        (
            "unknown channel",
            text(json!({"ch": "video", "type": "play"})),
            At::System,
            "unknown_channel",
            Some("video"),
        ),
        (
            "unknown type",
            text(json!({"ch": "agent", "type": "teleport", "command_id": cid()})),
            At::System,
            "unknown_type",
            Some("teleport"),
        ),
        (
            "missing field",
            text(
                json!({"ch": "agent", "type": "prompt", "command_id": cid(), "session_id": session_id}),
            ),
            At::Ack,
            "missing_field",
            Some("text"),
        ),
        (
            "empty prompt",
            text(
                json!({"ch": "agent", "type": "prompt", "command_id": cid(), "session_id": session_id, "text": ""}),
            ),
            At::Ack,
            "missing_field",
            Some("text"),
        ),
        (
            "bad command_id",
            text(
                json!({"ch": "agent", "type": "prompt", "command_id": "not-a-uuid", "session_id": session_id, "text": "hi"}),
            ),
            At::System,
            "invalid_id",
            Some("command_id"),
        ),
        (
            "a v4 uuid as command_id",
            text(
                json!({"ch": "agent", "type": "prompt", "command_id": "6f1c2b7e-8a55-4c3e-9f0a-1b2c3d4e5f60", "session_id": session_id, "text": "hi"}),
            ),
            At::System,
            "invalid_id",
            Some("command_id"),
        ),
        (
            "bad session_id",
            text(
                json!({"ch": "agent", "type": "prompt", "command_id": cid(), "session_id": "S", "text": "hi"}),
            ),
            At::Ack,
            "invalid_id",
            Some("session_id"),
        ),
        (
            "unknown session",
            text(
                json!({"ch": "agent", "type": "prompt", "command_id": cid(), "session_id": other, "text": "hi"}),
            ),
            At::Ack,
            "session_not_found",
            None,
        ),
        (
            "invalid enum value",
            text(
                json!({"ch": "agent", "type": "set_thinking_level", "command_id": cid(), "session_id": session_id, "level": "extreme"}),
            ),
            At::Ack,
            "invalid_field",
            Some("level"),
        ),
        (
            "title too long",
            text(
                json!({"ch": "agent", "type": "session.rename", "command_id": cid(), "session_id": session_id, "title": "t".repeat(201)}),
            ),
            At::Ack,
            "invalid_field",
            Some("title"),
        ),
        (
            "abort with no run",
            text(
                json!({"ch": "agent", "type": "abort", "command_id": cid(), "session_id": session_id}),
            ),
            At::Ack,
            "invalid_state",
            Some("idle"),
        ),
        (
            "answer to no input request",
            text(
                json!({"ch": "agent", "type": "input.respond", "command_id": cid(), "session_id": session_id, "request_id": "r9", "value": "x"}),
            ),
            At::Ack,
            "invalid_state",
            Some("r9"),
        ),
        (
            "unknown harness",
            text(
                json!({"ch": "agent", "type": "session.create", "command_id": cid(), "harness": "emacs", "workspace": "demo"}),
            ),
            At::Ack,
            "unknown_harness",
            Some("emacs"),
        ),
        (
            "workspace outside the root",
            text(
                json!({"ch": "agent", "type": "session.create", "command_id": cid(), "harness": "pi", "workspace": "../home"}),
            ),
            At::Ack,
            "path_outside_root",
            Some("../home"),
        ),
        (
            "absolute workspace",
            text(
                json!({"ch": "agent", "type": "session.create", "command_id": cid(), "harness": "pi", "workspace": "/etc"}),
            ),
            At::Ack,
            "path_outside_root",
            Some("/etc"),
        ),
        (
            "missing workspace",
            text(
                json!({"ch": "agent", "type": "session.create", "command_id": cid(), "harness": "pi", "workspace": "nowhere"}),
            ),
            At::Ack,
            "not_found",
            Some("nowhere"),
        ),
        (
            "subscribe beyond the head",
            text(
                json!({"ch": "agent", "type": "subscribe", "id": "b1", "session_id": session_id, "after": far}),
            ),
            At::Agent,
            "invalid_offset",
            Some("after"),
        ),
        (
            "subscribe to an unknown session",
            text(
                json!({"ch": "agent", "type": "subscribe", "id": "b2", "session_id": other, "after": null}),
            ),
            At::Agent,
            "session_not_found",
            None,
        ),
        (
            "bad request id",
            text(
                json!({"ch": "agent", "type": "subscribe", "id": "no spaces", "session_id": session_id}),
            ),
            At::System,
            "invalid_id",
            Some("id"),
        ),
        (
            "replay limit out of range",
            text(
                json!({"ch": "agent", "type": "replay", "id": "r1", "session_id": session_id, "after": null, "limit": 5000}),
            ),
            At::Agent,
            "invalid_field",
            Some("limit"),
        ),
        (
            "files are not offered",
            text(
                json!({"ch": "files", "type": "list", "id": "f1", "session_id": session_id, "path": "."}),
            ),
            At::Files,
            "unsupported",
            Some("files"),
        ),
    ];
    assert!(cases.len() >= 15);
    for (name, message, at, code, reference) in cases {
        agent.client.send_raw(message).await.expect("sends");
        let (got_at, got_code, got_ref) = next_error(&mut agent.client).await;
        assert_eq!(got_code, code, "{name}: code");
        assert_eq!(got_at, at, "{name}: where");
        if let Some(reference) = reference {
            assert_eq!(got_ref.as_deref(), Some(reference), "{name}: ref");
        }
        assert_eq!(
            octo.server().app().log.head(),
            head,
            "{name}: the log is unchanged"
        );
    }

    // Another user's session is answered exactly like one that does not exist.
    for frame in [
        json!({"ch": "agent", "type": "prompt", "command_id": cid(), "session_id": session_id, "text": "mine now"}),
        json!({"ch": "agent", "type": "subscribe", "id": "x1", "session_id": session_id, "after": null}),
        json!({"ch": "agent", "type": "replay", "id": "x2", "session_id": session_id, "after": null}),
        json!({"ch": "agent", "type": "session.delete", "command_id": cid(), "session_id": session_id}),
    ] {
        bob_client.send(&frame).await.expect("sends");
        let (_, code, reference) = next_error(&mut bob_client).await;
        assert_eq!(code, "session_not_found", "{frame}");
        assert_eq!(reference, Some(session_id.to_string()));
    }
    // Bob's log subscription sees none of alice's entries.
    bob_client
        .send(&json!({"ch": "agent", "type": "subscribe_log", "id": "l1", "after": null}))
        .await
        .expect("sends");
    match bob_client
        .next_frame_within(PATIENCE)
        .await
        .expect("answers")
    {
        ServerFrame::Agent(AgentServerFrame::SubscribedLog(_)) => {}
        other => panic!("subscribed_log expected: {other:?}"),
    }
    assert!(
        matches!(
            bob_client
                .next_frame_within(std::time::Duration::from_millis(500))
                .await,
            Err(ClientError::Timeout)
        ),
        "nothing of alice's"
    );
    assert_eq!(
        octo.server().app().log.head(),
        head,
        "another user changed nothing"
    );

    // A wrong token never gets a socket.
    let refused = Client::connect(&octo.url(), "octo_wrong", Encoding::Json).await;
    assert!(
        matches!(&refused, Err(ClientError::Connect(e)) if e.contains("401")),
        "{:?}",
        refused.err()
    );

    // An unknown subprotocol only: 400 with the supported list.
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            octo_tools::client::ws_url(&octo.url()),
        )
        .expect("request");
    request.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", octo.token()).parse().expect("header"),
    );
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "octo.v9.xml".parse().expect("header"),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400);
            let body: Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                    .expect("json");
            assert_eq!(body["code"], "unsupported_protocol");
            assert_eq!(
                body["supported"],
                json!(["octo.v1.json", "octo.v1.msgpack"])
            );
        }
        other => panic!("a 400 expected: {:?}", other.map(|_| ())),
    }

    // Over the hard cap: system.error frame_too_large, then close 1009.
    agent
        .client
        .send_raw(Message::Text("y".repeat(300 << 10).into()))
        .await
        .expect("sends");
    let (at, code, _) = next_error(&mut agent.client).await;
    assert_eq!((at, code.as_str()), (At::System, "frame_too_large"));
    match agent.client.next_frame_within(PATIENCE).await {
        Err(ClientError::Closed(Some(reason))) => assert!(reason.starts_with("1009"), "{reason}"),
        other => panic!("a 1009 close expected: {other:?}"),
    }
    assert_eq!(
        octo.server().app().log.head(),
        head,
        "nothing appended at all"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msgpack_connections_refuse_bad_msgpack_and_text_frames() {
    let octo = Octo::start(json!([])).await;
    let mut client = Client::connect(&octo.url(), &octo.token(), Encoding::Msgpack)
        .await
        .expect("connects");
    assert_eq!(client.hello.encoding, Encoding::Msgpack);
    let head = octo.server().app().log.head();
    for message in [
        Message::Binary(vec![0xc1, 0xff, 0x00].into()),
        Message::Text("{\"ch\":\"system\",\"type\":\"ping\",\"id\":\"p\"}".into()),
    ] {
        client.send_raw(message).await.expect("sends");
        let (at, code, _) = next_error(&mut client).await;
        assert_eq!((at, code.as_str()), (At::System, "malformed_frame"));
    }
    // A good msgpack frame is answered in msgpack.
    client
        .send(&json!({"ch": "system", "type": "ping", "id": "p1"}))
        .await
        .expect("sends");
    match client.next_frame_within(PATIENCE).await.expect("pong") {
        ServerFrame::System(SystemServerFrame::Pong(pong)) => assert_eq!(pong.id.as_str(), "p1"),
        other => panic!("pong expected: {other:?}"),
    }
    assert_eq!(octo.server().app().log.head(), head);
}

/// The wire name of an error code.
trait WireName {
    fn wire_name(&self) -> String;
}

impl WireName for octo_core::ErrorCode {
    fn wire_name(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}
