/**
 * Property tests over random clusters (real and random topologies, MIG, dead
 * and draining nodes, taints, labels) and random streams of groups and releases. Every
 * result is checked against an independent ledger, not against the
 * scheduler's own state:
 *   - no GPU, MIG slice, CPU, memory or custom resource is ever double-booked;
 *   - a gang is placed whole or not at all (and a refusal leaves no trace);
 *   - strict constraints hold: STRICT_PACK, STRICT_SPREAD, required levels,
 *     selectors, NoSchedule taints, liveness, draining, GPU memory, MIG profiles;
 *   - `gpu-island` required is never broken, and a lone TP bundle is split
 *     across islands only when no eligible node had one free island for it;
 *   - a lone bundle that some node can hold is placed; one called INFEASIBLE
 *     fits no node even when the cluster is empty;
 *   - judging untouched nodes once per shape class (state.ts shapeOf) changes
 *     no decision and no explanation: the same stream on the same cluster with
 *     every node made unique gives the same answers.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { placeGroup } from './pipeline.js';
import { PROFILES, makeNode } from './profiles.js';
import { runCycle, type Hold, type QueuedGroup } from './queue.js';
import { freeTotals, roomFor } from './room.js';
import { ClusterState } from './state.js';
import { deriveIslands } from './topology.js';
import type { Bundle, BundlePlacement, ValidPgSpec, SchedulerNode, Taint, Toleration } from './types.js';

const CELLS = ['NV1', 'NV2', 'NV12', 'NV18', 'PIX', 'PXB', 'PHB', 'NODE', 'SYS'];
const LEVELS = ['gpu-island', 'node', 'nvlink-domain', 'rack', 'zone'] as const;
const MIG_PROFILES = ['1g.10gb', '2g.20gb'];

const arbTaint: fc.Arbitrary<Taint> = fc.record({ key: fc.constantFrom('spot', 'maint'), value: fc.constant('true'), effect: fc.constantFrom('NoSchedule' as const, 'PreferNoSchedule' as const) });

const arbRandomTopology = fc.integer({ min: 0, max: 12 }).chain((n) =>
  fc.record({
    cells: fc.array(fc.constantFrom(...CELLS), { minLength: (n * (n - 1)) / 2, maxLength: (n * (n - 1)) / 2 }),
    mig: fc.array(fc.constantFrom(0, 0, 0, 1, 2), { minLength: n, maxLength: n }),
    mem: fc.constantFrom(16_000, 40_000, 80_000),
    n: fc.constant(n),
  }),
);

const arbNode = (id: string): fc.Arbitrary<SchedulerNode> =>
  fc
    .record({
      shape: fc.oneof(fc.integer({ min: 0, max: PROFILES.length - 1 }), arbRandomTopology),
      alive: fc.integer({ min: 0, max: 9 }).map((x) => x < 8),
      draining: fc.integer({ min: 0, max: 9 }).map((x) => x === 0),
      taints: fc.array(arbTaint, { maxLength: 1 }),
      rack: fc.option(fc.constantFrom('r0', 'r1', 'r2'), { nil: undefined }),
      zone: fc.option(fc.constantFrom('z0', 'z1'), { nil: undefined }),
      domain: fc.option(fc.constantFrom('d0', 'd1'), { nil: undefined }),
      pool: fc.constantFrom('a', 'b'),
      cpuMillis: fc.integer({ min: 0, max: 64_000 }),
      ib: fc.integer({ min: 0, max: 4 }),
    })
    .map((r) => {
      const labels: Record<string, string> = { pool: r.pool };
      if (r.rack !== undefined) labels['muster.io/rack'] = r.rack;
      if (r.zone !== undefined) labels['muster.io/zone'] = r.zone;
      const opts = { labels, taints: r.taints, alive: r.alive, draining: r.draining, custom: { ib: r.ib }, ...(r.domain !== undefined ? { nvlinkDomain: r.domain } : {}) };
      if (typeof r.shape === 'number') {
        const node = makeNode(PROFILES[r.shape]!, id, opts);
        return { ...node, capacity: { ...node.capacity, cpuMillis: r.cpuMillis } };
      }
      const { n, cells, mig, mem } = r.shape;
      const links = Array.from({ length: n }, () => Array.from({ length: n }, () => 'X'));
      let c = 0;
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) links[i]![j] = links[j]![i] = cells[c++]!;
      return {
        id,
        alive: r.alive,
        draining: r.draining,
        labels,
        ...(r.domain !== undefined ? { nvlinkDomain: r.domain } : {}),
        taints: r.taints,
        capacity: { cpuMillis: r.cpuMillis, memoryBytes: 2 ** 40, custom: { ib: r.ib } },
        gpus: Array.from({ length: n }, (_, i) => ({
          index: i,
          memoryMiB: mem,
          mig: Array.from({ length: mig[i]! * 2 }, (_, s) => ({ profile: MIG_PROFILES[s % 2]!, uuid: `MIG-${id}-${i}-${s}` })),
        })),
        links,
        islands: deriveIslands(links),
      };
    });

const arbCluster = fc.integer({ min: 1, max: 10 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => arbNode(`n${i}`))));

const arbBundle = fc.record({
  gpus: fc.integer({ min: 0, max: 9 }),
  mig: fc.option(fc.constantFrom(...MIG_PROFILES), { nil: undefined, freq: 6 }),
  cpuMillis: fc.constantFrom(0, 1000, 8000, 32_000),
  gpuMemoryMiB: fc.constantFrom(0, 0, 0, 30_000),
  ib: fc.constantFrom(0, 0, 1),
});

const arbSpec: fc.Arbitrary<ValidPgSpec> = fc
  .record({
    bundles: fc.array(arbBundle, { minLength: 1, maxLength: 4 }),
    strategy: fc.constantFrom('PACK' as const, 'SPREAD' as const, 'STRICT_PACK' as const, 'STRICT_SPREAD' as const),
    topology: fc.uniqueArray(fc.record({ level: fc.constantFrom(...LEVELS), mode: fc.constantFrom('required' as const, 'preferred' as const) }), { selector: (c) => c.level, maxLength: 3 }),
    pool: fc.option(fc.constantFrom('a', 'b'), { nil: undefined, freq: 3 }),
    tolerate: fc.boolean(),
    priority: fc.integer({ min: 0, max: 3 }),
  })
  .map((r): ValidPgSpec => ({
    name: 'pg',
    strategy: r.strategy,
    bundles: r.bundles.map((b): Bundle => ({
      cpuMillis: b.cpuMillis,
      memoryBytes: 2 ** 30,
      gpus: b.mig !== undefined ? Math.max(1, Math.min(b.gpus, 3)) : b.gpus,
      gpuMemoryMiB: b.mig !== undefined ? 0 : b.gpuMemoryMiB,
      ...(b.mig !== undefined ? { migProfile: b.mig } : {}),
      custom: b.ib > 0 ? { ib: b.ib } : {},
    })),
    // STRICT_SPREAD with `node` required is refused by the schema; mirror that.
    topology: r.topology.filter((c) => !(r.strategy === 'STRICT_SPREAD' && c.level === 'node' && c.mode === 'required')),
    selector: { matchLabels: r.pool !== undefined ? { pool: r.pool } : {} },
    tolerations: r.tolerate ? [{ key: 'spot', operator: 'Exists' as const, value: '' }] : [],
    priority: r.priority,
  }));

/** A copy of a node that differs (or not) in one or more ways: shape classes must tell them apart. */
const arbTweak = fc.record({
  taints: fc.option(fc.constantFrom<Taint[]>([], [{ key: 'spot', value: 'true', effect: 'PreferNoSchedule' }], [{ key: 'maint', value: 'true', effect: 'NoSchedule' }]), { nil: undefined, freq: 2 }),
  alive: fc.option(fc.boolean(), { nil: undefined, freq: 4 }),
  draining: fc.option(fc.boolean(), { nil: undefined, freq: 4 }),
  cpuMillis: fc.option(fc.constantFrom(1000, 8000, 64_000), { nil: undefined }),
  rack: fc.option(fc.constantFrom('r0', 'r1'), { nil: undefined }),
});

type Op = { kind: 'place'; spec: ValidPgSpec } | { kind: 'release'; pick: number };
const arbOps = fc.array(fc.oneof({ arbitrary: arbSpec.map((spec): Op => ({ kind: 'place', spec })), weight: 4 }, { arbitrary: fc.nat().map((pick): Op => ({ kind: 'release', pick })), weight: 1 }), { minLength: 1, maxLength: 25 });

// ---- the independent ledger -------------------------------------------------

class Ledger {
  readonly gpus = new Set<string>();
  readonly mig = new Set<string>();
  readonly cpu = new Map<string, number>();
  readonly ib = new Map<string, number>();
  readonly groups = new Map<string, BundlePlacement[]>();
  constructor(readonly nodes: Map<string, SchedulerNode>) {}

  take(id: string, ps: BundlePlacement[]): void {
    for (const p of ps) {
      for (const g of p.gpuIndices) {
        const key = `${p.nodeId}/${g}`;
        if (this.gpus.has(key)) throw new Error(`GPU ${key} double-booked`);
        this.gpus.add(key);
      }
      for (const u of p.migUuids) {
        if (this.mig.has(u)) throw new Error(`MIG ${u} double-booked`);
        this.mig.add(u);
      }
      const node = this.nodes.get(p.nodeId)!;
      const cpu = (this.cpu.get(p.nodeId) ?? 0) + p.cpuMillis;
      const ib = (this.ib.get(p.nodeId) ?? 0) + (p.custom.ib ?? 0);
      if (cpu > node.capacity.cpuMillis) throw new Error(`CPU over-committed on ${p.nodeId}`);
      if (ib > (node.capacity.custom.ib ?? 0)) throw new Error(`custom resource over-committed on ${p.nodeId}`);
      this.cpu.set(p.nodeId, cpu);
      this.ib.set(p.nodeId, ib);
    }
    this.groups.set(id, ps);
  }

  give(id: string): void {
    for (const p of this.groups.get(id) ?? []) {
      for (const g of p.gpuIndices) this.gpus.delete(`${p.nodeId}/${g}`);
      for (const u of p.migUuids) this.mig.delete(u);
      this.cpu.set(p.nodeId, this.cpu.get(p.nodeId)! - p.cpuMillis);
      this.ib.set(p.nodeId, this.ib.get(p.nodeId)! - (p.custom.ib ?? 0));
    }
    this.groups.delete(id);
  }
}

function tolerated(tols: Toleration[], t: Taint): boolean {
  return tols.some((x) => (x.effect === undefined || x.effect === t.effect) && (x.operator === 'Exists' ? x.key === '' || x.key === t.key : x.key === t.key && x.value === t.value));
}

function domainOf(node: SchedulerNode, level: string): string | undefined {
  if (level === 'node') return node.id;
  if (level === 'nvlink-domain') return node.nvlinkDomain;
  return node.labels[level === 'rack' ? 'muster.io/rack' : 'muster.io/zone'];
}

function islandsOf(node: SchedulerNode): number[][] {
  return node.islands.length > 0 ? node.islands : deriveIslands(node.links);
}

/** Brute force: could `node` take bundle 0 of a single-bundle spec right now? Optionally ignore islands. */
function loneBundleFits(node: SchedulerNode, spec: ValidPgSpec, ledger: Ledger | undefined, needIsland: boolean): boolean {
  const b = spec.bundles[0]!;
  // With a ledger: "could it take it now" (dead and draining nodes cannot); without: "on an empty cluster" (they could).
  if (ledger !== undefined && (!node.alive || node.draining === true)) return false;
  if (node.taints.some((t) => t.effect === 'NoSchedule' && !tolerated(spec.tolerations, t))) return false;
  if (Object.entries(spec.selector.matchLabels).some(([k, v]) => node.labels[k] !== v)) return false;
  if (spec.topology.some((c) => c.mode === 'required' && c.level !== 'gpu-island' && domainOf(node, c.level) === undefined)) return false;
  if ((ledger?.cpu.get(node.id) ?? 0) + b.cpuMillis > node.capacity.cpuMillis) return false;
  if ((ledger?.ib.get(node.id) ?? 0) + (b.custom.ib ?? 0) > (node.capacity.custom.ib ?? 0)) return false;
  if (b.migProfile !== undefined) {
    const free = node.gpus.flatMap((g) => g.mig).filter((s) => s.profile === b.migProfile && !ledger?.mig.has(s.uuid));
    return free.length >= b.gpus;
  }
  const free = node.gpus.filter((g) => g.mig.length === 0 && g.memoryMiB >= b.gpuMemoryMiB && !ledger?.gpus.has(`${node.id}/${g.index}`)).map((g) => g.index);
  if (free.length < b.gpus) return false;
  if (!needIsland || b.gpus < 2) return true;
  return islandsOf(node).some((isl) => isl.filter((i) => free.includes(i)).length >= b.gpus);
}

/** Checks a placed gang against the spec, then books it in the ledger (which throws on double booking). */
function checkPlaced(id: string, spec: ValidPgSpec, ps: BundlePlacement[], nodes: Map<string, SchedulerNode>, ledger: Ledger): void {
  expect(ps.map((p) => p.bundleIndex)).toEqual(spec.bundles.map((_, i) => i)); // whole gang, each bundle once
  for (const p of ps) {
    const b = spec.bundles[p.bundleIndex]!;
    const node = nodes.get(p.nodeId)!;
    expect(node.alive).toBe(true);
    expect(node.draining ?? false).toBe(false);
    expect(node.taints.every((t) => t.effect !== 'NoSchedule' || tolerated(spec.tolerations, t))).toBe(true);
    for (const [k, v] of Object.entries(spec.selector.matchLabels)) expect(node.labels[k]).toBe(v);
    if (b.migProfile !== undefined) {
      expect(p.gpuIndices).toEqual([]);
      expect(p.migUuids).toHaveLength(b.gpus);
      for (const u of p.migUuids) expect(node.gpus.flatMap((g) => g.mig).find((s) => s.uuid === u)?.profile).toBe(b.migProfile);
    } else {
      expect(p.gpuIndices).toHaveLength(b.gpus);
      for (const g of p.gpuIndices) {
        expect(node.gpus[g]!.mig).toEqual([]);
        expect(node.gpus[g]!.memoryMiB).toBeGreaterThanOrEqual(b.gpuMemoryMiB);
      }
      if (spec.topology.some((c) => c.level === 'gpu-island' && c.mode === 'required') && b.gpus > 1) {
        expect(islandsOf(node).some((isl) => p.gpuIndices.every((g) => isl.includes(g)))).toBe(true);
      }
    }
  }
  const nodeIds = ps.map((p) => p.nodeId);
  if (spec.strategy === 'STRICT_PACK') expect(new Set(nodeIds).size).toBe(1);
  if (spec.strategy === 'STRICT_SPREAD') expect(new Set(nodeIds).size).toBe(nodeIds.length);
  for (const c of spec.topology) {
    if (c.mode !== 'required' || c.level === 'gpu-island') continue;
    const ds = new Set(ps.map((p) => domainOf(nodes.get(p.nodeId)!, c.level)));
    expect(ds.size).toBe(1);
    expect(ds.has(undefined)).toBe(false);
  }
  ledger.take(id, ps);
}

describe('scheduler properties', () => {
  it('random clusters × random streams: safety and all-or-nothing', () => {
    fc.assert(
      fc.property(arbCluster, arbOps, (nodeList, ops) => {
        const nodes = new Map(nodeList.map((n) => [n.id, n]));
        const state = ClusterState.from({ nodes: nodeList, reservations: [] });
        const ledger = new Ledger(nodes);
        let gid = 0;
        for (const op of ops) {
          if (op.kind === 'release') {
            const ids = state.groupIds();
            if (ids.length === 0) continue;
            const id = ids[op.pick % ids.length]!;
            state.releaseGroup(id);
            ledger.give(id);
            continue;
          }
          const spec = op.spec;
          const before = state.usage();
          const room = roomFor(freeTotals(state), spec);
          const r = placeGroup(state, spec);
          // "No room" is a necessary condition: the queue skips such groups without missing one that fits.
          if (r.status === 'PLACED') expect(room).toBe(true);
          expect(state.usage()).toEqual(before); // placeGroup never leaves tentative reservations
          const lone = spec.bundles.length === 1 && !spec.topology.some((c) => c.mode === 'required' && c.level !== 'gpu-island');
          const islandReq = spec.topology.some((c) => c.level === 'gpu-island' && c.mode === 'required');
          if (r.status === 'PLACED') {
            const id = `g${gid++}`;
            const gpus = r.placements[0]!.gpuIndices;
            if (lone && gpus.length > 1) {
              const node = nodes.get(r.placements[0]!.nodeId)!;
              const inOne = islandsOf(node).some((isl) => gpus.every((g) => isl.includes(g)));
              if (!inOne) expect(nodeList.some((n) => loneBundleFits(n, spec, ledger, true))).toBe(false);
            }
            checkPlaced(id, spec, r.placements, nodes, ledger);
            state.commit(id, r.placements);
          } else {
            expect(r.reason.message.length).toBeGreaterThan(0);
            if (lone) expect(nodeList.some((n) => loneBundleFits(n, spec, ledger, islandReq))).toBe(false);
            if (lone && r.status === 'INFEASIBLE') expect(nodeList.some((n) => loneBundleFits(n, spec, undefined, islandReq))).toBe(false);
          }
        }
        // The scheduler's own books agree with the ledger.
        const u = state.usage();
        expect(u.gpus - u.freeGpus).toBe(ledger.gpus.size);
        expect(u.migSlices - u.freeMigSlices).toBe(ledger.mig.size);
      }),
      { numRuns: 300 },
    );
  });

  it('"no room" never rules out a group that fits, also at the exact edge of what is free', () => {
    fc.assert(
      fc.property(arbCluster, fc.array(arbSpec, { maxLength: 12 }), fc.nat(), (nodeList, fill, pick) => {
        const state = ClusterState.from({ nodes: nodeList, reservations: [] });
        fill.forEach((spec, i) => {
          const r = placeGroup(state, spec);
          if (r.status === 'PLACED') state.commit(`f${i}`, r.placements);
        });
        // Probes sized by what is left: the whole free GPUs of one node, and of two, tolerating every taint.
        const free = freeTotals(state);
        const usable = state.nodes.filter((n) => n.alive && !n.draining && n.unsupported === '');
        const byFree = [...usable].sort((a, b) => b.freeGpuCount() - a.freeGpuCount());
        const one = byFree[pick % Math.max(1, byFree.length)]?.freeGpuCount() ?? 0;
        const probe = (gpus: number[], strategy: ValidPgSpec['strategy']): ValidPgSpec => ({
          name: 'probe',
          strategy,
          bundles: gpus.map((g) => ({ cpuMillis: 0, memoryBytes: 0, gpus: g, gpuMemoryMiB: 0, custom: {} })),
          topology: [],
          selector: { matchLabels: {} },
          tolerations: [{ key: '', operator: 'Exists', value: '' }],
          priority: 0,
        });
        const probes = [probe([one], 'PACK'), probe([free.maxNodeGpus], 'PACK'), probe([byFree[0]?.freeGpuCount() ?? 0, byFree[1]?.freeGpuCount() ?? 0], 'SPREAD')];
        for (const spec of probes) {
          if (placeGroup(state, spec).status === 'PLACED') expect(roomFor(free, spec), JSON.stringify(spec.bundles)).toBe(true);
        }
        for (const spec of fill) if (placeGroup(state, spec).status === 'PLACED') expect(roomFor(free, spec)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('the queue keeps the same guarantees across cycles with holds', () => {
    fc.assert(
      fc.property(arbCluster, fc.array(fc.array(arbSpec, { maxLength: 4 }), { minLength: 1, maxLength: 6 }), fc.nat(), (nodeList, batches, seed) => {
        const nodes = new Map(nodeList.map((n) => [n.id, n]));
        const state = ClusterState.from({ nodes: nodeList, reservations: [] });
        const ledger = new Ledger(nodes);
        let queue: QueuedGroup[] = [];
        let hold: Hold | undefined;
        let n = 0;
        for (const [t, batch] of batches.entries()) {
          for (const spec of batch) queue.push({ id: `q${n++}`, spec, enqueuedAtMs: t * 1000 });
          const placedIds = state.groupIds();
          if (placedIds.length > 0 && (seed + t) % 2 === 0) {
            const id = placedIds[(seed + t) % placedIds.length]!;
            state.releaseGroup(id);
            ledger.give(id);
          }
          const r = runCycle(state, queue, t * 1000, hold, { starvationAfterMs: 1500 });
          for (const p of r.placed) {
            const spec = queue.find((g) => g.id === p.id)!.spec;
            checkPlaced(p.id, spec, p.placements, nodes, ledger);
          }
          const gone = new Set([...r.placed, ...r.infeasible].map((x) => x.id));
          queue = queue.filter((g) => !gone.has(g.id));
          expect(r.pending.length).toBe(queue.length);
          hold = r.hold;
          if (hold !== undefined) expect(queue.some((g) => g.id === hold!.groupId)).toBe(true);
        }
        const u = state.usage();
        expect(u.gpus - u.freeGpus).toBe(ledger.gpus.size);
      }),
      { numRuns: 150 },
    );
  });

  it('shape classes change nothing: identical nodes judged once decide exactly as unique ones', () => {
    fc.assert(
      fc.property(arbCluster, fc.array(arbTweak, { minLength: 2, maxLength: 4 }), arbOps, (templates, tweaks, ops) => {
        // Each template node once per tweak: many untouched nodes of one class, and near misses of it.
        const nodes = templates.flatMap((t) => tweaks.map((w, k) => ({
          ...t,
          id: `${t.id}-${k}`,
          ...(w.taints !== undefined ? { taints: w.taints } : {}),
          ...(w.alive !== undefined ? { alive: w.alive } : {}),
          ...(w.draining !== undefined ? { draining: w.draining } : {}),
          ...(w.cpuMillis !== undefined ? { capacity: { ...t.capacity, cpuMillis: w.cpuMillis } } : {}),
          ...(w.rack !== undefined ? { labels: { ...t.labels, 'muster.io/rack': w.rack } } : {}),
        })));
        const shared = ClusterState.from({ nodes, reservations: [] });
        const unique = ClusterState.from({ nodes: nodes.map((n) => ({ ...n, labels: { ...n.labels, uniq: n.id } })), reservations: [] });
        let gid = 0;
        for (const op of ops) {
          if (op.kind === 'release') {
            const ids = shared.groupIds();
            if (ids.length === 0) continue;
            const id = ids[op.pick % ids.length]!;
            shared.releaseGroup(id);
            unique.releaseGroup(id);
            continue;
          }
          const a = placeGroup(shared, op.spec);
          const b = placeGroup(unique, op.spec);
          expect(a).toEqual(b);
          if (a.status === 'PLACED') {
            const id = `g${gid++}`;
            shared.commit(id, a.placements);
            unique.commit(id, a.placements);
          }
        }
      }),
      { numRuns: 150 },
    );
  });
});
