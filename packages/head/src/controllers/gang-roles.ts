/**
 * Gangs with roles: one gang whose ranks belong to several roles (a
 * replica's prefill and decode engines), so the whole replica is placed on
 * one placement group, started behind one barrier and restarted as one, yet
 * each role runs its own template as its own TP × PP worlds. Pure. The hooks
 * in gang-spec.ts hand a gang with roles to these functions; a gang without
 * roles never reaches them.
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
 *
 * Validation: each role's template is checked as a gang of its own would be
 * (the caller passes its gang parser in, so every template rule — ports,
 * probes, sizes, and whatever a template gains later — applies to roles with
 * no copy here), with errors named `roles[i].…`.
 */
import { limitMessage } from '@muster/common';
import { rankEnv as contractRankEnv, rankRoleEnv, ROLE_NAME_PATTERN, sharedRoleEnv, SPEC_LIMITS, type RoleEndpoint } from '@muster/contracts';
import type { GangRole, GangSpec, PlacementGroup, ShardLaunch } from '@muster/proto';
import { gangIssuesOf, gangSpecError } from './gang-issues.js';
import type { LayoutPorts, NodeLookup } from './port-ledger.js';
import { layOutWorld, type RankSlot, type TemplatePorts } from './gang-layout.js';

/** A role as validated: `T` is the gang parser's template type. */
export interface ValidGangRole<T> {
  name: string;
  count: number;
  tp: number;
  pp: number;
  template: T;
}

const invalid = (field: string, message: string) => gangSpecError([{ path: field, message }]);

/**
 * Validates a gang's roles; `parseGang` validates one role as the gang it
 * would be alone (tp, pp, template) and returns its template.
 */
export function parseRoles<T>(roles: readonly GangRole[], base: GangSpec, parseGang: (g: GangSpec) => T): ValidGangRole<T>[] {
  if (roles.length > SPEC_LIMITS.roles) throw invalid('roles', limitMessage('roles', roles.length, 'roles'));
  const seen = new Set<string>();
  let ranks = 0;
  let instances = 0;
  const out = roles.map((wire, i) => {
    // proto3 cannot tell 0 from unset: a zero count, tp or pp means the default, 1.
    const r = { ...wire, count: wire.count || 1, tp: wire.tp || 1, pp: wire.pp || 1 };
    if (!ROLE_NAME_PATTERN.test(r.name)) throw invalid(`roles[${i}].name`, `"${r.name}" is not a role name (1-31 lowercase letters or digits, starting with a letter)`);
    if (seen.has(r.name)) throw invalid(`roles[${i}].name`, `role "${r.name}" is declared twice`);
    seen.add(r.name);
    if (!Number.isInteger(r.count) || r.count < 1 || r.count > SPEC_LIMITS.roleInstances) throw invalid(`roles[${i}].count`, `${r.count} is outside 1 … ${SPEC_LIMITS.roleInstances}`);
    // Gang rank 0's agent runs the warm-up (gang-spec.ts launchShards): another role's would never run.
    if (i > 0 && r.template?.warmup?.requests.length) throw invalid(`roles[${i}].template.warmup`, `only the entry role (the gang's first, here ${roles[0]!.name}) warms up: gang rank 0's agent runs the warm-up`);
    let template: T;
    try {
      template = parseGang({ ...base, tp: r.tp, pp: r.pp, template: r.template, roles: [] });
    } catch (e) {
      const issues = gangIssuesOf(e);
      if (!issues) throw e;
      throw gangSpecError(issues.map((x) => ({ path: x.path ? `roles[${i}].${x.path}` : `roles[${i}]`, message: x.message })), { cause: e });
    }
    ranks += r.count * r.tp * r.pp;
    instances += r.count;
    return { name: r.name, count: r.count, tp: r.tp, pp: r.pp, template };
  });
  if (instances > SPEC_LIMITS.roleInstances) throw invalid('roles', `Σ count = ${limitMessage('roleInstances', instances, 'role instances')}`);
  if (ranks > SPEC_LIMITS.ranksPerReplica) throw invalid('roles', `count × tp × pp over the roles = ${limitMessage('ranksPerReplica', ranks, 'ranks')}`);
  return out;
}

/** One instance of a role, with where its bundles and ranks start. */
export interface RoleInstance<T> {
  role: ValidGangRole<T>;
  index: number;
  firstBundle: number;
  firstRank: number;
}

/** Every role instance in gang order. */
export function roleInstances<T>(roles: readonly ValidGangRole<T>[]): RoleInstance<T>[] {
  const out: RoleInstance<T>[] = [];
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
export function checkRoleBundles<T>(roles: readonly ValidGangRole<T>[], pg: PlacementGroup): void {
  const bundles = pg.spec?.bundles ?? [];
  const need = roles.reduce((n, r) => n + r.count * r.pp, 0);
  if (bundles.length !== need) throw invalid('roles', `${need} role instance stages need ${need} bundles, placement group ${pg.spec?.name} has ${bundles.length}`);
  for (const inst of roleInstances(roles)) {
    for (let s = 0; s < inst.role.pp; s++) {
      const i = inst.firstBundle + s;
      if (bundles[i]!.gpus % inst.role.tp !== 0) throw invalid('roles', `bundle ${i} (role ${inst.role.name} #${inst.index}) of placement group ${pg.spec?.name} has ${bundles[i]!.gpus} GPU(s), not a multiple of tp=${inst.role.tp}`);
    }
  }
}

/** A rank of a gang with roles: its role instance (a world of its own) and the template its role runs. */
export interface RoleRank {
  name: string;
  /** The role instance (0 … count − 1). */
  index: number;
  count: number;
  /** Rank inside the instance: PP_RANK × TP + TP_RANK. */
  rank: number;
  tp: number;
  pp: number;
  masterAddr: string;
  masterPort: number;
}

/** What the layout of a gang with roles gives each rank (gang-spec.ts's RankPlan, with its role). */
export interface RoleRankPlan extends RankSlot {
  role: RoleRank;
}

/**
 * The ranks of every role instance on the group's bundles, with ports and one
 * rendezvous port per instance: each instance is one world (gang-layout.ts)
 * on its bundles in bundle index order.
 */
export function planRoleLayout<T extends { ports: TemplatePorts }>(roles: readonly ValidGangRole<T>[], pg: PlacementGroup, nodes: NodeLookup, ports: LayoutPorts): { ranks: RoleRankPlan[]; masterAddr: string; masterPort: number; endpoints: RoleEndpoint[]; roleEnv: Readonly<Record<string, string>> } {
  checkRoleBundles(roles, pg);
  const byBundle = new Map(pg.placements.map((p) => [p.bundleIndex, p]));
  const ranks: RoleRankPlan[] = [];
  const endpoints: RoleEndpoint[] = [];
  for (const inst of roleInstances(roles)) {
    const { role } = inst;
    const stage = (ppRank: number) => {
      const b = byBundle.get(inst.firstBundle + ppRank);
      if (!b) throw invalid('roles', `bundle ${inst.firstBundle + ppRank} of placement group ${pg.spec?.name} is not placed`);
      return b;
    };
    const world = layOutWorld({ pp: role.pp, tp: role.tp, stage, ports: role.template.ports, firstRank: inst.firstRank }, nodes, ports, (message) => invalid('roles', message));
    const { masterAddr, masterPort } = world;
    for (const r of world.ranks) {
      ranks.push({ ...r, role: { name: role.name, index: inst.index, count: role.count, rank: r.rank - inst.firstRank, tp: role.tp, pp: role.pp, masterAddr, masterPort } });
    }
    endpoints.push({ role: role.name, index: inst.index, host: masterAddr, ports: world.ranks[0]!.ports });
  }
  // Every rank shares MUSTER_ROLES and the addresses: built once here, not once per rank.
  return { ranks, masterAddr: ranks[0]!.role.masterAddr, masterPort: ranks[0]!.role.masterPort, endpoints, roleEnv: sharedRoleEnv(roles.map((r) => r.name), endpoints) };
}

/** Who a rank's gang is, for its environment. */
export interface GangIds {
  replicaId: string;
  group: string;
  gangId: string;
  attempt: number;
}

/** The environment of a rank of a gang with roles: its role's template env, its instance's world, the role variables (`shared`: the layout's roleEnv). */
export function roleRankEnv(ids: GangIds, templateEnv: Record<string, string>, shared: Readonly<Record<string, string>>, r: RankSlot, role: RoleRank): Record<string, string> {
  return {
    ...templateEnv,
    ...contractRankEnv({ ...r, ...ids, rank: role.rank, worldSize: role.tp * role.pp, masterAddr: role.masterAddr, masterPort: role.masterPort, tpSize: role.tp, ppSize: role.pp }),
    ...rankRoleEnv({ role: role.name, index: role.index, count: role.count }, shared),
  };
}

/**
 * What the agent of `nodeId` runs: its ranks of every role, each with its
 * role's template and `shard` (gang-spec.ts's launch of one rank from one
 * template, so a role's rank is launched exactly as a plain gang's is).
 */
export function launchRoleShards<T, R extends { nodeId: string; role?: RoleRank | undefined }>(roles: readonly ValidGangRole<T>[], ranks: readonly R[], nodeId: string, shard: (template: T, r: R) => ShardLaunch): ShardLaunch[] {
  const templates = new Map(roles.map((x) => [x.name, x.template]));
  return ranks.filter((r) => r.nodeId === nodeId).map((r) => shard(templates.get(r.role!.name)!, r));
}
