import { describe, expect, it } from 'vitest';
import { EventIds, formatEventId, parseEventId } from './event-id.js';

describe('EventIds (hybrid logical clock)', () => {
  it('counts up within a ms and across a clock stepped back, and moves ahead when the counter is full', () => {
    let now = 1_000;
    const ids = new EventIds(() => now);
    expect(ids.next()).toBe(formatEventId(1_000, 0));
    expect(ids.next()).toBe(formatEventId(1_000, 1));
    now = 500;
    expect(ids.next()).toBe(formatEventId(1_000, 2));
    ids.resumeAfter(formatEventId(1_000, 999_999));
    expect(ids.next()).toBe(formatEventId(1_001, 0));
    now = 2_000;
    expect(ids.next()).toBe(formatEventId(2_000, 0));
  });

  it('resumes after a stored id only if it is newer, and ignores what is not an id', () => {
    const ids = new EventIds(() => 10);
    ids.resumeAfter(formatEventId(50, 7));
    ids.resumeAfter(formatEventId(20, 9));
    ids.resumeAfter('not-an-id');
    expect(ids.next()).toBe(formatEventId(50, 8));
    expect(parseEventId('0000000000050-000008')).toEqual({ ms: 50, counter: 8 });
    expect(parseEventId('50-8')).toBeUndefined();
  });
});
