// The session fold: given entries, then the view. Offsets are applied once; failures are rows of
// their own; the draft becomes the message `stream.message_end` names.
import { describe, expect, it } from 'vitest';
import type { LogEntry, SnapshotResult } from '@/lib/protocol';
import { applyEntries, applyEntry, emptyView, fromSnapshot } from './session';

const S = '0193f1a0-5c2e-7b40-9a11-3c5e7d9f0b21';
const RUN = '0193f1a0-5c2e-7b40-9a11-000000007000';
const M = '0193f1a0-5c2e-7b40-9a11-000000003002';
const U = '0193f1a0-5c2e-7b40-9a11-000000003001';
const P1 = '0193f1a0-5c2e-7b40-9a11-000000009001';
const P2 = '0193f1a0-5c2e-7b40-9a11-000000009002';
const P3 = '0193f1a0-5c2e-7b40-9a11-000000009003';
const C1 = '0193f1a0-5c2e-7b40-9a11-00000000c001';
const C2 = '0193f1a0-5c2e-7b40-9a11-00000000c002';

let next = 100;
function at(body: Record<string, unknown>, extra: Partial<LogEntry> = {}): LogEntry {
  next += 1;
  return {
    offset: next, ts_ms: 1_000 + next, user_id: 'u1', session_id: S,
    kind: body.type === 'prompt' || body.type === 'abort' ? 'command' : 'event',
    producer: { id: 'rn', seq: next }, body: body as LogEntry['body'], ...extra,
  };
}

/** A prompt with a bash tool call, as PROTOCOL.md 16 shows it. */
function run(): LogEntry[] {
  next = 100;
  return [
    at({ type: 'prompt', text: 'Run `echo hi`.' }, { command_id: C1 }),
    at({ type: 'agent.working', run_id: RUN, cause: 101 }),
    at({ type: 'message.created', command_id: C1, cause: 101,
      message: { id: U, role: 'user', created_ms: 1, parts: [{ type: 'text', id: P1, text: 'Run `echo hi`.' }] } }),
    at({ type: 'stream.message_start', message_id: M, run_id: RUN, role: 'assistant', provider: 'fake', model_id: 'fake-model' }),
    at({ type: 'stream.text_delta', message_id: M, part_id: P2, index: 0, delta: 'Running ' }),
    at({ type: 'stream.text_delta', message_id: M, part_id: P2, index: 0, delta: 'it.' }),
    at({ type: 'stream.tool_call_delta', message_id: M, part_id: P3, index: 1, delta: '{"command":', tool_call_id: 'call_1', name: 'bash' }),
    at({ type: 'stream.tool_call_delta', message_id: M, part_id: P3, index: 1, delta: ' "echo hi"}' }),
    at({ type: 'stream.message_end', message: { id: M, role: 'assistant', created_ms: 2, provider: 'fake', model_id: 'fake-model', stop_reason: 'tool_use',
      parts: [{ type: 'text', id: P2, text: 'Running it.' }, { type: 'tool_call', id: P3, tool_call_id: 'call_1', name: 'bash', input: { command: 'echo hi' } }] } }),
    at({ type: 'usage.recorded', run_id: RUN, message_id: M, provider: 'fake', model_id: 'fake-model', input_tokens: 10, output_tokens: 5, cache_read_tokens: 0, cache_write_tokens: 0 }),
    at({ type: 'tool.start', tool_call_id: 'call_1', name: 'bash', input: { command: 'echo hi' } }),
    at({ type: 'tool.progress', tool_call_id: 'call_1', text: 'hi\n' }),
    at({ type: 'tool.end', tool_call_id: 'call_1', name: 'bash', is_error: false, duration_ms: 12 }),
    at({ type: 'agent.idle', run_id: RUN, outcome: 'completed' }),
  ];
}

describe('session fold', () => {
  it('streams the draft, then replaces it with the completed message, once', () => {
    const entries = run();
    const streaming = applyEntries(emptyView(S), entries.slice(0, 8));
    expect(streaming.draft?.parts).toEqual([
      { type: 'text', id: P2, text: 'Running it.' },
      { type: 'tool_call', id: P3, tool_call_id: 'call_1', name: 'bash', input: { command: 'echo hi' } },
    ]);
    expect(streaming.run?.phase).toEqual({ type: 'generating' });
    const done = applyEntries(streaming, entries.slice(8));
    expect(done.draft).toBeNull();
    expect(done.rows.map((r) => r.key)).toEqual([U, M]);
    expect(done.runState).toBe('idle');
    expect(done.run).toBeNull();
    expect(done.tools.call_1).toMatchObject({ progress: 'hi\n', ended: { isError: false, durationMs: 12 } });
    expect(done.usage).toMatchObject({ inputTokens: 10, outputTokens: 5 });
  });

  it('ignores an offset it has already applied (a re-sent entry changes nothing)', () => {
    const entries = run();
    const once = applyEntries(emptyView(S), entries);
    const twice = applyEntries(once, entries);
    expect(twice).toBe(once);
    const interleaved = applyEntries(emptyView(S), entries.flatMap((e, i) => (i > 0 ? [entries[i - 1], e] : [e])));
    expect(interleaved.rows).toEqual(once.rows);
    expect(interleaved.draft).toBeNull();
  });

  it('shows the phase of a tool while it runs', () => {
    const entries = run();
    const view = applyEntries(emptyView(S), entries.slice(0, 11));
    expect(view.run?.phase).toEqual({ type: 'tool_running', name: 'bash' });
    expect(view.tools.call_1.ended).toBeUndefined();
  });

  it('holds a prompt as queued until its message is created', () => {
    const entries = run();
    const queued = applyEntries(emptyView(S), entries.slice(0, 2));
    expect(queued.queued).toEqual([{ commandId: C1, text: 'Run `echo hi`.', offset: 101 }]);
    expect(applyEntries(queued, entries.slice(2, 3)).queued).toEqual([]);
  });

  it('shows a failure as an error row, never as a message', () => {
    next = 200;
    const view = applyEntries(emptyView(S), [
      at({ type: 'prompt', text: 'hi' }, { command_id: C2 }),
      at({ type: 'agent.working', run_id: RUN }),
      at({ type: 'stream.message_start', message_id: M, run_id: RUN, role: 'assistant', provider: 'fake', model_id: 'fake-model' }),
      at({ type: 'run.failed', run_id: RUN, error: { code: 'provider_error', message: 'rate limited' }, recoverable: true }),
      at({ type: 'command.failed', command_id: C2, error: { code: 'discarded', message: 'run ended' }, cause: 201 }),
    ]);
    expect(view.runState).toBe('error');
    expect(view.rows.filter((r) => r.kind === 'message')).toEqual([]);
    expect(view.rows.map((r) => (r.kind === 'error' ? r.error.code : r.kind))).toEqual(['provider_error', 'discarded']);
    expect(view.queued).toEqual([]);
  });

  it('opens and resolves input requests', () => {
    next = 300;
    const asked = applyEntries(emptyView(S), [
      at({ type: 'agent.working', run_id: RUN }),
      at({ type: 'input.requested', request_id: 'q1', kind: 'confirm', title: 'Delete it?' }),
    ]);
    expect(asked.inputs.map((i) => i.request_id)).toEqual(['q1']);
    const answered = applyEntry(asked, at({ type: 'input.resolved', request_id: 'q1', outcome: 'answered' }));
    expect(answered.inputs).toEqual([]);
  });

  it('continues a snapshot: deltas after as_of extend the open run draft', () => {
    const snapshot: SnapshotResult = {
      ch: 'agent', type: 'snapshot_result', id: 'n1', session_id: S, as_of: 400,
      summary: { session_id: S, title: 'T', preview: '', harness: 'pi', workspace: '.', parent: null, created_ms: 1, updated_ms: 1,
        updated_offset: 400, run_state: 'working', model: { provider: 'fake', model_id: 'fake-model' }, message_count: 1,
        usage: { input_tokens: 0, output_tokens: 0, cache_read_tokens: 0, cache_write_tokens: 0, cost_usd: 0 }, deleted: false },
      messages: [{ id: U, role: 'user', created_ms: 1, parts: [{ type: 'text', id: P1, text: 'hi' }] }],
      open_run: { run_id: RUN, phase: { type: 'generating' },
        draft: { id: M, role: 'assistant', created_ms: 2, parts: [{ type: 'text', id: P2, text: 'Hel' }] } },
      next_before: null,
    };
    next = 399;
    const view = applyEntries(fromSnapshot(snapshot), [
      at({ type: 'stream.text_delta', message_id: M, part_id: P2, index: 0, delta: 'stale' }),
      at({ type: 'stream.text_delta', message_id: M, part_id: P2, index: 0, delta: 'lo' }),
    ]);
    expect(view.draft?.parts).toEqual([{ type: 'text', id: P2, text: 'Hello' }]);
    expect(view.runState).toBe('working');
    expect(view.harness).toBe('pi');
  });

  it('keeps a fork title to its own session', () => {
    next = 500;
    const parent = '0193f1a0-5c2e-7b40-9a11-000000005e55';
    const view = applyEntries(emptyView(S), [
      at({ type: 'session.created', harness: 'pi', workspace: '.', title: 'parent title' }, { session_id: parent }),
      at({ type: 'session.forked', parent_session_id: parent, parent_offset: 501, harness: 'pi', workspace: '.', user_messages_inherited: 0, title: 'fork' }),
    ]);
    expect(view.title).toBe('fork');
  });
});
