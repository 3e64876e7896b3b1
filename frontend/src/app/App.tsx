import { QueryClient, QueryClientProvider, useQuery } from '@tanstack/react-query';
import { lazy, Suspense, useEffect, useState } from 'react';
import { BrowserRouter, NavLink, Route, Routes } from 'react-router';
import { ConnectionBadge } from '@/components/ConnectionBadge';
import { ErrorBoundary } from '@/components/ErrorBoundary';
import { LoginPage } from '@/features/auth/LoginPage';
import { LogPage } from '@/features/log/LogPage';
import { SessionPage } from '@/features/agent/SessionPage';
import { Sidebar } from '@/features/sessions/Sidebar';
import { closeGraphqlWs, gql, GraphqlError, stillSignedIn } from '@/lib/graphql';
import { browserSocket, ClientContext, OctoClient, useConnectionState, useHello } from '@/lib/ws';

// The charts library is most of the bundle: it loads with the analytics page.
const AnalyticsPage = lazy(() => import('@/features/analytics/AnalyticsPage').then((m) => ({ default: m.AnalyticsPage })));

const queryClient = new QueryClient({
  defaultOptions: { queries: { retry: (count, error) => !(error instanceof GraphqlError && error.status === 401) && count < 2 } },
});

export function App() {
  return (
    <QueryClientProvider client={queryClient}>
      <BrowserRouter>
        <Gate />
      </BrowserRouter>
    </QueryClientProvider>
  );
}

/** Signed in: the app, with one client for its lifetime. Not: the sign-in page. */
function Gate() {
  const me = useQuery({ queryKey: ['me'], queryFn: () => gql<{ me: { id: string; name: string } }>('{ me { id name } }') });
  const signedOut = me.error instanceof GraphqlError && me.error.status === 401;
  if (me.isLoading) return <p className="muted center">Loading…</p>;
  if (signedOut) return <LoginPage onSignedIn={() => void me.refetch()} />;
  if (me.error) return <p className="error center">Octo is not reachable: {String(me.error)}</p>;
  return <Connected onSignedOut={() => void me.refetch()} />;
}

function Connected({ onSignedOut }: { onSignedOut(): void }) {
  const [client] = useState(() => new OctoClient({ socket: browserSocket, stillSignedIn, storage: window.sessionStorage }));
  useEffect(() => {
    const online = () => client.agent.retryNow();
    window.addEventListener('online', online);
    return () => {
      window.removeEventListener('online', online);
      client.stop();
      closeGraphqlWs();
    };
  }, [client]);
  return (
    <ClientContext.Provider value={client}>
      <Shell onSignedOut={onSignedOut} />
    </ClientContext.Provider>
  );
}

function Shell({ onSignedOut }: { onSignedOut(): void }) {
  const hello = useHello();
  const state = useConnectionState();
  useEffect(() => {
    if (state === 'signed_out') onSignedOut();
  }, [state, onSignedOut]);

  async function signOut() {
    await fetch('/api/logout', { method: 'POST', credentials: 'same-origin' });
    queryClient.clear();
    onSignedOut();
  }

  return (
    <div className="app">
      <header className="topbar">
        <span className="brand">Octo</span>
        <NavLink to="/" end>
          Sessions
        </NavLink>
        <NavLink to="/analytics">Analytics</NavLink>
        <NavLink to="/log">Log</NavLink>
        <span className="spacer" />
        <ConnectionBadge />
        {hello && <span className="muted">{hello.user.name}</span>}
        <button className="link" onClick={() => void signOut()}>
          Sign out
        </button>
      </header>
      {hello?.demo && (
        <div className="demo-banner" role="status" data-testid="demo-banner">
          Demo mode: no LLM provider is configured, so a scripted model answers. Configure one for pi (see the README) to use a real model.
        </div>
      )}
      <div className="main">
        <ErrorBoundary name="Sessions">
          <Sidebar />
        </ErrorBoundary>
        <main className="content">
          <Routes>
            <Route path="/" element={<p className="muted center">Pick a session or start a new one.</p>} />
            <Route
              path="/s/:sessionId"
              element={
                <ErrorBoundary name="Session">
                  <SessionPage />
                </ErrorBoundary>
              }
            />
            <Route
              path="/analytics"
              element={
                <ErrorBoundary name="Analytics">
                  <Suspense fallback={<p className="muted center">Loading…</p>}>
                    <AnalyticsPage />
                  </Suspense>
                </ErrorBoundary>
              }
            />
            <Route
              path="/log"
              element={
                <ErrorBoundary name="Log">
                  <LogPage />
                </ErrorBoundary>
              }
            />
            <Route path="*" element={<p className="muted center">Nothing here.</p>} />
          </Routes>
        </main>
      </div>
    </div>
  );
}
