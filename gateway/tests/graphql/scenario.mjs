// Drives Octo's /graphql with the ecosystem's own clients: fetch for queries and mutations, the
// `graphql-ws` client (graphql-transport-ws) for subscriptions. Prints one JSON report; the Rust
// test `gateway/tests/graphql.rs` starts the server and judges the report against the log.
//
// Env: OCTO_URL (http://host:port), OCTO_TOKEN (the user), OTHER_TOKEN (another user).

import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const url = process.env.OCTO_URL;
const token = process.env.OCTO_TOKEN;
const otherToken = process.env.OTHER_TOKEN;
const wsUrl = `${url.replace(/^http/, 'ws')}/graphql`;
const report = {};

function uuid7() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const ms = BigInt(Date.now());
  for (let i = 0; i < 6; i++) bytes[i] = Number((ms >> BigInt(8 * (5 - i))) & 0xffn);
  bytes[6] = (bytes[6] & 0x0f) | 0x70;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

async function gql(query, variables, bearer = token) {
  const headers = { 'content-type': 'application/json' };
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query, variables }),
  });
  const text = await response.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: response.status, body };
}

function client(connectionToken) {
  return createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: connectionToken ? { token: connectionToken } : {},
    retryAttempts: 0,
    lazy: true,
  });
}

const EVENTS = `subscription Events($id: ID!, $after: Offset) {
  sessionEvents(sessionId: $id, after: $after) { offset type sessionId }
}`;

/// Subscribes and calls `onEntry(entry, stop)` per entry until `stop()`; resolves with the entries.
function follow(ws, variables, onEntry) {
  return new Promise((resolve, reject) => {
    const got = [];
    let done = false;
    const stop = () => {
      done = true;
      resolve(got);
    };
    ws.subscribe(
      { query: EVENTS, variables },
      {
        next: (message) => {
          if (done) return;
          if (message.errors) {
            done = true;
            reject(new Error(JSON.stringify(message.errors)));
            return;
          }
          const entry = message.data.sessionEvents;
          got.push(entry);
          onEntry(entry, stop);
        },
        error: (error) => {
          if (done) return;
          const why =
            error instanceof Error
              ? error.message
              : Array.isArray(error)
                ? JSON.stringify(error)
                : `closed ${error?.code} ${error?.reason}`;
          reject(new Error(why));
        },
        complete: () => {
          if (!done) resolve(got);
        },
      },
    );
  });
}

function withTimeout(promise, ms, what) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms)),
  ]);
}

// No credentials: 401, before any GraphQL runs.
report.noToken = (await gql('{ me { id } }', {}, null)).status;

// A query deeper than the limit is refused.
const deep = `{ sessions { edges { node { forks { forks { forks { forks { forks { forks { forks {
  forks { forks { id } } } } } } } } } } } } }`;
report.tooDeep = (await gql(deep, {})).body;

report.me = (await gql('{ me { id name } }', {})).body;

// Too costly: a thousand log entries with every field is over the complexity limit.
report.tooComplex = (
  await gql('{ logEntries(limit: 1000) { entries { offset tsMs sessionId userId kind type producer seq commandId json body } } }', {})
).body;

// Bad ids are typed errors that change nothing.
report.badSessionId = (await gql('{ session(id: "not-a-session") { id } }', {})).body;
report.badCommandId = (
  await gql(
    'mutation { createSession(commandId: "not-a-uuid", workspace: "demo") { status } }',
    {},
  )
).body;
report.badOffset = (await gql('{ logEntries(after: 999999999) { nextAfter } }', {})).body;

// A session, through a mutation.
const created = await gql(
  `mutation Create($cid: ID!) {
     createSession(commandId: $cid, workspace: "demo", model: {provider: "fake", modelId: "fake-model"}, title: "GraphQL") {
       commandId status offset sessionId error { code message ref }
     }
   }`,
  { cid: uuid7() },
);
report.created = created.body;
const sessionId = created.body.data.createSession.sessionId;

// The subscription, dropped mid-stream and resumed from its last offset.
const first = client(token);
let prompted = false;
const firstPart = await withTimeout(
  follow(first, { id: sessionId, after: null }, (entry, stop) => {
    if (!prompted && entry.type === 'harness.started') {
      prompted = true;
      gql(
        `mutation Prompt($cid: ID!, $sid: ID!) {
           prompt(commandId: $cid, sessionId: $sid, text: "Count slowly.") { status offset }
         }`,
        { cid: uuid7(), sid: sessionId },
      ).then((ack) => {
        report.prompt = ack.body;
      });
    }
    if (entry.type === 'stream.text_delta') {
      // Cut the socket at once: no complete, no goodbye.
      first.terminate();
      stop();
    }
  }),
  60000,
  'the first part of the stream',
);
report.firstPart = firstPart;
const last = firstPart[firstPart.length - 1].offset;
const second = client(token);
const secondPart = await withTimeout(
  follow(second, { id: sessionId, after: last }, (entry, stop) => {
    if (['agent.idle', 'run.failed', 'run.timed_out'].includes(entry.type)) stop();
  }),
  60000,
  'the resumed stream',
);
report.secondPart = secondPart;
await second.dispose();

// Queries over what happened.
report.session = (
  await gql(
    `query Session($id: ID!) {
       session(id: $id) {
         id asOf nextBefore
         summary { title runState messageCount harness workspace model { provider modelId } }
         messages { role text offset forkOffset }
         openRun { runId }
       }
     }`,
    { id: sessionId },
  )
).body;
report.sessions = (
  await gql(
    `{ sessions(first: 10) { edges { cursor node { id title runState } } pageInfo { hasNextPage } } }`,
    {},
  )
).body;
// Cursor pages: two more sessions, then one at a time, newest first.
const settled = client(token);
for (const title of ['Second', 'Third']) {
  const made = await gql(
    'mutation C($cid: ID!, $t: String) { createSession(commandId: $cid, workspace: "demo", title: $t) { sessionId } }',
    { cid: uuid7(), t: title },
  );
  // Its pi starts at once; wait for that, so the listing holds still while it is paged.
  await withTimeout(
    follow(settled, { id: made.body.data.createSession.sessionId, after: null }, (entry, stop) => {
      if (entry.type.startsWith('harness.')) stop();
    }),
    60000,
    'the new session\'s harness',
  );
}
await settled.dispose();
report.pages = [];
let cursor = null;
for (;;) {
  const page = (
    await gql(
      'query P($after: String) { sessions(first: 1, after: $after) { edges { cursor node { title } } pageInfo { hasNextPage endCursor } } }',
      { after: cursor },
    )
  ).body.data.sessions;
  report.pages.push(page.edges.map((e) => e.node.title));
  if (!page.pageInfo.hasNextPage) break;
  cursor = page.pageInfo.endCursor;
}
report.logEntries = (
  await gql(
    `query Log($id: ID!) { logEntries(filter: {sessionId: $id}, limit: 1000) { entries { offset type } nextAfter } }`,
    { id: sessionId },
  )
).body;
report.search = (
  await gql(`{ search(query: "slowly") { sessionId role snippet } }`, {})
).body;
report.analytics = (
  await gql(`{ analytics(groupBy: [DAY, USER, MODEL]) { day user model outputTokens turns } }`, {})
).body;

// The other subscriptions: the listing, and the log tail with a filter.
async function collect(ws, query, variables, field, until) {
  return new Promise((resolve, reject) => {
    const got = [];
    const dispose = ws.subscribe(
      { query, variables },
      {
        next: (message) => {
          if (message.errors) {
            reject(new Error(JSON.stringify(message.errors)));
            return;
          }
          got.push(message.data[field]);
          if (until(message.data[field], got)) {
            dispose();
            resolve(got);
          }
        },
        error: (error) => reject(error instanceof Error ? error : new Error(JSON.stringify(error))),
        complete: () => resolve(got),
      },
    );
  });
}
const more = client(token);
report.sessionsChanged = await withTimeout(
  collect(
    more,
    'subscription { sessionsChanged(after: null) { id title runState updatedOffset } }',
    {},
    'sessionsChanged',
    (summary) => summary.id === sessionId,
  ),
  20000,
  'sessionsChanged',
);
report.logTail = await withTimeout(
  collect(
    more,
    'subscription { logTail(filter: {types: ["agent.*"]}, after: null) { offset type sessionId } }',
    {},
    'logTail',
    (entry) => entry.type === 'agent.idle',
  ),
  20000,
  'logTail',
);
await more.dispose();

// A browser's way in: the session cookie from POST /api/login, no bearer.
const login = await fetch(`${url}/api/login`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ token }),
});
const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0];
const withCookie = await fetch(`${url}/graphql`, {
  method: 'POST',
  headers: { 'content-type': 'application/json', cookie },
  body: JSON.stringify({ query: '{ me { name } }' }),
});
report.cookie = { status: withCookie.status, body: await withCookie.json() };

// Another user: the session does not exist for them, on every path.
report.otherSession = (
  await gql(`query S($id: ID!) { session(id: $id) { id } }`, { id: sessionId }, otherToken)
).body;
report.otherPrompt = (
  await gql(
    `mutation P($cid: ID!, $sid: ID!) { prompt(commandId: $cid, sessionId: $sid, text: "hi") { status error { code } } }`,
    { cid: uuid7(), sid: sessionId },
    otherToken,
  )
).body;
const other = client(otherToken);
try {
  await withTimeout(follow(other, { id: sessionId, after: null }, () => {}), 20000, 'refusal');
  report.otherSubscription = 'delivered';
} catch (error) {
  report.otherSubscription = String(error.message);
}
await other.dispose();

// A subscription without any credentials is refused at connection_init.
const anonymous = client(null);
try {
  await withTimeout(follow(anonymous, { id: sessionId, after: null }, () => {}), 20000, 'anon');
  report.anonymousSubscription = 'delivered';
} catch (error) {
  report.anonymousSubscription = String(error.message ?? error);
}
await anonymous.dispose();

console.log(JSON.stringify(report));
process.exit(0);
