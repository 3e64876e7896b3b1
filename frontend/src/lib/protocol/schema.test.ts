// The protocol types cannot drift from octo-core: every frame, entry, event, command and part that
// core's insta snapshots pin (core/tests/protocol/snapshots) must parse with these strict schemas,
// and every event and command type core knows must be known here.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { commandSchemas, eventSchemas, historyEventTypes, LogEntry, Part, ServerFrame } from './schema';

const dir = fileURLToPath(new URL('../../../../core/tests/protocol/snapshots/', import.meta.url));

/** The JSON lines of one snapshot file (after insta's header). */
function lines(name: string): unknown[] {
  const text = readFileSync(`${dir}protocol__snapshots__${name}.snap`, 'utf8');
  const body = text.split(/^---$/m).slice(2).join('---');
  return body
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as unknown);
}

function expectParses(schema: { safeParse(v: unknown): { success: boolean; error?: unknown } }, value: unknown) {
  const result = schema.safeParse(value);
  expect(result.success, `${JSON.stringify(value).slice(0, 300)}\n${String(result.error)}`).toBe(true);
}

describe('protocol schemas against octo-core snapshots', () => {
  it('parses every server frame', () => {
    const frames = lines('server_frames');
    expect(frames.length).toBeGreaterThan(20);
    for (const frame of frames) expectParses(ServerFrame, frame);
  });

  it('parses every log entry', () => {
    for (const entry of lines('log_entries')) expectParses(LogEntry, entry);
  });

  it('parses every part', () => {
    for (const part of lines('parts')) expectParses(Part, part);
  });

  it('knows every event type and parses each event strictly', () => {
    const events = lines('events') as { type: string }[];
    const known = new Set<string>([...Object.keys(eventSchemas), ...historyEventTypes]);
    for (const event of events) {
      expect(known.has(event.type), `unknown event type ${event.type}`).toBe(true);
      const schema = (eventSchemas as Record<string, z.ZodType>)[event.type];
      if (schema) expectParses(schema, event);
    }
    const seen = new Set(events.map((e) => e.type));
    for (const type of Object.keys(eventSchemas)) expect(seen.has(type), `${type} is not in core's snapshots`).toBe(true);
  });

  it('knows every command and parses each strictly', () => {
    const commands = lines('commands') as { type: string }[];
    for (const command of commands) {
      const schema = (commandSchemas as Record<string, z.ZodType>)[command.type];
      expect(schema, `unknown command ${command.type}`).toBeDefined();
      expectParses(schema, command);
    }
    const seen = new Set(commands.map((c) => c.type));
    for (const type of Object.keys(commandSchemas)) expect(seen.has(type)).toBe(true);
  });

  it('rejects a field core does not send', () => {
    const [frame] = lines('server_frames') as Record<string, unknown>[];
    expect(ServerFrame.safeParse({ ...frame, surprise: 1 }).success).toBe(false);
  });

  it('keeps an entry of an unknown type (a newer server) but checks known ones', () => {
    const [entry] = lines('log_entries') as Record<string, unknown>[];
    expect(LogEntry.safeParse({ ...entry, body: { type: 'future.event', x: 1 } }).success).toBe(true);
    expect(LogEntry.safeParse({ ...entry, body: { type: 'agent.idle', run_id: 'nope' } }).success).toBe(false);
  });
});
