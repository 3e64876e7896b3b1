import { useState } from 'react';
import { useClient } from '@/lib/ws';
import type { InputRequest } from '../model/session';

/** An extension's question (`input.requested`) as a dialog; the answer is `input.respond`. */
export function InputDialog({ request, sessionId }: { request: InputRequest; sessionId: string }) {
  const client = useClient();
  const [value, setValue] = useState(request.prefill ?? '');
  const respond = (answer: { value: string } | { confirmed: boolean } | { cancelled: true }) =>
    client.agent.command({ type: 'input.respond', request_id: request.request_id, ...answer }, sessionId);
  return (
    <div className="dialog-backdrop">
      <div role="dialog" aria-modal="true" aria-label={request.title} className="dialog">
        <h2>{request.title}</h2>
        {request.message && <p>{request.message}</p>}
        {request.kind === 'select' && (
          <div className="options">
            {request.options?.map((option) => (
              <button key={option} onClick={() => respond({ value: option })}>
                {option}
              </button>
            ))}
          </div>
        )}
        {request.kind === 'confirm' && (
          <div className="options">
            <button className="primary" onClick={() => respond({ confirmed: true })}>
              Yes
            </button>
            <button onClick={() => respond({ confirmed: false })}>No</button>
          </div>
        )}
        {(request.kind === 'input' || request.kind === 'editor') && (
          <form
            onSubmit={(e) => {
              e.preventDefault();
              respond({ value });
            }}
          >
            {request.kind === 'input' ? (
              <input aria-label="Answer" value={value} placeholder={request.placeholder} onChange={(e) => setValue(e.target.value)} />
            ) : (
              <textarea aria-label="Answer" value={value} rows={8} onChange={(e) => setValue(e.target.value)} />
            )}
            <button className="primary" type="submit">
              Answer
            </button>
          </form>
        )}
        <button className="link" onClick={() => respond({ cancelled: true })}>
          Cancel
        </button>
      </div>
    </div>
  );
}
