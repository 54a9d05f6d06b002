/**
 * What the dashboard's pages show that no single gRPC answer holds, worked
 * out from the answers of the list calls (pure: records in, rows out):
 *
 * - `gpuUse`: which placement group bundle, and which gang rank, holds each
 *   GPU or MIG slice of a node — from the groups' placements and the gangs'
 *   ranks (`CUDA_VISIBLE_DEVICES`: GPU indices, GPU UUIDs or MIG UUIDs);
 * - `domains`: nodes by state and GPUs used/free per zone and rack (the
 *   `muster.io/zone` / `muster.io/rack` labels the scheduler reads).
 */
import type { Gang, Node, PlacementGroup } from '@muster/proto';
import { NodeState } from '@muster/proto';

/** One GPU (or MIG slice) held by a placement group's bundle, and the rank running on it, if any. */
export interface GpuHolder {
  gpuIndex: number;
  /** Set for a MIG slice. */
  migUuid?: string;
  pg: string;
  pgName: string;
  bundleIndex: number;
  gang?: string;
  gangName?: string;
  rank?: number;
}

/** Holders of `node`'s GPUs, by the groups' placements on it and the ranks of gangs on those groups. */
export function gpuUse(node: Node, groups: readonly PlacementGroup[], gangs: readonly Gang[]): GpuHolder[] {
  const gpus = node.inventory?.gpus ?? [];
  const indexOfUuid = new Map<string, number>();
  for (const g of gpus) {
    if (g.uuid) indexOfUuid.set(g.uuid, g.index);
    for (const m of g.mig) indexOfUuid.set(m.uuid, g.index);
  }
  const out: GpuHolder[] = [];
  for (const pg of groups) {
    for (const p of pg.placements) {
      if (p.nodeId !== node.nodeId) continue;
      const base = { pg: pg.id, pgName: pg.spec?.name ?? '', bundleIndex: p.bundleIndex };
      for (const gpuIndex of p.gpuIndices) out.push({ gpuIndex, ...base });
      for (const migUuid of p.migUuids) out.push({ gpuIndex: indexOfUuid.get(migUuid) ?? -1, migUuid, ...base });
    }
  }
  const byPg = new Map<string, GpuHolder[]>();
  for (const h of out) byPg.set(h.pg, [...(byPg.get(h.pg) ?? []), h]);
  for (const gang of gangs) {
    const held = byPg.get(gang.placementGroupId);
    if (!held) continue;
    for (const r of gang.ranks) {
      if (r.nodeId !== node.nodeId) continue;
      for (const dev of r.cudaVisibleDevices.split(',').map((d) => d.trim()).filter(Boolean)) {
        const gpuIndex = /^\d+$/.test(dev) ? Number(dev) : indexOfUuid.get(dev);
        const h = held.find((x) => (x.migUuid ? x.migUuid === dev : x.gpuIndex === gpuIndex));
        if (h) Object.assign(h, { gang: gang.id, gangName: gang.spec?.name ?? '', rank: r.rank });
      }
    }
  }
  return out;
}

/** GPUs held on each node (whole GPUs; a MIG slice counts its GPU once). */
export function gpusUsedByNode(groups: readonly PlacementGroup[]): Map<string, number> {
  const held = new Map<string, Set<string>>();
  for (const pg of groups) {
    for (const p of pg.placements) {
      let s = held.get(p.nodeId);
      if (!s) held.set(p.nodeId, (s = new Set()));
      for (const i of p.gpuIndices) s.add(String(i));
      for (const m of p.migUuids) s.add(m);
    }
  }
  return new Map([...held].map(([n, s]) => [n, s.size]));
}

export interface DomainRow {
  zone: string;
  rack: string;
  alive: number;
  dead: number;
  draining: number;
  gpusTotal: number;
  gpusUsed: number;
}

const ZONE = 'muster.io/zone';
const RACK = 'muster.io/rack';

/** Nodes and GPUs per zone/rack ("" where a node has no such label), sorted by zone, then rack. */
export function domains(nodes: readonly Node[], used: ReadonlyMap<string, number>): DomainRow[] {
  const rows = new Map<string, DomainRow>();
  for (const n of nodes) {
    const zone = n.labels[ZONE] ?? '';
    const rack = n.labels[RACK] ?? '';
    const key = `${zone}\u0000${rack}`;
    let r = rows.get(key);
    if (!r) rows.set(key, (r = { zone, rack, alive: 0, dead: 0, draining: 0, gpusTotal: 0, gpusUsed: 0 }));
    const alive = n.state === NodeState.NODE_STATE_ALIVE;
    if (alive) r.alive++;
    else r.dead++;
    if (alive && n.draining) r.draining++;
    if (alive) {
      r.gpusTotal += n.inventory?.gpus.length ?? 0;
      r.gpusUsed += used.get(n.nodeId) ?? 0;
    }
  }
  return [...rows.values()].sort((a, b) => a.zone.localeCompare(b.zone) || a.rack.localeCompare(b.rack));
}
