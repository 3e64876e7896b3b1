//! A subscriber whose socket is cut mid-stream reconnects with its last offset and gets every
//! later entry exactly once, in order, with no gap between replay and live (PROTOCOL.md 5.1, 5.2,
//! 17): 50 cuts at random points, through Octo's test proxy, while the real pi streams answers.

mod support;

use std::time::Duration;

use octo_core::frame::{AgentServerFrame, ServerFrame};
use octo_core::{Encoding, Offset};
use octo_log::QueueBound;
use octo_tools::client::Client;
use rand::{Rng, SeedableRng};
use serde_json::json;
use support::{Agent, Octo, PATIENCE};

const CUTS: usize = 50;
const PROMPTS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_cuts_lose_nothing_and_repeat_nothing() {
    let turns: Vec<_> = (0..PROMPTS)
        .map(|i| json!({"text": format!("Answer {i}: {}", "word ".repeat(60)), "chunks": 30, "chunk_delay_ms": 60}))
        .collect();
    // A live queue of 2 entries: a slow moment overflows it, and the subscription must fall back
    // to reading the log without a gap.
    let octo = Octo::start_with(json!(turns), |config| {
        config.queue_bound = QueueBound::entries(2)
    })
    .await;
    let proxy =
        octo_tools::proxy::start("127.0.0.1:0".parse().expect("addr"), octo.server().addr())
            .await
            .expect("the proxy starts");
    let proxied = format!("http://{}", proxy.addr());

    let mut writer = Agent::new(octo.client().await);
    let (session_id, _) = writer.create_session().await;
    writer.subscribe(session_id, None).await;
    let mut driver = Some(tokio::spawn(async move {
        let mut last = Offset::ZERO;
        for i in 0..PROMPTS {
            let prompt = writer.prompt(session_id, &format!("question {i}")).await;
            let run = writer.until_run_ends(prompt).await;
            last = run.last().expect("a run").offset;
        }
        last
    }));

    let seed: u64 = rand::random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut received: Vec<Offset> = Vec::new();
    let mut cuts = 0;
    let mut last_offset: Option<Offset> = None;
    let mut final_offset: Option<Offset> = None;
    let caught_up = |last: Option<Offset>, end: Option<Offset>| {
        end.is_some_and(|end| last.is_some_and(|seen| seen >= end))
    };
    'connections: loop {
        let mut client = Client::connect(&proxied, &octo.token(), Encoding::Json)
            .await
            .expect("reconnects through the proxy");
        client
            .send(&json!({"ch": "agent", "type": "subscribe", "id": "r", "session_id": session_id, "after": last_offset}))
            .await
            .expect("subscribes");
        let cut_after = if cuts < CUTS {
            rng.random_range(0..7usize)
        } else {
            usize::MAX
        };
        let mut got = 0usize;
        loop {
            if let Some(handle) = driver.take_if(|handle| handle.is_finished()) {
                final_offset = Some(handle.await.expect("the driver finished"));
            }
            let done = caught_up(last_offset, final_offset);
            if done && cuts >= CUTS {
                break 'connections;
            }
            if got >= cut_after || (done && cuts < CUTS) {
                proxy.cut_all();
                cuts += 1;
                // The old socket ends; nothing more is read from it.
                let _ = client.next_frame_within(Duration::from_secs(5)).await;
                continue 'connections;
            }
            let frame = match client.next_frame_within(Duration::from_millis(300)).await {
                Ok(frame) => frame,
                Err(octo_tools::client::ClientError::Timeout) => continue,
                Err(e) => panic!("the socket failed without a cut: {e}"),
            };
            if let ServerFrame::Agent(AgentServerFrame::Entry(entry)) = frame {
                assert_eq!(entry.session_id, session_id);
                received.push(entry.entry.offset);
                last_offset = Some(entry.entry.offset);
                got += 1;
            }
        }
    }
    assert!(cuts >= CUTS, "{cuts} cuts");
    assert!(
        proxy.accepted() as usize > CUTS,
        "every reconnect went through the proxy"
    );

    // Exactly the session's entries up to the end, each once, in order.
    let expected: Vec<Offset> = octo
        .log()
        .await
        .into_iter()
        .filter(|entry| entry.session_id == session_id)
        .map(|entry| entry.offset)
        .filter(|offset| final_offset.is_some_and(|end| *offset <= end))
        .collect();
    let received: Vec<Offset> = received
        .into_iter()
        .filter(|offset| final_offset.is_some_and(|end| *offset <= end))
        .collect();
    assert_eq!(
        received, expected,
        "seed {seed}: every entry once, in order"
    );
    assert!(
        expected.len() > 100,
        "a long enough stream: {} entries",
        expected.len()
    );
    let _ = PATIENCE;
}
