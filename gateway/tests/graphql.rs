//! GraphQL at `/graphql`, driven by the ecosystem's real clients (`fetch`, and the `graphql-ws`
//! npm client for subscriptions) against a real `octo` with the real pi and the scripted model:
//! a subscription cut mid-stream and resumed from its last offset gets every later entry exactly
//! once; another user's session is not found on every path; a too-deep query is refused; no
//! credentials, 401. And the served schema is the checked-in SDL.

mod support;

use std::process::Command;

use octo_core::{LogEntry, Offset};
use serde_json::{Value, json};
use support::{Octo, repo_root};

#[test]
fn the_served_schema_is_the_checked_in_sdl() {
    let path = repo_root().join("gateway/schema.graphql");
    let served = octo_gateway::graphql::sdl();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &served).expect("write the schema");
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        served == checked_in,
        "gateway/schema.graphql differs from the served schema; review the change and run \
         UPDATE_SCHEMA=1 cargo nextest run -p octo-gateway --test graphql to accept it"
    );
}

fn offsets(entries: &Value) -> Vec<u64> {
    entries
        .as_array()
        .expect("a list of entries")
        .iter()
        .map(|entry| entry["offset"].as_u64().expect("an offset"))
        .collect()
}

fn code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_clients_query_command_and_resume_subscriptions_exactly_once() {
    let octo = Octo::start(json!([
        {"text": "one two three four five six seven eight nine ten eleven twelve thirteen fourteen",
         "chunks": 14, "chunk_delay_ms": 150}
    ]))
    .await;
    let app = octo.server().app();
    let (_, other_token) = app.users.add("bob", None).expect("a second user");
    let script = repo_root().join("gateway/tests/graphql/scenario.mjs");
    assert!(
        repo_root()
            .join("gateway/tests/graphql/node_modules/graphql-ws")
            .exists(),
        "the GraphQL clients are installed: npm ci --prefix gateway/tests/graphql (scripts/test.sh does)"
    );
    let output = tokio::task::spawn_blocking({
        let (url, token) = (octo.url(), octo.token());
        move || {
            Command::new("node")
                .arg(script)
                .env("OCTO_URL", url)
                .env("OCTO_TOKEN", token)
                .env("OTHER_TOKEN", other_token)
                .output()
                .expect("node runs")
        }
    })
    .await
    .expect("joined");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the client scenario ran: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).expect("one JSON report");

    // No credentials: 401. Too deep: refused, nothing resolved.
    assert_eq!(report["noToken"], 401);
    let deep = report["tooDeep"]["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(deep.contains("nested too deep"), "{}", report["tooDeep"]);
    assert!(report["tooDeep"]["data"].is_null());
    assert_eq!(
        report["me"]["data"]["me"]["name"],
        octo.server().user().name
    );
    let complex = report["tooComplex"]["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(complex.contains("too complex"), "{}", report["tooComplex"]);
    assert_eq!(code(&report["badSessionId"]), Some("invalid_id"));
    assert_eq!(
        code(&report["badCommandId"]),
        Some("invalid_id"),
        "{}",
        report["badCommandId"]
    );
    assert_eq!(code(&report["badOffset"]), Some("invalid_offset"));

    // The mutation's ack is the WebSocket's.
    let created = &report["created"]["data"]["createSession"];
    assert_eq!(created["status"], "ACCEPTED", "{report}");
    let session_id: octo_core::SessionId = created["sessionId"]
        .as_str()
        .expect("a session id")
        .parse()
        .expect("a UUID");

    // Cut mid-stream, resumed from the last offset: the two parts are exactly the session's
    // entries up to the run's end, each once, in order.
    let first = offsets(&report["firstPart"]);
    let second = offsets(&report["secondPart"]);
    assert!(
        report["firstPart"]
            .as_array()
            .and_then(|a| a.last())
            .is_some_and(|e| e["type"] == "stream.text_delta"),
        "the first client was cut in the middle of the stream"
    );
    assert!(!second.is_empty(), "the resumed client got the rest");
    let log: Vec<LogEntry> = octo
        .log()
        .await
        .into_iter()
        .filter(|e| e.session_id == session_id)
        .collect();
    let end = *second.last().expect("an end");
    let expected: Vec<u64> = log
        .iter()
        .map(|e| e.offset.get())
        .filter(|o| *o <= end)
        .collect();
    let got: Vec<u64> = first.iter().chain(&second).copied().collect();
    assert_eq!(got, expected, "every entry once, in order, across the cut");
    assert!(
        report["secondPart"]
            .as_array()
            .is_some_and(|a| a.iter().any(|e| e["type"] == "stream.text_delta")),
        "deltas streamed after the resume too"
    );

    // Queries agree with the log.
    let session = &report["session"]["data"]["session"];
    assert_eq!(session["summary"]["title"], "GraphQL");
    assert_eq!(session["summary"]["runState"], "IDLE");
    let messages = session["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 2, "{session}");
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[0]["text"], "Count slowly.");
    assert!(
        messages[1]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("one two three")),
        "{session}"
    );
    // "Fork here": the user message just before its prompt, the answer at its run's end.
    let prompt_at = log
        .iter()
        .find(|e| e.body.type_name() == "prompt")
        .expect("the prompt")
        .offset
        .get();
    let before_prompt = log
        .iter()
        .map(|e| e.offset.get())
        .filter(|o| *o < prompt_at)
        .filter(|o| {
            !log.iter()
                .any(|e| e.offset.get() == *o && e.body.type_name().starts_with("stream."))
        })
        .max();
    assert_eq!(messages[0]["forkOffset"].as_u64(), before_prompt);
    let idle = log
        .iter()
        .find(|e| e.body.type_name() == "agent.idle")
        .expect("the run's end")
        .offset
        .get();
    assert_eq!(messages[1]["forkOffset"].as_u64(), Some(idle));
    assert!(messages[1]["offset"].as_u64() < Some(idle));
    let as_of = session["asOf"].as_u64().expect("asOf");
    assert!(Offset::new(as_of).expect("offset") >= Offset::new(end).expect("offset"));
    let page = &report["logEntries"]["data"]["logEntries"];
    let all: Vec<u64> = log.iter().map(|e| e.offset.get()).collect();
    assert_eq!(offsets(&page["entries"]), all, "logEntries is the view");
    assert!(page["nextAfter"].is_null(), "the range is exhausted");
    let listed = &report["sessions"]["data"]["sessions"]["edges"];
    assert_eq!(listed[0]["node"]["id"], session_id.to_string());
    assert_eq!(
        report["pages"],
        json!([["Third"], ["Second"], ["GraphQL"]]),
        "cursor pages, newest first, each session once"
    );
    let hits = report["search"]["data"]["search"].as_array().expect("hits");
    assert!(
        hits.iter()
            .any(|hit| hit["sessionId"] == session_id.to_string() && hit["role"] == "user"),
        "{}",
        report["search"]
    );
    let rows = report["analytics"]["data"]["analytics"]
        .as_array()
        .expect("rows");
    assert!(
        rows.iter().any(|row| row["model"] == "fake-model"
            && row["user"] == octo.server().user().id.to_string()
            && row["turns"].as_u64() >= Some(1)),
        "{}",
        report["analytics"]
    );

    // The listing subscription starts with the session; the filtered tail has only agent.*.
    let listed = report["sessionsChanged"].as_array().expect("summaries");
    assert!(
        listed
            .iter()
            .any(|s| s["id"] == session_id.to_string() && s["title"] == "GraphQL"),
        "{listed:?}"
    );
    let tail = report["logTail"].as_array().expect("entries");
    assert!(
        tail.iter()
            .all(|e| e["type"].as_str().is_some_and(|t| t.starts_with("agent.")))
    );
    let tail_offsets: Vec<u64> = tail.iter().filter_map(|e| e["offset"].as_u64()).collect();
    let expected_tail: Vec<u64> = octo
        .log()
        .await
        .iter()
        .filter(|e| e.body.type_name().starts_with("agent."))
        .map(|e| e.offset.get())
        .take(tail_offsets.len())
        .collect();
    assert_eq!(tail_offsets, expected_tail);
    // The cookie of a sign-in works like the bearer token.
    assert_eq!(report["cookie"]["status"], 200, "{}", report["cookie"]);
    assert_eq!(
        report["cookie"]["body"]["data"]["me"]["name"],
        octo.server().user().name
    );

    // Another user: not found, on a query, a mutation and a subscription.
    assert_eq!(
        code(&report["otherSession"]),
        Some("session_not_found"),
        "{}",
        report["otherSession"]
    );
    assert_eq!(
        report["otherPrompt"]["data"]["prompt"]["error"]["code"],
        "session_not_found"
    );
    let refused = report["otherSubscription"].as_str().unwrap_or_default();
    assert!(refused.contains("session_not_found"), "{refused}");
    let anonymous = report["anonymousSubscription"].as_str().unwrap_or_default();
    assert!(
        anonymous.contains("4403") || anonymous.contains("unauthorized"),
        "{anonymous}"
    );
    // Nothing of the refused prompt reached the log.
    let prompts = log
        .iter()
        .filter(|e| e.body.type_name() == "prompt")
        .count();
    assert_eq!(prompts, 1);
}
