// The canonical protocol (PROTOCOL.md) as zod schemas: every server frame is validated at the
// socket, and `schema.test.ts` parses every line of octo-core's insta snapshots with these strict
// schemas, so a wire change in Rust fails the frontend's tests until this file follows it.
import { z } from 'zod';

export const Offset = z.number().int().nonnegative();
export const Uuid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);

export const ErrorShape = z.strictObject({
  code: z.string(),
  message: z.string(),
  ref: z.string().optional(),
});
export type ProtocolError = z.infer<typeof ErrorShape>;

export const ModelRef = z.strictObject({ provider: z.string(), model_id: z.string() });
export type ModelRef = z.infer<typeof ModelRef>;

export const ThinkingLevel = z.enum(['off', 'minimal', 'low', 'medium', 'high', 'xhigh']);
export type ThinkingLevel = z.infer<typeof ThinkingLevel>;

const TextPart = z.strictObject({
  type: z.literal('text'),
  id: Uuid,
  text: z.string(),
  truncated: z.boolean().optional(),
});
const ThinkingPart = z.strictObject({
  type: z.literal('thinking'),
  id: Uuid,
  text: z.string(),
  signature: z.string().optional(),
});
const ToolCallPart = z.strictObject({
  type: z.literal('tool_call'),
  id: Uuid,
  tool_call_id: z.string(),
  name: z.string(),
  input: z.unknown(),
});
const ImagePart = z.strictObject({
  type: z.literal('image'),
  id: Uuid,
  media_type: z.string(),
  data: z.string().optional(),
  omitted_bytes: z.number().optional(),
});
const FileRefPart = z.strictObject({ type: z.literal('file_ref'), id: Uuid, path: z.string() });
const ToolResultPart = z.strictObject({
  type: z.literal('tool_result'),
  id: Uuid,
  tool_call_id: z.string(),
  name: z.string(),
  is_error: z.boolean(),
  content: z.array(z.discriminatedUnion('type', [TextPart, ImagePart])),
  details: z.unknown().optional(),
});
export const Part = z.discriminatedUnion('type', [
  TextPart,
  ThinkingPart,
  ToolCallPart,
  ToolResultPart,
  ImagePart,
  FileRefPart,
]);
export type Part = z.infer<typeof Part>;
export type TextPart = z.infer<typeof TextPart>;
export type ToolCallPart = z.infer<typeof ToolCallPart>;
export type ToolResultPart = z.infer<typeof ToolResultPart>;
export type ImagePart = z.infer<typeof ImagePart>;

export const Role = z.enum(['user', 'assistant', 'tool']);
export const Message = z.strictObject({
  id: Uuid,
  role: Role,
  parts: z.array(Part),
  created_ms: z.number(),
  completed_ms: z.number().optional(),
  provider: z.string().optional(),
  model_id: z.string().optional(),
  stop_reason: z.enum(['stop', 'length', 'tool_use', 'error', 'aborted']).optional(),
  error: z.string().optional(),
  harness_ref: z.record(z.string(), z.unknown()).optional(),
});
export type Message = z.infer<typeof Message>;

export const Usage = z.strictObject({
  input_tokens: z.number(),
  output_tokens: z.number(),
  cache_read_tokens: z.number(),
  cache_write_tokens: z.number(),
  cost_usd: z.number(),
});

export const RunState = z.enum(['idle', 'working', 'error']);
export type RunState = z.infer<typeof RunState>;

export const SessionSummary = z.strictObject({
  session_id: Uuid,
  title: z.string().nullable(),
  preview: z.string(),
  harness: z.string(),
  workspace: z.string(),
  parent: z.strictObject({ session_id: Uuid, offset: Offset }).nullable(),
  created_ms: z.number(),
  updated_ms: z.number(),
  updated_offset: Offset,
  run_state: RunState,
  model: ModelRef.nullable(),
  message_count: z.number(),
  usage: Usage,
  deleted: z.boolean(),
});
export type SessionSummary = z.infer<typeof SessionSummary>;

// ---- Commands (PROTOCOL.md 4.2): the body of a command entry, and the frame minus ch/ids.

const ImageInput = z.strictObject({
  media_type: z.enum(['image/png', 'image/jpeg', 'image/gif', 'image/webp']),
  data: z.string(),
});
export const commandSchemas = {
  'session.create': z.strictObject({
    type: z.literal('session.create'),
    harness: z.string(),
    workspace: z.string(),
    model: ModelRef.optional(),
    thinking_level: ThinkingLevel.optional(),
    title: z.string().optional(),
  }),
  'session.rename': z.strictObject({ type: z.literal('session.rename'), title: z.string() }),
  'session.delete': z.strictObject({ type: z.literal('session.delete') }),
  fork: z.strictObject({
    type: z.literal('fork'),
    at_offset: Offset,
    title: z.string().optional(),
    new_session_id: Uuid.optional(),
  }),
  prompt: z.strictObject({
    type: z.literal('prompt'),
    text: z.string(),
    images: z.array(ImageInput).optional(),
    files: z.array(z.string()).optional(),
    when_busy: z.enum(['steer', 'follow_up']).optional(),
  }),
  abort: z.strictObject({ type: z.literal('abort') }),
  set_model: z.strictObject({ type: z.literal('set_model'), provider: z.string(), model_id: z.string() }),
  set_thinking_level: z.strictObject({ type: z.literal('set_thinking_level'), level: ThinkingLevel }),
  compact: z.strictObject({ type: z.literal('compact'), instructions: z.string().optional() }),
  'input.respond': z.strictObject({
    type: z.literal('input.respond'),
    request_id: z.string(),
    value: z.string().optional(),
    confirmed: z.boolean().optional(),
    cancelled: z.literal(true).optional(),
  }),
} as const;
export type CommandType = keyof typeof commandSchemas;
export type CommandBody = { [K in CommandType]: z.infer<(typeof commandSchemas)[K]> }[CommandType];

// ---- Events (PROTOCOL.md 6).

const cause = Offset.optional();
const runId = Uuid;
export const eventSchemas = {
  'session.created': z.strictObject({
    type: z.literal('session.created'),
    harness: z.string(),
    workspace: z.string(),
    model: ModelRef.optional(),
    thinking_level: ThinkingLevel.optional(),
    title: z.string().optional(),
    rerun_of: Uuid.optional(),
    cause,
  }),
  'session.forked': z.strictObject({
    type: z.literal('session.forked'),
    parent_session_id: Uuid,
    parent_offset: Offset,
    harness: z.string(),
    workspace: z.string(),
    model: ModelRef.optional(),
    thinking_level: ThinkingLevel.optional(),
    title: z.string().optional(),
    user_messages_inherited: z.number(),
    cause,
  }),
  'session.renamed': z.strictObject({
    type: z.literal('session.renamed'),
    title: z.string(),
    source: z.enum(['user', 'harness']),
    cause,
  }),
  'session.deleted': z.strictObject({ type: z.literal('session.deleted'), cause }),
  'harness.started': z.strictObject({
    type: z.literal('harness.started'),
    harness: z.string(),
    version: z.string(),
    pid: z.number(),
    harness_session_id: z.string(),
    harness_session_file: z.string().optional(),
    resumed: z.boolean(),
    forked_from: z
      .strictObject({ harness_session_file: z.string(), entry_id: z.string().optional() })
      .optional(),
    model: ModelRef.optional(),
    thinking_level: ThinkingLevel.optional(),
    cause,
  }),
  'harness.exited': z.strictObject({
    type: z.literal('harness.exited'),
    reason: z.enum(['idle', 'deleted', 'crashed', 'start_failed', 'killed', 'runner_lost', 'runner_shutdown']),
    code: z.number().optional(),
    signal: z.number().optional(),
    stderr_tail: z.string().optional(),
    error: ErrorShape.optional(),
    cause,
  }),
  'agent.working': z.strictObject({ type: z.literal('agent.working'), run_id: runId, cause }),
  'agent.idle': z.strictObject({
    type: z.literal('agent.idle'),
    run_id: runId,
    outcome: z.enum(['completed', 'aborted']),
    cause,
  }),
  'run.failed': z.strictObject({
    type: z.literal('run.failed'),
    run_id: runId,
    error: ErrorShape,
    recoverable: z.boolean(),
    cause,
  }),
  'run.timed_out': z.strictObject({
    type: z.literal('run.timed_out'),
    run_id: runId,
    limit: z.enum(['no_progress', 'max_duration']),
    limit_ms: z.number(),
    cause,
  }),
  'retry.start': z.strictObject({
    type: z.literal('retry.start'),
    run_id: runId,
    attempt: z.number(),
    max_attempts: z.number(),
    delay_ms: z.number(),
    error: z.string(),
  }),
  'retry.end': z.strictObject({
    type: z.literal('retry.end'),
    run_id: runId,
    attempt: z.number(),
    success: z.boolean(),
  }),
  'compact.start': z.strictObject({
    type: z.literal('compact.start'),
    run_id: runId,
    reason: z.enum(['manual', 'threshold', 'overflow']),
  }),
  'compact.end': z.strictObject({
    type: z.literal('compact.end'),
    run_id: runId,
    ok: z.boolean(),
    will_retry: z.boolean(),
    summary: z.string().optional(),
    tokens_before: z.number().optional(),
    error: z.string().optional(),
    cause,
  }),
  'message.created': z.strictObject({
    type: z.literal('message.created'),
    message: Message,
    command_id: Uuid.optional(),
    cause,
  }),
  'stream.message_start': z.strictObject({
    type: z.literal('stream.message_start'),
    message_id: Uuid,
    run_id: runId,
    role: z.literal('assistant'),
    provider: z.string(),
    model_id: z.string(),
  }),
  'stream.text_delta': z.strictObject({
    type: z.literal('stream.text_delta'),
    message_id: Uuid,
    part_id: Uuid,
    index: z.number(),
    delta: z.string(),
  }),
  'stream.thinking_delta': z.strictObject({
    type: z.literal('stream.thinking_delta'),
    message_id: Uuid,
    part_id: Uuid,
    index: z.number(),
    delta: z.string(),
  }),
  'stream.tool_call_delta': z.strictObject({
    type: z.literal('stream.tool_call_delta'),
    message_id: Uuid,
    part_id: Uuid,
    index: z.number(),
    delta: z.string(),
    tool_call_id: z.string().optional(),
    name: z.string().optional(),
  }),
  'stream.message_end': z.strictObject({ type: z.literal('stream.message_end'), message: Message }),
  'usage.recorded': z.strictObject({
    type: z.literal('usage.recorded'),
    run_id: runId,
    message_id: Uuid,
    provider: z.string(),
    model_id: z.string(),
    input_tokens: z.number(),
    output_tokens: z.number(),
    cache_read_tokens: z.number(),
    cache_write_tokens: z.number(),
    cost_usd: z.number().optional(),
  }),
  'tool.start': z.strictObject({
    type: z.literal('tool.start'),
    tool_call_id: z.string(),
    name: z.string(),
    input: z.unknown(),
  }),
  'tool.progress': z.strictObject({ type: z.literal('tool.progress'), tool_call_id: z.string(), text: z.string() }),
  'tool.end': z.strictObject({
    type: z.literal('tool.end'),
    tool_call_id: z.string(),
    name: z.string(),
    is_error: z.boolean(),
    duration_ms: z.number(),
  }),
  'model.changed': z.strictObject({
    type: z.literal('model.changed'),
    provider: z.string(),
    model_id: z.string(),
    thinking_level: ThinkingLevel,
    cause,
  }),
  'input.requested': z.strictObject({
    type: z.literal('input.requested'),
    request_id: z.string(),
    kind: z.enum(['select', 'confirm', 'input', 'editor']),
    title: z.string(),
    message: z.string().optional(),
    options: z.array(z.string()).optional(),
    placeholder: z.string().optional(),
    prefill: z.string().optional(),
    timeout_ms: z.number().optional(),
  }),
  'input.resolved': z.strictObject({
    type: z.literal('input.resolved'),
    request_id: z.string(),
    outcome: z.enum(['answered', 'cancelled', 'timed_out']),
    cause,
  }),
  notice: z.strictObject({
    type: z.literal('notice'),
    level: z.enum(['info', 'warning', 'error']),
    text: z.string(),
  }),
  'command.failed': z.strictObject({
    type: z.literal('command.failed'),
    command_id: Uuid,
    error: ErrorShape,
    cause,
  }),
} as const;

/** hstry writes (PROTOCOL.md 6.7): the UI reads them through `snapshot`, never folds them. */
export const historyEventTypes = [
  'history.conversation_upserted',
  'history.message_upserted',
  'history.conversation_touched',
  'history.conversation_updated',
  'history.conversation_deleted',
  'history.tag_added',
  'history.tag_removed',
  'history.attachment_added',
] as const;

export type EventType = keyof typeof eventSchemas;
export type EventBody = { [K in EventType]: z.infer<(typeof eventSchemas)[K]> }[EventType];
export type EventOf<K extends EventType> = z.infer<(typeof eventSchemas)[K]>;

/** A body of a type this client does not know (a newer server): kept, shown raw, never folded. */
export interface UnknownBody {
  type: string;
  [field: string]: unknown;
}

const anySchemas: Record<string, z.ZodType> = { ...commandSchemas, ...eventSchemas };

/** A known body is checked strictly; an unknown type passes as it is (PROTOCOL.md 1.3). */
const Body = z.looseObject({ type: z.string() }).superRefine((body, ctx) => {
  const schema = anySchemas[body.type];
  if (!schema) return;
  const result = schema.safeParse(body);
  if (!result.success) {
    for (const issue of result.error.issues) ctx.addIssue({ ...issue, message: issue.message } as never);
  }
});

const LogEntryShape = z.strictObject({
  offset: Offset,
  ts_ms: z.number(),
  user_id: z.string(),
  session_id: Uuid,
  kind: z.enum(['command', 'event']),
  producer: z.strictObject({ id: z.string(), seq: z.number() }),
  command_id: Uuid.optional(),
  body: Body,
});
export const LogEntry = LogEntryShape.transform((entry) => entry as LogEntry);
export interface LogEntry {
  offset: number;
  ts_ms: number;
  user_id: string;
  session_id: string;
  kind: 'command' | 'event';
  producer: { id: string; seq: number };
  command_id?: string;
  body: CommandBody | EventBody | UnknownBody;
}

// ---- Server frames (PROTOCOL.md 3.3, 5, 12).

const ModelInfo = z.strictObject({
  provider: z.string(),
  model_id: z.string(),
  name: z.string(),
  context_window: z.number(),
  max_output_tokens: z.number(),
  reasoning: z.boolean(),
  images: z.boolean(),
});
export type ModelInfo = z.infer<typeof ModelInfo>;
const HarnessInfo = z.strictObject({
  name: z.string(),
  version: z.string(),
  available: z.boolean(),
  capabilities: z.array(z.string()),
  models: z.array(ModelInfo),
  thinking_levels: z.array(ThinkingLevel),
});
export type HarnessInfo = z.infer<typeof HarnessInfo>;

export const Phase = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('generating') }),
  z.strictObject({ type: z.literal('tool_running'), name: z.string() }),
  z.strictObject({ type: z.literal('compacting') }),
  z.strictObject({ type: z.literal('retrying') }),
]);
export type Phase = z.infer<typeof Phase>;

const agent = z.literal('agent');
export const Hello = z.strictObject({
  ch: z.literal('system'),
  type: z.literal('hello'),
  protocol: z.strictObject({ major: z.number(), minor: z.number() }),
  encoding: z.enum(['json', 'msgpack']),
  server_version: z.string(),
  demo: z.boolean(),
  workspaces_root: z.string(),
  connection_id: Uuid,
  user: z.strictObject({ id: z.string(), name: z.string() }),
  capabilities: z.array(z.string()),
  harnesses: z.array(HarnessInfo),
  limits: z.strictObject({
    max_frame_bytes: z.number(),
    max_entry_bytes: z.number(),
    max_subscriptions: z.number(),
    max_terminals: z.number(),
    max_prompt_bytes: z.number(),
    max_images: z.number(),
    read_chunk_bytes: z.number(),
  }),
});
export type Hello = z.infer<typeof Hello>;

export const SnapshotResult = z.strictObject({
  ch: agent,
  type: z.literal('snapshot_result'),
  id: z.string(),
  session_id: Uuid,
  as_of: Offset,
  summary: SessionSummary,
  messages: z.array(Message),
  open_run: z
    .strictObject({ run_id: Uuid, draft: Message.nullable(), phase: Phase })
    .nullable(),
  next_before: Offset.nullable(),
});
export type SnapshotResult = z.infer<typeof SnapshotResult>;

const FileEntry = z.strictObject({
  name: z.string(),
  path: z.string(),
  kind: z.string(),
  size: z.number(),
  mtime_ms: z.number(),
  mode: z.number(),
});

export const ServerFrame = z.discriminatedUnion('type', [
  z.strictObject({
    ch: agent,
    type: z.literal('ack'),
    command_id: Uuid,
    status: z.enum(['accepted', 'duplicate', 'rejected']),
    offset: Offset.optional(),
    session_id: Uuid.optional(),
    error: ErrorShape.optional(),
  }),
  z.strictObject({ ch: agent, type: z.literal('subscribed'), id: z.string(), session_id: Uuid, head: Offset }),
  z.strictObject({ ch: agent, type: z.literal('entry'), session_id: Uuid, entry: LogEntry }),
  z.strictObject({ ch: agent, type: z.literal('unsubscribed'), id: z.string(), session_id: Uuid }),
  z.strictObject({
    ch: agent,
    type: z.literal('sessions'),
    id: z.string(),
    head: Offset,
    items: z.array(SessionSummary),
    done: z.boolean(),
  }),
  z.strictObject({ ch: agent, type: z.literal('session_summary'), summary: SessionSummary }),
  z.strictObject({ ch: agent, type: z.literal('unsubscribed_sessions'), id: z.string() }),
  z.strictObject({
    ch: agent,
    type: z.literal('replay_result'),
    id: z.string(),
    session_id: Uuid,
    entries: z.array(LogEntry),
    next_after: Offset.nullable(),
  }),
  SnapshotResult,
  z.strictObject({ ch: agent, type: z.literal('subscribed_log'), id: z.string(), head: Offset.optional() }),
  z.strictObject({ ch: agent, type: z.literal('unsubscribed_log'), id: z.string() }),
  z.strictObject({
    ch: z.enum(['agent', 'files', 'terminal', 'system']),
    type: z.literal('error'),
    id: z.string().optional(),
    terminal_id: Uuid.optional(),
    error: ErrorShape,
  }),
  Hello,
  z.strictObject({ ch: z.literal('system'), type: z.literal('pong'), id: z.string(), ts_ms: z.number() }),
  z.strictObject({ ch: z.literal('system'), type: z.literal('harnesses'), harnesses: z.array(HarnessInfo) }),
  // The files and terminal channels (PROTOCOL.md 10, 11): not offered by this gateway yet, but
  // their frames are pinned here so the client recognises them when they are.
  z.strictObject({
    ch: z.literal('files'),
    type: z.literal('list_result'),
    id: z.string(),
    path: z.string(),
    entries: z.array(FileEntry),
    truncated: z.boolean(),
  }),
  z.strictObject({ ch: z.literal('files'), type: z.literal('stat_result'), id: z.string(), entry: FileEntry }),
  z.strictObject({
    ch: z.literal('files'),
    type: z.literal('read_result'),
    id: z.string(),
    path: z.string(),
    offset: z.number(),
    data: z.string(),
    size: z.number(),
    eof: z.boolean(),
  }),
  z.strictObject({ ch: z.literal('files'), type: z.literal('write_result'), id: z.string(), path: z.string(), size: z.number() }),
  z.strictObject({ ch: z.literal('files'), type: z.literal('rename_result'), id: z.string(), from: z.string(), to: z.string() }),
  z.strictObject({ ch: z.literal('files'), type: z.literal('delete_result'), id: z.string(), path: z.string() }),
  z.strictObject({ ch: z.literal('terminal'), type: z.literal('opened'), id: z.string(), terminal_id: Uuid }),
  z.strictObject({ ch: z.literal('terminal'), type: z.literal('output'), terminal_id: Uuid, data: z.string() }),
  z.strictObject({ ch: z.literal('terminal'), type: z.literal('exited'), terminal_id: Uuid, code: z.number().nullable().optional() }),
]);
export type ServerFrame = z.infer<typeof ServerFrame>;
export type FrameOf<T extends ServerFrame['type']> = Extract<ServerFrame, { type: T }>;
