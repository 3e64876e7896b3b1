import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { Bar, BarChart, CartesianGrid, Legend, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { formatCost, formatDuration, formatTokens } from '@/components/format';
import { gql, subscribeGql } from '@/lib/graphql';

interface Row {
  day: string | null;
  model: string | null;
  harness: string | null;
  provider: string | null;
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  costUsd: number;
  turns: number;
  toolCalls: number;
  toolErrors: number;
  runMs: number;
  toolMs: number;
}

const ANALYTICS = `query Analytics($groupBy: [AnalyticsDimension!]!, $from: String, $to: String) {
  analytics(groupBy: $groupBy, from: $from, to: $to) {
    day model harness provider inputTokens outputTokens cacheReadTokens cacheWriteTokens costUsd
    turns toolCalls toolErrors runMs toolMs
  }
}`;

const day = (d: Date) => d.toISOString().slice(0, 10);

function useAnalytics(groupBy: string[], days: number) {
  const to = new Date();
  const from = new Date(to.getTime() - (days - 1) * 86_400_000);
  return useQuery({
    queryKey: ['analytics', groupBy, days],
    queryFn: () => gql<{ analytics: Row[] }>(ANALYTICS, { groupBy, from: day(from), to: day(to) }).then((d) => d.analytics),
  });
}

/** Input and output tokens stacked, one bar per value of `x`. */
function TokensChart({ title, data, x }: { title: string; data: readonly object[]; x: string }) {
  return (
    <figure>
      <figcaption>{title}</figcaption>
      <ResponsiveContainer width="100%" height={220}>
        <BarChart data={[...data]}>
          <CartesianGrid strokeDasharray="3 3" />
          <XAxis dataKey={x} />
          <YAxis />
          <Tooltip />
          <Legend />
          <Bar dataKey="inputTokens" name="input" stackId="t" fill="#5b8def" isAnimationActive={false} />
          <Bar dataKey="outputTokens" name="output" stackId="t" fill="#e0a040" isAnimationActive={false} />
        </BarChart>
      </ResponsiveContainer>
    </figure>
  );
}

/** Tokens, cost and time by day, model and harness, refreshed as sessions change. */
export function AnalyticsPage() {
  const [days, setDays] = useState(30);
  const byDay = useAnalytics(['DAY'], days);
  const byModel = useAnalytics(['PROVIDER', 'MODEL'], days);
  const byHarness = useAnalytics(['HARNESS'], days);
  const queryClient = useQueryClient();

  // Live: any change to the listing (a finished run, new usage) refreshes the figures.
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | null = null;
    const stop = subscribeGql('subscription { sessionsChanged { id } }', {}, () => {
      if (timer) return;
      timer = setTimeout(() => {
        timer = null;
        void queryClient.invalidateQueries({ queryKey: ['analytics'] });
      }, 1000);
    });
    return () => {
      stop();
      if (timer) clearTimeout(timer);
    };
  }, [queryClient]);

  const error = byDay.error ?? byModel.error ?? byHarness.error;
  const dayRows = (byDay.data ?? []).map((r) => ({ ...r, runS: r.runMs / 1000 }));
  const totals = dayRows.reduce(
    (t, r) => ({ input: t.input + r.inputTokens, output: t.output + r.outputTokens, cost: t.cost + r.costUsd, runMs: t.runMs + r.runMs }),
    { input: 0, output: 0, cost: 0, runMs: 0 },
  );
  const modelRows = (byModel.data ?? []).map((r) => ({ ...r, label: `${r.provider ?? ''}/${r.model ?? ''}` }));

  return (
    <section className="analytics" aria-label="Analytics">
      <header className="session-head">
        <h2>Analytics</h2>
        <select aria-label="Range" value={days} onChange={(e) => setDays(Number(e.target.value))}>
          <option value={7}>last 7 days</option>
          <option value={30}>last 30 days</option>
          <option value={90}>last 90 days</option>
        </select>
      </header>
      {error && (
        <p className="error" role="alert">
          {String(error)}
        </p>
      )}
      <div className="totals" data-testid="totals">
        <div>
          <span className="big" data-testid="total-input">{formatTokens(totals.input)}</span> input tokens
        </div>
        <div>
          <span className="big" data-testid="total-output">{formatTokens(totals.output)}</span> output tokens
        </div>
        <div>
          <span className="big">{formatCost(totals.cost)}</span> cost
        </div>
        <div>
          <span className="big">{formatDuration(totals.runMs)}</span> agent time
        </div>
      </div>
      <div className="charts">
        <TokensChart title="Tokens by day" data={dayRows} x="day" />
        <figure>
          <figcaption>Cost and time by day</figcaption>
          <ResponsiveContainer width="100%" height={220}>
            <LineChart data={dayRows}>
              <CartesianGrid strokeDasharray="3 3" />
              <XAxis dataKey="day" />
              <YAxis yAxisId="cost" />
              <YAxis yAxisId="time" orientation="right" />
              <Tooltip />
              <Legend />
              <Line yAxisId="cost" dataKey="costUsd" name="cost (USD)" stroke="#c0504d" isAnimationActive={false} />
              <Line yAxisId="time" dataKey="runS" name="agent time (s)" stroke="#4a9a5a" isAnimationActive={false} />
            </LineChart>
          </ResponsiveContainer>
        </figure>
        <TokensChart title="Tokens by model" data={modelRows} x="label" />
        <figure>
          <figcaption>Turns and tool calls by harness</figcaption>
          <ResponsiveContainer width="100%" height={220}>
            <BarChart data={byHarness.data ?? []}>
              <CartesianGrid strokeDasharray="3 3" />
              <XAxis dataKey="harness" />
              <YAxis />
              <Tooltip />
              <Legend />
              <Bar dataKey="turns" fill="#8064a2" isAnimationActive={false} />
              <Bar dataKey="toolCalls" name="tool calls" fill="#4bacc6" isAnimationActive={false} />
            </BarChart>
          </ResponsiveContainer>
        </figure>
      </div>
      <table className="table" data-testid="analytics-table">
        <thead>
          <tr>
            <th>Day</th>
            <th>Input</th>
            <th>Output</th>
            <th>Cache read</th>
            <th>Cache write</th>
            <th>Cost</th>
            <th>Turns</th>
            <th>Tool calls</th>
            <th>Tool errors</th>
            <th>Agent time</th>
            <th>Tool time</th>
          </tr>
        </thead>
        <tbody>
          {dayRows.map((r) => (
            <tr key={r.day}>
              <td>{r.day}</td>
              <td>{r.inputTokens.toLocaleString('en-US')}</td>
              <td>{r.outputTokens.toLocaleString('en-US')}</td>
              <td>{r.cacheReadTokens.toLocaleString('en-US')}</td>
              <td>{r.cacheWriteTokens.toLocaleString('en-US')}</td>
              <td>{formatCost(r.costUsd)}</td>
              <td>{r.turns}</td>
              <td>{r.toolCalls}</td>
              <td>{r.toolErrors}</td>
              <td>{formatDuration(r.runMs)}</td>
              <td>{formatDuration(r.toolMs)}</td>
            </tr>
          ))}
          {dayRows.length === 0 && !byDay.isLoading && (
            <tr>
              <td colSpan={11} className="muted">
                No usage in this range.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </section>
  );
}
