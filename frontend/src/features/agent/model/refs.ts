// `@path` references to workspace files in prompt text: one pattern for what the composer sends
// as `files` and what the chat highlights.
const REF = /(^|\s)@([\w./-]*[\w/-])/g;

/** The `@path` words of a prompt, in order, without repeats (at most the protocol's 32). */
export function fileRefs(text: string): string[] {
  const found = new Set<string>();
  for (const m of text.matchAll(REF)) found.add(m[2]);
  return [...found].slice(0, 32);
}

/** Text split into plain runs and `@path` references. */
export function splitRefs(text: string): { text: string; ref: string | null }[] {
  const runs: { text: string; ref: string | null }[] = [];
  let last = 0;
  for (const m of text.matchAll(REF)) {
    const start = (m.index ?? 0) + m[1].length;
    if (start > last) runs.push({ text: text.slice(last, start), ref: null });
    runs.push({ text: `@${m[2]}`, ref: m[2] });
    last = start + m[2].length + 1;
  }
  if (last < text.length) runs.push({ text: text.slice(last), ref: null });
  return runs;
}
