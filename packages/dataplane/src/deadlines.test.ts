import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Deadlines, type Expiring } from './deadlines.js';

/** An entry that records when (fake ms since the test's start) it expired. */
function entry(name: string, log: string[]): Expiring {
  return { dlDue: 0, dlPrev: undefined, dlNext: undefined, dlList: undefined, expire: () => log.push(name) };
}

describe('Deadlines', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('expires each entry no earlier than its own length, oldest first, with one timer per length', () => {
    const d = new Deadlines();
    const log: string[] = [];
    d.add(entry('a100', log), 100);
    vi.advanceTimersByTime(10);
    d.add(entry('b100', log), 100);
    d.add(entry('c30', log), 30);
    d.add(entry('d100', log), 100);
    expect(d.timers).toBe(2);
    expect(d.pending).toBe(4);
    vi.advanceTimersByTime(29); // t = 39
    expect(log).toEqual([]);
    vi.advanceTimersByTime(1); // t = 40: c30 is due
    expect(log).toEqual(['c30']);
    vi.advanceTimersByTime(59); // t = 99
    expect(log).toEqual(['c30']);
    vi.advanceTimersByTime(1); // t = 100
    expect(log).toEqual(['c30', 'a100']);
    vi.advanceTimersByTime(10); // t = 110
    expect(log).toEqual(['c30', 'a100', 'b100', 'd100']);
    expect(d.pending).toBe(0);
    expect(d.timers).toBe(0);
  });

  it('never expires a removed entry; a list emptied by removals stops holding the process and is dropped when its timer fires', () => {
    const d = new Deadlines();
    const log: string[] = [];
    const a = entry('a', log);
    const b = entry('b', log);
    const c = entry('c', log);
    d.add(a, 50);
    d.add(b, 50);
    d.add(c, 50);
    d.remove(b); // the middle one
    d.remove(a); // the head
    expect(d.pending).toBe(1);
    expect(d.holding).toBe(1);
    d.remove(c);
    d.remove(c); // twice: nothing
    expect(d.pending).toBe(0);
    expect(d.timers).toBe(1); // left to fire: no clearTimeout per call
    expect(d.holding).toBe(0); // but it keeps no process alive
    vi.advanceTimersByTime(50);
    expect(log).toEqual([]);
    expect(d.timers).toBe(0);
    // Refilled before it fired: the same timer holds the process again and serves the new entry.
    d.add(a, 50);
    d.remove(a);
    vi.advanceTimersByTime(20);
    d.add(b, 50);
    expect(d.holding).toBe(1);
    vi.advanceTimersByTime(30); // the old timer fires first, finds b not due, re-arms for it
    expect(log).toEqual([]);
    expect(d.timers).toBe(1);
    vi.advanceTimersByTime(20);
    expect(log).toEqual(['b']);
    expect(d.timers).toBe(0);
  });

  it('an entry added from inside an expiry is armed once, on the same list', () => {
    const d = new Deadlines();
    const log: string[] = [];
    const again = entry('again', log);
    const first: Expiring = { ...entry('first', log), expire: () => (log.push('first'), d.add(again, 40)) };
    d.add(first, 40);
    vi.advanceTimersByTime(40);
    expect(log).toEqual(['first']);
    expect(d.timers).toBe(1);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(40);
    expect(log).toEqual(['first', 'again']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('stop() clears every timer and arms no more: nothing is left behind a closed router', () => {
    const d = new Deadlines();
    const log: string[] = [];
    d.add(entry('a', log), 100);
    d.add(entry('b', log), 200);
    expect(vi.getTimerCount()).toBe(2);
    d.stop();
    expect(vi.getTimerCount()).toBe(0);
    d.add(entry('c', log), 10);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(1_000);
    expect(log).toEqual([]);
  });
});
