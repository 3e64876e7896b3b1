export function formatTokens(n: number): string {
  if (n >= 1_000_000) return `${(n / 1_000_000).toFixed(1)}M`;
  if (n >= 10_000) return `${Math.round(n / 1000)}k`;
  return n.toLocaleString('en-US');
}

export function formatCost(usd: number): string {
  return usd < 0.01 && usd > 0 ? `$${usd.toFixed(4)}` : `$${usd.toFixed(2)}`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - m * 60)} s`;
}

export function formatTime(ms: number): string {
  return new Date(ms).toLocaleString();
}

/** Splits a `<b>`-marked snippet into plain and marked runs, without any HTML parsing. */
export function markedRuns(snippet: string): { text: string; marked: boolean }[] {
  const runs: { text: string; marked: boolean }[] = [];
  const re = /<b>(.*?)<\/b>/g;
  let last = 0;
  for (let m = re.exec(snippet); m; m = re.exec(snippet)) {
    if (m.index > last) runs.push({ text: snippet.slice(last, m.index), marked: false });
    runs.push({ text: m[1], marked: true });
    last = m.index + m[0].length;
  }
  if (last < snippet.length) runs.push({ text: snippet.slice(last), marked: false });
  return runs;
}
