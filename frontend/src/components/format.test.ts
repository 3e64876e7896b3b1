import { describe, expect, it } from 'vitest';
import { formatCost, formatDuration, formatTokens, markedRuns } from './format';

describe('formatting', () => {
  it('splits a search snippet into marked runs without parsing HTML', () => {
    expect(markedRuns('the <b>zebra</b> and <b>corn</b>!')).toEqual([
      { text: 'the ', marked: false },
      { text: 'zebra', marked: true },
      { text: ' and ', marked: false },
      { text: 'corn', marked: true },
      { text: '!', marked: false },
    ]);
    expect(markedRuns('<img src=x onerror=alert(1)>')).toEqual([{ text: '<img src=x onerror=alert(1)>', marked: false }]);
  });

  it('shows tokens, cost and durations compactly', () => {
    expect(formatTokens(1234)).toBe('1,234');
    expect(formatTokens(45_600)).toBe('46k');
    expect(formatTokens(2_500_000)).toBe('2.5M');
    expect(formatCost(0.004)).toBe('$0.0040');
    expect(formatCost(1.5)).toBe('$1.50');
    expect(formatDuration(850)).toBe('850 ms');
    expect(formatDuration(61_000)).toBe('1 min 1 s');
  });
});
