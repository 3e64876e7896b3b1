import type { ImagePart, Message, Part, ToolResultPart } from '@/lib/protocol';
import { formatDuration } from '@/components/format';
import { splitRefs } from '../model/refs';
import type { ToolRun } from '../model/session';

/** Text with `@path` workspace references shown as file chips. */
export function TextWithRefs({ text }: { text: string }) {
  return (
    <div className="text">
      {splitRefs(text).map((run, i) =>
        run.ref ? (
          <span key={i} className="file-ref" title={`workspace file ${run.ref}`}>
            {run.text}
          </span>
        ) : (
          <span key={i}>{run.text}</span>
        ),
      )}
    </div>
  );
}

export function ImageView({ part }: { part: Pick<ImagePart, 'media_type' | 'data' | 'omitted_bytes'> }) {
  if (!part.data) return <div className="image-omitted">image omitted ({part.omitted_bytes ?? 0} bytes)</div>;
  return <img className="image" src={`data:${part.media_type};base64,${part.data}`} alt="" loading="lazy" />;
}

/** Tool results by call id: how a call whose events came before the snapshot ended. */
export type ToolResults = ReadonlyMap<string, { isError: boolean }>;

function ToolCall({ name, input, run, result }: { name: string; input: unknown; run: ToolRun | undefined; result: { isError: boolean } | undefined }) {
  const ended = run?.ended ?? result;
  const state = ended ? (ended.isError ? 'failed' : 'done') : run ? 'running' : 'called';
  return (
    <div className={`tool tool-${state}`} data-testid="tool-call" data-tool={name}>
      <div className="tool-head">
        <span className="tool-name">{name}</span>
        <span className="tool-state">
          {state}
          {run?.ended && ` · ${formatDuration(run.ended.durationMs)}`}
        </span>
      </div>
      <pre className="tool-input">{typeof input === 'string' ? input : JSON.stringify(input, null, 2)}</pre>
      {run?.progress && !run.ended && <pre className="tool-progress">{run.progress}</pre>}
    </div>
  );
}

function ToolResult({ part }: { part: ToolResultPart }) {
  return (
    <div className={`tool-result${part.is_error ? ' is-error' : ''}`} data-testid="tool-result">
      <div className="tool-head">
        <span className="tool-name">{part.name}</span>
        <span className="tool-state">{part.is_error ? 'error' : 'result'}</span>
      </div>
      {part.content.map((c) =>
        c.type === 'text' ? (
          <pre key={c.id} className="tool-output">
            {c.text}
            {c.truncated && '\n… (cut)'}
          </pre>
        ) : (
          <ImageView key={c.id} part={c} />
        ),
      )}
    </div>
  );
}

export function PartView({
  part,
  tools,
  results,
  streaming,
}: {
  part: Part;
  tools: Record<string, ToolRun>;
  results: ToolResults;
  streaming: boolean;
}) {
  switch (part.type) {
    case 'text':
      return (
        <>
          <TextWithRefs text={part.text} />
          {part.truncated && <div className="muted">(cut to fit the log)</div>}
        </>
      );
    case 'thinking':
      return (
        <details className="thinking" open={streaming}>
          <summary>Thinking</summary>
          <div className="text">{part.text}</div>
        </details>
      );
    case 'tool_call':
      return <ToolCall name={part.name} input={part.input} run={tools[part.tool_call_id]} result={results.get(part.tool_call_id)} />;
    case 'tool_result':
      return <ToolResult part={part} />;
    case 'image':
      return <ImageView part={part} />;
    case 'file_ref':
      return (
        <span className="file-ref" title="workspace file">
          @{part.path}
        </span>
      );
  }
}

export function MessageView({
  message,
  tools,
  results,
  streaming,
  onFork,
}: {
  message: Message;
  tools: Record<string, ToolRun>;
  results: ToolResults;
  streaming: boolean;
  onFork?: (message: Message) => void;
}) {
  const who = message.role === 'assistant' ? (message.model_id ?? 'assistant') : message.role === 'tool' ? 'tool' : 'you';
  return (
    <article className={`message role-${message.role}${streaming ? ' streaming' : ''}`} data-testid="message" data-role={message.role} data-message-id={message.id}>
      <header>
        <span className="who">{who}</span>
        <time dateTime={new Date(message.created_ms).toISOString()}>{new Date(message.created_ms).toLocaleTimeString()}</time>
        {onFork && !streaming && (
          <button className="link fork" onClick={() => onFork(message)} title="Start a new session from this point">
            Fork here
          </button>
        )}
      </header>
      {message.parts.map((part) => (
        <PartView key={part.id} part={part} tools={tools} results={results} streaming={streaming} />
      ))}
      {message.stop_reason === 'aborted' && <div className="stopped">stopped{message.error ? `: ${message.error}` : ''}</div>}
      {message.stop_reason === 'error' && message.error && <div className="stopped error">{message.error}</div>}
    </article>
  );
}
