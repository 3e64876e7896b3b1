import { useState } from 'react';
import { useLocation, useParams } from 'react-router';
import { formatCost, formatTokens } from '@/components/format';
import { useOutbox } from '@/lib/ws';
import { Composer } from './components/Composer';
import { InputDialog } from './components/InputDialog';
import { MessageList } from './components/MessageList';
import { ScrubberBar, useScrubber } from './components/Scrubber';
import { SessionActions } from './components/SessionActions';
import { useForkHere } from './hooks/useForkHere';
import { useReplay } from './hooks/useReplay';
import { useSessionView } from './hooks/useSessionView';
import type { SessionView } from './model/session';

export function SessionPage() {
  const { sessionId = '' } = useParams();
  // A new key per session: every piece of state starts fresh.
  return <Session key={sessionId} sessionId={sessionId} />;
}

function phaseLabel(view: SessionView): string {
  if (!view.run) return view.runState === 'error' ? 'failed' : 'idle';
  const phase = view.run.phase;
  return phase.type === 'tool_running' ? `running ${phase.name}` : phase.type;
}

function Session({ sessionId }: { sessionId: string }) {
  const { view, error, loadOlder } = useSessionView(sessionId);
  const outbox = useOutbox();
  const location = useLocation();
  const prefill = (location.state as { prefill?: string } | null)?.prefill;
  const [replaying, setReplaying] = useState(false);
  const replay = useReplay(sessionId, replaying);
  const scrubber = useScrubber(sessionId, replay.entries);
  const fork = useForkHere(sessionId, view?.lastOffset ?? null);

  if (error) {
    return (
      <section className="session">
        <p className="error" role="alert">
          {error}
        </p>
      </section>
    );
  }
  if (!view) return <section className="session muted">Opening…</section>;

  const shown = replaying && scrubber.view ? scrubber.view : view;
  const harness = view.harness ?? 'pi';
  return (
    <section className="session" aria-label="Session">
      <header className="session-head">
        <h2 data-testid="session-title">{view.title ?? 'New session'}</h2>
        <span className={`state run-${view.runState}`} data-testid="run-state" data-state={view.runState}>
          {phaseLabel(view)}
        </span>
        {view.model && (
          <span className="muted">
            {view.model.provider}/{view.model.model_id}
          </span>
        )}
        <span className="muted" title="input / output tokens and cost">
          {formatTokens(view.usage.inputTokens)} in · {formatTokens(view.usage.outputTokens)} out · {formatCost(view.usage.costUsd)}
        </span>
        <span className="spacer" />
        {!view.deleted && <SessionActions sessionId={sessionId} title={view.title} />}
        <button onClick={() => setReplaying((r) => !r)} aria-pressed={replaying}>
          {replaying ? 'Back to live' : 'Replay'}
        </button>
      </header>
      {view.deleted && <p className="notice notice-warning">This session was deleted.</p>}
      {fork.error && (
        <p className="error" role="alert">
          Fork: {fork.error}
        </p>
      )}
      {replaying && (
        <>
          {replay.error && <p className="error">{replay.error}</p>}
          {!replay.entries && !replay.error && <p className="muted">Reading the log…</p>}
          {replay.entries && (
            <ScrubberBar
              at={scrubber.at}
              count={scrubber.count}
              offset={scrubber.offset}
              playing={scrubber.playing}
              onMove={scrubber.setPosition}
              onPlay={(play) => {
                if (play && scrubber.at >= scrubber.count) scrubber.setPosition(0);
                scrubber.setPlaying(play);
              }}
            />
          )}
        </>
      )}
      <MessageList
        view={shown}
        outbox={replaying ? [] : outbox}
        onFork={fork.busy ? undefined : (m) => void fork.forkAt(m)}
        onNearTop={replaying ? undefined : loadOlder}
      />
      {!replaying && view.inputs[0] && <InputDialog key={view.inputs[0].request_id} request={view.inputs[0]} sessionId={sessionId} />}
      {!replaying && <Composer view={view} harness={harness} initialText={prefill} readOnly={view.deleted} />}
    </section>
  );
}
