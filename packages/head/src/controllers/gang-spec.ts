/**
 * Gang specs, validated at the edge, and the rank layout a gang gets on its
 * placement group — pure functions, no I/O.
 *
 * Layout rules (docs/gangs.md):
 *  - one bundle of the placement group per PP stage; a bundle's GPUs are split
 *    evenly over the stage's TP ranks (TP ranks stay inside the bundle, which
 *    the scheduler keeps inside one NVLink island with `gpu-island`);
 *  - stages are mapped to bundles node by node (nodes in order of their first
 *    bundle), so ranks are contiguous per node; RANK = PP_RANK × TP + TP_RANK;
 *  - MASTER_ADDR is rank 0's node, MASTER_PORT a port allocated there.
 *
 * Also what each node's agent runs for a layout (`launchShards`) and the
 * ports the gangs hold (`portsInUse`), which the next layout allocates around.
 */
import { z } from 'zod';
import { ErrorCode, MusterError, didYouMeanKeys, formatIssues, limitMessage, limitedArray, limitedString } from '@muster/common';
import { DEFAULT_STARTUP_DEADLINE_MS, rankEnv as contractRankEnv, SPEC_LIMITS } from '@muster/contracts';
import type { Gang, GangSpec, PlacementGroup, ShardLaunch } from '@muster/proto';
import { shardTemplateSchema, templateInput, templateIssues, wireTemplate } from './shard-template.js';
import { DEFAULT_PORT_RANGE, portAllocator, portSpace, type LayoutPlan, type NodeLookup, type PortRange, type RankPlan } from './gang-layout.js';
export { DEFAULT_PORT_RANGE, portSpace, type LayoutPlan, type NodeLookup, type PortRange, type RankPlan } from './gang-layout.js';
import { checkRoleBundles, gangRoleSchema, planRoleLayout, roleRankEnv, rolesIssues, rolesRankCount } from './gang-roles.js';

export const gangSpecSchema = z
  .strictObject({
    name: z.string().regex(/^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/, 'must be 1-63 lowercase letters, digits, "." or "-"'),
    placementGroup: limitedString('refLength').min(1, 'name or id of the placement group whose bundles are the PP stages'),
    tp: z.int().min(1).max(1024),
    pp: z.int().min(1).max(1024),
    template: shardTemplateSchema,
    startup: z
      .strictObject({
        deadlineMs: z.int().min(0).max(86_400_000).default(0),
        maxRestarts: z.int().min(-1).max(1000).default(0),
        backoffInitialMs: z.int().min(0).max(3_600_000).default(0),
        backoffMaxMs: z.int().min(0).max(3_600_000).default(0),
        gracePeriodMs: z.int().min(0).max(3_600_000).default(0),
      }, didYouMeanKeys)
      .default({ deadlineMs: 0, maxRestarts: 0, backoffInitialMs: 0, backoffMaxMs: 0, gracePeriodMs: 0 })
      .transform((s) => ({
        // proto3 cannot tell 0 from unset: 0 means "the default".
        deadlineMs: s.deadlineMs || DEFAULT_STARTUP_DEADLINE_MS,
        maxRestarts: s.maxRestarts === -1 ? 0 : s.maxRestarts || 3,
        backoffInitialMs: s.backoffInitialMs || 1_000,
        backoffMaxMs: s.backoffMaxMs || 30_000,
        gracePeriodMs: s.gracePeriodMs || 5_000,
      })),
    logMaxBytes: z.int().min(0).max(2 ** 40).default(0).transform((n) => n || 16 * 1024 * 1024),
    replicaGroup: limitedString('refLength').default(''),
    replicaId: limitedString('refLength').default(''),
    roles: limitedArray(gangRoleSchema, 'roles').default([]),
  }, didYouMeanKeys)
  .check((ctx) => {
    const ranks = ctx.value.roles.length ? rolesRankCount(ctx.value.roles) : ctx.value.tp * ctx.value.pp;
    if (ranks > SPEC_LIMITS.ranksPerReplica) ctx.issues.push({ code: 'custom', input: ranks, path: [ctx.value.roles.length ? 'roles' : 'tp'], message: `${ctx.value.roles.length ? 'count × tp × pp over the roles' : 'tp × pp'} = ${limitMessage('ranksPerReplica', ranks, 'ranks')}` });
    // With roles the gang's own template repeats the first role's (unused): its issues are the role's.
    if (!ctx.value.roles.length) ctx.issues.push(...templateIssues(ctx.value.template, ['template']));
    ctx.issues.push(...rolesIssues(ctx.value.roles));
  });

export type ValidGangSpec = z.output<typeof gangSpecSchema>;

/** Validates a wire spec (proto3 zero values = defaults); errors name the field. */
export function parseGangSpec(w: GangSpec | undefined): ValidGangSpec {
  const t = w?.template;
  const input = {
    name: w?.name ?? '',
    placementGroup: w?.placementGroup ?? '',
    tp: w?.tp ?? 0,
    pp: w?.pp ?? 0,
    template: templateInput(t),
    startup: w?.startup ?? undefined,
    logMaxBytes: w?.logMaxBytes ?? 0,
    replicaGroup: w?.replicaGroup ?? '',
    replicaId: w?.replicaId ?? '',
    roles: (w?.roles ?? []).map((x) => ({ name: x.name, count: x.count, tp: x.tp, pp: x.pp, template: templateInput(x.template) })),
  };
  const r = gangSpecSchema.safeParse(input);
  if (r.success) return r.data;
  throw new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid gang spec: ${formatIssues(r.error.issues)}`, { details: { fields: r.error.issues.map((i) => i.path.join('.')) } });
}

/** The spec back on the wire, with defaults spelled out. */
export function wireGangSpec(s: ValidGangSpec): GangSpec {
  return {
    name: s.name,
    placementGroup: s.placementGroup,
    tp: s.tp,
    pp: s.pp,
    template: wireTemplate(s.template),
    startup: s.startup,
    logMaxBytes: s.logMaxBytes,
    replicaGroup: s.replicaGroup,
    replicaId: s.replicaId,
    roles: s.roles.map((r) => ({ ...r, template: wireTemplate(r.template) })),
  };
}

/** Throws INVALID_ARGUMENT unless the group's bundles can carry TP×PP ranks. */
export function checkBundles(spec: ValidGangSpec, pg: PlacementGroup): void {
  if (spec.roles.length) return checkRoleBundles(spec.roles, pg);
  const bundles = pg.spec?.bundles ?? [];
  if (bundles.length !== spec.pp) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid gang spec: pp: ${spec.pp} stages need ${spec.pp} bundles, placement group ${pg.spec?.name} has ${bundles.length}`, { details: { field: 'pp' } });
  }
  bundles.forEach((b, i) => {
    if (b.gpus % spec.tp !== 0) {
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid gang spec: tp: bundle ${i} of placement group ${pg.spec?.name} has ${b.gpus} GPU(s), not a multiple of tp=${spec.tp}`, { details: { field: 'tp' } });
    }
  });
}

/**
 * Places the ranks on the group's bundles and allocates ports (lowest free
 * port of `range` on the rank's host, skipping `used`, keyed by
 * `portSpace`). Throws INVALID_ARGUMENT on a fixed-port clash.
 */
export function planLayout(spec: ValidGangSpec, pg: PlacementGroup, nodes: NodeLookup, used: Map<string, Set<number>>, range: PortRange = DEFAULT_PORT_RANGE): LayoutPlan {
  if (spec.roles.length) return planRoleLayout(spec.roles, pg, nodes, used, range);
  checkBundles(spec, pg);
  const placements = [...pg.placements].sort((a, b) => a.bundleIndex - b.bundleIndex);
  const nodeOrder = new Map<string, number>();
  for (const p of placements) if (!nodeOrder.has(p.nodeId)) nodeOrder.set(p.nodeId, nodeOrder.size);
  const stages = [...placements].sort((a, b) => nodeOrder.get(a.nodeId)! - nodeOrder.get(b.nodeId)! || a.bundleIndex - b.bundleIndex);

  const alloc = portAllocator(nodes, used, range);

  const ranks: RankPlan[] = [];
  const perNode = new Map<string, number>();
  stages.forEach((b, ppRank) => {
    const gpus = b.migUuids.length > 0 ? b.migUuids : b.gpuIndices.map(String);
    const k = gpus.length / spec.tp;
    for (let tpRank = 0; tpRank < spec.tp; tpRank++) {
      const ports = alloc.rankPorts(spec.template.ports, b.nodeId);
      const localRank = perNode.get(b.nodeId) ?? 0;
      perNode.set(b.nodeId, localRank + 1);
      ranks.push({
        rank: ppRank * spec.tp + tpRank,
        nodeId: b.nodeId,
        tpRank,
        ppRank,
        localRank,
        localWorldSize: 0, // filled below
        cudaVisibleDevices: gpus.slice(tpRank * k, (tpRank + 1) * k).join(','),
        ports,
      });
    }
  });
  for (const r of ranks) r.localWorldSize = perNode.get(r.nodeId)!;
  const first = ranks[0]!;
  const masterPort = alloc.allocate(first.nodeId);
  return { ranks, masterAddr: nodes.get(first.nodeId)?.address || '127.0.0.1', masterPort };
}

/** The environment contract of one rank (BRIEF.md), over the template's env. */
export function rankEnv(spec: ValidGangSpec, gangId: string, attempt: number, plan: LayoutPlan, r: RankPlan): Record<string, string> {
  if (r.role) return roleRankEnv({ replicaId: spec.replicaId || gangId, group: spec.replicaGroup || spec.name, gangId, attempt }, plan, r, r.role);
  return {
    ...spec.template.env,
    ...contractRankEnv({
      ...r,
      worldSize: spec.tp * spec.pp,
      masterAddr: plan.masterAddr,
      masterPort: plan.masterPort,
      tpSize: spec.tp,
      ppSize: spec.pp,
      replicaId: spec.replicaId || gangId,
      group: spec.replicaGroup || spec.name,
      gangId,
      attempt,
    }),
  };
}

/** What the agent of `nodeId` runs for this attempt: its ranks, fully resolved (env contract, probe ports). */
export function launchShards(spec: ValidGangSpec, gangId: string, attempt: number, plan: LayoutPlan, nodeId: string): ShardLaunch[] {
  const resolve = (p: ValidGangSpec['template']['readiness'], ports: Record<string, number>) =>
    p ? { ...p, port: p.port in ports ? String(ports[p.port]) : p.port } : undefined;
  return plan.ranks.filter((r) => r.nodeId === nodeId).map((r) => {
    const t = r.role?.template ?? spec.template;
    const rendezvous = r.role ? (r.role.rank === 0 ? r.role.masterPort : 0) : r.rank === 0 ? plan.masterPort : 0;
    return {
      rank: r.rank,
      command: t.command,
      args: t.args,
      env: rankEnv(spec, gangId, attempt, plan, r),
      cwd: t.cwd,
      readiness: resolve(t.readiness, r.ports),
      liveness: resolve(t.liveness, r.ports),
      startupDeadlineMs: spec.startup.deadlineMs,
      gracePeriodMs: spec.startup.gracePeriodMs,
      logMaxBytes: spec.logMaxBytes,
      // What the agent checks is free before spawning (rank 0 of a world binds its rendezvous port too).
      ports: [...Object.values(r.ports), ...(rendezvous ? [rendezvous] : [])],
    };
  });
}

/** The ports `gangs` hold (every rank's, and the rendezvous port on rank 0's node), by port space. */
export function portsInUse(gangs: Iterable<Gang>, nodes: NodeLookup): Map<string, Set<number>> {
  const used = new Map<string, Set<number>>();
  const add = (nodeId: string, port: number) => {
    const space = portSpace(nodes, nodeId);
    used.set(space, (used.get(space) ?? new Set()).add(port));
  };
  for (const g of gangs) {
    for (const r of g.ranks) for (const p of Object.values(r.ports)) add(r.nodeId, p);
    if (g.masterPort && g.ranks[0]) add(g.ranks[0].nodeId, g.masterPort);
    for (const r of g.ranks) if (r.masterPort) add(r.nodeId, r.masterPort); // each role instance's rendezvous
  }
  return used;
}
