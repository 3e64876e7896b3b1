import { useQuery } from '@tanstack/react-query';
import { useDeferredValue, useMemo, useState } from 'react';
import { NavLink, useNavigate } from 'react-router';
import { markedRuns } from '@/components/format';
import { gql } from '@/lib/graphql';
import { useClient, useHello } from '@/lib/ws';
import { forkTree, sessionTitle, type TreeNode } from './store';
import { useSessions } from './useSessions';

interface SearchHit {
  sessionId: string;
  messageId: string | null;
  role: string;
  snippet: string;
  session: { title: string | null; preview: string } | null;
}

const SEARCH = `query Search($q: String!) {
  search(query: $q, limit: 20) { sessionId messageId role snippet session { title preview } }
}`;

/** Every session of the user, live, as a fork tree; search over titles here and content on the server. */
export function Sidebar() {
  const { sessions, loaded } = useSessions();
  const [query, setQuery] = useState('');
  const deferred = useDeferredValue(query.trim());
  const navigate = useNavigate();
  const client = useClient();
  const hello = useHello();
  const [creating, setCreating] = useState<string | null>(null);
  const [workspace, setWorkspace] = useState('.');

  const tree = useMemo(() => {
    const needle = deferred.toLowerCase();
    if (!needle) return forkTree(sessions);
    return forkTree(sessions, (s) => `${s.title ?? ''} ${s.preview}`.toLowerCase().includes(needle));
  }, [sessions, deferred]);

  const search = useQuery({
    queryKey: ['search', deferred],
    queryFn: () => gql<{ search: SearchHit[] }>(SEARCH, { q: deferred }),
    enabled: deferred.length >= 2,
    staleTime: 5_000,
  });

  async function create() {
    const harness = hello?.harnesses.find((h) => h.available)?.name ?? 'pi';
    setCreating(null);
    const { ack } = client.agent.command({ type: 'session.create', harness, workspace: workspace.trim() || '.' });
    const result = await ack;
    if (result.status === 'rejected' || !result.session_id) {
      setCreating(result.error?.message ?? 'the session was not created');
      return;
    }
    navigate(`/s/${result.session_id}`);
  }

  return (
    <nav className="sidebar" aria-label="Sessions">
      <form
        className="new-session"
        onSubmit={(e) => {
          e.preventDefault();
          void create();
        }}
      >
        <button className="primary" type="submit">
          New session
        </button>
        <input
          aria-label="Workspace"
          title={hello ? `a folder under ${hello.workspaces_root} ("." is that folder)` : 'workspace'}
          value={workspace}
          onChange={(e) => setWorkspace(e.target.value)}
        />
      </form>
      {creating && (
        <p className="error" role="alert">
          {creating}
        </p>
      )}
      <input
        type="search"
        placeholder="Search sessions"
        aria-label="Search sessions"
        value={query}
        onChange={(e) => setQuery(e.target.value)}
      />
      {deferred.length >= 2 && (
        <section className="search-hits" aria-label="Search results">
          <h3>In messages</h3>
          {search.isError && <p className="error">{String(search.error)}</p>}
          {search.data?.search.length === 0 && <p className="muted">No message matches.</p>}
          <ul>
            {search.data?.search.map((hit) => (
              <li key={`${hit.sessionId}/${hit.messageId ?? hit.role}`}>
                <NavLink to={`/s/${hit.sessionId}`} data-testid="search-hit">
                  <span className="hit-title">{hit.session ? sessionTitle(hit.session) : hit.sessionId}</span>
                  <span className="snippet">
                    {markedRuns(hit.snippet).map((run, i) => (run.marked ? <mark key={i}>{run.text}</mark> : <span key={i}>{run.text}</span>))}
                  </span>
                </NavLink>
              </li>
            ))}
          </ul>
          <h3>Sessions</h3>
        </section>
      )}
      {!loaded && <p className="muted">Loading…</p>}
      {loaded && sessions.size === 0 && <p className="muted">No sessions yet.</p>}
      <ul className="tree" data-testid="session-list">
        {tree.map((node) => (
          <SessionNode key={node.summary.session_id} node={node} />
        ))}
      </ul>
    </nav>
  );
}

function SessionNode({ node }: { node: TreeNode }) {
  const { summary } = node;
  return (
    <li>
      <NavLink to={`/s/${summary.session_id}`} className="session-link" data-session={summary.session_id}>
        <span className={`badge run-${summary.run_state}`} title={summary.run_state} aria-label={summary.run_state} />
        <span className="session-title">{sessionTitle(summary)}</span>
        {summary.parent && (
          <span className="fork-point" title="forked at this offset of its parent">
            fork @{summary.parent.offset}
          </span>
        )}
        <span className="count">{summary.message_count}</span>
      </NavLink>
      {node.children.length > 0 && (
        <ul>
          {node.children.map((child) => (
            <SessionNode key={child.summary.session_id} node={child} />
          ))}
        </ul>
      )}
    </li>
  );
}
