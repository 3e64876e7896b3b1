import { useCallback, useEffect, useRef, useState } from 'react';
import type { LogEntry, Message, SnapshotResult } from '@/lib/protocol';
import { RequestError, useClient } from '@/lib/ws';
import { applyEntries, emptyView, fromSnapshot, prependOlder, type SessionView } from '../model/session';

const PREFETCH_ROWS = 20_000;
const OLDER_PAGES_PER_RENDER = 5;
const OLDER_PAGES_ON_DEMAND = 5;

export interface SessionState {
  view: SessionView | null;
  error: string | null;
  loadOlder(): void;
}

/**
 * Opens a session with one `snapshot`, then `subscribe {after: as_of}`; the connection resumes the
 * subscription from its last offset after any drop, and the fold ignores offsets it has seen.
 * Entries arriving together are folded in one render.
 */
export function useSessionView(sessionId: string): SessionState {
  const client = useClient();
  const [view, setView] = useState<SessionView | null>(null);
  const [error, setError] = useState<string | null>(null);
  const older = useRef<((pages: number) => Promise<void>) | null>(null);

  useEffect(() => {
    let cancelled = false;
    let unsubscribe = () => {};
    let buffer: LogEntry[] = [];
    let scheduled = false;
    const flush = () => {
      scheduled = false;
      const entries = buffer;
      buffer = [];
      if (cancelled || entries.length === 0) return;
      setView((v) => (v ? applyEntries(v, entries) : v));
    };
    client.agent.request({ type: 'snapshot', session_id: sessionId }, 'snapshot_result').then(
      (snapshot) => {
        if (cancelled) return;
        setView(fromSnapshot(snapshot));
        let cursor = snapshot.next_before;
        let rows = snapshot.messages.length;
        let fetching = false;
        // Pages of older messages, newest page first, committed in groups so a long history
        // costs a few renders rather than one per page.
        const fetchOlder = async (pages: number) => {
          if (fetching || cursor === null || cancelled) return;
          fetching = true;
          let pending: Message[][] = [];
          const commit = () => {
            const messages = pending.reverse().flat();
            pending = [];
            if (!cancelled && messages.length > 0) setView((v) => (v ? prependOlder(v, messages) : v));
          };
          try {
            for (let i = 0; i < pages && cursor !== null && !cancelled; i++) {
              const page: SnapshotResult = await client.agent.request(
                { type: 'snapshot', session_id: sessionId, at: snapshot.as_of, before: cursor },
                'snapshot_result',
              );
              pending.push(page.messages);
              rows += page.messages.length;
              cursor = page.next_before;
              if (pending.length === OLDER_PAGES_PER_RENDER) commit();
            }
            commit();
          } catch (e) {
            if (!cancelled) setError(e instanceof RequestError ? `${e.error.code}: ${e.error.message}` : String(e));
          } finally {
            fetching = false;
          }
        };
        older.current = fetchOlder;
        // Older history loads in the background after the first render, up to PREFETCH_ROWS, so
        // scrolling up rarely waits; beyond that it loads as the reader nears the top.
        setTimeout(() => {
          void (async () => {
            while (!cancelled && cursor !== null && rows < PREFETCH_ROWS) await fetchOlder(OLDER_PAGES_PER_RENDER);
          })();
        }, 0);
        unsubscribe = client.agent.subscribeSession(sessionId, snapshot.as_of, {
          onEntry: (entry) => {
            buffer.push(entry);
            if (!scheduled) {
              scheduled = true;
              requestAnimationFrame(flush);
            }
          },
          onReset: () => {
            buffer = [];
            setView(emptyView(sessionId));
          },
          onError: (e) => setError(`${e.code}: ${e.message}`),
        });
      },
      (e: unknown) => {
        if (!cancelled) setError(e instanceof RequestError ? `${e.error.code}: ${e.error.message}` : String(e));
      },
    );
    return () => {
      cancelled = true;
      unsubscribe();
    };
  }, [client, sessionId]);

  const loadOlder = useCallback(() => {
    void older.current?.(OLDER_PAGES_ON_DEMAND);
  }, []);

  return { view, error, loadOlder };
}
