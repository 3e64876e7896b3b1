//! The sessions listing (`subscribe_sessions`, PROTOCOL.md 5.3), `replay` (5.4) and
//! `subscribe_log` (5.6) through the WebSocket.

mod support;

use std::time::Duration;

use octo_core::frame::{AckStatus, AgentServerFrame, ServerFrame};
use octo_core::{Body, Command, Encoding, Event, LogEntry, Offset};
use octo_tools::client::{Client, ClientError};
use serde_json::json;
use support::{Agent, Octo, cid, event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listing_streams_changes_and_hides_other_users() {
    let octo = Octo::start(json!([])).await;
    let mut agent = Agent::new(octo.client().await);
    // Started, so that only the rename moves `first` in the listing.
    let (first, _) = agent.create_started_session().await;
    let (second, _) = agent.create_started_session().await;
    let (_, bob_token) = octo
        .server()
        .app()
        .users
        .add("bob", None)
        .expect("adds bob");
    let mut bob = Agent::new(
        Client::connect(&octo.url(), &bob_token, Encoding::Json)
            .await
            .expect("bob"),
    );
    let (bobs, _) = bob.create_session().await;

    agent
        .client
        .send(&json!({"ch": "agent", "type": "subscribe_sessions", "id": "l", "after": null}))
        .await
        .expect("sends");
    let (head, items) = agent
        .until(|frame, _| match frame {
            ServerFrame::Agent(AgentServerFrame::Sessions(sessions)) if sessions.done => {
                Some((sessions.head, sessions.items.clone()))
            }
            _ => None,
        })
        .await;
    let ids: Vec<_> = items.iter().map(|s| s.session_id).collect();
    assert_eq!(
        ids,
        vec![first, second],
        "mine, in updated order; not bob's {bobs}"
    );
    assert!(
        items
            .iter()
            .all(|s| s.harness == "pi" && s.workspace == "demo" && !s.deleted)
    );
    assert!(head >= items.iter().map(|s| s.updated_offset).max().expect("items"));

    // A rename and a delete arrive as live summaries.
    let renamed = agent
        .command(json!({"ch": "agent", "type": "session.rename", "command_id": cid(), "session_id": first, "title": "Named"}))
        .await;
    let summary = agent
        .until(|frame, _| match frame {
            ServerFrame::Agent(AgentServerFrame::SessionSummary(s))
                if s.summary.session_id == first && s.summary.title.as_deref() == Some("Named") =>
            {
                Some(s.summary.clone())
            }
            _ => None,
        })
        .await;
    assert!(summary.updated_offset >= renamed.offset.expect("offset"));
    agent
        .command(json!({"ch": "agent", "type": "session.delete", "command_id": cid(), "session_id": second}))
        .await;
    agent
        .until(|frame, _| match frame {
            ServerFrame::Agent(AgentServerFrame::SessionSummary(s))
                if s.summary.session_id == second && s.summary.deleted =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
    // A deleted session takes no more commands.
    let ack = agent
        .command(json!({"ch": "agent", "type": "prompt", "command_id": cid(), "session_id": second, "text": "hello?"}))
        .await;
    assert_eq!(
        ack.error.map(|e| e.code),
        Some(octo_core::ErrorCode::SessionNotFound)
    );

    // Resuming from the head seen: only what changed since.
    let mut again = Agent::new(octo.client().await);
    again
        .client
        .send(&json!({"ch": "agent", "type": "subscribe_sessions", "id": "l2", "after": summary.updated_offset}))
        .await
        .expect("sends");
    let items = again
        .until(|frame, _| match frame {
            ServerFrame::Agent(AgentServerFrame::Sessions(sessions)) if sessions.done => {
                Some(sessions.items.clone())
            }
            _ => None,
        })
        .await;
    let ids: Vec<_> = items.iter().map(|s| (s.session_id, s.deleted)).collect();
    assert!(ids.contains(&(second, true)), "{ids:?}");
    assert!(
        !ids.iter().any(|(id, _)| *id == first),
        "unchanged since: {ids:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_pages_a_session_and_the_log_tail_is_the_users() {
    let octo = Octo::start(json!([])).await;
    let mut agent = Agent::new(octo.client().await);
    let (session_id, _) = agent.create_session().await;
    for i in 0..6 {
        agent
            .command(json!({"ch": "agent", "type": "session.rename", "command_id": cid(), "session_id": session_id, "title": format!("t{i}")}))
            .await;
    }
    let all: Vec<Offset> = octo
        .log()
        .await
        .into_iter()
        .filter(|e| e.session_id == session_id)
        .map(|e| e.offset)
        .collect();
    // Pages of 5, resumed from next_after, until null.
    let mut pages = Vec::new();
    let mut after: Option<Offset> = None;
    loop {
        agent
            .client
            .send(&json!({"ch": "agent", "type": "replay", "id": "p", "session_id": session_id, "after": after, "limit": 5}))
            .await
            .expect("sends");
        let result = agent
            .until(|frame, _| match frame {
                ServerFrame::Agent(AgentServerFrame::ReplayResult(result)) => Some(result.clone()),
                _ => None,
            })
            .await;
        pages.extend(result.entries.iter().map(|e| e.offset));
        match result.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
        assert!(pages.len() <= all.len(), "replay ends");
    }
    let replayed: Vec<Offset> = pages.into_iter().filter(|o| all.contains(o)).collect();
    assert_eq!(
        replayed,
        all.iter()
            .copied()
            .filter(|o| *o <= *all.last().expect("some"))
            .collect::<Vec<_>>()
    );

    // subscribe_log: the user's entries of one type, from the start, then live.
    agent
        .client
        .send(&json!({"ch": "agent", "type": "subscribe_log", "id": "t", "after": null, "types": ["session.renamed"]}))
        .await
        .expect("sends");
    let seen = agent
        .until(|frame, entries| match frame {
            ServerFrame::Agent(AgentServerFrame::Entry(_)) => {
                let renamed = entries
                    .iter()
                    .filter(|e| e.body.type_name() == "session.renamed")
                    .count();
                (renamed >= 6).then_some(renamed)
            }
            _ => None,
        })
        .await;
    assert_eq!(seen, 6);
    agent
        .command(json!({"ch": "agent", "type": "session.rename", "command_id": cid(), "session_id": session_id, "title": "live"}))
        .await;
    // The live entry may arrive before or after the ack: count what arrived.
    agent
        .until(|_, entries| {
            let renamed = entries
                .iter()
                .filter(|e| e.body.type_name() == "session.renamed")
                .count();
            (renamed >= 7).then_some(())
        })
        .await;
    agent
        .client
        .send(&json!({"ch": "agent", "type": "unsubscribe_log", "id": "t"}))
        .await
        .expect("sends");
    agent
        .until(|frame, _| {
            matches!(
                frame,
                ServerFrame::Agent(AgentServerFrame::UnsubscribedLog(_))
            )
            .then_some(())
        })
        .await;
    agent
        .command(json!({"ch": "agent", "type": "session.rename", "command_id": cid(), "session_id": session_id, "title": "after"}))
        .await;
    assert!(
        matches!(
            agent
                .client
                .next_frame_within(Duration::from_millis(400))
                .await,
            Err(ClientError::Timeout)
        ),
        "nothing after unsubscribe_log"
    );

    // 64 subscriptions at most per connection.
    for i in 0..64 {
        agent
            .client
            .send(&json!({"ch": "agent", "type": "subscribe_log", "id": format!("m{i}"), "after": null, "types": ["nothing.*"]}))
            .await
            .expect("sends");
    }
    agent
        .client
        .send(&json!({"ch": "agent", "type": "subscribe_log", "id": "one-too-many", "after": null}))
        .await
        .expect("sends");
    let error = agent
        .until(|frame, _| match frame {
            ServerFrame::Agent(AgentServerFrame::Error(e)) => Some(e.clone()),
            _ => None,
        })
        .await;
    assert_eq!(error.error.code, octo_core::ErrorCode::LimitExceeded);
    assert_eq!(error.error.reference.as_deref(), Some("max_subscriptions"));
}

/// Renames sent at once from several connections, each connection sending its burst without
/// waiting for acks: one ack per command in the order sent, every one accepted, each command
/// logged right before its own `session.renamed`, and the title the one logged last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_renames_keep_each_command_with_its_event() {
    const CONNECTIONS: usize = 4;
    const PER_CONNECTION: usize = 25;
    let octo = Octo::start(json!([])).await;
    let mut agent = Agent::new(octo.client().await);
    let (session_id, _) = agent.create_started_session().await;
    let mut senders = Vec::new();
    for c in 0..CONNECTIONS {
        let mut client = octo.client().await;
        senders.push(tokio::spawn(async move {
            let ids: Vec<String> = (0..PER_CONNECTION).map(|_| cid()).collect();
            for (k, id) in ids.iter().enumerate() {
                client
                    .send(
                        &json!({"ch": "agent", "type": "session.rename", "command_id": id,
                        "session_id": session_id, "title": format!("c{c} r{k}")}),
                    )
                    .await
                    .expect("sends");
            }
            let mut acks = Vec::new();
            while acks.len() < ids.len() {
                let frame = client
                    .next_frame_within(Duration::from_secs(30))
                    .await
                    .expect("a frame");
                if let ServerFrame::Agent(AgentServerFrame::Ack(ack)) = frame {
                    acks.push(ack);
                }
            }
            (ids, acks)
        }));
    }
    for sender in senders {
        let (ids, acks) = sender.await.expect("the sender ran");
        let acked: Vec<String> = acks.iter().map(|a| a.command_id.to_string()).collect();
        assert_eq!(acked, ids, "one ack per command, in the order sent");
        assert!(
            acks.iter().all(|a| a.status == AckStatus::Accepted),
            "{acks:?}"
        );
        assert!(
            acks.windows(2).all(|pair| pair[0].offset < pair[1].offset),
            "a connection's commands land in the order sent: {acks:?}"
        );
    }
    let log = octo.log().await;
    let at = |offset: Offset| &log[offset.get() as usize - 1];
    let renames: Vec<&LogEntry> = log
        .iter()
        .filter(|e| {
            e.session_id == session_id && matches!(e.body, Body::Command(Command::SessionRename(_)))
        })
        .collect();
    assert_eq!(renames.len(), CONNECTIONS * PER_CONNECTION);
    for rename in &renames {
        let Body::Command(Command::SessionRename(command)) = &rename.body else {
            unreachable!("filtered")
        };
        let next = at(rename.offset.successor());
        assert!(
            matches!(event(next), Some(Event::SessionRenamed(renamed))
                if renamed.title == command.title && renamed.cause == Some(rename.offset)),
            "{} is followed by its own session.renamed, not {next:?}",
            rename.offset
        );
    }
    let Body::Command(Command::SessionRename(last)) = &renames[renames.len() - 1].body else {
        unreachable!("filtered")
    };
    let record = octo
        .server()
        .app()
        .session_record(&session_id)
        .await
        .expect("reads")
        .expect("the session");
    assert_eq!(record.summary.title.as_deref(), Some(last.title.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_commands_is_acked_in_order_and_replies_keep_their_place() {
    let octo = Octo::start(json!([])).await;
    let mut agent = Agent::new(octo.client().await);
    let (session_id, _) = agent.create_started_session().await;
    let unknown = octo_core::SessionId::new();
    let mut client = octo.client().await;
    // Sent back to back, no ack awaited: renames, one for an unknown session, one re-sent id.
    let ids: Vec<String> = (0..30).map(|_| cid()).collect();
    let mut sent = Vec::new();
    for (k, id) in ids.iter().enumerate() {
        let target = if k == 7 { unknown } else { session_id };
        // The re-sent one repeats the 4th command whole: a duplicate, not a conflict.
        let (id, title) = if k == 20 {
            (ids[3].clone(), "r3".to_owned())
        } else {
            (id.clone(), format!("r{k}"))
        };
        client
            .send(
                &json!({"ch": "agent", "type": "session.rename", "command_id": id,
                "session_id": target, "title": title}),
            )
            .await
            .expect("sends");
        sent.push(id);
    }
    client
        .send(&json!({"ch": "system", "type": "ping", "id": "after-the-burst"}))
        .await
        .expect("sends");
    let mut acks = Vec::new();
    loop {
        let frame = client
            .next_frame_within(Duration::from_secs(30))
            .await
            .expect("a frame");
        match frame {
            ServerFrame::Agent(AgentServerFrame::Ack(ack)) => acks.push(ack),
            ServerFrame::System(octo_core::frame::SystemServerFrame::Pong(_)) => break,
            _ => {}
        }
    }
    let acked: Vec<String> = acks.iter().map(|a| a.command_id.to_string()).collect();
    assert_eq!(acked, sent, "every ack before the pong, in the order sent");
    assert_eq!(acks[7].status, AckStatus::Rejected);
    assert_eq!(
        acks[7].error.as_ref().map(|e| e.code),
        Some(octo_core::ErrorCode::SessionNotFound)
    );
    assert_eq!(acks[20].status, AckStatus::Duplicate);
    assert_eq!(acks[20].offset, acks[3].offset, "the first append's offset");
    let landed: Vec<Offset> = acks
        .iter()
        .enumerate()
        .filter(|(k, _)| *k != 7 && *k != 20)
        .map(|(_, ack)| {
            assert_eq!(ack.status, AckStatus::Accepted, "{ack:?}");
            ack.offset.expect("an offset")
        })
        .collect();
    assert!(
        landed.windows(2).all(|pair| pair[0] < pair[1]),
        "placed in the order sent: {landed:?}"
    );
    // Nothing of the refused or re-sent commands is in the log.
    let log = octo.log().await;
    let renames = log
        .iter()
        .filter(|e| matches!(e.body, Body::Command(Command::SessionRename(_))))
        .count();
    assert_eq!(renames, landed.len());
}
