import { describe, expect, it } from 'vitest';
import { allDemandSubjects, allLoadSubjects, callerInboxPrefix, callerPermissions, demandSubject, groupOfSubject, headPermissions, loadSubject, replicaPermissions, replicaSubject, toDemandReport, toLoadReport } from './subjects.js';
import { MAX_REPORTED_COUNT } from './engine-metrics.js';

describe('subjects', () => {
  it('builds the subjects of one group, and the wildcards the head listens on', () => {
    expect(replicaSubject('muster', 'llm', 'r-1')).toBe('muster.rg.llm.r-1');
    expect(loadSubject('p', 'llm')).toBe('p.load.llm');
    expect(demandSubject('p', 'llm')).toBe('p.demand.llm');
    expect(allLoadSubjects('p')).toBe('p.load.>');
    expect(allDemandSubjects('p')).toBe('p.demand.>');
    expect(groupOfSubject(demandSubject('a.b', 'llm'))).toBe('llm');
  });
});

describe('report decoders', () => {
  const load = { v: 1, replicaId: 'r-1', inFlight: 2, queued: 0, timeMs: 1_700_000_000_000 };

  it('take a valid load report, draining or not', () => {
    expect(toLoadReport(load)).toEqual(load);
    expect(toLoadReport({ ...load, draining: true })).toEqual({ ...load, draining: true });
    expect(toLoadReport({ ...load, incarnation: 'c0ffee' })).toEqual({ ...load, incarnation: 'c0ffee' });
    expect(toLoadReport({ ...load, incarnation: 7 })).toBeUndefined();
    expect(toLoadReport({ ...load, incarnation: '' })).toBeUndefined();
  });

  it.each([
    ['no id', { ...load, replicaId: undefined }],
    ['an empty id', { ...load, replicaId: '' }],
    ['a negative count', { ...load, inFlight: -1 }],
    ['a fractional count', { ...load, queued: 0.5 }],
    ['an absurd count', { ...load, queued: MAX_REPORTED_COUNT + 1 }],
    ['a count as a string', { ...load, inFlight: '2' }],
    ['no time', { ...load, timeMs: undefined }],
    ['an infinite time', { ...load, timeMs: Infinity }],
    ['draining not a boolean', { ...load, draining: 'yes' }],
  ])('refuse a load report with %s', (_why, r) => {
    expect(toLoadReport(r)).toBeUndefined();
  });

  it('refuse what is not an object', () => {
    for (const r of [null, undefined, 3, 'x', []]) expect(toLoadReport(r)).toBeUndefined();
  });

  it('take a valid demand report and refuse a bad one', () => {
    const d = { v: 1, routerId: 'a1', waiting: 3, timeMs: 5 };
    expect(toDemandReport(d)).toEqual(d);
    expect(toDemandReport({ ...d, waiting: -3 })).toBeUndefined();
    expect(toDemandReport({ ...d, routerId: 7 })).toBeUndefined();
    expect(toDemandReport({ ...d, waiting: 1e12 })).toBeUndefined();
  });
});

describe('subject permissions per role', () => {
  it('a replica has its group\'s requests and load subject and answers under _INBOX; a caller its groups and its own inbox; only the head has the prefix wildcard', () => {
    expect(replicaPermissions('p', 'g')).toEqual({ pub: ['p.load.g', '_INBOX.>'], sub: ['p.rg.g.>'] });
    expect(callerPermissions('p', ['a', 'b'], callerInboxPrefix('x'))).toEqual({
      pub: ['p.rg.a.>', 'p.demand.a', 'p.rg.b.>', 'p.demand.b'],
      sub: ['p.load.a', 'p.load.b', '_INBOX.x.>'],
    });
    expect(headPermissions('p', '_INBOX.h')).toEqual({ pub: ['p.>', '_INBOX.h.>'], sub: ['p.>', '_INBOX.h.>'] });
    for (const perms of [replicaPermissions('p', 'g'), callerPermissions('p', ['*'], '_INBOX.y')]) {
      expect([...perms.pub, ...perms.sub]).not.toContain('p.>');
      expect([...perms.pub, ...perms.sub]).not.toContain('>');
      expect(perms.sub).not.toContain('_INBOX.>');
    }
  });
});
