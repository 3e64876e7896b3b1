// What a session's page shows, as a pure fold of its log entries (PROTOCOL.md 6-8) over a
// `snapshot`: every change comes from an entry at an offset, applied once. Nothing here invents a
// message: failures are rows of their own, user messages come from `message.created`.
import type {
  EventBody,
  EventOf,
  LogEntry,
  Message,
  ModelRef,
  Part,
  Phase,
  ProtocolError,
  RunState,
  SnapshotResult,
  ThinkingLevel,
} from '@/lib/protocol';

export interface ToolRun {
  toolCallId: string;
  name: string;
  input: unknown;
  /** The latest output snapshot while it runs. */
  progress?: string;
  ended?: { isError: boolean; durationMs: number };
}

export type Row =
  | { kind: 'message'; key: string; message: Message; offset: number | null }
  | { kind: 'error'; key: string; offset: number; title: string; error: ProtocolError; recoverable?: boolean }
  | { kind: 'notice'; key: string; offset: number; level: 'info' | 'warning' | 'error'; text: string }
  | { kind: 'compaction'; key: string; offset: number; ok: boolean; summary?: string; error?: string };

export type InputRequest = EventOf<'input.requested'> & { offset: number };

export interface QueuedPrompt {
  commandId: string;
  text: string;
  offset: number;
}

export interface Usage {
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
}

export interface SessionView {
  sessionId: string;
  /** The newest offset folded in; entries at or below it are ignored. */
  lastOffset: number | null;
  /** Completed messages and the run's failures and notices, oldest first. */
  rows: Row[];
  /** The assistant message being streamed. */
  draft: Message | null;
  run: { runId: string; phase: Phase } | null;
  runState: RunState;
  tools: Record<string, ToolRun>;
  inputs: InputRequest[];
  /** Prompts in the log that no `message.created` or `command.failed` has settled yet. */
  queued: QueuedPrompt[];
  model: ModelRef | null;
  thinkingLevel: ThinkingLevel | null;
  title: string | null;
  harness: string | null;
  deleted: boolean;
  usage: Usage;
}

export function emptyView(sessionId: string): SessionView {
  return {
    sessionId,
    lastOffset: null,
    rows: [],
    draft: null,
    run: null,
    runState: 'idle',
    tools: {},
    inputs: [],
    queued: [],
    model: null,
    thinkingLevel: null,
    title: null,
    harness: null,
    deleted: false,
    usage: { inputTokens: 0, outputTokens: 0, costUsd: 0 },
  };
}

const messageRow = (message: Message, offset: number | null): Row => ({
  kind: 'message',
  key: message.id,
  message,
  offset,
});

/** The view as of `snapshot.as_of`; `subscribe {after: as_of}` continues it. */
export function fromSnapshot(snapshot: SnapshotResult): SessionView {
  const { summary } = snapshot;
  const view = emptyView(snapshot.session_id);
  return {
    ...view,
    lastOffset: snapshot.as_of,
    rows: snapshot.messages.map((m) => messageRow(m, null)),
    draft: snapshot.open_run?.draft ?? null,
    run: snapshot.open_run ? { runId: snapshot.open_run.run_id, phase: snapshot.open_run.phase } : null,
    runState: snapshot.open_run ? 'working' : summary.run_state,
    model: summary.model,
    title: summary.title,
    harness: summary.harness,
    deleted: summary.deleted,
    usage: {
      inputTokens: summary.usage.input_tokens,
      outputTokens: summary.usage.output_tokens,
      costUsd: summary.usage.cost_usd,
    },
  };
}

/** Older messages, oldest first (from `snapshot {before}` pages), put in front. */
export function prependOlder(view: SessionView, messages: readonly Message[]): SessionView {
  const known = new Set(view.rows.map((r) => r.key));
  const older = messages.filter((m) => !known.has(m.id)).map((m) => messageRow(m, null));
  return { ...view, rows: [...older, ...view.rows] };
}

/** Folds entries in offset order; an offset at or below `lastOffset` is ignored (dedupe). */
export function applyEntries(view: SessionView, entries: readonly LogEntry[]): SessionView {
  let next = view;
  for (const entry of entries) next = applyEntry(next, entry);
  return next;
}

export function applyEntry(view: SessionView, entry: LogEntry): SessionView {
  if (view.lastOffset !== null && entry.offset <= view.lastOffset) return view;
  const next = { ...view, lastOffset: entry.offset };
  if (entry.kind === 'command') {
    if (entry.body.type === 'prompt' && entry.command_id && 'text' in entry.body) {
      const text = typeof entry.body.text === 'string' ? entry.body.text : '';
      return { ...next, queued: [...next.queued, { commandId: entry.command_id, text, offset: entry.offset }] };
    }
    return next;
  }
  return applyEvent(next, entry.body as EventBody, entry);
}

function applyEvent(view: SessionView, event: EventBody, entry: LogEntry): SessionView {
  const offset = entry.offset;
  switch (event.type) {
    case 'session.created':
    case 'session.forked':
      return {
        ...view,
        model: event.model ?? view.model,
        thinkingLevel: event.thinking_level ?? view.thinkingLevel,
        title: entry.session_id === view.sessionId ? (event.title ?? view.title) : view.title,
        harness: event.harness,
      };
    case 'session.renamed':
      return entry.session_id === view.sessionId ? { ...view, title: event.title } : view;
    case 'session.deleted':
      return entry.session_id === view.sessionId ? { ...view, deleted: true } : view;
    case 'harness.started':
      return { ...view, model: event.model ?? view.model, thinkingLevel: event.thinking_level ?? view.thinkingLevel };
    case 'harness.exited':
      if (event.reason === 'start_failed' || event.reason === 'crashed') {
        const error = event.error ?? {
          code: 'harness_exited',
          message: `the agent exited${event.code !== undefined ? ` with code ${event.code}` : ''}`,
        };
        const title = event.reason === 'start_failed' ? 'The agent could not start' : 'The agent crashed';
        return withRow(view, { kind: 'error', key: `e${offset}`, offset, title, error });
      }
      return view;
    case 'agent.working':
      return { ...view, runState: 'working', run: { runId: event.run_id, phase: { type: 'generating' } } };
    case 'agent.idle':
      return endRun(view, 'idle');
    case 'run.failed':
      return withRow(endRun(view, 'error'), {
        kind: 'error',
        key: `e${offset}`,
        offset,
        title: 'The run failed',
        error: event.error,
        recoverable: event.recoverable,
      });
    case 'run.timed_out':
      return withRow(endRun(view, 'error'), {
        kind: 'error',
        key: `e${offset}`,
        offset,
        title: 'The run timed out',
        error: {
          code: 'timed_out',
          message: `${event.limit === 'no_progress' ? 'no progress' : 'running'} for ${Math.round(event.limit_ms / 1000)} s`,
        },
        recoverable: true,
      });
    case 'retry.start':
      return withPhase(view, { type: 'retrying' });
    case 'retry.end':
    case 'tool.end':
    case 'compact.end': {
      let next = withPhase(view, { type: 'generating' });
      if (event.type === 'tool.end') {
        const tool = next.tools[event.tool_call_id] ?? { toolCallId: event.tool_call_id, name: event.name, input: null };
        next = {
          ...next,
          tools: {
            ...next.tools,
            [event.tool_call_id]: { ...tool, ended: { isError: event.is_error, durationMs: event.duration_ms } },
          },
        };
      }
      if (event.type === 'compact.end') {
        next = withRow(next, {
          kind: 'compaction',
          key: `c${offset}`,
          offset,
          ok: event.ok,
          summary: event.summary,
          error: event.error,
        });
      }
      return next;
    }
    case 'compact.start':
      return withPhase(view, { type: 'compacting' });
    case 'tool.start':
      return {
        ...withPhase(view, { type: 'tool_running', name: event.name }),
        tools: {
          ...view.tools,
          [event.tool_call_id]: { toolCallId: event.tool_call_id, name: event.name, input: event.input },
        },
      };
    case 'tool.progress': {
      const tool = view.tools[event.tool_call_id];
      if (!tool) return view;
      return { ...view, tools: { ...view.tools, [event.tool_call_id]: { ...tool, progress: event.text } } };
    }
    case 'message.created': {
      const queued = event.command_id ? view.queued.filter((q) => q.commandId !== event.command_id) : view.queued;
      return withRow({ ...view, queued }, messageRow(event.message, offset));
    }
    case 'stream.message_start':
      return {
        ...view,
        draft: {
          id: event.message_id,
          role: 'assistant',
          parts: [],
          created_ms: entry.ts_ms,
          provider: event.provider,
          model_id: event.model_id,
        },
      };
    case 'stream.text_delta':
    case 'stream.thinking_delta':
    case 'stream.tool_call_delta':
      return { ...view, draft: applyDelta(view.draft, event, entry.ts_ms) };
    case 'stream.message_end': {
      // Authoritative: it replaces the draft, with the same ids.
      const rows = view.rows.filter((r) => r.key !== event.message.id);
      return { ...view, draft: null, rows: [...rows, messageRow(event.message, offset)] };
    }
    case 'usage.recorded':
      return {
        ...view,
        usage: {
          inputTokens: view.usage.inputTokens + event.input_tokens,
          outputTokens: view.usage.outputTokens + event.output_tokens,
          costUsd: view.usage.costUsd + (event.cost_usd ?? 0),
        },
      };
    case 'model.changed':
      return { ...view, model: { provider: event.provider, model_id: event.model_id }, thinkingLevel: event.thinking_level };
    case 'input.requested':
      return { ...view, inputs: [...view.inputs, { ...event, offset }] };
    case 'input.resolved':
      return { ...view, inputs: view.inputs.filter((i) => i.request_id !== event.request_id) };
    case 'notice':
      return withRow(view, { kind: 'notice', key: `n${offset}`, offset, level: event.level, text: event.text });
    case 'command.failed':
      return withRow(
        { ...view, queued: view.queued.filter((q) => q.commandId !== event.command_id) },
        { kind: 'error', key: `e${offset}`, offset, title: 'A command failed', error: event.error },
      );
    default:
      return view;
  }
}

function withRow(view: SessionView, row: Row): SessionView {
  return { ...view, rows: [...view.rows, row] };
}

function withPhase(view: SessionView, phase: Phase): SessionView {
  return view.run ? { ...view, run: { ...view.run, phase } } : view;
}

/** A run's end: a draft the harness never completed stays visible as it was. */
function endRun(view: SessionView, runState: RunState): SessionView {
  const rows = view.draft && view.draft.parts.length > 0 ? [...view.rows, messageRow(view.draft, null)] : view.rows;
  return { ...view, rows, draft: null, run: null, runState };
}

type Delta = EventOf<'stream.text_delta'> | EventOf<'stream.thinking_delta'> | EventOf<'stream.tool_call_delta'>;

/** Raw argument text of tool calls being streamed, by part id (parsed when it is valid JSON). */
const toolArgs = new WeakMap<Message, Record<string, string>>();

function applyDelta(draft: Message | null, delta: Delta, ts: number): Message {
  const base: Message = draft ?? { id: delta.message_id, role: 'assistant', parts: [], created_ms: ts };
  const args = { ...(toolArgs.get(base) ?? {}) };
  const indexes = partIndexes.get(base) ?? {};
  const position = base.parts.findIndex((p) => p.id === delta.part_id);
  const existing = position >= 0 ? base.parts[position] : undefined;
  let part: Part;
  if (delta.type === 'stream.tool_call_delta') {
    const raw = (args[delta.part_id] ?? '') + delta.delta;
    args[delta.part_id] = raw;
    const previous = existing?.type === 'tool_call' ? existing : undefined;
    part = {
      type: 'tool_call',
      id: delta.part_id,
      tool_call_id: delta.tool_call_id ?? previous?.tool_call_id ?? '',
      name: delta.name ?? previous?.name ?? '',
      input: parseOr(raw),
    };
  } else {
    const kind = delta.type === 'stream.text_delta' ? 'text' : 'thinking';
    const text = existing && (existing.type === 'text' || existing.type === 'thinking') ? existing.text : '';
    part = { type: kind, id: delta.part_id, text: text + delta.delta } as Part;
  }
  const parts = [...base.parts];
  if (position >= 0) parts[position] = part;
  else parts.push(part);
  const nextIndexes = { ...indexes, [delta.part_id]: delta.index };
  parts.sort((a, b) => (nextIndexes[a.id] ?? 0) - (nextIndexes[b.id] ?? 0));
  const next: Message = { ...base, parts };
  toolArgs.set(next, args);
  partIndexes.set(next, nextIndexes);
  return next;
}

const partIndexes = new WeakMap<Message, Record<string, number>>();

function parseOr(raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return raw;
  }
}
