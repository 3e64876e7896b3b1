import { describe, expect, it } from 'vitest';
import type { SessionSummary } from '@/lib/protocol';
import { forkTree, mergeSummaries, sessionTitle } from './store';

const id = (n: number) => `0193f1a0-5c2e-7b40-9a11-${String(n).padStart(12, '0')}`;

function summary(n: number, fields: Partial<SessionSummary> = {}): SessionSummary {
  return {
    session_id: id(n), title: `s${n}`, preview: '', harness: 'pi', workspace: '.', parent: null,
    created_ms: n, updated_ms: n, updated_offset: n, run_state: 'idle', model: null, message_count: 0,
    usage: { input_tokens: 0, output_tokens: 0, cache_read_tokens: 0, cache_write_tokens: 0, cost_usd: 0 },
    deleted: false, ...fields,
  };
}

describe('sessions listing', () => {
  it('keeps the newest summary of each session, whatever the order they arrive in', () => {
    const newer = summary(1, { title: 'newer', updated_offset: 50 });
    const older = summary(1, { title: 'older', updated_offset: 40 });
    expect(mergeSummaries(new Map(), [newer, older]).get(id(1))?.title).toBe('newer');
    expect(mergeSummaries(mergeSummaries(new Map(), [older]), [newer]).get(id(1))?.title).toBe('newer');
  });

  it('drops a deleted session', () => {
    const listed = mergeSummaries(new Map(), [summary(1), summary(2)]);
    const after = mergeSummaries(listed, [summary(1, { deleted: true, updated_offset: 9 })]);
    expect([...after.keys()]).toEqual([id(2)]);
  });

  it('puts forks under their parent, oldest first, and roots newest first', () => {
    const sessions = mergeSummaries(new Map(), [
      summary(1, { updated_ms: 10 }),
      summary(2, { updated_ms: 30 }),
      summary(4, { parent: { session_id: id(1), offset: 7 }, created_ms: 40 }),
      summary(3, { parent: { session_id: id(1), offset: 5 }, created_ms: 20 }),
      summary(5, { parent: { session_id: id(3), offset: 9 } }),
      summary(6, { parent: { session_id: id(99), offset: 1 }, updated_ms: 20 }),
    ]);
    const tree = forkTree(sessions);
    expect(tree.map((n) => n.summary.title)).toEqual(['s2', 's6', 's1']);
    const s1 = tree[2];
    expect(s1.children.map((n) => n.summary.title)).toEqual(['s3', 's4']);
    expect(s1.children[0].children.map((n) => n.summary.title)).toEqual(['s5']);
  });

  it('filters a tree but keeps the ancestors of a match', () => {
    const sessions = mergeSummaries(new Map(), [
      summary(1),
      summary(3, { parent: { session_id: id(1), offset: 5 }, title: 'needle' }),
      summary(2),
    ]);
    const tree = forkTree(sessions, (s) => s.title === 'needle');
    expect(tree.map((n) => n.summary.title)).toEqual(['s1']);
    expect(tree[0].children.map((n) => n.summary.title)).toEqual(['needle']);
  });

  it('titles a session by its title, else its first prompt', () => {
    expect(sessionTitle({ title: null, preview: 'first words' })).toBe('first words');
    expect(sessionTitle({ title: null, preview: '' })).toBe('New session');
  });
});
