// The browser half of `octo-bench ui` (tools/src/bench/ui.rs): opens a seeded long session in
// Debian's Chromium and prints one JSON object of timings (medians of --runs runs). Times are taken
// inside the page with performance.now(), to the frame the element became visible.
import { chromium } from '@playwright/test';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { url: { type: 'string' }, token: { type: 'string' }, session: { type: 'string' }, runs: { type: 'string', default: '5' } },
});
const { url, token, session } = values;
const runs = Number(values.runs);
if (!url || !token || !session) throw new Error('usage: bench-ui.mjs --url URL --token TOKEN --session ID [--runs N]');

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const round = (x) => Math.round(x * 10) / 10;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const login = await context.request.post(`${url}/api/login`, { data: { token } });
  if (!login.ok()) throw new Error(`login: ${login.status()}`);

  // The newest and the oldest message, from GraphQL pages of 200.
  const gql = async (query, variables) => {
    const response = await context.request.post(`${url}/graphql`, { data: { query, variables } });
    const body = await response.json();
    if (body.errors) throw new Error(JSON.stringify(body.errors));
    return body.data;
  };
  const page1 = await gql('query($id: ID!) { session(id: $id) { messages { id } nextBefore } }', { id: session });
  const newest = page1.session.messages.at(-1).id;
  let oldest = page1.session.messages[0].id;
  for (let before = page1.session.nextBefore; before !== null; ) {
    const more = await gql('query($id: ID!, $before: Offset) { session(id: $id, before: $before) { messages { id } nextBefore } }', { id: session, before });
    oldest = more.session.messages[0]?.id ?? oldest;
    before = more.session.nextBefore;
  }

  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));

  /**
   * In the page: ms from the start of `action` (`click` on a selector, or `top`: keep the message
   * list scrolled to its top) to the first frame where `target` is inside the message list.
   */
  const untilVisible = (target, action, clickOn) =>
    page.evaluate(
      ([sel, act, click]) =>
        new Promise((resolve, reject) => {
          const visible = () => {
            const el = document.querySelector(sel);
            const list = document.querySelector('[data-testid="messages"]');
            if (!el || !list) return false;
            const r = el.getBoundingClientRect();
            const l = list.getBoundingClientRect();
            return r.bottom > l.top && r.top < l.bottom && r.height > 0;
          };
          const started = performance.now();
          if (act === 'click') document.querySelector(click).click();
          const step = () => {
            if (act === 'top') {
              const list = document.querySelector('[data-testid="messages"]');
              if (list) list.scrollTop = 0;
            }
            if (visible()) resolve(performance.now() - started);
            else if (performance.now() - started > 120_000) reject(new Error(`${sel} not visible in 120 s`));
            else requestAnimationFrame(step);
          };
          step();
        }),
      [target, action, clickOn],
    );

  const loads = [];
  const opens = [];
  const tops = [];
  const frames = [];
  for (let run = 0; run < runs; run++) {
    // Cold: the whole app loads, signs in by cookie, snapshots the session, renders the newest.
    await page.goto('about:blank');
    await page.goto(`${url}/s/${session}`);
    await page.locator(`[data-message-id="${newest}"]`).waitFor({ state: 'visible', timeout: 120_000 });
    loads.push(await page.evaluate(() => performance.now()));

    // In the app: from the click in the sidebar to the newest message on screen.
    await page.goto(`${url}/`);
    const link = page.locator(`a[data-session="${session}"]`);
    await link.waitFor({ state: 'visible' });
    opens.push(await untilVisible(`[data-message-id="${newest}"]`, 'click', `a[data-session="${session}"]`));

    // Scrolling to the very first message: older pages load as the top nears.
    tops.push(await untilVisible(`[data-message-id="${oldest}"]`, 'top'));

    // Fling down through everything loaded, one big step per frame; frame times on the way.
    frames.push(
      ...(await page.evaluate(
        () =>
          new Promise((resolve) => {
            const list = document.querySelector('[data-testid="messages"]');
            const times = [];
            let last = performance.now();
            const step = () => {
              const now = performance.now();
              times.push(now - last);
              last = now;
              list.scrollTop += 2500;
              if (list.scrollTop + list.clientHeight >= list.scrollHeight - 2 || times.length > 2000) resolve(times.slice(1));
              else requestAnimationFrame(step);
            };
            requestAnimationFrame(step);
          }),
      )),
    );
  }
  frames.sort((a, b) => a - b);
  console.log(
    JSON.stringify({
      runs,
      load_ms: round(median(loads)),
      open_ms: round(median(opens)),
      scroll_top_ms: round(median(tops)),
      frames: frames.length,
      frame_p50_ms: round(frames[Math.floor(frames.length * 0.5)]),
      frame_p99_ms: round(frames[Math.floor(frames.length * 0.99)]),
      frame_max_ms: round(frames.at(-1)),
      goal_open_ms: 200,
    }),
  );
} finally {
  await browser.close();
}
