/**
 * Scheduler core benchmark: 1,000 simulated nodes of mixed shapes under a
 * seeded random gang mix, for Muster's scheduler and, in the same run, a
 * naive first-fit baseline (first node with room, lowest GPU indices, no
 * notion of link quality — what a topology-blind PACK does).
 *
 *   npx tsx bench/scheduler.ts [--runs 5] [--seed 1] [--nodes 1000] [--cluster mixed|nvlink]
 *                              [--baseline on|off] [--quality on|off] [--out bench/results/scheduler.json]
 *
 * --baseline off skips first-fit (at 10,000 nodes its O(nodes) scan per
 * bundle takes most of the run's wall time); --quality off skips the
 * island-quality bookkeeping (an O(nodes) search per TP bundle, outside the
 * timed section), leaving its two island columns at 0.
 *
 * `mixed` (default) draws nodes from every shape, PCIe boxes included;
 * `nvlink` leaves the PCIe boxes out, so every whole GPU sits in an island
 * of 8 or more and "GPU share at first refusal" measures packing alone.
 *
 * Phases per run (each gang is decided once; a refused gang is dropped):
 *   fill   gangs arrive until the first refusal (GPU share recorded), then
 *          2,000 more arrivals (the cluster saturates);
 *   churn  20,000 steps of "one random group leaves, one gang arrives".
 * Reported (medians over runs): bundle placements/s and gang decisions/s
 * (wall time inside the scheduler only), bundle placements per CPU-second
 * (the process's CPU time inside the scheduler: on a machine shared with
 * other work, wall time counts the time the process waited for a core), p50/p99 decision latency, share of whole
 * GPUs allocated at the first refusal (of all, and of those the refused gang
 * could ever use), and the share of TP-sized bundles
 * (≥ 2 GPUs) placed inside one NVLink island — of all, and of those for which
 * some eligible node had such an island free at decision time.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import {
  A100_MIG, ClusterState, DGX1_V100, HGX_H100, PCIE_4090, PCIE_SWITCHED, TWO_TRAY_16,
  makeNode, placeGroup, selectGpus, topologyOf, type BundlePlacement, type NodeProfile, type ValidPgSpec, type SchedulerNode,
} from '@muster/head/scheduler';

const { values: args } = parseArgs({
  options: { cluster: { type: 'string', default: 'mixed' }, runs: { type: 'string', default: '5' }, seed: { type: 'string', default: '1' }, nodes: { type: 'string', default: '1000' }, baseline: { type: 'string', default: 'on' }, quality: { type: 'string', default: 'on' }, out: { type: 'string', default: 'bench/results/scheduler.json' } },
});
const RUNS = Number(args.runs);
const NODES = Number(args.nodes);
const FILL_EXTRA = 2_000;
const CHURN_STEPS = 20_000;
const GiB = 2 ** 30;

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function weighted<T>(r: () => number, items: [T, number][]): T {
  const total = items.reduce((s, [, w]) => s + w, 0);
  let x = r() * total;
  for (const [v, w] of items) if ((x -= w) < 0) return v;
  return items.at(-1)![0];
}

const MIXED: [NodeProfile, number][] = [[HGX_H100, 30], [DGX1_V100, 20], [PCIE_4090, 10], [PCIE_SWITCHED, 10], [TWO_TRAY_16, 15], [A100_MIG, 15]];
const MIX = args.cluster === 'nvlink' ? MIXED.filter(([p]) => p !== PCIE_4090 && p !== PCIE_SWITCHED) : MIXED;

function cluster(r: () => number): SchedulerNode[] {
  return Array.from({ length: NODES }, (_, i) =>
    makeNode(weighted(r, MIX), `node-${i}`, {
      labels: { 'muster.io/zone': `z${i % 4}`, 'muster.io/rack': `r${Math.floor(i / 20)}` },
      taints: r() < 0.05 ? [{ key: 'spot', value: 'true', effect: 'NoSchedule' }] : [],
    }),
  );
}

function bundle(gpus: number) {
  return { gpus, cpuMillis: 4000 * Math.max(1, gpus), memoryBytes: 32 * GiB * Math.max(1, gpus), gpuMemoryMiB: 0, custom: {} };
}

function gang(r: () => number, i: number): ValidPgSpec {
  const base = { name: `g${i}`, topology: [] as ValidPgSpec['topology'], selector: { matchLabels: {} }, tolerations: r() < 0.3 ? [{ key: 'spot', operator: 'Exists' as const, value: '' }] : [], priority: 0 };
  const island = (): ValidPgSpec['topology'] => (r() < 0.5 ? [{ level: 'gpu-island', mode: 'required' }] : []);
  const kind = weighted(r, [['tp1', 30], ['tp2', 15], ['tp4', 15], ['tp8', 10], ['pp', 12], ['spread', 5], ['mig', 8], ['cpu', 5]] as const);
  switch (kind) {
    case 'tp1': return { ...base, strategy: 'PACK', bundles: [bundle(1)] };
    case 'tp2': return { ...base, strategy: 'PACK', bundles: [bundle(2)], topology: island() };
    case 'tp4': return { ...base, strategy: 'PACK', bundles: [bundle(4)], topology: island() };
    case 'tp8': return { ...base, strategy: 'PACK', bundles: [bundle(8)], topology: island() };
    case 'pp': {
      const tp = weighted(r, [[2, 1], [4, 2], [8, 2]] as const);
      const stages = 2 + Math.floor(r() * 3);
      const topology: ValidPgSpec['topology'] = [...island(), ...(r() < 0.3 ? [{ level: 'rack' as const, mode: 'preferred' as const }] : [])];
      return { ...base, strategy: r() < 0.5 ? 'PACK' : 'SPREAD', bundles: Array.from({ length: stages }, () => bundle(tp)), topology };
    }
    case 'spread': return { ...base, strategy: 'STRICT_SPREAD', bundles: Array.from({ length: 2 + Math.floor(r() * 7) }, () => bundle(1 + Math.floor(r() * 2))) };
    case 'mig': return { ...base, strategy: 'PACK', bundles: [{ ...bundle(1 + Math.floor(r() * 2)), migProfile: '1g.10gb', cpuMillis: 2000, memoryBytes: 16 * GiB }] };
    case 'cpu': return { ...base, strategy: 'PACK', bundles: [{ ...bundle(0), cpuMillis: 16_000 }] };
  }
}

/** What a scheduler under test must offer the harness. */
interface Subject {
  place(spec: ValidPgSpec): BundlePlacement[] | undefined;
  commit(id: string, ps: BundlePlacement[]): void;
  release(id: string): void;
  /** Bundle passes and the nodes they visited, by kind (ClusterState.passes), when the subject counts them. */
  readonly passes?: ClusterState['passes'];
}

function muster(nodes: SchedulerNode[]): Subject & { state: ClusterState } {
  const state = ClusterState.from({ nodes, reservations: [] });
  return {
    state,
    passes: state.passes,
    place: (spec) => {
      const r = placeGroup(state, spec);
      return r.status === 'PLACED' ? r.placements : undefined;
    },
    commit: (id, ps) => state.commit(id, ps),
    release: (id) => void state.releaseGroup(id),
  };
}

/**
 * First fit, written the obvious way: the first node (in index order) with
 * room, the lowest free GPU indices. It honours the hard constraints so its
 * plans are valid (taints, STRICT_*, gpu-island required: the first island
 * with room), but knows nothing of link quality, fragmentation or best fit.
 */
function firstFit(nodes: SchedulerNode[]): Subject {
  const free = nodes.map((n) => ({ gpus: n.gpus.map((g) => g.mig.length === 0), mig: new Set(n.gpus.flatMap((g) => g.mig.map((m) => m.uuid))), cpu: n.capacity.cpuMillis, mem: n.capacity.memoryBytes }));
  const byId = new Map(nodes.map((n, i) => [n.id, i]));
  const groups = new Map<string, BundlePlacement[]>();
  const apply = (p: BundlePlacement, sign: 1 | -1) => {
    const f = free[byId.get(p.nodeId)!]!;
    for (const g of p.gpuIndices) f.gpus[g] = sign < 0;
    for (const u of p.migUuids) if (sign > 0) f.mig.delete(u); else f.mig.add(u);
    f.cpu -= sign * p.cpuMillis;
    f.mem -= sign * p.memoryBytes;
  };
  return {
    place(spec) {
      const placed: BundlePlacement[] = [];
      const used = new Set<number>();
      for (const [bi, b] of spec.bundles.entries()) {
        let p: BundlePlacement | undefined;
        for (let i = 0; i < nodes.length && p === undefined; i++) {
          const n = nodes[i]!;
          const f = free[i]!;
          if (!n.alive || (spec.strategy === 'STRICT_SPREAD' && used.has(i)) || (spec.strategy === 'STRICT_PACK' && used.size > 0 && !used.has(i))) continue;
          if (n.taints.some((t) => t.effect === 'NoSchedule' && !spec.tolerations.some((x) => x.key === t.key))) continue;
          if (f.cpu < b.cpuMillis || f.mem < b.memoryBytes) continue;
          if (b.migProfile !== undefined) {
            const uuids = n.gpus.flatMap((g) => g.mig).filter((m) => m.profile === b.migProfile && f.mig.has(m.uuid)).slice(0, b.gpus).map((m) => m.uuid);
            if (uuids.length === b.gpus) p = { bundleIndex: bi, nodeId: n.id, gpuIndices: [], migUuids: uuids, cpuMillis: b.cpuMillis, memoryBytes: b.memoryBytes, custom: {} };
          } else {
            const freeIn = (isl: number[]) => isl.filter((g) => f.gpus[g] === true);
            const islandReq = b.gpus > 1 && spec.topology.some((c) => c.level === 'gpu-island' && c.mode === 'required');
            const gpus = islandReq ? (n.islands.map(freeIn).find((x) => x.length >= b.gpus) ?? []).slice(0, b.gpus) : f.gpus.flatMap((ok, g) => (ok ? [g] : [])).slice(0, b.gpus);
            if (gpus.length === b.gpus) p = { bundleIndex: bi, nodeId: n.id, gpuIndices: gpus, migUuids: [], cpuMillis: b.cpuMillis, memoryBytes: b.memoryBytes, custom: {} };
          }
          if (p !== undefined) used.add(i);
        }
        if (p === undefined) {
          for (const q of placed) apply(q, -1);
          return undefined;
        }
        apply(p, 1);
        placed.push(p);
      }
      for (const q of placed) apply(q, -1); // the harness commits
      return placed;
    },
    commit(id, ps) {
      for (const p of ps) apply(p, 1);
      groups.set(id, ps);
    },
    release(id) {
      for (const p of groups.get(id) ?? []) apply(p, -1);
      groups.delete(id);
    },
  };
}

/** Independent view of the cluster for quality metrics (kept outside the timed calls). */
class Observer {
  private readonly used = new Map<string, Set<number>>();
  private readonly nodes: Map<string, SchedulerNode>;
  readonly wholeGpus: number;
  constructor(list: SchedulerNode[]) {
    this.nodes = new Map(list.map((n) => [n.id, n]));
    this.wholeGpus = list.reduce((s, n) => s + n.gpus.filter((g) => g.mig.length === 0).length, 0);
  }
  take(ps: BundlePlacement[], sign: 1 | -1): void {
    for (const p of ps) {
      const s = this.used.get(p.nodeId) ?? new Set<number>();
      for (const g of p.gpuIndices) if (sign > 0) s.add(g); else s.delete(g);
      this.used.set(p.nodeId, s);
    }
  }
  /**
   * Share of the GPUs this gang could ever use (tolerated nodes; with
   * gpu-island required, islands as large as its largest bundle) that are taken.
   */
  eligibleShare(spec: ValidPgSpec): number {
    const islandReq = spec.topology.some((c) => c.level === 'gpu-island' && c.mode === 'required');
    const k = islandReq ? Math.max(1, ...spec.bundles.map((b) => b.gpus)) : 1;
    let total = 0;
    let used = 0;
    for (const n of this.nodes.values()) {
      if (!n.alive || n.taints.some((t) => t.effect === 'NoSchedule' && !spec.tolerations.some((x) => x.key === t.key))) continue;
      for (const isl of n.islands) {
        const whole = isl.filter((g) => n.gpus[g]!.mig.length === 0);
        if (whole.length < k) continue;
        total += whole.length;
        used += whole.filter((g) => this.used.get(n.id)?.has(g) === true).length;
      }
    }
    return total === 0 ? 1 : used / total;
  }
  usedGpus(): number {
    let u = 0;
    for (const s of this.used.values()) u += s.size;
    return u;
  }
  inOneIsland(p: BundlePlacement): boolean {
    return this.nodes.get(p.nodeId)!.islands.some((isl) => p.gpuIndices.every((g) => isl.includes(g)));
  }
  /** Some node the spec may use has `k` free GPUs inside one island. */
  islandExists(spec: ValidPgSpec, k: number): boolean {
    for (const n of this.nodes.values()) {
      if (!n.alive || n.taints.some((t) => t.effect === 'NoSchedule' && !spec.tolerations.some((x) => x.key === t.key))) continue;
      const used = this.used.get(n.id);
      for (const isl of n.islands) if (isl.filter((g) => n.gpus[g]!.mig.length === 0 && !used?.has(g)).length >= k) return true;
    }
    return false;
  }
}

interface RunResult {
  bundlePlacementsPerSec: number;
  /** The same per second of this process's CPU time in the scheduler: what a loaded machine's preemption does not inflate. */
  bundlePlacementsPerCpuSec: number;
  decisionsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  gpuShareAtFirstRejection: number;
  /** The same, counting only GPUs the refused gang could ever use (see Observer.eligibleShare). */
  eligibleGpuShareAtFirstRejection: number;
  gpuShareAfterFill: number;
  meanGpuShareInChurn: number;
  tpBundlesInOneIsland: number;
  tpInIslandWhenOneExisted: number;
  decisions: number;
  bundlesPlaced: number;
  /** Nodes a bundle's pass visited, on average, by bundle kind: whole GPUs, MIG, none (CPU/memory/custom only). */
  visitsPerGpuBundle: number;
  visitsPerMigBundle: number;
  visitsPerCpuOnlyBundle: number;
}

function run(seed: number, make: (nodes: SchedulerNode[]) => Subject): RunResult {
  const r = rng(seed);
  const nodes = cluster(r);
  const gangRng = rng(seed * 7919 + 1); // same gang stream for every subject
  const sub = make(nodes);
  const obs = new Observer(nodes);
  const live: string[] = [];
  const lat: number[] = [];
  let timeMs = 0;
  let cpuMs = 0;
  let bundlesPlaced = 0;
  let firstRejection: number | undefined;
  let firstRejectionEligible = 1;
  let lastSpec: ValidPgSpec | undefined;
  let tp = 0;
  let tpIn = 0;
  let tpExisted = 0;
  let tpInWhenExisted = 0;
  let n = 0;
  const placedById = new Map<string, BundlePlacement[]>();

  const decide = (): boolean => {
    const spec = gang(gangRng, n);
    const id = `g${n++}`;
    lastSpec = spec;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const v0 = totalPasses(sub.passes);
    const ps = sub.place(spec);
    const v1 = totalPasses(sub.passes);
    const byKind = visitsByGang.get(gangKind(spec)) ?? { passes: 0, visits: 0 };
    byKind.passes += v1.passes - v0.passes;
    byKind.visits += v1.visits - v0.visits;
    visitsByGang.set(gangKind(spec), byKind);
    if (ps !== undefined) sub.commit(id, ps);
    const dt = performance.now() - t0;
    const c = process.cpuUsage(c0);
    cpuMs += (c.user + c.system) / 1000;
    timeMs += dt;
    lat.push(dt);
    if (ps === undefined) return false;
    bundlesPlaced += ps.length;
    live.push(id);
    // Island quality, bundle by bundle, largest first: "did some usable node
    // have a free island this big, given the gang's larger bundles?"
    for (const p of [...ps].sort((a, b) => b.gpuIndices.length - a.gpuIndices.length || a.bundleIndex - b.bundleIndex)) {
      if (p.gpuIndices.length >= 2 && args.quality !== 'off') {
        const existed = obs.islandExists(spec, p.gpuIndices.length);
        const inside = obs.inOneIsland(p);
        tp++;
        if (inside) tpIn++;
        if (existed) {
          tpExisted++;
          if (inside) tpInWhenExisted++;
        }
      }
      obs.take([p], 1);
    }
    placedById.set(id, ps);
    return true;
  };

  while (firstRejection === undefined && n < 100_000) {
    if (!decide()) {
      firstRejection = obs.usedGpus() / obs.wholeGpus;
      firstRejectionEligible = obs.eligibleShare(lastSpec!);
    }
  }
  for (let i = 0; i < FILL_EXTRA; i++) decide();
  const afterFill = obs.usedGpus() / obs.wholeGpus;
  let shareSum = 0;
  for (let i = 0; i < CHURN_STEPS; i++) {
    if (live.length > 0) {
      const k = Math.floor(gangRng() * live.length);
      const id = live[k]!;
      live[k] = live.at(-1)!;
      live.pop();
      sub.release(id);
      obs.take(placedById.get(id)!, -1);
      placedById.delete(id);
    }
    decide();
    shareSum += obs.usedGpus() / obs.wholeGpus;
  }
  lat.sort((a, b) => a - b);
  return {
    bundlePlacementsPerSec: (bundlesPlaced / timeMs) * 1000,
    bundlePlacementsPerCpuSec: (bundlesPlaced / cpuMs) * 1000,
    decisionsPerSec: (lat.length / timeMs) * 1000,
    p50Ms: lat[Math.floor(lat.length * 0.5)]!,
    p99Ms: lat[Math.floor(lat.length * 0.99)]!,
    gpuShareAtFirstRejection: firstRejection ?? 1,
    eligibleGpuShareAtFirstRejection: firstRejectionEligible,
    gpuShareAfterFill: afterFill,
    meanGpuShareInChurn: shareSum / CHURN_STEPS,
    tpBundlesInOneIsland: tp === 0 ? 1 : tpIn / tp,
    tpInIslandWhenOneExisted: tpExisted === 0 ? 1 : tpInWhenExisted / tpExisted,
    decisions: lat.length,
    bundlesPlaced,
    visitsPerGpuBundle: perPass(sub.passes?.gpu),
    visitsPerMigBundle: perPass(sub.passes?.mig),
    visitsPerCpuOnlyBundle: perPass(sub.passes?.other),
  };
}

/** Visits per bundle pass by kind of gang, summed over the reported runs (the scheduler subject only). */
const visitsByGang = new Map<string, { passes: number; visits: number }>();

function gangKind(spec: ValidPgSpec): string {
  if (spec.bundles.every((b) => b.gpus === 0)) return 'CPU-only';
  if (spec.bundles.some((b) => b.migProfile !== undefined)) return 'MIG';
  return spec.bundles.length === 1 ? 'one GPU bundle' : `${spec.strategy}, several bundles`;
}

function totalPasses(p: Subject['passes']): { passes: number; visits: number } {
  if (p === undefined) return { passes: 0, visits: 0 };
  return { passes: p.gpu.passes + p.mig.passes + p.other.passes, visits: p.gpu.visits + p.mig.visits + p.other.visits };
}

function perPass(c: { passes: number; visits: number } | undefined): number {
  return c === undefined || c.passes === 0 ? 0 : c.visits / c.passes;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function medians(rs: RunResult[]): Record<keyof RunResult, number> {
  const keys = Object.keys(rs[0]!) as (keyof RunResult)[];
  return Object.fromEntries(keys.map((k) => [k, median(rs.map((x) => x[k]))])) as Record<keyof RunResult, number>;
}

/** Microseconds per GPU selection on one node shape, random free sets and sizes. */
function gpuSelectMicros(profile: NodeProfile, seed: number): { p50Us: number; p99Us: number; meanUs: number } {
  const topo = topologyOf(makeNode(profile, 'n'));
  const r = rng(seed);
  const n = profile.links.length;
  const cases = Array.from({ length: 20_000 }, () => {
    const free = Math.floor(r() * 2 ** n) >>> 0;
    const count = free.toString(2).split('1').length - 1;
    return { free, k: 1 + Math.floor(r() * Math.max(1, count)) };
  });
  const times: number[] = [];
  let total = 0;
  for (const c of cases) {
    const t0 = performance.now();
    selectGpus(topo, c.free, c.k, false);
    const dt = (performance.now() - t0) * 1000;
    times.push(dt);
    total += dt;
  }
  times.sort((a, b) => a - b);
  return { p50Us: times[times.length >> 1]!, p99Us: times[Math.floor(times.length * 0.99)]!, meanUs: total / times.length };
}

const seed0 = Number(args.seed);
run(seed0 + 1000, muster); // warm the JIT once, not reported
visitsByGang.clear();
const results = { muster: [] as RunResult[], firstFit: [] as RunResult[] };
for (let i = 0; i < RUNS; i++) {
  results.muster.push(run(seed0 + i, muster));
  if (args.baseline !== 'off') results.firstFit.push(run(seed0 + i, firstFit));
}
const summary = { muster: medians(results.muster), ...(results.firstFit.length > 0 ? { firstFit: medians(results.firstFit) } : {}) };
gpuSelectMicros(TWO_TRAY_16, 99); // warm
const gpuSelect = { [TWO_TRAY_16.name]: gpuSelectMicros(TWO_TRAY_16, seed0), [DGX1_V100.name]: gpuSelectMicros(DGX1_V100, seed0) };
const fmt = (x: number, d = 3) => Number(x.toFixed(d));
console.log(`scheduler core: ${NODES} nodes (${args.cluster}), ${RUNS} runs (seeds ${seed0}..${seed0 + RUNS - 1}), medians`);
console.table(Object.fromEntries(Object.entries(summary).map(([k, v]) => [k, Object.fromEntries(Object.entries(v).map(([m, x]) => [m, fmt(x)]))])));
const out = {
  bench: 'scheduler-core',
  date: new Date().toISOString(),
  node: process.version,
  config: { cluster: args.cluster, nodes: NODES, runs: RUNS, seed: seed0, fillExtra: FILL_EXTRA, churnSteps: CHURN_STEPS, mix: MIX.map(([p, w]) => `${p.name}:${w}`) },
  medians: summary,
  gpuSelect,
  runs: results,
};
mkdirSync(dirname(args.out), { recursive: true });
writeFileSync(args.out, `${JSON.stringify(out, null, 2)}\n`);
console.log('GPU selection on one node (random free sets and sizes), microseconds:');
console.table(Object.fromEntries(Object.entries(gpuSelect).map(([k, v]) => [k, Object.fromEntries(Object.entries(v).map(([m, x]) => [m, fmt(x, 2)]))])));
console.log('nodes visited per bundle pass, by kind of gang (reported runs):');
console.table(Object.fromEntries([...visitsByGang].map(([k, v]) => [k, { passes: v.passes, visitsPerPass: fmt(perPass(v), 1) }])));
console.log(`wrote ${args.out}`);
