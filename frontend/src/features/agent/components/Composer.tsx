import { useState, type ClipboardEvent, type FormEvent, type KeyboardEvent } from 'react';
import type { CommandBody, ThinkingLevel } from '@/lib/protocol';
import { useClient, useHello } from '@/lib/ws';
import { fileRefs } from '../model/refs';
import type { SessionView } from '../model/session';


const IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp'] as const;
type ImageType = (typeof IMAGE_TYPES)[number];
interface Attached {
  media_type: ImageType;
  data: string;
}

/** A file as the prompt's `ImageInput` (base64 without the data-URL prefix). */
function readImage(file: File): Promise<Attached | null> {
  if (!(IMAGE_TYPES as readonly string[]).includes(file.type)) return Promise.resolve(null);
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onerror = () => reject(reader.error);
    reader.onload = () => {
      const url = String(reader.result);
      resolve({ media_type: file.type as ImageType, data: url.slice(url.indexOf(',') + 1) });
    };
    reader.readAsDataURL(file);
  });
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
  const [images, setImages] = useState<Attached[]>([]);
  const info = hello?.harnesses.find((h) => h.name === harness);
  const running = view.run !== null;

  function send(body: CommandBody) {
    setError(null);
    const { ack } = client.agent.command(body, view.sessionId);
    void ack.then((result) => {
      if (result.status === 'rejected' && result.error) setError(`${result.error.code}: ${result.error.message}`);
    });
  }

  const modelInfo = info?.models.find((m) => m.provider === view.model?.provider && m.model_id === view.model?.model_id);
  const canAttach = (info?.capabilities.includes('images') ?? false) && (modelInfo?.images ?? true);
  const maxImages = hello?.limits.max_images ?? 8;

  async function attach(files: Iterable<File>) {
    const read = (await Promise.all([...files].map(readImage))).filter((i): i is Attached => i !== null);
    if (read.length === 0) return;
    setImages((current) => {
      const next = [...current, ...read];
      if (next.length > maxImages) setError(`at most ${maxImages} images per prompt`);
      return next.slice(0, maxImages);
    });
  }

  function onPaste(event: ClipboardEvent<HTMLTextAreaElement>) {
    const files = [...event.clipboardData.files].filter((f) => f.type.startsWith('image/'));
    if (files.length === 0 || !canAttach) return;
    event.preventDefault();
    void attach(files);
  }

  function submit(event?: FormEvent) {
    event?.preventDefault();
    const trimmed = text.trim();
    if (!trimmed && images.length === 0) return;
    const files = fileRefs(trimmed);
    send({ type: 'prompt', text: trimmed, ...(files.length ? { files } : {}), ...(images.length ? { images } : {}) });
    setText('');
    setImages([]);
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
        onPaste={onPaste}
        rows={3}
      />
      {images.length > 0 && (
        <div className="attachments" aria-label="Attached images">
          {images.map((image, i) => (
            <span className="attachment" key={i}>
              <img src={`data:${image.media_type};base64,${image.data}`} alt={`attachment ${i + 1}`} />
              <button type="button" aria-label={`Remove image ${i + 1}`} onClick={() => setImages(images.filter((_, j) => j !== i))}>
                ×
              </button>
            </span>
          ))}
        </div>
      )}
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
        <label className={`button${readOnly || !canAttach ? ' disabled' : ''}`} title={canAttach ? 'Attach images (or paste them)' : 'this model takes no images'}>
          Image
          <input
            type="file"
            accept={IMAGE_TYPES.join(',')}
            multiple
            hidden
            disabled={readOnly || !canAttach}
            onChange={(e) => {
              if (e.target.files) void attach(e.target.files);
              e.target.value = '';
            }}
          />
        </label>
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
        <button type="submit" className="primary" disabled={readOnly || (!text.trim() && images.length === 0)}>
          {running ? 'Queue' : 'Send'}
        </button>
      </div>
    </form>
  );
}
