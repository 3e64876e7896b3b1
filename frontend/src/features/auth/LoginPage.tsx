import { useState, type FormEvent } from 'react';

interface Props {
  onSignedIn(): void;
}

/** `POST /api/login` with a token, or a name and password; the server sets an HttpOnly cookie. */
export function LoginPage({ onSignedIn }: Props) {
  const [mode, setMode] = useState<'token' | 'password'>('token');
  const [token, setToken] = useState('');
  const [user, setUser] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body = mode === 'token' ? { token: token.trim() } : { user, password };
      const response = await fetch('/api/login', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (!response.ok) {
        const detail = (await response.json().catch(() => null)) as { message?: string; code?: string } | null;
        setError(detail?.message ?? `sign-in failed (${response.status})`);
        return;
      }
      onSignedIn();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="login">
      <form onSubmit={submit} aria-label="Sign in">
        <h1>Octo</h1>
        <div className="tabs" role="tablist">
          <button type="button" role="tab" aria-selected={mode === 'token'} onClick={() => setMode('token')}>
            Token
          </button>
          <button type="button" role="tab" aria-selected={mode === 'password'} onClick={() => setMode('password')}>
            Name and password
          </button>
        </div>
        {mode === 'token' ? (
          <label>
            Token
            <input
              name="token"
              type="password"
              autoComplete="off"
              value={token}
              onChange={(e) => setToken(e.target.value)}
              placeholder="from <data dir>/token"
              required
            />
          </label>
        ) : (
          <>
            <label>
              Name
              <input name="user" autoComplete="username" value={user} onChange={(e) => setUser(e.target.value)} required />
            </label>
            <label>
              Password
              <input
                name="password"
                type="password"
                autoComplete="current-password"
                value={password}
                onChange={(e) => setPassword(e.target.value)}
                required
              />
            </label>
          </>
        )}
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          Sign in
        </button>
      </form>
    </main>
  );
}
