import { useState } from 'react';
import { useNavigate } from 'react-router';
import { gql } from '@/lib/graphql';
import type { Message } from '@/lib/protocol';
import { useClient } from '@/lib/ws';

const FORK_POINTS = `query ForkPoints($id: ID!, $at: Offset, $before: Offset) {
  session(id: $id, at: $at, before: $before) { messages { id forkOffset } nextBefore }
}`;

interface ForkPoints {
  session: { messages: { id: string; forkOffset: number | null }[]; nextBefore: number | null };
}

/**
 * "Fork here" by PROTOCOL.md 9.2's one rule, which the history projection keeps per message
 * (GraphQL `Message.forkOffset`): before a user message's prompt, or at the end of the run of an
 * assistant message or tool result. A user message's text pre-fills the fork's composer.
 */
export function useForkHere(sessionId: string, lastOffset: number | null) {
  const client = useClient();
  const navigate = useNavigate();
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function forkAt(message: Message) {
    setBusy(true);
    setError(null);
    try {
      let before: number | null = null;
      let forkOffset: number | null | undefined;
      for (;;) {
        const page: ForkPoints = await gql<ForkPoints>(FORK_POINTS, { id: sessionId, at: lastOffset, before });
        forkOffset = page.session.messages.find((m) => m.id === message.id)?.forkOffset;
        if (forkOffset !== undefined || page.session.nextBefore === null) break;
        before = page.session.nextBefore;
      }
      if (forkOffset === undefined || forkOffset === null) {
        setError('this message has no fork point yet (its run is still open)');
        return;
      }
      const { ack } = client.agent.command({ type: 'fork', at_offset: forkOffset }, sessionId);
      const result = await ack;
      if (result.status === 'rejected' || !result.session_id) {
        setError(result.error ? `${result.error.code}: ${result.error.message}` : 'the fork was refused');
        return;
      }
      const prefill =
        message.role === 'user'
          ? message.parts.map((p) => (p.type === 'text' ? p.text : '')).join('')
          : undefined;
      navigate(`/s/${result.session_id}`, { state: { prefill } });
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  }

  return { forkAt, error, busy };
}
