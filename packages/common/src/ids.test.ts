import { describe, expect, it } from 'vitest';
import { randomId } from './ids.js';

describe('randomId', () => {
  it('gives <prefix>-<n random hex digits>, different every time', () => {
    const ids = Array.from({ length: 10_000 }, () => randomId('pg', 12));
    for (const id of ids) expect(id).toMatch(/^pg-[0-9a-f]{12}$/);
    expect(new Set(ids).size).toBe(ids.length);
    // Every position varies: the digits come from the UUID's random part, not its version digit.
    for (let i = 3; i < 15; i++) expect(new Set(ids.map((id) => id[i])).size).toBe(16);
    expect(randomId('r', 8)).toMatch(/^r-[0-9a-f]{8}$/);
  });

  it('refuses more digits than it has random ones', () => {
    expect(() => randomId('x', 13)).toThrow(/at most 12/);
  });
});
