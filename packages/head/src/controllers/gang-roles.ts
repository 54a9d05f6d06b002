/**
 * Gangs with roles: one gang whose ranks belong to several roles (a
 * replica's prefill and decode engines), so the whole replica is placed on
 * one placement group, started behind one barrier and restarted as one, yet
 * each role runs its own template as its own TP × PP worlds. Pure.
 *
 * Layout (docs/gangs.md, "Roles"):
 *  - roles in spec order, each `count` instances, each instance `pp` stages
 *    of `tp` ranks: gang ranks are numbered in that order, so gang rank 0 is
 *    the first role's first instance (the replica group puts its entry role
 *    first: the worker bridges HTTP on gang rank 0);
 *  - bundles of the placement group in the same order, one per instance and
 *    PP stage (by bundle index, not by node: an instance's stages may span
 *    nodes as the placement group's topology allows);
 *  - each instance is its own world: RANK, WORLD_SIZE, LOCAL_RANK and the
 *    rendezvous (MASTER_ADDR/PORT: a port allocated on the instance's first
 *    rank's host, kept in that rank's RankStatus.master_port) are the
 *    instance's; the role variables (@muster/contracts role-env.ts) say the
 *    role, the instance and where every instance's first rank listens.
 */
import { z } from 'zod';
import { ErrorCode, MusterError, didYouMeanKeys } from '@muster/common';
import { rankEnv as contractRankEnv, ROLE_NAME_PATTERN, roleEnv, type RoleEndpoint } from '@muster/contracts';
import type { PlacementGroup } from '@muster/proto';
import { portAllocator, type LayoutPlan, type NodeLookup, type PortRange, type RankPlan, type RoleRank } from './gang-layout.js';
import { shardTemplateSchema, templateIssues } from './shard-template.js';

export const gangRoleSchema = z.strictObject({
  name: z.string().regex(ROLE_NAME_PATTERN, 'a role name is 1-31 lowercase letters or digits, starting with a letter'),
  count: z.int().min(1).max(1024),
  tp: z.int().min(1).max(1024),
  pp: z.int().min(1).max(1024),
  template: shardTemplateSchema,
}, didYouMeanKeys);

export type ValidGangRole = z.output<typeof gangRoleSchema>;

type Issue = { code: 'custom'; input: unknown; path: (string | number)[]; message: string };

/** What zod cannot check per role: names used twice, each template's own rules. */
export function rolesIssues(roles: readonly ValidGangRole[]): Issue[] {
  const issues: Issue[] = [];
  const seen = new Set<string>();
  roles.forEach((r, i) => {
    if (seen.has(r.name)) issues.push({ code: 'custom', input: r.name, path: ['roles', i, 'name'], message: `role "${r.name}" is declared twice` });
    seen.add(r.name);
    issues.push(...templateIssues(r.template, ['roles', i, 'template']));
  });
  return issues;
}

/** Ranks of a gang with these roles: Σ count × tp × pp. */
export function rolesRankCount(roles: readonly Pick<ValidGangRole, 'count' | 'tp' | 'pp'>[]): number {
  return roles.reduce((n, r) => n + r.count * r.tp * r.pp, 0);
}

/** One instance of a role, with where its bundles and ranks start. */
export interface RoleInstance {
  role: ValidGangRole;
  index: number;
  firstBundle: number;
  firstRank: number;
}

/** Every role instance in gang order. */
export function roleInstances(roles: readonly ValidGangRole[]): RoleInstance[] {
  const out: RoleInstance[] = [];
  let bundle = 0;
  let rank = 0;
  for (const role of roles) {
    for (let index = 0; index < role.count; index++) {
      out.push({ role, index, firstBundle: bundle, firstRank: rank });
      bundle += role.pp;
      rank += role.tp * role.pp;
    }
  }
  return out;
}

/** Throws INVALID_ARGUMENT unless the group has one bundle per instance and stage, each divisible by the role's tp. */
export function checkRoleBundles(roles: readonly ValidGangRole[], pg: PlacementGroup): void {
  const bundles = pg.spec?.bundles ?? [];
  const need = roles.reduce((n, r) => n + r.count * r.pp, 0);
  if (bundles.length !== need) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid gang spec: roles: ${need} role instance stages need ${need} bundles, placement group ${pg.spec?.name} has ${bundles.length}`, { details: { field: 'roles' } });
  }
  for (const inst of roleInstances(roles)) {
    for (let s = 0; s < inst.role.pp; s++) {
      const i = inst.firstBundle + s;
      if (bundles[i]!.gpus % inst.role.tp !== 0) {
        throw new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid gang spec: roles: bundle ${i} (role ${inst.role.name} #${inst.index}) of placement group ${pg.spec?.name} has ${bundles[i]!.gpus} GPU(s), not a multiple of tp=${inst.role.tp}`, { details: { field: 'roles' } });
      }
    }
  }
}

/** The ranks of every role instance on the group's bundles, with ports and one rendezvous port per instance. */
export function planRoleLayout(roles: readonly ValidGangRole[], pg: PlacementGroup, nodes: NodeLookup, used: Map<string, Set<number>>, range: PortRange): LayoutPlan {
  checkRoleBundles(roles, pg);
  const byBundle = new Map(pg.placements.map((p) => [p.bundleIndex, p]));
  const alloc = portAllocator(nodes, used, range);
  const addr = (nodeId: string) => nodes.get(nodeId)?.address || '127.0.0.1';
  const ranks: RankPlan[] = [];
  const endpoints: RoleEndpoint[] = [];
  for (const inst of roleInstances(roles)) {
    const { role } = inst;
    const mine: RankPlan[] = [];
    const perNode = new Map<string, number>();
    for (let ppRank = 0; ppRank < role.pp; ppRank++) {
      const b = byBundle.get(inst.firstBundle + ppRank);
      if (!b) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid gang spec: roles: bundle ${inst.firstBundle + ppRank} of placement group ${pg.spec?.name} is not placed`, { details: { field: 'roles' } });
      const gpus = b.migUuids.length > 0 ? b.migUuids : b.gpuIndices.map(String);
      const k = gpus.length / role.tp;
      for (let tpRank = 0; tpRank < role.tp; tpRank++) {
        const localRank = perNode.get(b.nodeId) ?? 0;
        perNode.set(b.nodeId, localRank + 1);
        const rank = ppRank * role.tp + tpRank;
        mine.push({
          rank: inst.firstRank + rank,
          nodeId: b.nodeId,
          tpRank,
          ppRank,
          localRank,
          localWorldSize: 0, // filled below
          cudaVisibleDevices: gpus.slice(tpRank * k, (tpRank + 1) * k).join(','),
          ports: alloc.rankPorts(role.template.ports, b.nodeId),
          role: { name: role.name, index: inst.index, count: role.count, rank, tp: role.tp, pp: role.pp, masterAddr: '', masterPort: 0, template: role.template },
        });
      }
    }
    const first = mine[0]!;
    const masterAddr = addr(first.nodeId);
    const masterPort = alloc.allocate(first.nodeId);
    for (const r of mine) Object.assign(r, { localWorldSize: perNode.get(r.nodeId)! }, { role: { ...r.role!, masterAddr, masterPort } });
    endpoints.push({ role: role.name, index: inst.index, host: masterAddr, ports: first.ports });
    ranks.push(...mine);
  }
  const first = ranks[0]!;
  return { ranks, masterAddr: first.role!.masterAddr, masterPort: first.role!.masterPort, endpoints };
}

/** Who a rank's gang is, for its environment. */
export interface GangIds {
  replicaId: string;
  group: string;
  gangId: string;
  attempt: number;
}

/** The environment of a rank of a gang with roles: its role's template env, its instance's world, the role variables. */
export function roleRankEnv(ids: GangIds, plan: LayoutPlan, r: RankPlan, role: RoleRank): Record<string, string> {
  const endpoints = plan.endpoints ?? [];
  return {
    ...role.template.env,
    ...contractRankEnv({
      ...r,
      ...ids,
      rank: role.rank,
      worldSize: role.tp * role.pp,
      masterAddr: role.masterAddr,
      masterPort: role.masterPort,
      tpSize: role.tp,
      ppSize: role.pp,
    }),
    ...roleEnv({ role: role.name, index: role.index, count: role.count, roles: [...new Set(endpoints.map((e) => e.role))], endpoints }),
  };
}
