// The protocol client against a scripted socket: resume from the last offset, the outbox, dedupe.
// (The end-to-end tests run the same client in Chromium against a real gateway and a real cut.)
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Connection, type ConnectionOptions, type SocketLike } from './connection';

const S = '0193f1a0-5c2e-7b40-9a11-3c5e7d9f0b21';
const RUN = '0193f1a0-5c2e-7b40-9a11-000000007000';

class FakeSocket implements SocketLike {
  readyState = 0;
  sent: Record<string, unknown>[] = [];
  onopen: SocketLike['onopen'] = null;
  onmessage: SocketLike['onmessage'] = null;
  onclose: SocketLike['onclose'] = null;
  onerror: SocketLike['onerror'] = null;
  send(data: string) {
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }
  close() {
    this.readyState = 3;
  }
  /** The server side. */
  open() {
    this.readyState = 1;
    this.frame({
      ch: 'system', type: 'hello', protocol: { major: 1, minor: 0 }, encoding: 'json', server_version: '0.1.0',
      demo: true, workspaces_root: '/w', connection_id: '0193f1a2-0b00-7e00-8000-000000000001',
      user: { id: 'u1', name: 'alice' }, capabilities: [], harnesses: [],
      limits: { max_frame_bytes: 1, max_entry_bytes: 1, max_subscriptions: 64, max_terminals: 8, max_prompt_bytes: 1, max_images: 8, read_chunk_bytes: 1 },
    });
  }
  frame(frame: Record<string, unknown>) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  cut() {
    this.readyState = 3;
    this.onclose?.({ code: 1006, reason: '' });
  }
  ofType(type: string) {
    return this.sent.filter((f) => f.type === type);
  }
}

function entry(offset: number) {
  return {
    ch: 'agent', type: 'entry', session_id: S,
    entry: { offset, ts_ms: 1, user_id: 'u1', session_id: S, kind: 'event', producer: { id: 'rn', seq: offset },
      body: { type: 'agent.working', run_id: RUN } },
  };
}

describe('Connection', () => {
  let sockets: FakeSocket[];
  let connection: Connection;
  const socket = () => sockets[sockets.length - 1];

  /** A connection whose sockets are fakes, collected in `sockets`. */
  const connect = (options: Partial<ConnectionOptions> = {}) => {
    sockets = [];
    return new Connection({
      url: 'ws://test/api/ws',
      socket: () => {
        const s = new FakeSocket();
        sockets.push(s);
        return s;
      },
      backoff: { baseMs: 100, maxMs: 1000, jitter: 0 },
      pingMs: 60_000,
      ...options,
    });
  };

  beforeEach(() => {
    vi.useFakeTimers();
    connection = connect();
  });
  afterEach(() => {
    connection.stop();
    vi.useRealTimers();
  });

  it('resumes a subscription from the last offset it delivered, never twice', () => {
    const seen: number[] = [];
    connection.subscribeSession(S, 10, { onEntry: (e) => seen.push(e.offset) });
    socket().open();
    expect(socket().ofType('subscribe')).toMatchObject([{ session_id: S, after: 10 }]);
    const id = socket().ofType('subscribe')[0].id;
    socket().frame({ ch: 'agent', type: 'subscribed', id, session_id: S, head: 13 });
    for (const o of [11, 12, 13]) socket().frame(entry(o));
    socket().cut();
    vi.advanceTimersByTime(100);
    expect(sockets).toHaveLength(2);
    socket().open();
    expect(socket().ofType('subscribe')).toMatchObject([{ session_id: S, after: 13 }]);
    // A server re-sending around the drop changes nothing: offsets at or below 13 are dropped.
    for (const o of [12, 13, 14, 15]) socket().frame(entry(o));
    expect(seen).toEqual([11, 12, 13, 14, 15]);
    expect(connection.getState()).toBe('online');
  });

  it('gives a replaced log subscription none of the old one\'s entries still in flight', () => {
    const first: number[] = [];
    const second: number[] = [];
    socket().open();
    const stop = connection.subscribeLog({}, null, { onEntry: (e) => first.push(e.offset) });
    const [old] = socket().ofType('subscribe_log');
    socket().frame({ ch: 'agent', type: 'subscribed_log', id: old.id, head: 40 });
    socket().frame(entry(1));
    // A new filter replaces it while the server is still sending the old one's backlog.
    stop();
    connection.subscribeLog({ types: ['tool.*'] }, null, { onEntry: (e) => second.push(e.offset) });
    const replacing = socket().ofType('subscribe_log')[1];
    expect(replacing).toMatchObject({ after: null, types: ['tool.*'] });
    for (const o of [2, 3, 30]) socket().frame(entry(o));
    socket().frame({ ch: 'agent', type: 'unsubscribed_log', id: old.id });
    socket().frame({ ch: 'agent', type: 'subscribed_log', id: replacing.id, head: 40 });
    // Its own replay from the start: not taken for duplicates of what the old one sent.
    for (const o of [5, 20, 41]) socket().frame(entry(o));
    expect(first).toEqual([1]);
    expect(second).toEqual([5, 20, 41]);
  });

  it('keeps commands typed offline in the outbox and sends each once when back', async () => {
    socket().cut();
    expect(connection.getState()).toBe('offline');
    const { commandId, ack } = connection.command({ type: 'prompt', text: 'typed while cut' }, S);
    expect(connection.getOutbox()).toHaveLength(1);
    vi.advanceTimersByTime(100);
    socket().open();
    expect(socket().ofType('prompt')).toMatchObject([{ command_id: commandId, session_id: S, text: 'typed while cut' }]);
    socket().frame({ ch: 'agent', type: 'ack', command_id: commandId, status: 'accepted', offset: 42, session_id: S });
    await expect(ack).resolves.toMatchObject({ status: 'accepted', offset: 42 });
    expect(connection.getOutbox()).toHaveLength(0);
    socket().cut();
    vi.advanceTimersByTime(100);
    socket().open();
    expect(socket().ofType('prompt')).toHaveLength(0);
  });

  it('keeps the outbox across a page load when given storage, and clears it once acked', () => {
    const stored = new Map<string, string>();
    const storage = {
      getItem: (k: string) => stored.get(k) ?? null,
      setItem: (k: string, v: string) => void stored.set(k, v),
      removeItem: (k: string) => void stored.delete(k),
    };
    connection.stop();
    connection = connect({ storage });
    socket().cut();
    const { commandId } = connection.command({ type: 'prompt', text: 'typed before the reload' }, S);
    connection.stop();
    // The page loads again: a new connection finds the command and sends it once, same id.
    connection = connect({ storage });
    expect(connection.getOutbox()).toMatchObject([{ commandId }]);
    socket().open();
    expect(socket().ofType('prompt')).toMatchObject([{ command_id: commandId, session_id: S, text: 'typed before the reload' }]);
    socket().frame({ ch: 'agent', type: 'ack', command_id: commandId, status: 'accepted', offset: 9, session_id: S });
    expect(stored.size).toBe(0);
    expect(connect({ storage }).getOutbox()).toEqual([]);
  });

  it('re-sends an unacknowledged command with the same id after a drop', async () => {
    socket().open();
    const { commandId, ack } = connection.command({ type: 'abort' }, S);
    expect(socket().ofType('abort')).toHaveLength(1);
    socket().cut();
    vi.advanceTimersByTime(100);
    socket().open();
    expect(socket().ofType('abort')).toMatchObject([{ command_id: commandId }]);
    socket().frame({ ch: 'agent', type: 'ack', command_id: commandId, status: 'duplicate', offset: 7, session_id: S });
    await expect(ack).resolves.toMatchObject({ status: 'duplicate', offset: 7 });
  });

  it('subscribes again before sending the outbox, as the worked example does', () => {
    connection.subscribeSession(S, 140, { onEntry: () => {} });
    connection.command({ type: 'prompt', text: 'Now run `ls`.' }, S);
    socket().open();
    expect(socket().sent.map((f) => f.type)).toEqual(['subscribe', 'prompt']);
  });

  it('starts over from null when the cursor belongs to another log', () => {
    let resets = 0;
    connection.subscribeSession(S, 500, { onEntry: () => {}, onReset: () => resets++ });
    socket().open();
    const id = socket().ofType('subscribe')[0].id;
    socket().frame({ ch: 'agent', type: 'error', id, error: { code: 'invalid_offset', message: 'beyond the head', ref: 'after' } });
    expect(resets).toBe(1);
    expect(socket().ofType('subscribe')).toMatchObject([{ after: 500 }, { after: null }]);
  });

  it('backs off exponentially up to the cap and resets after a hello', () => {
    socket().cut();
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      const before = sockets.length;
      let waited = 0;
      while (sockets.length === before) {
        vi.advanceTimersByTime(50);
        waited += 50;
      }
      delays.push(waited);
      socket().cut();
    }
    expect(delays).toEqual([100, 200, 400, 800, 1000, 1000]);
    vi.advanceTimersByTime(1000);
    socket().open();
    socket().cut();
    let waited = 0;
    const before = sockets.length;
    while (sockets.length === before) {
      vi.advanceTimersByTime(50);
      waited += 50;
    }
    expect(waited).toBe(100);
  });

  it('re-sends a read that was in flight when the socket dropped', async () => {
    socket().open();
    const reply = connection.request({ type: 'replay', session_id: S, after: null }, 'replay_result');
    socket().cut();
    vi.advanceTimersByTime(100);
    socket().open();
    const [frame] = socket().ofType('replay');
    socket().frame({ ch: 'agent', type: 'replay_result', id: frame.id, session_id: S, entries: [], next_after: null });
    await expect(reply).resolves.toMatchObject({ next_after: null });
  });

  it('says signed out when a connection fails and the credentials are gone', async () => {
    connection.stop();
    connection = connect({ stillSignedIn: () => Promise.resolve(false) });
    socket().cut();
    await vi.runAllTimersAsync();
    expect(connection.getState()).toBe('signed_out');
    expect(sockets).toHaveLength(1);
  });

  it('ignores frames outside the protocol', () => {
    const seen: number[] = [];
    const error = vi.spyOn(console, 'error').mockImplementation(() => {});
    connection.subscribeSession(S, null, { onEntry: (e) => seen.push(e.offset) });
    socket().open();
    socket().frame({ ch: 'agent', type: 'entry', session_id: S, entry: { offset: 'x' } });
    socket().onmessage?.({ data: 'not json' });
    socket().frame(entry(1));
    expect(seen).toEqual([1]);
    expect(error).toHaveBeenCalledTimes(2);
    error.mockRestore();
  });
});
