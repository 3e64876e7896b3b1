import { useConnectionState, useOutbox } from '@/lib/ws';

const LABELS = { connecting: 'connecting', online: 'live', offline: 'reconnecting', signed_out: 'signed out' };

/** The connection's state, always visible, and how many commands wait to be sent. */
export function ConnectionBadge() {
  const state = useConnectionState();
  const outbox = useOutbox();
  return (
    <span className={`conn conn-${state}`} data-testid="connection" data-state={state} title="WebSocket connection">
      <span className="dot" /> {LABELS[state]}
      {outbox.length > 0 && <span className="outbox"> · {outbox.length} waiting to send</span>}
    </span>
  );
}
