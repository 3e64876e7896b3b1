//! Replay (PROTOCOL.md 5.4) over long ranges and across a fork's view, and `rerun` (a new session
//! on another model that is sent the source's prompts one after another) with the real pi and the
//! scripted model.

mod support;

use octo_core::event::{Notice, NoticeLevel};
use octo_core::frame::{AgentServerFrame, ReplayResult, ServerFrame};
use octo_core::{Body, Command, Event, LogEntry, Offset, ProducerId, SessionId};
use octo_log::{NewEntry, SeqSpec};
use serde_json::json;
use support::{Agent, Octo, cid, event};

async fn replay(
    agent: &mut Agent,
    session_id: SessionId,
    after: Offset,
    until: Option<Offset>,
    limit: u32,
) -> ReplayResult {
    let id = format!("r{}", rand::random::<u32>());
    agent
        .client
        .send(
            &json!({"ch": "agent", "type": "replay", "id": id, "session_id": session_id,
            "after": after, "until": until, "limit": limit}),
        )
        .await
        .expect("sends");
    agent
        .until(|frame, _| match frame {
            ServerFrame::Agent(AgentServerFrame::ReplayResult(result))
                if result.id.as_str() == id =>
            {
                Some(result.clone())
            }
            _ => None,
        })
        .await
}

/// Appends `n` small events to `session_id`, as its owner, in batches.
async fn notices(octo: &Octo, session_id: SessionId, n: usize) {
    let app = octo.server().app();
    let user = octo.server().user().id.clone();
    let producer = ProducerId::new("test-notices").expect("producer");
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let batch = chunk
            .iter()
            .map(|i| {
                NewEntry::event(
                    user.clone(),
                    session_id,
                    producer.clone(),
                    SeqSpec::Next,
                    Event::Notice(Notice {
                        level: NoticeLevel::Info,
                        text: format!("notice {i}"),
                    }),
                )
            })
            .collect();
        app.log.append(batch).await.expect("appended");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_returns_exactly_the_range_in_order_and_walks_a_forks_view() {
    let octo = Octo::start(json!([])).await;
    let mut agent = Agent::new(octo.client().await);
    // Started, so that nothing else lands in it while it is read whole and paged.
    let (source, _) = agent.create_started_session().await;
    notices(&octo, source, 1500).await;
    let own: Vec<LogEntry> = octo
        .log()
        .await
        .into_iter()
        .filter(|e| e.session_id == source)
        .collect();
    assert!(own.len() > 1500);

    // A 1,000-entry range in one page: exactly those entries, in order.
    let after = own[100].offset;
    let until = own[1100].offset;
    let page = replay(&mut agent, source, after, Some(until), 1000).await;
    let got: Vec<Offset> = page.entries.iter().map(|e| e.offset).collect();
    let expected: Vec<Offset> = own[101..=1100].iter().map(|e| e.offset).collect();
    assert_eq!(got.len(), 1000);
    assert_eq!(got, expected);
    assert_eq!(page.entries, own[101..=1100].to_vec(), "the same entries");
    assert_eq!(page.next_after, None, "the range is exhausted");

    // Paging the whole session 333 at a time: every entry once.
    let mut cursor = Offset::ZERO;
    let mut all = Vec::new();
    loop {
        let page = replay(&mut agent, source, cursor, None, 333).await;
        assert!(page.entries.len() <= 333);
        all.extend(page.entries.iter().map(|e| e.offset));
        match page.next_after {
            Some(next) => cursor = next,
            None => break,
        }
    }
    assert_eq!(all, own.iter().map(|e| e.offset).collect::<Vec<_>>());

    // A fork in the middle: its view is the source's first part, then its own entries.
    let at = own[700].offset;
    let ack = agent
        .command(json!({"ch": "agent", "type": "fork", "command_id": cid(),
            "session_id": source, "at_offset": at}))
        .await;
    let fork = ack.session_id.expect("the fork");
    notices(&octo, fork, 50).await;
    notices(&octo, source, 50).await;
    let log = octo.log().await;
    let view: Vec<Offset> = log
        .iter()
        .filter(|e| (e.session_id == source && e.offset <= at) || e.session_id == fork)
        .map(|e| e.offset)
        .collect();
    let mut cursor = Offset::ZERO;
    let mut got = Vec::new();
    loop {
        let page = replay(&mut agent, fork, cursor, None, 250).await;
        got.extend(page.entries.iter().map(|e| e.offset));
        match page.next_after {
            Some(next) => cursor = next,
            None => break,
        }
    }
    assert_eq!(got, view, "the fork's view, inherited part first");
    // A range that straddles the fork point.
    let straddle = replay(&mut agent, fork, own[650].offset, None, 100).await;
    let expected: Vec<Offset> = view
        .iter()
        .copied()
        .filter(|o| *o > own[650].offset)
        .take(100)
        .collect();
    assert_eq!(
        straddle
            .entries
            .iter()
            .map(|e| e.offset)
            .collect::<Vec<_>>(),
        expected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_sends_the_sources_prompts_in_order_on_the_chosen_model() {
    let octo = Octo::start(json!([
        {"text": "First answer."},
        {"text": "Second answer."},
        {"text": "Third answer."},
        {"text": "Rerun answer one."},
        {"text": "Rerun answer two."},
        {"text": "Rerun answer three."}
    ]))
    .await;
    let mut agent = Agent::new(octo.client().await);
    let (source, _) = agent.create_session().await;
    agent.subscribe(source, None).await;
    let prompts = ["Alpha?", "Beta?", "Gamma?"];
    for text in prompts {
        let prompt = agent.prompt(source, text).await;
        agent.until_run_ends(prompt).await;
    }

    let command_id = cid();
    let rerun = |command_id: String| {
        let (url, token) = (octo.url(), octo.token());
        async move {
            octo_tools::graphql::request(
                &url,
                &token,
                "mutation Rerun($cid: ID!, $sid: ID!) {
                   rerun(commandId: $cid, sessionId: $sid, model: {provider: \"fake\", modelId: \"fake-model-2\"}) {
                     status sessionId offset error { code }
                   }
                 }",
                json!({"cid": command_id, "sid": source}),
            )
            .await
            .expect("the mutation answers")
        }
    };
    let first = rerun(command_id.clone()).await;
    assert_eq!(first["rerun"]["status"], "ACCEPTED", "{first}");
    let rerun_id: SessionId = first["rerun"]["sessionId"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    assert_ne!(rerun_id, source);

    // Follow the rerun until its third run ends.
    let mut follower = Agent::new(octo.client().await);
    follower.subscribe(rerun_id, None).await;
    let entries = follower
        .until(|_, entries| {
            let ended = entries
                .iter()
                .filter(|e| matches!(event(e), Some(Event::AgentIdle(_) | Event::RunFailed(_))))
                .count();
            (ended == 3).then(|| entries.to_vec())
        })
        .await;
    let created = entries
        .iter()
        .find_map(|e| match event(e) {
            Some(Event::SessionCreated(created)) => Some(created.clone()),
            _ => None,
        })
        .expect("session.created");
    assert_eq!(created.rerun_of, Some(source));
    assert_eq!(
        created.model.as_ref().map(|m| m.model_id.as_str()),
        Some("fake-model-2")
    );
    // The prompts, in order, each sent only once the previous run had ended.
    let mut sent = Vec::new();
    let mut last_end = Offset::ZERO;
    for entry in &entries {
        match &entry.body {
            Body::Command(Command::Prompt(prompt)) => {
                assert!(
                    entry.offset > last_end,
                    "a prompt waits for the previous run"
                );
                sent.push(prompt.text.clone());
                last_end = Offset::MAX;
            }
            Body::Event(Event::AgentIdle(_)) => last_end = entry.offset,
            _ => {}
        }
    }
    assert_eq!(sent, prompts);
    // The model was asked on the rerun's model, with the rerun's own growing context.
    let requests = octo.model.requests();
    let rerun_requests: Vec<_> = requests
        .iter()
        .filter(|r| r.body["model"] == "fake-model-2")
        .collect();
    assert_eq!(rerun_requests.len(), 3, "three requests on fake-model-2");
    assert_eq!(
        rerun_requests[2].body["messages"]
            .as_array()
            .map(|m| m.iter().filter(|m| m["role"] == "user").count()),
        Some(3)
    );

    // The same command id again: the same session, nothing new.
    let again = rerun(command_id).await;
    assert_eq!(again["rerun"]["status"], "DUPLICATE", "{again}");
    assert_eq!(again["rerun"]["sessionId"], first["rerun"]["sessionId"]);
    let reruns = octo
        .log()
        .await
        .iter()
        .filter(|e| matches!(event(e), Some(Event::SessionCreated(c)) if c.rerun_of.is_some()))
        .count();
    assert_eq!(reruns, 1);
    // Another user's (or an unknown) session cannot be rerun.
    let unknown = octo_tools::graphql::request(
        &octo.url(),
        &octo.token(),
        "mutation R($cid: ID!, $sid: ID!) { rerun(commandId: $cid, sessionId: $sid) { status error { code } } }",
        json!({"cid": cid(), "sid": SessionId::new()}),
    )
    .await
    .expect("answers");
    assert_eq!(unknown["rerun"]["error"]["code"], "session_not_found");
}
