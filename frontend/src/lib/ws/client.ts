import { Connection, type ConnectionOptions, type LogFilter, type SocketFactory, type SocketLike } from './connection';
import type { LogEntry, ProtocolError } from '../protocol';

/**
 * The app's link to the gateway: one connection for commands, sessions and the listing, and one
 * opened on demand for the log view (whose `entry` frames would be ambiguous on the first).
 */
export class OctoClient {
  readonly agent: Connection;
  private log: Connection | null = null;
  private logUsers = 0;

  constructor(private readonly options: Omit<ConnectionOptions, 'url'> & { url?: string }) {
    this.agent = new Connection({ url: this.url(), ...options });
  }

  subscribeLog(
    filter: LogFilter,
    after: number | null,
    handlers: { onEntry(entry: LogEntry): void; onSubscribed?(head: number): void; onError?(e: ProtocolError): void },
  ): () => void {
    // The log connection sends no commands: it must not take over the stored outbox.
    if (!this.log) this.log = new Connection({ url: this.url(), ...this.options, storage: undefined });
    this.logUsers += 1;
    const log = this.log;
    const stop = log.subscribeLog(filter, after, handlers);
    return () => {
      stop();
      this.logUsers -= 1;
      if (this.logUsers === 0 && this.log === log) {
        log.stop();
        this.log = null;
      }
    };
  }

  stop(): void {
    this.agent.stop();
    this.log?.stop();
  }

  private url(): string {
    if (this.options.url) return this.options.url;
    const { protocol, host } = window.location;
    return `${protocol === 'https:' ? 'wss' : 'ws'}://${host}/api/ws`;
  }
}

// The DOM's handler types are wider than SocketLike's; the shapes used are the same.
export const browserSocket: SocketFactory = (url) => new WebSocket(url, ['octo.v1.json']) as unknown as SocketLike;
