//! `snapshot` (PROTOCOL.md 5.5): a session opened with one read and then subscribed after its
//! `as_of` shows exactly what a full replay shows, also in the middle of a streamed answer.

mod support;

use octo_core::frame::{AgentServerFrame, ServerFrame, SnapshotResult};
use octo_core::message::{Part, Role};
use octo_core::{Event, LogEntry, Message, MessageId};
use serde_json::json;
use support::{Agent, Octo, event, messages_of};

async fn snapshot(
    agent: &mut Agent,
    session_id: octo_core::SessionId,
    before: Option<octo_core::Offset>,
) -> SnapshotResult {
    agent
        .client
        .send(&json!({"ch": "agent", "type": "snapshot", "id": "snap", "session_id": session_id, "before": before}))
        .await
        .expect("sends");
    agent
        .until(|frame, _| match frame {
            ServerFrame::Agent(AgentServerFrame::SnapshotResult(result)) => Some(result.clone()),
            ServerFrame::Agent(AgentServerFrame::Error(e)) => panic!("snapshot failed: {e:?}"),
            _ => None,
        })
        .await
}

/// The text of a message's text parts.
fn text_of(message: &Message) -> String {
    message
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) => Some(t.text.clone()),
            _ => None,
        })
        .collect()
}

/// The text streamed into `message_id` by the deltas among `entries`.
fn streamed_text(entries: &[LogEntry], message_id: MessageId) -> String {
    entries
        .iter()
        .filter_map(|e| match event(e) {
            Some(Event::StreamTextDelta(delta)) if delta.message_id == message_id => {
                Some(delta.delta.clone())
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_then_a_subscription_equals_a_full_replay() {
    let octo = Octo::start(json!([
        {"text": "Listing.", "tool_calls": [{"name": "bash", "arguments": {"command": "echo one"}}], "match": "first"},
        {"text": "It said one.", "match": "one"},
        {"text": "A long answer, streamed slowly so that the snapshot falls in the middle of it.",
         "chunks": 20, "chunk_delay_ms": 150, "match": "second"}
    ]))
    .await;
    let mut writer = Agent::new(octo.client().await);
    let (session_id, _) = writer.create_session().await;
    writer.subscribe(session_id, None).await;
    let prompt = writer.prompt(session_id, "first").await;
    writer.until_run_ends(prompt).await;

    // Between runs: four completed messages, no open run.
    let mut reader = Agent::new(octo.client().await);
    let idle = snapshot(&mut reader, session_id, None).await;
    let roles: Vec<Role> = idle.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [Role::User, Role::Assistant, Role::Tool, Role::Assistant]
    );
    assert!(idle.open_run.is_none());
    assert_eq!(idle.summary.session_id, session_id);
    assert_eq!(
        idle.messages,
        messages_of(&writer.entries),
        "the same messages as a replay"
    );
    assert!(idle.next_before.is_none());

    // Mid-stream: the draft so far, then the rest from the subscription.
    let prompt = writer.prompt(session_id, "second").await;
    writer
        .until(|_, entries| {
            (streamed_text(
                entries,
                entries.iter().rev().find_map(|e| match event(e) {
                    Some(Event::StreamMessageStart(start)) if e.offset > prompt => {
                        Some(start.message_id)
                    }
                    _ => None,
                })?,
            )
            .len()
                > 10)
                .then_some(())
        })
        .await;
    let mid = snapshot(&mut reader, session_id, None).await;
    let open = mid.open_run.clone().expect("a run is open");
    let draft = open.draft.expect("a draft");
    let draft_text = text_of(&draft);
    assert!(
        !draft_text.is_empty(),
        "the draft holds what streamed so far"
    );
    reader.entries.clear();
    reader.subscribe(session_id, Some(mid.as_of)).await;
    reader.until_run_ends(prompt).await;
    let after: Vec<LogEntry> = reader
        .entries
        .iter()
        .filter(|e| e.offset > mid.as_of)
        .cloned()
        .collect();
    let run_end = writer.until_run_ends(prompt).await;
    let full = messages_of(&writer.entries);
    let final_message = full.last().expect("the answer").clone();
    // Draft + later deltas = the final text; snapshot messages + later messages = the replay's.
    let final_text = text_of(&final_message);
    assert_eq!(
        draft.id, final_message.id,
        "the draft is the message that completed"
    );
    assert_eq!(
        format!("{draft_text}{}", streamed_text(&after, draft.id)),
        final_text
    );
    let mut rebuilt = mid.messages.clone();
    rebuilt.extend(messages_of(&after));
    assert_eq!(rebuilt, full, "snapshot + subscription = full replay");
    assert!(
        run_end
            .iter()
            .any(|e| matches!(event(e), Some(Event::AgentIdle(_))))
    );

    // Paging older messages with `before`.
    let newest = snapshot(&mut reader, session_id, None).await;
    assert_eq!(newest.messages.len(), 6);
    assert!(
        newest.next_before.is_none(),
        "fewer than 200 messages: one page"
    );
}
