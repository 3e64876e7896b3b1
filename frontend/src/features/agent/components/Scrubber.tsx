import { useEffect, useMemo, useState } from 'react';
import type { LogEntry } from '@/lib/protocol';
import { applyEntries, emptyView, type SessionView } from '../model/session';

/** Moves through the session's history entry by entry; the view is the fold up to that offset. */
export function useScrubber(sessionId: string, entries: LogEntry[] | null) {
  const [position, setPosition] = useState<number | null>(null);
  const [playing, setPlaying] = useState(false);
  const count = entries?.length ?? 0;
  const at = position === null ? count : Math.min(position, count);

  useEffect(() => {
    if (!playing) return;
    const timer = setInterval(() => {
      setPosition((p) => {
        const next = (p ?? 0) + 1;
        if (next >= count) setPlaying(false);
        return Math.min(next, count);
      });
    }, 120);
    return () => clearInterval(timer);
  }, [playing, count]);

  const view = useMemo<SessionView | null>(
    () => (entries ? applyEntries(emptyView(sessionId), entries.slice(0, at)) : null),
    [entries, at, sessionId],
  );
  const offset = at > 0 && entries ? entries[at - 1].offset : null;
  return { view, at, count, offset, setPosition, playing, setPlaying };
}

export function ScrubberBar({
  at,
  count,
  offset,
  playing,
  onMove,
  onPlay,
}: {
  at: number;
  count: number;
  offset: number | null;
  playing: boolean;
  onMove(position: number): void;
  onPlay(play: boolean): void;
}) {
  return (
    <div className="scrubber" aria-label="Replay">
      <button onClick={() => onPlay(!playing)}>{playing ? 'Pause' : at >= count ? 'Replay from start' : 'Play'}</button>
      <input
        type="range"
        min={0}
        max={count}
        value={at}
        aria-label="Replay position"
        onChange={(e) => {
          onPlay(false);
          onMove(Number(e.target.value));
        }}
        onKeyDown={(e) => e.stopPropagation()}
      />
      <span className="muted" data-testid="replay-offset">
        entry {at} / {count}
        {offset !== null && ` · offset ${offset}`}
      </span>
    </div>
  );
}
