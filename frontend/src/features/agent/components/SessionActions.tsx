import { useState, type FormEvent } from 'react';
import { useNavigate } from 'react-router';
import { useClient } from '@/lib/ws';

/** Rename and delete: logged commands like any other, acked once. */
export function SessionActions({ sessionId, title }: { sessionId: string; title: string | null }) {
  const client = useClient();
  const navigate = useNavigate();
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(title ?? '');
  const [error, setError] = useState<string | null>(null);

  async function rename(event: FormEvent) {
    event.preventDefault();
    const next = draft.trim();
    if (!next || next === title) {
      setEditing(false);
      return;
    }
    const ack = await client.agent.command({ type: 'session.rename', title: next }, sessionId).ack;
    if (ack.status === 'rejected') setError(ack.error ? `${ack.error.code}: ${ack.error.message}` : 'rename refused');
    else setEditing(false);
  }

  async function remove() {
    if (!window.confirm('Delete this session? Its log entries stay; it leaves every listing.')) return;
    const ack = await client.agent.command({ type: 'session.delete' }, sessionId).ack;
    if (ack.status === 'rejected') setError(ack.error ? `${ack.error.code}: ${ack.error.message}` : 'delete refused');
    else navigate('/');
  }

  return (
    <span className="session-actions">
      {editing ? (
        <form onSubmit={(e) => void rename(e)}>
          <input aria-label="Title" value={draft} maxLength={200} autoFocus onChange={(e) => setDraft(e.target.value)} />
          <button type="submit">Save</button>
          <button type="button" onClick={() => setEditing(false)}>
            Cancel
          </button>
        </form>
      ) : (
        <>
          <button
            className="link"
            onClick={() => {
              setDraft(title ?? '');
              setEditing(true);
            }}
          >
            Rename
          </button>
          <button className="link danger-link" onClick={() => void remove()}>
            Delete
          </button>
        </>
      )}
      {error && (
        <span className="error" role="alert">
          {error}
        </span>
      )}
    </span>
  );
}
