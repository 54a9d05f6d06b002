import { describe, expect, it } from 'vitest';
import { HeadRotation } from './leader.js';

const refused = (hint: string | undefined, nowMs = 10_000) => ({ notLeader: true, leaderHint: hint, nowMs });
const down = (nowMs = 10_000) => ({ notLeader: false, nowMs });

describe('which head next', () => {
  it('goes round the list when nobody names a leader', () => {
    const r = new HeadRotation(['a:1', 'b:1', 'c:1']);
    expect([r.failed('a:1', down()), r.failed('b:1', refused(undefined)), r.failed('c:1', down())]).toEqual(['b:1', 'c:1', 'a:1']);
  });

  it('follows a named leader, also one outside the list, and goes on from it in the list', () => {
    const r = new HeadRotation(['a:1', 'b:1', 'c:1']);
    expect(r.failed('a:1', refused('c:1'))).toBe('c:1');
    expect(r.failed('c:1', down())).toBe('a:1'); // the cursor moved to c
    expect(r.failed('a:1', refused('elsewhere:7400'))).toBe('elsewhere:7400');
    expect(r.failed('elsewhere:7400', down())).toBe('b:1');
  });

  it('passes over a hint that is not an address, names itself, or failed a moment ago', () => {
    const r = new HeadRotation(['a:1', 'b:1', 'c:1']);
    expect(r.failed('a:1', refused('not an address'))).toBe('b:1');
    expect(r.failed('b:1', refused('b:1'))).toBe('c:1');
    r.failed('c:1', down(10_000)); // → a:1, and c is unreachable since 10 000
    expect(r.current).toBe('a:1');
    expect(r.failed('a:1', refused('c:1', 10_500))).toBe('b:1'); // standbys still name the dead leader
    expect(r.failed('b:1', refused('c:1', 11_000))).toBe('c:1'); // a second later it is worth a try
  });

  it('ignores a failure of a head that is no longer current (a concurrent call moved already)', () => {
    const r = new HeadRotation(['a:1', 'b:1', 'c:1']);
    r.failed('a:1', down());
    expect(r.failed('a:1', down())).toBe('b:1');
  });

  it('plaintext: refuses a hint outside the list, says which, and goes on in the list', () => {
    const r = new HeadRotation(['a:1', 'b:1', 'c:1'], { hintsOutsideList: false });
    expect(r.failed('a:1', refused('elsewhere:7400'))).toBe('b:1');
    expect(r.refusedHint).toBe('elsewhere:7400');
    expect(r.failed('b:1', refused('a:1'))).toBe('a:1'); // a hint within the list is followed
    expect(r.refusedHint).toBeUndefined();
  });

  it('needs an address', () => {
    expect(() => new HeadRotation([])).toThrow(/no address/);
  });
});
