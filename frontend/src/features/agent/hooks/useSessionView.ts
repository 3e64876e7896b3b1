import { useCallback, useEffect, useRef, useState } from 'react';
import type { LogEntry } from '@/lib/protocol';
import { RequestError, useClient } from '@/lib/ws';
import { applyEntries, emptyView, fromSnapshot, prependOlder, type SessionView } from '../model/session';

export interface SessionState {
  view: SessionView | null;
  error: string | null;
  /** The subscription has seen the head it started at. */
  caughtUp: boolean;
  loadOlder(): void;
  loadingOlder: boolean;
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
  const [caughtUp, setCaughtUp] = useState(false);
  const [loadingOlder, setLoadingOlder] = useState(false);
  const asOf = useRef<number | null>(null);

  useEffect(() => {
    let cancelled = false;
    let unsubscribe = () => {};
    let buffer: LogEntry[] = [];
    let scheduled = false;
    let head = Infinity;
    const flush = () => {
      scheduled = false;
      const entries = buffer;
      buffer = [];
      if (cancelled || entries.length === 0) return;
      setView((v) => (v ? applyEntries(v, entries) : v));
      if (entries[entries.length - 1].offset >= head) setCaughtUp(true);
    };
    client.agent.request({ type: 'snapshot', session_id: sessionId }, 'snapshot_result').then(
      (snapshot) => {
        if (cancelled) return;
        asOf.current = snapshot.as_of;
        setView(fromSnapshot(snapshot));
        unsubscribe = client.agent.subscribeSession(sessionId, snapshot.as_of, {
          onEntry: (entry) => {
            buffer.push(entry);
            if (!scheduled) {
              scheduled = true;
              requestAnimationFrame(flush);
            }
          },
          onSubscribed: (h) => {
            head = h;
            if (h <= snapshot.as_of) setCaughtUp(true);
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

  const olderBefore = view?.olderBefore ?? null;
  const loadOlder = useCallback(() => {
    if (olderBefore === null || loadingOlder) return;
    setLoadingOlder(true);
    client.agent
      .request({ type: 'snapshot', session_id: sessionId, at: asOf.current ?? undefined, before: olderBefore }, 'snapshot_result')
      .then(
        (page) => setView((v) => (v ? prependOlder(v, page) : v)),
        (e: unknown) => setError(String(e)),
      )
      .finally(() => setLoadingOlder(false));
  }, [client, sessionId, olderBefore, loadingOlder]);

  return { view, error, caughtUp, loadOlder, loadingOlder };
}
