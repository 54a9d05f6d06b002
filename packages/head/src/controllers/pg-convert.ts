/**
 * Translations between the wire (proto) and the scheduler core's plain types.
 * The core never sees proto types; the API never sees core types.
 */
import { limitMessage, squareMatrix } from '@muster/common';
import { SPEC_LIMITS } from '@muster/contracts';
import { NodeState, PlacementGroupSpec, type Node, type PendingReason } from '@muster/proto';
import type * as wire from '@muster/proto';
import type { BundlePlacement, ValidPgSpec, PgSpecInput, Reservation, SchedulerNode, Taint, Unschedulable } from '../scheduler/index.js';

/** What the user sent, as input to the spec schema (empty strings = "use the default"). */
export function specInput(w: PlacementGroupSpec | undefined): PgSpecInput {
  if (!w) return {} as PgSpecInput;
  return {
    name: w.name,
    ...(w.strategy ? { strategy: w.strategy as ValidPgSpec['strategy'] } : {}),
    bundles: w.bundles.map((b) => ({
      cpuMillis: b.cpuMillis,
      memoryBytes: b.memoryBytes,
      gpus: b.gpus,
      gpuMemoryMiB: b.gpuMemoryMib,
      ...(b.migProfile ? { migProfile: b.migProfile } : {}),
      custom: b.custom,
    })),
    topology: w.topology.map((t) => ({ level: t.level as 'node', ...(t.mode ? { mode: t.mode as 'required' } : {}) })),
    selector: { matchLabels: w.matchLabels },
    tolerations: w.tolerations.map((t) => ({
      key: t.key,
      ...(t.operator ? { operator: t.operator as 'Equal' } : {}),
      value: t.value,
      ...(t.effect ? { effect: t.effect as Taint['effect'] } : {}),
    })),
    priority: w.priority,
  };
}

/**
 * The stored spec's encoding (defaults spelled out) without its name (bounded
 * by nameLength): what SPEC_LIMITS.pgSpecBytes bounds, with gpusPerGroup, so a
 * group's record stays under 1 MiB (docs/limits.md#records).
 */
export function pgSpecBytes(s: ValidPgSpec): number {
  return PlacementGroupSpec.encode({ ...wireSpec(s), name: '' }).finish().length;
}

/**
 * The refusal of a new spec past gpusPerGroup or pgSpecBytes, or undefined.
 * Checked when a group is created, not when a stored one is loaded: a record
 * written under older bounds stays readable.
 */
export function pgRecordProblem(s: ValidPgSpec): string | undefined {
  // Each GPU (or MIG slice) is named in the group's placements and its gang's ranks.
  const gpus = s.bundles.reduce((n, b) => n + b.gpus, 0);
  if (gpus > SPEC_LIMITS.gpusPerGroup) return `bundles: gpus of all bundles together: ${limitMessage('gpusPerGroup', gpus, 'GPUs')}`;
  const bytes = pgSpecBytes(s);
  return bytes > SPEC_LIMITS.pgSpecBytes ? `the spec takes ${limitMessage('pgSpecBytes', bytes, 'bytes encoded')}` : undefined;
}

/** A validated spec back on the wire, defaults spelled out. */
export function wireSpec(s: ValidPgSpec): PlacementGroupSpec {
  return {
    name: s.name,
    strategy: s.strategy,
    bundles: s.bundles.map((b) => ({
      cpuMillis: b.cpuMillis,
      memoryBytes: b.memoryBytes,
      gpus: b.gpus,
      gpuMemoryMib: b.gpuMemoryMiB,
      migProfile: b.migProfile ?? '',
      custom: b.custom,
    })),
    topology: s.topology.map((t) => ({ level: t.level, mode: t.mode })),
    matchLabels: s.selector.matchLabels,
    tolerations: s.tolerations.map((t) => ({ key: t.key, operator: t.operator, value: t.value, effect: t.effect ?? '' })),
    priority: s.priority,
  };
}

export function schedulerNode(n: Node): SchedulerNode {
  const inv = n.inventory;
  const gpus = inv?.gpus ?? [];
  return {
    id: n.nodeId,
    alive: n.state === NodeState.NODE_STATE_ALIVE,
    draining: n.draining,
    labels: n.labels,
    ...(inv?.nvlinkDomain ? { nvlinkDomain: inv.nvlinkDomain } : {}),
    taints: n.taints.map((t) => ({ key: t.key, value: t.value, effect: t.effect as Taint['effect'] })),
    capacity: { cpuMillis: (inv?.cpuCores ?? 0) * 1000, memoryBytes: inv?.memoryBytes ?? 0, custom: inv?.customResources ?? {} },
    gpus: gpus.map((g) => ({ index: g.index, memoryMiB: g.memoryMib, ...(g.numaNode !== undefined ? { numaNode: g.numaNode } : {}), mig: g.mig.map((m) => ({ profile: m.profile, uuid: m.uuid })) })),
    links: squareMatrix(inv?.topology?.links ?? [], gpus.length),
    islands: inv?.topology?.nvlinkIslands.map((i) => i.gpuIndices) ?? [],
  };
}

const views = new WeakMap<Node, { node: SchedulerNode; unusable: Reservation | undefined }>();

/**
 * A node as the scheduler sees it, and what it can never hand out (GPUs in
 * MIG mode without MIG devices), as one reservation. Cached per registry
 * record: the registry makes a new record on every transition (a drain and
 * an uncordon included), so a cycle converts only the nodes that changed.
 */
export function schedulerView(n: Node): { node: SchedulerNode; unusable: Reservation | undefined } {
  let v = views.get(n);
  if (!v) {
    const idle = (n.inventory?.gpus ?? []).filter((g) => g.migEnabled && g.mig.length === 0).map((g) => g.index);
    v = {
      node: schedulerNode(n),
      unusable: idle.length ? { groupId: '(mig-mode-without-devices)', bundleIndex: 0, nodeId: n.nodeId, gpuIndices: idle, migUuids: [], cpuMillis: 0, memoryBytes: 0, custom: {} } : undefined,
    };
    views.set(n, v);
  }
  return v;
}

export function wirePlacement(p: BundlePlacement, node: Node | undefined): wire.BundlePlacement {
  const uuids = new Map((node?.inventory?.gpus ?? []).map((g) => [g.index, g.uuid]));
  return {
    bundleIndex: p.bundleIndex,
    nodeId: p.nodeId,
    gpuIndices: p.gpuIndices,
    migUuids: p.migUuids,
    cpuMillis: p.cpuMillis,
    memoryBytes: p.memoryBytes,
    custom: p.custom,
    gpuUuids: p.gpuIndices.map((i) => uuids.get(i) ?? ''),
  };
}

export function corePlacement(p: wire.BundlePlacement): BundlePlacement {
  return {
    bundleIndex: p.bundleIndex,
    nodeId: p.nodeId,
    gpuIndices: p.gpuIndices,
    migUuids: p.migUuids,
    cpuMillis: p.cpuMillis,
    memoryBytes: p.memoryBytes,
    custom: p.custom,
  };
}

export function wireReason(r: Unschedulable): PendingReason {
  return {
    code: r.code,
    message: r.message,
    ...(r.bundleIndex !== undefined ? { bundleIndex: r.bundleIndex } : {}),
    bundlesPlaced: r.bundlesPlaced,
    nodesTotal: r.nodesTotal,
    rejections: r.rejections.map((x) => ({ code: x.code, detail: x.detail, count: x.count })),
    largestFreeIsland: r.largestFreeIsland ? { amount: r.largestFreeIsland.size, nodeId: r.largestFreeIsland.nodeId } : undefined,
    mostFreeGpus: r.mostFreeGpus ? { amount: r.mostFreeGpus.count, nodeId: r.mostFreeGpus.nodeId } : undefined,
  };
}

/** A reason that is not the scheduler's (waiting for agents, node lost). */
export function plainReason(code: string, message: string): PendingReason {
  return { code, message, bundlesPlaced: 0, nodesTotal: 0, rejections: [], largestFreeIsland: undefined, mostFreeGpus: undefined };
}
