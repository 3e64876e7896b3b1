//! A real pi session (scripted model) read through hstry's gRPC API, which `octo serve` starts
//! beside the WebSocket (HSTRY_API.md section 9, check 33): the conversation is the session, with
//! the same messages and parts the WebSocket streamed, the tool call and its result included, and
//! search finds it, with no gRPC write involved. Forks read as their parent's view, then their
//! own.

mod support;

use octo_core::message::Part;
use octo_hstry::proto;
use octo_hstry::proto::read_service_client::ReadServiceClient;
use octo_hstry::proto::search_service_client::SearchServiceClient;
use serde_json::{Value, json};
use support::{Agent, Octo, messages_of};
use tonic::transport::Channel;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pi_session_reads_through_hstry_as_the_websocket_streamed_it() {
    let octo = Octo::start(json!([
        {"text": "Let me look.", "tool_calls": [{"name": "bash", "arguments": {"command": "echo zephyrine"}}], "match": "inventory"},
        {"text": "The shell printed zephyrine, a rare word.", "match": "zephyrine"}
    ]))
    .await;
    let addr = octo.server().hstry_addr().expect("hstry is served");
    let mut agent = Agent::new(octo.client().await);
    let (session_id, _) = agent.create_session().await;
    agent.subscribe(session_id, None).await;
    let prompt = agent.prompt(session_id, "take an inventory please").await;
    agent.until_run_ends(prompt).await;
    let streamed = messages_of(&agent.entries);
    assert_eq!(
        streamed.len(),
        4,
        "user, assistant with a tool call, tool, assistant"
    );

    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connects");
    let mut read = ReadServiceClient::new(channel.clone());
    let mut search = SearchServiceClient::new(channel);

    let listed = read
        .list_conversations(proto::ListConversationsRequest {
            source_id: "pi".into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    let summary = listed
        .conversations
        .iter()
        .find(|s| {
            s.conversation.as_ref().and_then(|c| c.platform_id.clone())
                == Some(session_id.to_string())
        })
        .expect("the session is listed as a conversation");
    let conversation = summary.conversation.clone().expect("conversation");
    assert_eq!(conversation.source_id, "pi");
    assert_eq!(conversation.harness.as_deref(), Some("pi"));
    assert_eq!(summary.message_count, 4);
    assert_eq!(summary.first_user_message, "take an inventory please");
    assert!(!conversation.external_id.is_empty(), "pi's own session id");
    assert!(
        conversation
            .readable_id
            .as_deref()
            .is_some_and(|r| r.split('-').count() >= 2),
        "{conversation:?}"
    );

    let got = read
        .get_messages(proto::GetMessagesRequest {
            conversation_id: session_id.to_string(),
            ..Default::default()
        })
        .await
        .expect("messages")
        .into_inner();
    assert_eq!(
        got.conversation_id,
        session_id.to_string(),
        "the UUID is the session id"
    );
    assert_eq!(got.messages.len(), streamed.len());
    for (idx, (hstry, octo)) in got.messages.iter().zip(&streamed).enumerate() {
        assert_eq!(hstry.idx, i32::try_from(idx).expect("small"));
        assert_eq!(hstry.id.as_deref(), Some(octo.id.to_string().as_str()));
        assert_eq!(hstry.created_at_ms, Some(octo.created_ms));
        let parts: Vec<Value> = serde_json::from_str(&hstry.parts_json).expect("parts are JSON");
        assert_eq!(parts.len(), octo.parts.len(), "message {idx}");
        for (part, original) in parts.iter().zip(&octo.parts) {
            match original {
                Part::Text(text) => {
                    assert_eq!(part["type"], "text");
                    assert_eq!(part["text"], text.text.as_str());
                    assert_eq!(part["id"], text.id.to_string().as_str());
                }
                Part::ToolCall(call) => {
                    assert_eq!(part["type"], "tool_call");
                    assert_eq!(part["toolCallId"], call.tool_call_id.as_str());
                    assert_eq!(part["name"], "bash");
                    assert_eq!(part["input"], call.input);
                }
                Part::ToolResult(result) => {
                    assert_eq!(part["type"], "tool_result");
                    assert_eq!(part["toolCallId"], result.tool_call_id.as_str());
                    assert_eq!(part["isError"], false);
                    assert!(
                        part["output"]
                            .as_str()
                            .is_some_and(|o| o.contains("zephyrine")),
                        "{part}"
                    );
                }
                other => panic!("unexpected part {other:?}"),
            }
        }
    }
    let roles: Vec<&str> = got.messages.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "tool", "assistant"]);
    // The tool call and its result are linked by their id.
    let call: Vec<Value> = serde_json::from_str(&got.messages[1].parts_json).expect("json");
    let result: Vec<Value> = serde_json::from_str(&got.messages[2].parts_json).expect("json");
    assert_eq!(call[1]["toolCallId"], result[0]["toolCallId"]);

    let events = read
        .get_message_events(proto::GetMessageEventsRequest {
            conversation_id: session_id.to_string(),
            ..Default::default()
        })
        .await
        .expect("events")
        .into_inner();
    assert_eq!(events.events.len(), 4, "one event per message");

    let hits = search
        .search(proto::SearchRequest {
            query: "zephyrine".into(),
            source: "pi".into(),
            ..Default::default()
        })
        .await
        .expect("search")
        .into_inner()
        .hits;
    assert!(
        hits.iter()
            .any(|hit| hit.conversation_id == session_id.to_string()
                && hit.role == "assistant"
                && hit.message_idx == 3
                && hit.snippet.contains("[zephyrine]")),
        "{hits:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_written_through_hstry_is_listed_read_only_and_can_be_renamed() {
    use octo_core::ErrorCode;
    use octo_core::frame::{AckStatus, AgentServerFrame, ServerFrame};
    use octo_hstry::proto::write_service_client::WriteServiceClient;
    use support::cid;

    let octo = Octo::start(json!([])).await;
    let addr = octo.server().hstry_addr().expect("hstry is served");
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connects");
    let mut write = WriteServiceClient::new(channel.clone());
    let mut read = ReadServiceClient::new(channel);
    let written = write
        .write_conversation(proto::WriteConversationRequest {
            conversation: Some(proto::Conversation {
                source_id: "claude".into(),
                external_id: "imported-1".into(),
                title: Some("Imported talk".into()),
                workspace: Some("/src/app".into()),
                ..Default::default()
            }),
            messages: vec![
                proto::Message {
                    idx: 0,
                    role: "user".into(),
                    content: "why is the build slow".into(),
                    ..Default::default()
                },
                proto::Message {
                    idx: 1,
                    role: "assistant".into(),
                    content: "too many features".into(),
                    ..Default::default()
                },
            ],
        })
        .await
        .expect("written")
        .into_inner();
    let session_id: octo_core::SessionId = written.conversation_id.parse().expect("a v7 id");

    let mut agent = Agent::new(octo.client().await);
    agent
        .client
        .send(&json!({"ch": "agent", "type": "subscribe_sessions", "id": "l", "after": null}))
        .await
        .expect("sends");
    let items = agent
        .until(|frame, _| match frame {
            ServerFrame::Agent(AgentServerFrame::Sessions(sessions)) if sessions.done => {
                Some(sessions.items.clone())
            }
            _ => None,
        })
        .await;
    let listed = items
        .iter()
        .find(|s| s.session_id == session_id)
        .expect("the written conversation is listed");
    assert_eq!(
        listed.harness, "claude",
        "the source stands in for a harness"
    );
    assert_eq!(listed.title.as_deref(), Some("Imported talk"));
    assert_eq!(listed.message_count, 2);
    assert_eq!(listed.preview, "why is the build slow");

    let prompt = agent
        .command(json!({"ch": "agent", "type": "prompt", "command_id": cid(), "session_id": session_id, "text": "go on"}))
        .await;
    assert_eq!(prompt.status, AckStatus::Rejected);
    let error = prompt.error.expect("an error");
    assert_eq!(error.code, ErrorCode::Unsupported);
    assert_eq!(error.reference.as_deref(), Some("read_only"));

    let renamed = agent
        .command(json!({"ch": "agent", "type": "session.rename", "command_id": cid(), "session_id": session_id, "title": "Renamed in Octo"}))
        .await;
    assert_eq!(renamed.status, AckStatus::Accepted, "{renamed:?}");
    let conversation = read
        .get_conversation(proto::GetConversationRequest {
            conversation_id: session_id.to_string(),
            ..Default::default()
        })
        .await
        .expect("read")
        .into_inner()
        .conversation
        .expect("found");
    assert_eq!(conversation.title.as_deref(), Some("Renamed in Octo"));
}
