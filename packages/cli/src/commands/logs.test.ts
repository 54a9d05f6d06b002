/**
 * `muster logs -f`'s line prefixer: whole lines get the replica's prefix, a
 * partial line waits for its end, and one that grows past the cap is written
 * out instead of buffered without bound.
 */
import { describe, expect, it } from 'vitest';
import { LinePrefixer } from './logs.js';

const bytes = (s: string) => new TextEncoder().encode(s);

describe('LinePrefixer', () => {
  it('prefixes whole lines and keeps a partial one for its end', () => {
    const p = new LinePrefixer('[r-1] ');
    expect(p.push(bytes('a\nb'))).toBe('[r-1] a\n');
    expect(p.push(bytes('c\n'))).toBe('[r-1] bc\n');
    expect(p.push(bytes('tail'))).toBe('');
    expect(p.end()).toBe('[r-1] tail\n');
  });

  it('writes a partial line out once it passes the cap', () => {
    const p = new LinePrefixer('> ', 8);
    expect(p.push(bytes('12345678'))).toBe(''); // at the cap: still waits
    expect(p.push(bytes('9'))).toBe('> 123456789\n');
    expect(p.push(bytes('x\n'))).toBe('> x\n');
    expect(p.end()).toBe('');
  });
});
