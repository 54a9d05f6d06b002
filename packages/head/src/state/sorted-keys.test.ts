import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SortedKeys, compareKeys } from './sorted-keys.js';

const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
// Short keys over a small alphabet (so prefixes and collisions are common), with
// characters from each UTF-8 length class, U+E000..U+FFFF and astral ones included.
const key = fc.array(fc.constantFrom('a', 'b', '/', 'é', '\uE000', '\uFFFD', '😀', '\u{10FFFF}'), { minLength: 1, maxLength: 4 }).map((cs) => cs.join(''));

describe('SortedKeys', () => {
  it('compareKeys orders like UTF-8 bytes', () => {
    fc.assert(fc.property(key, key, (a, b) => Math.sign(compareKeys(a, b)) === Math.sign(byBytes(a, b))));
  });

  it('matches a sorted reference through any mix of inserts and deletes', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), key), { maxLength: 3000 }), key, (ops, start) => {
        const sk = new SortedKeys();
        const ref = new Set<string>();
        for (const [insert, k] of ops) {
          if (insert === ref.has(k)) continue; // the store inserts only new keys, deletes only present ones
          if (insert) sk.insert(k);
          else sk.delete(k);
          if (insert) ref.add(k);
          else ref.delete(k);
        }
        const all = [...ref].sort(byBytes);
        expect(sk.size).toBe(ref.size);
        expect([...sk.from('')]).toEqual(all);
        expect([...sk.from(start)]).toEqual(all.filter((k) => byBytes(k, start) >= 0));
      }),
      { numRuns: 200 },
    );
  });

  it('stays ordered across chunk splits and rebuilds', () => {
    const sk = new SortedKeys();
    const keys = Array.from({ length: 5000 }, (_, i) => `k/${(i * 7919) % 5000}`);
    for (const k of keys) sk.insert(k);
    for (const k of keys.slice(0, 4900)) sk.delete(k);
    expect([...sk.from('')]).toEqual(keys.slice(4900).sort(byBytes));
  });
});
