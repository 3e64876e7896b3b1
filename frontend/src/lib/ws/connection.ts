// One WebSocket to `/api/ws` (PROTOCOL.md 3): hello, reconnection with backoff, resumption of every
// subscription from its last offset, an outbox of commands that survives a drop, and requests that
// are re-sent after one. Components never see the socket; they go through `OctoClient`.
import {
  commandId as newCommandId,
  ServerFrame,
  type CommandBody,
  type FrameOf,
  type Hello,
  type LogEntry,
  type ProtocolError,
  type SessionSummary,
} from '../protocol';

/** The part of the browser's `WebSocket` this module uses, so tests can drive it. */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: never) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: never) => void) | null;
}
export type SocketFactory = (url: string) => SocketLike;

/** `connecting` before the first hello, `online` after it, `offline` while waiting to retry. */
export type ConnectionState = 'connecting' | 'online' | 'offline' | 'signed_out';

export type Ack = FrameOf<'ack'>;

export class RequestError extends Error {
  constructor(readonly error: ProtocolError) {
    super(`${error.code}: ${error.message}`);
  }
}

export interface Backoff {
  baseMs: number;
  maxMs: number;
  /** 0..1; the jitter's share of each delay. */
  jitter: number;
}

export interface ConnectionOptions {
  url: string;
  socket: SocketFactory;
  backoff?: Backoff;
  /** How often the client pings; a missing pong after `pingMs` more closes the socket. */
  pingMs?: number;
  /** Asked after a connection fails before its hello: false means the credentials are gone. */
  stillSignedIn?: () => Promise<boolean>;
  /**
   * Where the outbox is kept across page loads (the browser's sessionStorage): commands typed
   * offline are sent after a reload too, under their original ids.
   */
  storage?: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;
  random?: () => number;
}

interface SessionHandlers {
  onEntry(entry: LogEntry): void;
  /** The server's head when the (re)subscription started: caught up once it is seen. */
  onSubscribed?(head: number): void;
  /** The cursor belongs to another log (`invalid_offset`): drop local state, it restarts from null. */
  onReset?(): void;
  onError?(error: ProtocolError): void;
}

interface SessionsHandlers {
  onChunk(items: SessionSummary[], head: number, done: boolean): void;
  onSummary(summary: SessionSummary): void;
  onError?(error: ProtocolError): void;
}

export interface LogFilter {
  kinds?: ('command' | 'event')[];
  types?: string[];
}

type Subscription =
  | { kind: 'session'; id: string; sessionId: string; after: number | null; handlers: SessionHandlers }
  | { kind: 'sessions'; id: string; after: number | null; handlers: SessionsHandlers }
  | {
      kind: 'log';
      id: string;
      after: number | null;
      filter: LogFilter;
      handlers: SessionHandlers;
      /**
       * Whether its `subscribed_log` came since it was (re)sent. Log `entry` frames name no
       * subscription, and those of one just replaced may still be in flight: until then they are
       * the old one's.
       */
      live: boolean;
    };

interface Pending {
  frame: Record<string, unknown>;
  resolve(frame: ServerFrame): void;
  reject(error: Error): void;
}

interface Outgoing {
  frame: Record<string, unknown>;
  resolve(ack: Ack): void;
}

/** What the outbox holds: shown by the UI as "waiting to send". */
export interface OutboxItem {
  commandId: string;
  sessionId: string | undefined;
  body: CommandBody;
}

const OUTBOX_KEY = 'octo.outbox';

const DEFAULT_BACKOFF: Backoff = { baseMs: 250, maxMs: 8000, jitter: 0.3 };

export class Connection {
  private socket: SocketLike | null = null;
  private state: ConnectionState = 'connecting';
  private hello: Hello | null = null;
  private attempt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private awaitingPong: string | null = null;
  private nextId = 1;
  private stopped = false;
  private readonly subs = new Map<string, Subscription>();
  private readonly sessionSubs = new Map<string, string>();
  private readonly requests = new Map<string, Pending>();
  private readonly outbox = new Map<string, Outgoing & OutboxItem>();
  private readonly listeners = new Set<() => void>();
  private readonly options: Required<Omit<ConnectionOptions, 'stillSignedIn' | 'storage'>> &
    Pick<ConnectionOptions, 'stillSignedIn' | 'storage'>;

  constructor(options: ConnectionOptions) {
    this.options = {
      backoff: DEFAULT_BACKOFF,
      pingMs: 15_000,
      random: Math.random,
      ...options,
    };
    this.restoreOutbox();
    this.open();
  }

  // ---- state for the UI

  getState(): ConnectionState {
    return this.state;
  }

  getHello(): Hello | null {
    return this.hello;
  }

  getOutbox(): OutboxItem[] {
    return [...this.outbox.values()].map(({ commandId, sessionId, body }) => ({ commandId, sessionId, body }));
  }

  /** Called on every change of state, hello or outbox. */
  listen(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Stops for good (sign-out, unmount). */
  stop(): void {
    this.stopped = true;
    this.clearTimers();
    this.socket?.close(1000);
    this.socket = null;
    for (const pending of this.requests.values()) pending.reject(new Error('connection stopped'));
    this.requests.clear();
  }

  /** Reconnects now instead of waiting for the backoff (the browser says it is online again). */
  retryNow(): void {
    if (this.stopped || this.state !== 'offline') return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.open();
  }

  // ---- commands

  /**
   * Sends a logged command once: it waits in the outbox while offline and is re-sent with the same
   * `command_id` after a drop until its ack arrives, so the server sees it at most once.
   */
  command(body: CommandBody, sessionId?: string): { commandId: string; ack: Promise<Ack> } {
    const id = newCommandId();
    const frame: Record<string, unknown> = { ch: 'agent', ...body, command_id: id };
    if (sessionId) frame.session_id = sessionId;
    const ack = new Promise<Ack>((resolve) => {
      this.outbox.set(id, { frame, resolve, commandId: id, sessionId, body });
    });
    this.saveOutbox();
    this.notify();
    if (this.state === 'online') this.write(frame);
    return { commandId: id, ack };
  }

  // ---- requests

  /** A read (snapshot, replay): re-sent after a drop until answered. */
  request<T extends ServerFrame['type']>(frame: Record<string, unknown>, expect: T): Promise<FrameOf<T>> {
    const id = `q${this.nextId++}`;
    const full = { ch: 'agent', ...frame, id };
    return new Promise<FrameOf<T>>((resolve, reject) => {
      this.requests.set(id, {
        frame: full,
        resolve: (reply) => {
          if (reply.type === expect) resolve(reply as FrameOf<T>);
          else reject(new Error(`expected ${expect}, got ${reply.type}`));
        },
        reject,
      });
      if (this.state === 'online') this.write(full);
    });
  }

  // ---- subscriptions

  /** Follows one session's view after `after`, resuming from the last delivered offset. */
  subscribeSession(sessionId: string, after: number | null, handlers: SessionHandlers): () => void {
    const previous = this.sessionSubs.get(sessionId);
    if (previous) this.subs.delete(previous);
    const id = `s${this.nextId++}`;
    this.subs.set(id, { kind: 'session', id, sessionId, after, handlers });
    this.sessionSubs.set(sessionId, id);
    this.sendSubscription(id);
    return () => {
      if (!this.subs.delete(id)) return;
      if (this.sessionSubs.get(sessionId) === id) this.sessionSubs.delete(sessionId);
      if (this.state === 'online') this.write({ ch: 'agent', type: 'unsubscribe', id, session_id: sessionId });
    };
  }

  /** The user's session listing, then every change (PROTOCOL.md 5.3). */
  subscribeSessions(handlers: SessionsHandlers): () => void {
    const id = `l${this.nextId++}`;
    this.subs.set(id, { kind: 'sessions', id, after: null, handlers });
    this.sendSubscription(id);
    return () => {
      if (!this.subs.delete(id)) return;
      if (this.state === 'online') this.write({ ch: 'agent', type: 'unsubscribe_sessions', id });
    };
  }

  /**
   * The user's whole log (PROTOCOL.md 5.6). Its `entry` frames look like a session subscription's,
   * so a connection carries either log subscriptions or session subscriptions, never both;
   * `OctoClient` gives the log a connection of its own.
   */
  subscribeLog(filter: LogFilter, after: number | null, handlers: SessionHandlers): () => void {
    const id = `g${this.nextId++}`;
    this.subs.set(id, { kind: 'log', id, after, filter, handlers, live: false });
    this.sendSubscription(id);
    return () => {
      if (!this.subs.delete(id)) return;
      if (this.state === 'online') this.write({ ch: 'agent', type: 'unsubscribe_log', id });
    };
  }

  // ---- the outbox across page loads

  private saveOutbox(): void {
    const storage = this.options.storage;
    if (!storage) return;
    try {
      if (this.outbox.size === 0) storage.removeItem(OUTBOX_KEY);
      else storage.setItem(OUTBOX_KEY, JSON.stringify(this.getOutbox()));
    } catch {
      // Full or refused storage: the outbox still lives in memory.
    }
  }

  private restoreOutbox(): void {
    const stored = this.options.storage?.getItem(OUTBOX_KEY);
    if (!stored) return;
    try {
      for (const item of JSON.parse(stored) as OutboxItem[]) {
        const frame: Record<string, unknown> = { ch: 'agent', ...item.body, command_id: item.commandId };
        if (item.sessionId) frame.session_id = item.sessionId;
        this.outbox.set(item.commandId, { ...item, frame, resolve: () => {} });
      }
    } catch {
      this.options.storage?.removeItem(OUTBOX_KEY);
    }
  }

  // ---- the socket

  private open(): void {
    if (this.stopped) return;
    this.setState(this.attempt === 0 ? 'connecting' : 'offline');
    let socket: SocketLike;
    try {
      socket = this.options.socket(this.options.url);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.socket = socket;
    socket.onmessage = (event) => {
      if (this.socket === socket) this.receive(event.data);
    };
    socket.onclose = () => {
      if (this.socket === socket) this.dropped();
    };
    socket.onerror = () => {
      // A close follows; reconnection happens there.
    };
  }

  private dropped(): void {
    const hadHello = this.hello !== null && this.state === 'online';
    this.socket = null;
    this.clearTimers();
    if (this.stopped) return;
    this.setState('offline');
    if (!hadHello && this.options.stillSignedIn) {
      void this.options.stillSignedIn().then(
        (signedIn) => {
          if (signedIn) this.scheduleRetry();
          else this.setState('signed_out');
        },
        () => this.scheduleRetry(),
      );
    } else {
      this.scheduleRetry();
    }
  }

  private scheduleRetry(): void {
    if (this.stopped || this.retryTimer) return;
    const { baseMs, maxMs, jitter } = this.options.backoff;
    const raw = Math.min(maxMs, baseMs * 2 ** this.attempt);
    const delay = raw * (1 - jitter + jitter * this.options.random());
    this.attempt += 1;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.open();
    }, delay);
  }

  private clearTimers(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
    this.awaitingPong = null;
  }

  private write(frame: Record<string, unknown>): void {
    const socket = this.socket;
    if (!socket || socket.readyState !== 1) return;
    try {
      socket.send(JSON.stringify(frame));
    } catch {
      // The close handler reconnects and re-sends.
    }
  }

  private receive(data: unknown): void {
    if (typeof data !== 'string') return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      console.error('octo: a frame that is not JSON', data.slice(0, 200));
      return;
    }
    const result = ServerFrame.safeParse(parsed);
    if (!result.success) {
      console.error('octo: a frame outside the protocol', result.error.issues, parsed);
      return;
    }
    this.dispatch(result.data);
  }

  private dispatch(frame: ServerFrame): void {
    switch (frame.type) {
      case 'hello':
        this.hello = frame;
        this.attempt = 0;
        this.setState('online');
        this.resume();
        return;
      case 'pong':
        if (frame.id === this.awaitingPong) this.awaitingPong = null;
        return;
      case 'harnesses':
        if (this.hello) this.hello = { ...this.hello, harnesses: frame.harnesses };
        this.notify();
        return;
      case 'ack': {
        const waiting = this.outbox.get(frame.command_id);
        if (!waiting) return;
        this.outbox.delete(frame.command_id);
        this.saveOutbox();
        waiting.resolve(frame);
        this.notify();
        return;
      }
      case 'entry':
        this.deliverEntry(frame.session_id, frame.entry);
        return;
      case 'sessions': {
        const sub = this.subs.get(frame.id);
        if (sub?.kind !== 'sessions') return;
        for (const item of frame.items) sub.after = Math.max(sub.after ?? 0, item.updated_offset);
        if (frame.done) sub.after = Math.max(sub.after ?? 0, frame.head);
        sub.handlers.onChunk(frame.items, frame.head, frame.done);
        return;
      }
      case 'session_summary':
        for (const sub of this.subs.values()) {
          if (sub.kind !== 'sessions') continue;
          sub.after = Math.max(sub.after ?? 0, frame.summary.updated_offset);
          sub.handlers.onSummary(frame.summary);
        }
        return;
      case 'subscribed': {
        const sub = this.subs.get(frame.id);
        if (sub && sub.kind !== 'sessions') sub.handlers.onSubscribed?.(frame.head);
        return;
      }
      case 'subscribed_log': {
        const sub = this.subs.get(frame.id);
        if (sub?.kind === 'log') sub.live = true;
        if (sub && sub.kind !== 'sessions' && frame.head !== undefined) sub.handlers.onSubscribed?.(frame.head);
        return;
      }
      case 'error':
        this.failed(frame.id, frame.error);
        return;
      default: {
        const id = 'id' in frame ? frame.id : undefined;
        const pending = id === undefined ? undefined : this.requests.get(id);
        if (pending && id !== undefined) {
          this.requests.delete(id);
          pending.resolve(frame);
        }
      }
    }
  }

  private deliverEntry(frameSession: string, entry: LogEntry): void {
    const subId = this.sessionSubs.get(frameSession);
    const candidates = subId ? [this.subs.get(subId)] : [...this.subs.values()].filter((s) => s.kind === 'log');
    for (const sub of candidates) {
      if (!sub || sub.kind === 'sessions' || (sub.kind === 'log' && !sub.live)) continue;
      // Dedupe by offset: a resumed subscription never delivers an offset twice, whatever the
      // server re-sends around a drop.
      if (sub.after !== null && entry.offset <= sub.after) continue;
      sub.after = entry.offset;
      sub.handlers.onEntry(entry);
    }
  }

  private failed(id: string | undefined, error: ProtocolError): void {
    if (id === undefined) {
      console.error('octo: system error', error);
      return;
    }
    const pending = this.requests.get(id);
    if (pending) {
      this.requests.delete(id);
      pending.reject(new RequestError(error));
      return;
    }
    const sub = this.subs.get(id);
    if (!sub) return;
    if (sub.kind !== 'sessions' && error.code === 'invalid_offset' && sub.after !== null) {
      sub.after = null;
      sub.handlers.onReset?.();
      this.sendSubscription(id);
      return;
    }
    this.subs.delete(id);
    if (sub.kind === 'session' && this.sessionSubs.get(sub.sessionId) === id) this.sessionSubs.delete(sub.sessionId);
    sub.handlers.onError?.(error);
  }

  /** After a hello: every subscription from its cursor, then the reads, then the outbox in order. */
  private resume(): void {
    for (const id of this.subs.keys()) this.sendSubscription(id);
    for (const pending of this.requests.values()) this.write(pending.frame);
    for (const item of this.outbox.values()) this.write(item.frame);
    this.startPing();
  }

  private sendSubscription(id: string): void {
    if (this.state !== 'online') return;
    const sub = this.subs.get(id);
    if (!sub) return;
    switch (sub.kind) {
      case 'session':
        this.write({ ch: 'agent', type: 'subscribe', id, session_id: sub.sessionId, after: sub.after });
        return;
      case 'sessions':
        this.write({ ch: 'agent', type: 'subscribe_sessions', id, after: sub.after });
        return;
      case 'log': {
        sub.live = false;
        const frame: Record<string, unknown> = { ch: 'agent', type: 'subscribe_log', id, after: sub.after };
        if (sub.filter.kinds?.length) frame.kinds = sub.filter.kinds;
        if (sub.filter.types?.length) frame.types = sub.filter.types;
        this.write(frame);
      }
    }
  }

  private startPing(): void {
    this.clearTimers();
    this.pingTimer = setInterval(() => {
      if (this.awaitingPong) {
        // No pong for a whole interval: the path is dead even if the socket has not noticed.
        this.socket?.close(4000, 'no pong');
        this.dropped();
        return;
      }
      this.awaitingPong = `ping-${this.nextId++}`;
      this.write({ ch: 'system', type: 'ping', id: this.awaitingPong });
    }, this.options.pingMs);
  }

  private setState(state: ConnectionState): void {
    if (this.state === state) return;
    this.state = state;
    this.notify();
  }

  private notify(): void {
    for (const listener of this.listeners) listener();
  }
}
