import { useEffect, useState } from 'react';
import type { SessionSummary } from '@/lib/protocol';
import { useClient } from '@/lib/ws';
import { mergeSummaries } from './store';

/** The live listing (`subscribe_sessions`), resumed after drops by the connection. */
export function useSessions(): { sessions: Map<string, SessionSummary>; loaded: boolean } {
  const client = useClient();
  const [state, setState] = useState({ sessions: new Map<string, SessionSummary>(), loaded: false });
  useEffect(
    () =>
      client.agent.subscribeSessions({
        onChunk: (items, _head, done) =>
          setState((s) => ({ sessions: mergeSummaries(s.sessions, items), loaded: s.loaded || done })),
        onSummary: (summary) => setState((s) => ({ ...s, sessions: mergeSummaries(s.sessions, [summary]) })),
      }),
    [client],
  );
  return state;
}
