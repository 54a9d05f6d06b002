import { describe, expect, it } from 'vitest';
import { HGX_H100, makeNode } from './profiles.js';
import { compareQueued, runCycle, type Hold, type QueuedGroup } from './queue.js';
import { ReasonCode } from './reasons.js';
import { parsePlacementGroupSpec } from './spec.js';
import { ClusterState } from './state.js';
import type { ValidPgSpec } from './types.js';

function spec(gpus: number, priority = 0, extra: object = {}): ValidPgSpec {
  const r = parsePlacementGroupSpec({ name: 'pg', bundles: [{ gpus }], priority, ...extra });
  if (!r.ok) throw new Error(r.message);
  return r.spec;
}

const q = (id: string, gpus: number, enqueuedAtMs: number, priority = 0): QueuedGroup => ({ id, spec: spec(gpus, priority), enqueuedAtMs });

describe('queue order', () => {
  it('priority first, then age, then id', () => {
    const sorted = [q('c', 1, 5), q('a', 1, 9, 5), q('b', 1, 5), q('d', 1, 1)].sort(compareQueued).map((g) => g.id);
    expect(sorted).toEqual(['a', 'd', 'b', 'c']);
  });

  it('a higher-priority group gets the last GPUs even if it came later', () => {
    const state = ClusterState.from({ nodes: [makeNode(HGX_H100, 'n')], reservations: [] });
    const r = runCycle(state, [q('old', 8, 0), q('urgent', 8, 10, 1)], 20, undefined);
    expect(r.placed.map((p) => p.id)).toEqual(['urgent']);
    expect(r.pending.map((p) => p.id)).toEqual(['old']);
  });

  it('reports INFEASIBLE groups instead of keeping them pending, and never lets them hold', () => {
    const state = ClusterState.from({ nodes: [makeNode(HGX_H100, 'n')], reservations: [] });
    const r = runCycle(state, [q('huge', 16, 0)], 1_000_000, undefined, { starvationAfterMs: 1 });
    expect(r.infeasible.map((p) => p.id)).toEqual(['huge']);
    expect(r.hold).toBeUndefined();
  });
});

/**
 * Two 8-GPU nodes kept full by 1-GPU jobs of 8 ticks, with slightly more
 * small jobs arriving than finishing. An 8-GPU gang arrives at t=0.
 */
function simulate(starvationAfterMs: number, ticks: number) {
  const state = ClusterState.from({ nodes: [makeNode(HGX_H100, 'a'), makeNode(HGX_H100, 'b')], reservations: [] });
  const ends = new Map<string, number>();
  let queue: QueuedGroup[] = [];
  let seq = 0;
  for (let i = 0; i < 16; i++) queue.push(q(`s${seq++}`, 1, 0));
  runCycle(state, queue, 0, undefined).placed.forEach((p, i) => ends.set(p.id, 1 + (i % 8)));
  queue = [q('big', 8, 0)];
  let hold: Hold | undefined;
  let bigPlacedAt: number | undefined;
  let smallPlacedWhileHeld = 0;
  for (let t = 1; t <= ticks && bigPlacedAt === undefined; t++) {
    for (const [id, end] of ends) {
      if (end <= t) {
        state.releaseGroup(id);
        ends.delete(id);
      }
    }
    queue.push(q(`s${seq++}`, 1, t * 1000), q(`s${seq++}`, 1, t * 1000), ...(t % 4 === 0 ? [q(`s${seq++}`, 1, t * 1000)] : []));
    const r = runCycle(state, queue, t * 1000, hold, { starvationAfterMs });
    for (const p of r.placed) {
      ends.set(p.id, t + 8);
      if (p.id === 'big') bigPlacedAt = t;
      else if (hold !== undefined) smallPlacedWhileHeld++;
    }
    const done = new Set(r.placed.map((p) => p.id));
    queue = queue.filter((g) => !done.has(g.id));
    hold = r.hold;
  }
  return { bigPlacedAt, smallPlacedWhileHeld };
}

describe('anti-starvation', () => {
  it('without holds, a stream of 1-GPU groups starves an 8-GPU gang (the problem)', () => {
    expect(simulate(Number.POSITIVE_INFINITY, 200).bigPlacedAt).toBeUndefined();
  });

  it('with a hold after 5 s, the gang runs within one job length, while small groups keep backfilling the other node', () => {
    const { bigPlacedAt, smallPlacedWhileHeld } = simulate(5_000, 200);
    expect(bigPlacedAt).toBeDefined();
    expect(bigPlacedAt!).toBeLessThanOrEqual(5 + 8 + 1);
    expect(smallPlacedWhileHeld).toBeGreaterThan(0);
  });

  it('groups behind the holder see held nodes as rejected, with the holder named', () => {
    const state = ClusterState.from({ nodes: [makeNode(HGX_H100, 'a')], reservations: [{ groupId: 'x', bundleIndex: 0, nodeId: 'a', gpuIndices: [0], migUuids: [], cpuMillis: 0, memoryBytes: 0, custom: {} }] });
    const r = runCycle(state, [q('big', 8, 0), q('small', 1, 1)], 100_000, undefined, { starvationAfterMs: 1000 });
    expect(r.hold).toMatchObject({ groupId: 'big', nodeIds: ['a'] });
    const small = r.pending.find((p) => p.id === 'small')!;
    expect(small.reason.rejections).toContainEqual({ code: ReasonCode.NODE_HELD, detail: 'big', count: 1 });
    expect(small.reason.message).toContain('1 held for starving group big');
  });

  it('groups ahead of the holder (higher priority) may still use held nodes', () => {
    const state = ClusterState.from({ nodes: [makeNode(HGX_H100, 'a')], reservations: [{ groupId: 'x', bundleIndex: 0, nodeId: 'a', gpuIndices: [0], migUuids: [], cpuMillis: 0, memoryBytes: 0, custom: {} }] });
    const hold: Hold = { groupId: 'big', nodeIds: ['a'], sinceMs: 0 };
    const r = runCycle(state, [q('big', 8, 0), q('vip', 1, 50, 9), q('late', 1, 60)], 100, hold);
    expect(r.placed.map((p) => p.id)).toEqual(['vip']);
    expect(r.pending.map((p) => p.id)).toEqual(['big', 'late']);
    expect(r.hold?.groupId).toBe('big');
  });
});
