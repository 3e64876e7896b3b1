// The web UI in Debian's Chromium against a real octo, the real pi in bubblewrap and the scripted
// model. The proxy between the browser and octo cuts real sockets (Playwright's offline mode does
// not cut WebSockets). Screenshots of each step are kept in e2e/artifacts/.
import { expect, test, type Browser, type Page } from '@playwright/test';
import { repoRoot, startOcto, type Octo } from './octo';

const LONG = Array.from({ length: 40 }, (_, i) => `w${String(i + 1).padStart(2, '0')}`).join(' ');
const usage = { prompt_tokens: 1200, completion_tokens: 300, total_tokens: 1500 };
const shots = 'e2e/artifacts';

let octo: Octo;
let page: Page;

async function shot(name: string) {
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}

async function gql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const response = await fetch(`${octo.direct}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${octo.token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data: T; errors?: unknown };
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data;
}

/** Every prompt command in the user's log with this text. */
async function promptsWithText(text: string): Promise<number> {
  let count = 0;
  let after: number | null = null;
  do {
    const { logEntries }: { logEntries: { entries: { type: string; body: { text?: string } }[]; nextAfter: number | null } } =
      await gql('query($after: Offset) { logEntries(after: $after, limit: 1000) { entries { type body } nextAfter } }', { after });
    count += logEntries.entries.filter((e) => e.type === 'prompt' && e.body.text === text).length;
    after = logEntries.nextAfter;
  } while (after !== null);
  return count;
}

const composer = () => page.getByRole('textbox', { name: 'Prompt' });
const messages = () => page.getByTestId('message');
const sessionPath = /\/s\/[0-9a-f-]{36}$/;

async function prompt(text: string) {
  await composer().fill(text);
  await composer().press('Enter');
}

test.describe.serial('Octo in Chromium', () => {
  let firstSession = '';

  test.beforeAll(async ({ browser }: { browser: Browser }) => {
    octo = await startOcto([
      { match: 'zebracorn', text: 'Let me run the tool.', tool_calls: [{ name: 'bash', arguments: { command: 'echo tool-said-$((40+2))' } }], usage },
      { match: 'zebracorn', text: 'The tool printed its answer.', usage },
      { match: 'long story', text: LONG, chunks: 40, chunk_delay_ms: 150, usage },
      { match: 'clean up', text: 'Cleaning up.', tool_calls: [{ name: 'bash', arguments: { command: 'touch junk.txt && rm junk.txt && echo removed' } }] },
      { match: 'removed', text: 'Done cleaning.' },
      { match: 'hang on', text: 'Waiting for you.', hang: true },
    ], { extensions: [`${repoRoot}/gateway/tests/fixtures/confirm-extension.js`] });
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.on('console', (m) => {
      if (m.type() === 'error') console.log(`[browser] ${m.text()}`);
    });
  });

  test.afterAll(async () => {
    await page?.close();
    await octo?.stop();
  });

  test('signs in with the token', async () => {
    await page.goto(octo.url);
    await expect(page.getByRole('form', { name: 'Sign in' })).toBeVisible();
    await page.getByLabel('Token').fill('not-the-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect(page.getByRole('alert')).toBeVisible();
    await page.getByLabel('Token').fill(octo.token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect(page.getByRole('button', { name: 'New session' })).toBeVisible();
    await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'online');
    await shot('01-signed-in');
  });

  test('creates a session, prompts, and shows the streamed answer and the tool call', async () => {
    await page.getByRole('button', { name: 'New session' }).click();
    await expect(page).toHaveURL(sessionPath);
    firstSession = page.url().split('/s/')[1];
    await prompt('Please run the tool for the zebracorn.');
    await expect(messages().filter({ hasText: 'Please run the tool for the zebracorn.' })).toHaveCount(1);
    const tool = page.getByTestId('tool-call').filter({ hasText: 'echo tool-said' });
    await expect(tool).toHaveAttribute('data-tool', 'bash');
    await expect(page.getByTestId('tool-result').filter({ hasText: 'tool-said-42' })).toBeVisible();
    await expect(messages().filter({ hasText: 'The tool printed its answer.' })).toHaveCount(1);
    await expect(page.getByTestId('run-state')).toHaveAttribute('data-state', 'idle');
    await expect(page.getByTestId('session-list').locator(`[data-session="${firstSession}"]`)).toBeVisible();
    await shot('02-tool-call');
  });

  test('a socket cut mid-stream shows every delta exactly once, with no reload', async () => {
    await page.evaluate(() => {
      (window as unknown as { loadedOnce: string }).loadedOnce = 'yes';
      const states: string[] = [];
      (window as unknown as { states: string[] }).states = states;
      const badge = document.querySelector('[data-testid="connection"]')!;
      new MutationObserver(() => states.push(badge.getAttribute('data-state') ?? '')).observe(badge, { attributes: true });
    });
    await prompt('Tell me a long story.');
    const draft = page.locator('[data-testid="message"].streaming .text');
    await expect(draft).toContainText('w06');
    const seen: string[] = [];
    const watch = (async () => {
      for (;;) {
        const text = await draft.first().textContent({ timeout: 200 }).catch(() => null);
        if (text !== null) seen.push(text);
        if (await messages().filter({ hasText: 'w40' }).locator('xpath=self::*[not(contains(@class, "streaming"))]').count()) return;
        await page.waitForTimeout(40);
      }
    })();
    await octo.cut();
    const atCut = seen.length;
    await watch;
    const final = messages().filter({ hasText: 'w40' });
    await expect(final).toHaveCount(1);
    await expect(final.locator('.text')).toHaveText(LONG);
    // Every draft seen while streaming, before and after the cut, was a prefix of the answer:
    // a repeated or lost delta would have shown as text that is not.
    expect(seen.length).toBeGreaterThan(3);
    for (const text of seen) expect(LONG.startsWith(text), `draft "${text}"`).toBe(true);
    // And the stream went on in the same page after the cut: drafts grew past the cut point.
    const lengthAtCut = seen[atCut - 1]?.length ?? 0;
    expect(seen.slice(atCut).some((t) => t.length > lengthAtCut && t !== LONG)).toBe(true);
    const states = await page.evaluate(() => (window as unknown as { states: string[] }).states);
    expect(states).toContain('offline');
    await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'online');
    expect(await page.evaluate(() => (window as unknown as { loadedOnce?: string }).loadedOnce)).toBe('yes');
    await shot('03-after-cut');
  });

  test('a prompt typed while cut off is sent once when back', async () => {
    await octo.down();
    await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'offline');
    await prompt('typed while offline');
    await expect(page.getByTestId('unsent')).toHaveCount(1);
    await expect(page.getByTestId('connection')).toContainText('1 waiting to send');
    await shot('04-offline-outbox');
    // Long enough for several reconnection attempts to fail.
    await page.waitForTimeout(1500);
    await octo.up();
    await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'online', { timeout: 30_000 });
    await expect(messages().filter({ hasText: 'echo: typed while offline' })).toHaveCount(1);
    await expect(messages().filter({ hasText: /^you.*typed while offline$/ })).toHaveCount(1);
    await expect(page.getByTestId('unsent')).toHaveCount(0);
    expect(await promptsWithText('typed while offline')).toBe(1);
    await shot('05-back-online');
  });

  test('forks from an assistant message and prompts in the fork', async () => {
    const answer = messages().filter({ hasText: 'The tool printed its answer.' });
    await answer.getByRole('button', { name: 'Fork here' }).click();
    await expect(page).not.toHaveURL(new RegExp(firstSession));
    await expect(page).toHaveURL(sessionPath);
    const fork = page.url().split('/s/')[1];
    // The fork's view holds the parent's conversation up to the fork point, and nothing after.
    await expect(messages().filter({ hasText: 'The tool printed its answer.' })).toHaveCount(1);
    await expect(messages().filter({ hasText: 'w40' })).toHaveCount(0);
    // The call ended before the fork: its state comes from the result, not from live events.
    await expect(page.getByTestId('tool-call').first().locator('.tool-state')).toHaveText(/^done/);
    const node = page.getByTestId('session-list').locator(`li:has(> [data-session="${firstSession}"]) [data-session="${fork}"]`);
    await expect(node).toBeVisible();
    await expect(node.locator('.fork-point')).toBeVisible();
    await prompt('hello from the fork');
    await expect(messages().filter({ hasText: 'echo: hello from the fork' })).toHaveCount(1);
    await shot('06-fork');
  });

  test('the replay scrubber moves through the session by offset', async () => {
    await page.goto(`${octo.url}/s/${firstSession}`);
    await expect(messages().filter({ hasText: 'w40' })).toHaveCount(1);
    await page.getByRole('button', { name: 'Replay' }).click();
    const slider = page.getByRole('slider', { name: 'Replay position' });
    await expect(slider).toBeVisible();
    const max = Number(await slider.getAttribute('max'));
    expect(max).toBeGreaterThan(20);
    await slider.fill('0');
    await expect(messages()).toHaveCount(0);
    await slider.fill(String(max));
    await expect(messages().filter({ hasText: 'w40' })).toHaveCount(1);
    const entries = await page.getByTestId('replay-offset').textContent();
    expect(entries).toContain(`entry ${max} / ${max}`);
    await page.getByRole('button', { name: 'Back to live' }).click();
    await expect(page.getByRole('textbox', { name: 'Prompt' })).toBeVisible();
    await shot('07-replay');
  });

  test("an extension's question is a dialog, and the answer reaches the agent", async () => {
    await page.getByRole('button', { name: 'New session' }).click();
    await expect(page).toHaveURL(sessionPath);
    await prompt('please clean up the junk');
    const dialog = page.getByRole('dialog', { name: 'Dangerous command' });
    await expect(dialog).toBeVisible();
    await expect(dialog).toContainText('rm junk.txt');
    await shot('08-input-dialog');
    await dialog.getByRole('button', { name: 'Yes' }).click();
    await expect(dialog).toHaveCount(0);
    await expect(page.getByTestId('tool-result').filter({ hasText: 'removed' })).toBeVisible();
    await expect(messages().filter({ hasText: 'Done cleaning.' })).toHaveCount(1);
  });

  test('aborts a run, changes the model, renames and deletes a session', async () => {
    await page.getByRole('button', { name: 'New session' }).click();
    await expect(page).toHaveURL(sessionPath);
    const session = page.url().split('/s/')[1];
    await prompt('please hang on');
    await expect(messages().filter({ hasText: 'Waiting for you.' })).toHaveCount(1);
    await expect(page.getByTestId('run-state')).toHaveAttribute('data-state', 'working');
    await page.getByRole('button', { name: 'Abort' }).click();
    await expect(page.getByTestId('run-state')).toHaveAttribute('data-state', 'idle');
    await expect(page.getByRole('button', { name: 'Abort' })).toHaveCount(0);

    await page.getByRole('combobox', { name: 'Model' }).selectOption('fake/fake-model-2');
    await expect(page.locator('.session-head')).toContainText('fake/fake-model-2');

    await page.getByRole('button', { name: 'Rename' }).click();
    await page.getByRole('textbox', { name: 'Title' }).fill('Renamed in the browser');
    await page.getByRole('button', { name: 'Save' }).click();
    await expect(page.getByTestId('session-title')).toHaveText('Renamed in the browser');
    const link = page.getByTestId('session-list').locator(`[data-session="${session}"]`);
    await expect(link).toContainText('Renamed in the browser');
    await shot('09-renamed');

    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByRole('button', { name: 'Delete' }).click();
    await expect(page).toHaveURL(`${octo.url}/`);
    await expect(link).toHaveCount(0);
  });

  test('search finds the earlier session by a word in its content', async () => {
    await page.getByRole('button', { name: 'New session' }).click();
    await expect(page).toHaveURL(sessionPath);
    await expect(page).not.toHaveURL(new RegExp(firstSession));
    await page.getByRole('searchbox', { name: 'Search sessions' }).fill('zebracorn');
    const hit = page.getByTestId('search-hit').filter({ hasText: 'zebracorn' }).first();
    await expect(hit).toBeVisible();
    await shot('10-search');
    await hit.click();
    await expect(page).toHaveURL(new RegExp(`/s/${firstSession}$`));
    await expect(messages().filter({ hasText: 'Please run the tool for the zebracorn.' })).toHaveCount(1);
  });

  test('the analytics page shows the session tokens', async () => {
    await page.getByRole('link', { name: 'Analytics' }).click();
    const table = page.getByTestId('analytics-table');
    const rows = table.locator('tbody tr');
    await expect(rows.first()).toBeVisible();
    // Summed over the days shown: a run across midnight UTC puts the turns on two days.
    const cells = await rows.locator('td:nth-child(2)').allTextContents();
    const input = cells.reduce((sum, cell) => sum + Number(cell.replace(/,/g, '')), 0);
    expect(input).toBeGreaterThanOrEqual(1200 * 3);
    await expect(page.getByTestId('total-input')).not.toHaveText('0');
    await expect(page.locator('.recharts-bar-rectangle').first()).toBeVisible();
    await shot('11-analytics');
  });

  test('the log view tails the log, filtered', async () => {
    await page.getByRole('link', { name: 'Log' }).click();
    await expect(page.getByTestId('log-list').locator('.log-row').first()).toBeVisible();
    await page.getByRole('textbox', { name: 'Types' }).fill('tool.*');
    await page.getByRole('button', { name: 'Apply' }).click();
    await expect(page.getByTestId('log-list').locator('.log-row .type').first()).toHaveText(/^tool\./);
    const types = await page.getByTestId('log-list').locator('.log-row .type').allTextContents();
    expect(types.every((t) => t.startsWith('tool.'))).toBe(true);
    await shot('12-log');
  });

  test('signs out, and the API refuses the old cookie', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await expect(page.getByRole('form', { name: 'Sign in' })).toBeVisible();
    const status = await page.evaluate(() =>
      fetch('/graphql', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{ me { id } }"}' }).then((r) => r.status),
    );
    expect(status).toBe(401);
  });
});

test.describe('Octo in demo mode', () => {
  test('says so in a banner', async ({ browser }: { browser: Browser }) => {
    const demo = await startOcto([], { demo: true });
    const tab = await browser.newPage();
    try {
      await tab.goto(demo.url);
      await tab.getByLabel('Token').fill(demo.token);
      await tab.getByRole('button', { name: 'Sign in' }).click();
      await expect(tab.getByTestId('demo-banner')).toContainText('Demo mode');
      await tab.screenshot({ path: `${shots}/13-demo.png` });
    } finally {
      await tab.close();
      await demo.stop();
    }
  });
});
