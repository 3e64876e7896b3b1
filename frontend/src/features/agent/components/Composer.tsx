import { useState, type FormEvent, type KeyboardEvent } from 'react';
import type { CommandBody, ThinkingLevel } from '@/lib/protocol';
import { useClient, useHello } from '@/lib/ws';
import type { SessionView } from '../model/session';

/** `@path` words of a prompt, sent as `files` (workspace paths, PROTOCOL.md 4.2). */
export function fileRefs(text: string): string[] {
  const found = new Set<string>();
  for (const m of text.matchAll(/(?:^|\s)@([\w./-]+[\w/-])/g)) found.add(m[1]);
  return [...found].slice(0, 32);
}

interface Props {
  view: SessionView;
  harness: string;
  initialText?: string;
  readOnly?: boolean;
}

/** Prompt, abort, model, thinking level and compact: each a logged command, acked once. */
export function Composer({ view, harness, initialText, readOnly }: Props) {
  const client = useClient();
  const hello = useHello();
  const [text, setText] = useState(initialText ?? '');
  const [error, setError] = useState<string | null>(null);
  const info = hello?.harnesses.find((h) => h.name === harness);
  const running = view.run !== null;

  function send(body: CommandBody) {
    setError(null);
    const { ack } = client.agent.command(body, view.sessionId);
    void ack.then((result) => {
      if (result.status === 'rejected' && result.error) setError(`${result.error.code}: ${result.error.message}`);
    });
  }

  function submit(event?: FormEvent) {
    event?.preventDefault();
    const trimmed = text.trim();
    if (!trimmed) return;
    const files = fileRefs(trimmed);
    send({ type: 'prompt', text: trimmed, ...(files.length ? { files } : {}) });
    setText('');
  }

  function onKey(event: KeyboardEvent<HTMLTextAreaElement>) {
    if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) submit(event);
  }

  const modelKey = view.model ? `${view.model.provider}/${view.model.model_id}` : '';
  return (
    <form className="composer" onSubmit={submit} aria-label="Composer">
      {error && (
        <p className="error" role="alert" data-testid="composer-error">
          {error}
        </p>
      )}
      <textarea
        aria-label="Prompt"
        placeholder={readOnly ? 'This session is read-only.' : 'Ask the agent… (@path attaches a workspace file; Enter sends, Shift+Enter adds a line)'}
        value={text}
        disabled={readOnly}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={onKey}
        rows={3}
      />
      <div className="composer-bar">
        <select
          aria-label="Model"
          value={modelKey}
          disabled={readOnly || !info}
          onChange={(e) => {
            const model = info?.models.find((m) => `${m.provider}/${m.model_id}` === e.target.value);
            if (model) send({ type: 'set_model', provider: model.provider, model_id: model.model_id });
          }}
        >
          {!modelKey && <option value="">model</option>}
          {modelKey && !info?.models.some((m) => `${m.provider}/${m.model_id}` === modelKey) && (
            <option value={modelKey}>{modelKey}</option>
          )}
          {info?.models.map((m) => (
            <option key={`${m.provider}/${m.model_id}`} value={`${m.provider}/${m.model_id}`}>
              {m.name} ({m.provider})
            </option>
          ))}
        </select>
        <select
          aria-label="Thinking level"
          value={view.thinkingLevel ?? ''}
          disabled={readOnly || !info?.capabilities.includes('thinking')}
          onChange={(e) => send({ type: 'set_thinking_level', level: e.target.value as ThinkingLevel })}
        >
          {!view.thinkingLevel && <option value="">thinking</option>}
          {info?.thinking_levels.map((level) => (
            <option key={level} value={level}>
              thinking: {level}
            </option>
          ))}
        </select>
        <button
          type="button"
          disabled={readOnly || running || !info?.capabilities.includes('compact')}
          onClick={() => send({ type: 'compact' })}
        >
          Compact
        </button>
        <span className="spacer" />
        {running && (
          <button type="button" className="danger" onClick={() => send({ type: 'abort' })}>
            Abort
          </button>
        )}
        <button type="submit" className="primary" disabled={readOnly || !text.trim()}>
          {running ? 'Queue' : 'Send'}
        </button>
      </div>
    </form>
  );
}
