import { useVirtualizer } from '@tanstack/react-virtual';
import { useEffect, useLayoutEffect, useMemo, useRef } from 'react';
import type { Message } from '@/lib/protocol';
import type { OutboxItem } from '@/lib/ws';
import type { QueuedPrompt, Row, SessionView } from '../model/session';
import { MessageView, type ToolResults } from './Parts';

type Item =
  | { kind: 'row'; key: string; row: Row }
  | { kind: 'draft'; key: string; message: Message }
  | { kind: 'queued'; key: string; prompt: QueuedPrompt }
  | { kind: 'outbox'; key: string; text: string };

interface Props {
  view: SessionView;
  outbox: OutboxItem[];
  onFork?: (message: Message) => void;
  onNearTop?: () => void;
}

/** Only the rows on screen are in the DOM, so a 10,000-message session scrolls like a short one. */
export function MessageList({ view, outbox, onFork, onNearTop }: Props) {
  const items = useMemo<Item[]>(() => {
    const list: Item[] = view.rows.map((row) => ({ kind: 'row', key: row.key, row }));
    if (view.draft) list.push({ kind: 'draft', key: view.draft.id, message: view.draft });
    for (const prompt of view.queued) list.push({ kind: 'queued', key: `q${prompt.commandId}`, prompt });
    const logged = new Set(view.queued.map((q) => q.commandId));
    for (const item of outbox) {
      if (item.body.type === 'prompt' && item.sessionId === view.sessionId && !logged.has(item.commandId)) {
        list.push({ kind: 'outbox', key: `o${item.commandId}`, text: item.body.text });
      }
    }
    return list;
  }, [view.rows, view.draft, view.queued, view.sessionId, outbox]);

  const results = useMemo<ToolResults>(() => {
    const map = new Map<string, { isError: boolean }>();
    for (const row of view.rows) {
      if (row.kind !== 'message' || row.message.role !== 'tool') continue;
      for (const part of row.message.parts) if (part.type === 'tool_result') map.set(part.tool_call_id, { isError: part.is_error });
    }
    return map;
  }, [view.rows]);

  const scroller = useRef<HTMLDivElement>(null);
  const pinned = useRef(true);
  const firstKey = useRef<string | null>(null);
  /** The first row on screen and how far the view is scrolled into it. */
  const anchor = useRef<{ key: string; delta: number } | null>(null);
  // eslint-disable-next-line react-hooks/incompatible-library -- the virtualizer is the point here
  const virtualizer = useVirtualizer({
    count: items.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => 96,
    overscan: 8,
    getItemKey: (index) => items[index].key,
  });

  // Older pages go in front: the row that was on top stays where it was on screen.
  useLayoutEffect(() => {
    const key = items[0]?.key ?? null;
    const kept = anchor.current;
    if (firstKey.current && key !== firstKey.current && !pinned.current && kept) {
      const index = items.findIndex((i) => i.key === kept.key);
      const at = index >= 0 ? virtualizer.getOffsetForIndex(index, 'start') : undefined;
      if (at) virtualizer.scrollToOffset(at[0] + kept.delta);
    }
    firstKey.current = key;
  }, [items, virtualizer]);

  // Follow the newest message while the reader is at the bottom.
  useEffect(() => {
    if (pinned.current && items.length > 0) virtualizer.scrollToIndex(items.length - 1, { align: 'end' });
  }, [items, virtualizer]);

  const onScroll = () => {
    const el = scroller.current;
    if (!el) return;
    pinned.current = el.scrollHeight - el.scrollTop - el.clientHeight < 48;
    const top = virtualizer.getVirtualItems().find((v) => v.end > el.scrollTop);
    if (top && items[top.index]) anchor.current = { key: items[top.index].key, delta: el.scrollTop - top.start };
    if (el.scrollTop < 2 * el.clientHeight) onNearTop?.();
  };

  const streamingTools = view.tools;
  return (
    <div className="messages" ref={scroller} onScroll={onScroll} data-testid="messages">
      <div style={{ height: virtualizer.getTotalSize(), position: 'relative' }}>
        {virtualizer.getVirtualItems().map((v) => {
          const item = items[v.index];
          return (
            <div
              key={v.key}
              data-index={v.index}
              ref={virtualizer.measureElement}
              className="row"
              style={{ position: 'absolute', top: 0, left: 0, width: '100%', transform: `translateY(${v.start}px)` }}
            >
              <ItemView item={item} tools={streamingTools} results={results} onFork={onFork} />
            </div>
          );
        })}
      </div>
    </div>
  );
}

function ItemView({
  item,
  tools,
  results,
  onFork,
}: {
  item: Item;
  tools: SessionView['tools'];
  results: ToolResults;
  onFork?: (m: Message) => void;
}) {
  switch (item.kind) {
    case 'draft':
      return <MessageView message={item.message} tools={tools} results={results} streaming />;
    case 'queued':
      return (
        <div className="message role-user queued" data-testid="queued">
          <header>
            <span className="who">you</span> <span className="muted">queued</span>
          </header>
          <div className="text">{item.prompt.text}</div>
        </div>
      );
    case 'outbox':
      return (
        <div className="message role-user unsent" data-testid="unsent">
          <header>
            <span className="who">you</span> <span className="muted">waiting to send</span>
          </header>
          <div className="text">{item.text}</div>
        </div>
      );
    case 'row': {
      const row = item.row;
      switch (row.kind) {
        case 'message':
          return <MessageView message={row.message} tools={tools} results={results} streaming={false} onFork={onFork} />;
        case 'error':
          return (
            <div className="run-error" role="alert" data-testid="run-error">
              <strong>{row.title}</strong> <code>{row.error.code}</code> {row.error.message}
              {row.recoverable === true && <span className="muted"> · sending a new prompt may work</span>}
              {row.recoverable === false && <span className="muted"> · change something before retrying</span>}
            </div>
          );
        case 'notice':
          return <div className={`notice notice-${row.level}`}>{row.text}</div>;
        case 'compaction':
          return (
            <div className="compaction">
              {row.ok ? 'Context compacted.' : `Compaction failed${row.error ? `: ${row.error}` : ''}`}
              {row.summary && (
                <details>
                  <summary>Summary</summary>
                  <div className="text">{row.summary}</div>
                </details>
              )}
            </div>
          );
      }
    }
  }
}
