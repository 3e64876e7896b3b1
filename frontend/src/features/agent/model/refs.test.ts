import { describe, expect, it } from 'vitest';
import { fileRefs, splitRefs } from './refs';

describe('@path references', () => {
  it('finds workspace paths after an @ at a word start, once each', () => {
    expect(fileRefs('look at @src/main.rs and @README.md, then @src/main.rs again')).toEqual(['src/main.rs', 'README.md']);
  });

  it('ignores e-mail addresses and a bare @', () => {
    expect(fileRefs('mail me at someone@example.com @ noon')).toEqual([]);
  });

  it('splits text into plain runs and references, losing nothing', () => {
    const text = 'see @a/b.txt, and @c';
    const runs = splitRefs(text);
    expect(runs.map((r) => r.text).join('')).toBe(text);
    expect(runs.filter((r) => r.ref).map((r) => r.ref)).toEqual(['a/b.txt', 'c']);
  });
});
