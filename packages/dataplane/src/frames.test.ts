import { describe, expect, it } from 'vitest';
import { decode, encode } from '@muster/common';
import { encodeFrame, frameItems, MAX_FRAME_ITEMS } from './frames.js';

describe('frameItems', () => {
  const bytes = encode({ v: 1 });

  it('reads back what encodeFrame wrote', () => {
    const got = frameItems(decode(encodeFrame([[0, bytes], [7, bytes]])));
    expect(got).toEqual({ items: [[0, expect.any(Uint8Array)], [7, expect.any(Uint8Array)]], bad: 0 });
    expect(decode((got as { items: [number, Uint8Array][] }).items[1]![1])).toEqual({ v: 1 });
  });

  it('says a message without `frame` is not a frame', () => {
    expect(frameItems({ v: 1, id: 'x' })).toBeUndefined();
    expect(frameItems(null)).toBeUndefined();
    expect(frameItems(3)).toBeUndefined();
  });

  it.each([
    ['not a list', { v: 1, frame: 'x' }, 'is not a list'],
    ['empty', { v: 1, frame: [] }, 'is empty'],
    ['too long', { v: 1, frame: Array.from({ length: MAX_FRAME_ITEMS + 1 }, (_, i) => [i, bytes]) }, `${MAX_FRAME_ITEMS + 1} items, more than ${MAX_FRAME_ITEMS}`],
  ])('names a frame that is not one: %s', (_what, body, words) => {
    expect(frameItems(body)).toContain(words);
  });

  it('leaves out and counts items that are not [token, bytes]', () => {
    const got = frameItems({ v: 1, frame: [[1, bytes], [-1, bytes], [1.5, bytes], ['2', bytes], [3, 'text'], [4], 5, [6, bytes, 'extra']] });
    expect(got).toEqual({ items: [[1, bytes]], bad: 7 });
  });
});
