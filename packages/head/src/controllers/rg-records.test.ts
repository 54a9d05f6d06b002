/** The records apply, scale, delete and the autoscaler store: one rule per case. */
import { describe, expect, it } from 'vitest';
import { ReplicaGroup } from '@muster/proto';
import { appliedRecord, autoscaledRecord, autoscalerMemory, autoscalerState, deletingRecord, scaledRecord } from './rg-records.js';
import { parseRgSpec, revisionOf, type ValidRgSpec } from './rg-spec.js';

const template = (command: string) => ({ command, args: [], env: {}, cwd: '', ports: [], readiness: undefined, liveness: undefined });
const spec = (command: string, over: object = {}): ValidRgSpec => parseRgSpec({ name: 'g', template: template(command), replicas: { min: 1, max: 8, initial: 2 }, ...over } as never);
const V1 = spec('a');
const V2 = spec('b');
const V2_CANARY = spec('b', { rollout: { strategy: 'canary', canaryWeight: 0.2, maxSurge: 1 } });
const V3_CANARY = spec('c', { rollout: { strategy: 'canary', canaryWeight: 0.2, maxSurge: 1 } });

const created = appliedRecord(undefined, V1, 5);
const running = { rg: created.rg, spec: V1, stableSpec: undefined };

describe('appliedRecord', () => {
  it('a new group: initial replicas, its revision, no stable one', () => {
    expect(created.rg).toMatchObject({ name: 'g', desired: 2, revision: revisionOf(V1), stableRevision: '', createdAtMs: 5, deleting: false });
    expect(created.event.kind).toBe('rg.created');
  });

  it('the same revision with other counts: updated, no rollout, desired kept within the new bounds', () => {
    const next = appliedRecord(running, spec('a', { replicas: { min: 3, max: 8, initial: 3 } }), 6);
    expect(next.rg).toMatchObject({ revision: revisionOf(V1), desired: 3 });
    expect(next.event.kind).toBe('rg.updated');
  });

  it('a revision stored by an older head (another hash of the same spec) is kept: upgrading the head rolls nothing', () => {
    const legacy = { ...running, rg: { ...running.rg, revision: 'oldhash123' } };
    const same = appliedRecord(legacy, V1, 6);
    expect(same.rg.revision).toBe('oldhash123');
    expect(same.event.kind).toBe('rg.updated');
    const changed = appliedRecord(legacy, V2, 7);
    expect(changed.rg.revision).toBe(revisionOf(V2));
    expect(changed.event.kind).toBe('rg.rollout');
  });

  it('rolling: a new revision rolls out and ends any canary', () => {
    const canary = appliedRecord(running, V2_CANARY, 6);
    const next = appliedRecord({ rg: canary.rg, spec: V2_CANARY, stableSpec: canary.stableSpec }, spec('c'), 7);
    expect(next.rg).toMatchObject({ revision: revisionOf(spec('c')), stableRevision: '' });
    expect(next.stableSpec).toBeUndefined();
    expect(next.event.kind).toBe('rg.rollout');
  });

  it('canary: the running revision becomes the stable one', () => {
    const next = appliedRecord(running, V2_CANARY, 6);
    expect(next.rg).toMatchObject({ revision: revisionOf(V2), stableRevision: revisionOf(V1), stableSpec: V1 });
    expect(next.stableSpec).toBe(V1);
  });

  // A canary of V2 over stable V1, whose revision string an older head stored (another hash of V1).
  const legacyCanary = (() => {
    const c = appliedRecord(running, V2_CANARY, 6);
    return { rg: { ...c.rg, stableRevision: 'oldhash123' }, spec: V2_CANARY, stableSpec: c.stableSpec };
  })();
  const V1_CANARY = spec('a', { rollout: { strategy: 'canary', canaryWeight: 0.2, maxSurge: 1 } });
  it.each<[string, ValidRgSpec, { revision: string; stableRevision: string; stable: ValidRgSpec | undefined; kind: string }]>([
    ['the stable spec, rolling: back to the stored stable revision, canary ended', V1, { revision: 'oldhash123', stableRevision: '', stable: undefined, kind: 'rg.rollout' }],
    ['the stable spec, canary strategy: the same (no canary of the stable spec against itself)', V1_CANARY, { revision: 'oldhash123', stableRevision: '', stable: undefined, kind: 'rg.rollout' }],
    ['another canary: the stored stable revision stays', V3_CANARY, { revision: revisionOf(V3_CANARY), stableRevision: 'oldhash123', stable: V1, kind: 'rg.rollout' }],
    ['another spec, rolling: rolls out its own revision', spec('c'), { revision: revisionOf(spec('c')), stableRevision: '', stable: undefined, kind: 'rg.rollout' }],
    ['the canary spec again: nothing rolls', V2_CANARY, { revision: revisionOf(V2), stableRevision: 'oldhash123', stable: V1, kind: 'rg.updated' }],
  ])('during a canary after a head upgrade, applying %s', (_name, applied, want) => {
    const next = appliedRecord(legacyCanary, applied, 7);
    expect(next.rg).toMatchObject({ revision: want.revision, stableRevision: want.stableRevision });
    expect(next.stableSpec).toBe(want.stable);
    expect(next.rg.stableSpec).toBe(want.stable);
    expect(next.event.kind).toBe(want.kind);
  });

  it('a second canary while one runs keeps the first stable revision', () => {
    const first = appliedRecord(running, V2_CANARY, 6);
    const second = appliedRecord({ rg: first.rg, spec: V2_CANARY, stableSpec: first.stableSpec }, V3_CANARY, 7);
    expect(second.rg.stableRevision).toBe(revisionOf(V1));
    expect(second.stableSpec).toBe(V1);
  });
});

describe('scale, delete, autoscale', () => {
  it('scale sets desired; delete marks deleting with desired 0; neither touches the input', () => {
    expect(scaledRecord(created.rg, 5)).toMatchObject({ rg: { desired: 5 }, event: { kind: 'rg.scaled' } });
    expect(deletingRecord(created.rg)).toMatchObject({ rg: { deleting: true, desired: 0 }, event: { kind: 'rg.deleting' } });
    expect(created.rg).toMatchObject({ desired: 2, deleting: false });
  });

  it('an autoscaling change stores the count and the timers, and names its inputs on the event', () => {
    const d = { desired: 4, reason: 'queue high', metric: 'queue' as const, inputs: { metric: 9.25, perReplica: 4.6254, replicas: 2, waiting: 0, samples: 2, floor: 0 }, state: { aboveSinceMs: 100, lastChangeMs: 200 } };
    const next = autoscaledRecord(created.rg, d);
    expect(next.rg).toMatchObject({ desired: 4, autoscaler: { aboveSinceMs: 100, belowSinceMs: 0, lastChangeMs: 200, lastReason: 'queue high' } });
    expect(next.event).toMatchObject({ kind: 'rg.autoscale', attributes: { from: '2', to: '4', perReplica: '4.625' } });
  });

  it('the hysteresis values are stored with the timers and survive the wire (a new leader sizes as the old one would)', () => {
    const d = { desired: 2, reason: 'hold', metric: 'queue' as const, inputs: { metric: 9, perReplica: 4.5, replicas: 2, waiting: 0, samples: 2, floor: 0 }, state: { belowSinceMs: 100, belowPeak: 13.5, belowRunningPeak: 40 } };
    const stored = ReplicaGroup.decode(ReplicaGroup.encode(autoscaledRecord(created.rg, d).rg).finish());
    expect(stored.autoscaler).toMatchObject({ belowSinceMs: 100, belowPeak: 13.5, belowRunningPeak: 40 });
    expect(stored.autoscaler?.aboveLow).toBeUndefined();
    expect(autoscalerMemory({ state: {}, reason: 'x' })).not.toHaveProperty('belowPeak');
  });

  it('the sliding peak\'s slices survive the wire, the other metrics\' too; a state stored without them reads as none', () => {
    const belowPeaks = [{ timeMs: 100, peak: 13.5, runningPeak: 40 }, { timeMs: 4386, peak: 9, runningPeak: 0 }];
    const state = { belowSinceMs: 100, belowPeak: 13.5, belowRunningPeak: 40, belowPeaks, others: { cpu: { belowSinceMs: 100, belowPeak: 1.2, belowPeaks: [{ timeMs: 100, peak: 1.2, runningPeak: 0 }] } } };
    const d = { desired: 2, reason: 'hold', metric: 'queue' as const, inputs: { metric: 9, perReplica: 4.5, replicas: 2, waiting: 0, samples: 2, floor: 0 }, state };
    const stored = ReplicaGroup.decode(ReplicaGroup.encode(autoscaledRecord(created.rg, d).rg).finish());
    expect(autoscalerState(stored.autoscaler)).toMatchObject(state);
    // Stored by an older head: the peaks and no slices (decide keeps such a peak for one more window).
    const older = autoscalerState(stored.autoscaler && { ...stored.autoscaler, belowPeaks: [], otherMetrics: {} });
    expect(older).toMatchObject({ belowSinceMs: 100, belowPeak: 13.5 });
    expect(older).not.toHaveProperty('belowPeaks');
  });
});
