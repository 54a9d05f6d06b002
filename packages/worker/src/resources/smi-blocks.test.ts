/**
 * The long-running query's stdout cut into bounded lines and GPU-count
 * blocks: chunks split anywhere, an over-long line dropped without being
 * held, and one lost or extra line costing one block, not every later one.
 */
import { describe, expect, it } from 'vitest';
import { BlockAssembler, LineBuffer, type BlockEvent } from './smi-blocks.js';

function lines(chunks: string[], maxLine = 10): { lines: string[]; dropped: number; held: number } {
  const out: string[] = [];
  let dropped = 0;
  const b = new LineBuffer((l) => out.push(l), () => dropped++, maxLine);
  let held = 0;
  for (const c of chunks) {
    b.push(c);
    held = Math.max(held, (b as unknown as { partial: string }).partial.length);
  }
  return { lines: out, dropped, held };
}

describe('LineBuffer', () => {
  it.each([
    ['whole lines', ['a\nb\n'], ['a', 'b'], 0],
    ['a line split across chunks', ['ab', 'c\nd', '\n'], ['abc', 'd'], 0],
    ['CRLF and blank lines', ['a\r\n\r\n\nb\n'], ['a', 'b'], 0],
    ['a line of exactly the bound', ['0123456789\n'], ['0123456789'], 0],
    ['a line over the bound in one chunk', ['0123456789X\nok\n'], ['ok'], 1],
    ['a line over the bound across chunks, its tail in another', ['01234', '56789X', 'YYYYYYYYYYYYYYYY', 'Z\nok\n'], ['ok'], 1],
    ['a partial line is not a line until its newline', ['abc'], [], 0],
  ])('%s', (_name, chunks, want, drops) => {
    const r = lines(chunks);
    expect(r.lines).toEqual(want);
    expect(r.dropped).toBe(drops);
    expect(r.held).toBeLessThanOrEqual(10);
  });
});

describe('BlockAssembler (3 GPUs)', () => {
  const row = (i: number) => `${i}, GPU-${i}, 1, 2, 3`;
  const feed = (input: Array<string | 'TEAR'>): BlockEvent[] => {
    const a = new BlockAssembler(3);
    const out: BlockEvent[] = [];
    for (const l of input) {
      if (l === 'TEAR') a.tear();
      else {
        const e = a.push(l);
        if (e) out.push(e);
      }
    }
    return out;
  };
  const whole = { rows: [row(0), row(1), row(2)] };

  it.each<[string, Array<string | 'TEAR'>, BlockEvent[]]>([
    ['one block per GPU count', [row(0), row(1), row(2), row(0), row(1), row(2)], [whole, whole]],
    ['a lost row: that block is torn, the next one whole', [row(0), row(2), row(0), row(1), row(2)], [{ torn: true }, whole]],
    ['a dropped (over-long) row: torn, then whole', [row(0), 'TEAR', row(2), row(0), row(1), row(2)], [{ torn: true }, whole]],
    ['a dropped row that left the count whole: still torn', [row(0), 'TEAR', row(1), row(2), row(0), row(1), row(2)], [{ torn: true }, whole]],
    ['garbage takes a row\'s place (and fails the parse later)', [row(0), 'NVIDIA-SMI has failed', row(2)], [{ rows: [row(0), 'NVIDIA-SMI has failed', row(2)] }]],
    ['an extra row: that interval is torn (both its pieces), then back in step', [row(0), row(1), row(1), row(2), row(0), row(1), row(2)], [{ torn: true }, { torn: true }, whole]],
  ])('%s', (_name, input, want) => {
    expect(feed(input)).toEqual(want);
  });

  it('refuses a block of no rows', () => {
    expect(() => new BlockAssembler(0)).toThrow(/at least one row/);
  });
});
