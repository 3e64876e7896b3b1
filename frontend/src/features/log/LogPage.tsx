import { useVirtualizer } from '@tanstack/react-virtual';
import { useEffect, useMemo, useRef, useState } from 'react';
import { Link } from 'react-router';
import type { LogEntry } from '@/lib/protocol';
import { useClient, type LogFilter } from '@/lib/ws';

const KEEP = 5000;

/** Summarises a body in one line: what the entry is about, never the whole payload. */
function describe(entry: LogEntry): string {
  const { type, ...rest } = entry.body as { type: string } & Record<string, unknown>;
  if (typeof rest.delta === 'string') return JSON.stringify(rest.delta);
  if (typeof rest.text === 'string') return JSON.stringify(rest.text.slice(0, 160));
  if (rest.message && typeof rest.message === 'object') {
    const role = (rest.message as { role?: string }).role;
    return `${role ?? ''} message`;
  }
  if (rest.error && typeof rest.error === 'object') return JSON.stringify(rest.error);
  const short = JSON.stringify(rest);
  return short.length > 200 ? `${short.slice(0, 200)}…` : type === '' ? '' : short;
}

/** The live tail of the user's log (`subscribe_log`), filtered by kind and type prefix on the server. */
export function LogPage() {
  const client = useClient();
  const [kinds, setKinds] = useState<'all' | 'command' | 'event'>('all');
  const [types, setTypes] = useState('');
  const [applied, setApplied] = useState<LogFilter>({});
  const [entries, setEntries] = useState<LogEntry[]>([]);
  const [text, setText] = useState('');
  const [follow, setFollow] = useState(true);
  const scroller = useRef<HTMLDivElement>(null);

  useEffect(() => {
    let buffer: LogEntry[] = [];
    // The frame that will add the buffered entries: cancelled with the subscription, so entries
    // of a filter just replaced never land in the new filter's list.
    let frame: number | null = null;
    const unsubscribe = client.subscribeLog(applied, null, {
      onEntry: (entry) => {
        buffer.push(entry);
        if (frame !== null) return;
        frame = requestAnimationFrame(() => {
          frame = null;
          const batch = buffer;
          buffer = [];
          setEntries((list) => {
            const next = list.concat(batch);
            return next.length > KEEP ? next.slice(next.length - KEEP) : next;
          });
        });
      },
    });
    return () => {
      unsubscribe();
      if (frame !== null) cancelAnimationFrame(frame);
    };
  }, [client, applied]);

  const shown = useMemo(() => {
    const needle = text.trim().toLowerCase();
    if (!needle) return entries;
    return entries.filter((e) => `${e.session_id} ${e.body.type} ${describe(e)}`.toLowerCase().includes(needle));
  }, [entries, text]);

  // eslint-disable-next-line react-hooks/incompatible-library -- the virtualizer is the point here
  const virtualizer = useVirtualizer({
    count: shown.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => 26,
    overscan: 20,
  });
  useEffect(() => {
    if (follow && shown.length > 0) virtualizer.scrollToIndex(shown.length - 1, { align: 'end' });
  }, [shown.length, follow, virtualizer]);

  return (
    <section className="log" aria-label="Log">
      <header className="session-head">
        <h2>Log</h2>
        <form
          className="filters"
          onSubmit={(e) => {
            e.preventDefault();
            const typeList = types
              .split(',')
              .map((t) => t.trim())
              .filter(Boolean);
            setEntries([]);
            setApplied({ kinds: kinds === 'all' ? undefined : [kinds], types: typeList.length ? typeList : undefined });
          }}
        >
          <select aria-label="Kind" value={kinds} onChange={(e) => setKinds(e.target.value as typeof kinds)}>
            <option value="all">commands and events</option>
            <option value="command">commands</option>
            <option value="event">events</option>
          </select>
          <input aria-label="Types" placeholder="types, e.g. stream.*, tool.*" value={types} onChange={(e) => setTypes(e.target.value)} />
          <button type="submit">Apply</button>
        </form>
        <input aria-label="Filter shown" type="search" placeholder="filter shown" value={text} onChange={(e) => setText(e.target.value)} />
        <label>
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} /> follow
        </label>
      </header>
      <div className="log-list" ref={scroller} data-testid="log-list">
        <div style={{ height: virtualizer.getTotalSize(), position: 'relative' }}>
          {virtualizer.getVirtualItems().map((v) => {
            const entry = shown[v.index];
            return (
              <div
                key={entry.offset}
                className={`log-row kind-${entry.kind}`}
                style={{ position: 'absolute', top: 0, left: 0, width: '100%', height: v.size, transform: `translateY(${v.start}px)` }}
              >
                <span className="offset">{entry.offset}</span>
                <span className="time">{new Date(entry.ts_ms).toLocaleTimeString()}</span>
                <Link className="sid" to={`/s/${entry.session_id}`} title={entry.session_id}>
                  {entry.session_id.slice(-8)}
                </Link>
                <span className="type">{entry.body.type}</span>
                <span className="body">{describe(entry)}</span>
              </div>
            );
          })}
        </div>
      </div>
    </section>
  );
}
