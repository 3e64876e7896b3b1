import { createContext, useContext, useSyncExternalStore } from 'react';
import type { OctoClient } from './client';
import type { ConnectionState, OutboxItem } from './connection';
import type { Hello } from '../protocol';

export const ClientContext = createContext<OctoClient | null>(null);

export function useClient(): OctoClient {
  const client = useContext(ClientContext);
  if (!client) throw new Error('useClient outside <ClientContext>');
  return client;
}

export function useConnectionState(): ConnectionState {
  const { agent } = useClient();
  return useSyncExternalStore(
    (listener) => agent.listen(listener),
    () => agent.getState(),
  );
}

export function useHello(): Hello | null {
  const { agent } = useClient();
  return useSyncExternalStore(
    (listener) => agent.listen(listener),
    () => agent.getHello(),
  );
}

const noOutbox: OutboxItem[] = [];
let outboxCache: { source: object; items: OutboxItem[]; key: string } | null = null;

/** Commands not acknowledged yet (offline, or in flight). */
export function useOutbox(): OutboxItem[] {
  const { agent } = useClient();
  return useSyncExternalStore(
    (listener) => agent.listen(listener),
    () => {
      const items = agent.getOutbox();
      if (items.length === 0) return noOutbox;
      const key = items.map((i) => i.commandId).join(',');
      if (outboxCache && outboxCache.source === agent && outboxCache.key === key) return outboxCache.items;
      outboxCache = { source: agent, items, key };
      return items;
    },
  );
}
