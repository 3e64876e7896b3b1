import { useEffect, useState } from 'react';
import type { FrameOf, LogEntry } from '@/lib/protocol';
import { useClient } from '@/lib/ws';

/** Every entry of a session's view (`replay`, pages of 1,000), for the scrubber. */
export function useReplay(sessionId: string, enabled: boolean) {
  const client = useClient();
  const [entries, setEntries] = useState<LogEntry[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (!enabled) return;
    let cancelled = false;
    (async () => {
      const all: LogEntry[] = [];
      let after: number | null = null;
      for (;;) {
        const page: FrameOf<'replay_result'> = await client.agent.request(
          { type: 'replay', session_id: sessionId, after, limit: 1000 },
          'replay_result',
        );
        all.push(...page.entries);
        if (page.next_after === null || page.entries.length === 0) break;
        after = page.next_after;
      }
      if (!cancelled) setEntries(all);
    })().catch((e: unknown) => {
      if (!cancelled) setError(String(e));
    });
    return () => {
      cancelled = true;
      setEntries(null);
      setError(null);
    };
  }, [client, sessionId, enabled]);
  return { entries, error };
}
