/** The registry's change log (change-log.ts): what a view that caught up at some version is told. */
import { describe, expect, it } from 'vitest';
import { ChangeLog } from './change-log.js';

describe('change log', () => {
  const cases: Array<{ name: string; steps: (log: ChangeLog) => number; want: string[] | undefined }> = [
    { name: 'nothing changed since now', steps: (l) => l.current, want: [] },
    {
      name: 'the ids changed after the version, in order, repeats kept',
      steps: (l) => {
        l.note('a');
        const v = l.current;
        l.note('b');
        l.note('a');
        return v;
      },
      want: ['b', 'a'],
    },
    {
      name: 'a reload makes earlier versions unknown',
      steps: (l) => {
        const v = l.current;
        l.note('a');
        l.reset();
        return v;
      },
      want: undefined,
    },
    {
      name: 'after a reload, later changes are known again',
      steps: (l) => {
        l.reset();
        const v = l.current;
        l.note('c');
        return v;
      },
      want: ['c'],
    },
    {
      name: 'a version older than what is kept is unknown (bounded)',
      steps: (l) => {
        const v = l.current;
        for (let i = 0; i < 5; i++) l.note(`n${i}`);
        return v;
      },
      want: undefined,
    },
    { name: 'a version from the future is unknown', steps: (l) => l.current + 1, want: undefined },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const log = new ChangeLog(4);
      expect(log.since(c.steps(log))).toEqual(c.want);
    });
  }

  it('keeps at most its bound of ids, and the recent ones stay known', () => {
    const log = new ChangeLog(4);
    for (let i = 0; i < 100; i++) log.note(`n${i}`);
    expect(log.since(log.current - 2)).toEqual(['n98', 'n99']);
    expect(log.since(log.current - 5)).toBeUndefined();
  });
});
