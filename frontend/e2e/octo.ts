// A real Octo for the browser tests: the scripted model on loopback, `octo serve` with the real pi
// in bubblewrap, and `octo-proxy` in front, which the tests use to cut the browser's sockets.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

const root = resolve(import.meta.dirname, '..', '..');
const bin = (name: string) => join(process.env.OCTO_BIN_DIR ?? join(root, 'target', 'debug'), name);

export interface Turn {
  text?: string;
  tool_calls?: { name: string; arguments: unknown }[];
  chunks?: number;
  chunk_delay_ms?: number;
  match?: string;
  hang?: boolean;
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

export interface Octo {
  /** The proxy's URL: what the browser opens. */
  url: string;
  /** octo's own URL, for direct API calls. */
  direct: string;
  token: string;
  dataDir: string;
  cut(): Promise<void>;
  down(): Promise<void>;
  up(): Promise<void>;
  stop(): Promise<void>;
}

function lines(child: ChildProcess) {
  const waiting: ((line: string) => boolean)[] = [];
  const rl = createInterface({ input: child.stdout! });
  rl.on('line', (line) => {
    const index = waiting.findIndex((w) => w(line));
    if (index >= 0) waiting.splice(index, 1);
  });
  return (match: RegExp, timeoutMs = 30_000) =>
    new Promise<RegExpMatchArray>((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`no line matching ${match} in ${timeoutMs} ms`)), timeoutMs);
      waiting.push((line) => {
        const m = line.match(match);
        if (!m) return false;
        clearTimeout(timer);
        ok(m);
        return true;
      });
    });
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 60_000): Promise<T> {
  const start = Date.now();
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface StartOptions {
  /** Octo's own demo mode (its built-in scripted model) instead of the test's script. */
  demo?: boolean;
  /** pi extensions to load in every session. */
  extensions?: string[];
}

/** The repository's root. */
export const repoRoot = root;

export async function startOcto(turns: Turn[], options: StartOptions = {}): Promise<Octo> {
  const dir = mkdtempSync(join(tmpdir(), 'octo-e2e-'));
  const children: ChildProcess[] = [];
  const run = (cmd: string, args: string[], env: Record<string, string> = {}) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...env } });
    children.push(child);
    return child;
  };

  writeFileSync(join(dir, 'script.json'), JSON.stringify(turns));
  const model = run(bin('octo-model'), ['--script', join(dir, 'script.json'), '--echo']);
  const [, port] = await lines(model)(/listening on [\d.]+:(\d+)/);

  const piConfig = join(dir, 'pi');
  mkdirSync(piConfig, { recursive: true });
  const model_ = (id: string, name: string) => ({
    id, name, reasoning: false, input: ['text'], contextWindow: 32000, maxTokens: 4096,
    cost: { input: 3, output: 15, cacheRead: 0, cacheWrite: 0 },
  });
  writeFileSync(join(piConfig, 'models.json'), JSON.stringify({
    providers: { fake: {
      baseUrl: `http://127.0.0.1:${port}/v1`, api: 'openai-completions', apiKey: 'fake-key',
      compat: { supportsDeveloperRole: false, supportsReasoningEffort: false },
      models: [model_('fake-model', 'Fake Model'), model_('fake-model-2', 'Fake Model 2')],
    } },
  }));
  writeFileSync(join(piConfig, 'settings.json'), JSON.stringify({
    defaultProvider: 'fake', defaultModel: 'fake-model', quietStartup: true, enableInstallTelemetry: false,
    retry: { enabled: false, maxRetries: 0, baseDelayMs: 100, provider: { maxRetries: 0 } },
  }));

  const dataDir = join(dir, 'data');
  const workspaces = join(dir, 'workspaces');
  mkdirSync(workspaces, { recursive: true });
  writeFileSync(join(workspaces, 'README.md'), '# e2e workspace\n');
  const models = options.demo ? ['--demo'] : ['--pi-config', piConfig, '--model', 'fake/fake-model'];
  const extensions = (options.extensions ?? []).flatMap((e) => ['--pi-extension', e]);
  run(bin('octo'), [
    'serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--workspaces', workspaces,
    ...models, ...extensions, '--no-hstry',
    '--frontend', join(root, 'frontend', 'dist'),
    '--sandbox', join(dir, 'sandbox.toml'),
  ], { RUST_LOG: process.env.RUST_LOG ?? 'warn' });
  const direct = await until('octo serve to listen', () =>
    existsSync(join(dataDir, 'url')) ? readFileSync(join(dataDir, 'url'), 'utf8').trim() : undefined,
  );
  const token = readFileSync(join(dataDir, 'token'), 'utf8').trim();
  for (let i = 0; ; i++) {
    const ok = await fetch(`${direct}/api/health`).then((r) => r.ok, () => false);
    if (ok) break;
    if (i > 300) throw new Error('octo never became healthy');
    await new Promise((r) => setTimeout(r, 100));
  }

  const proxy = run(bin('octo-proxy'), ['--target', direct.replace('http://', '')]);
  const next = lines(proxy);
  const [, address] = await next(/listening on ([\d.]+:\d+)/);
  const control = async (word: string) => {
    const answered = next(new RegExp(`^${word}$`));
    proxy.stdin!.write(`${word}\n`);
    await answered;
  };

  return {
    url: `http://${address}`,
    direct,
    token,
    dataDir,
    cut: () => control('cut'),
    down: () => control('down'),
    up: () => control('up'),
    async stop() {
      for (const child of children.reverse()) {
        child.kill('SIGTERM');
        await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
