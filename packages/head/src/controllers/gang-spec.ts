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
 * The ranks of one world are laid out by gang-layout.ts, which each role
 * instance of a gang with roles (gang-roles.ts) uses too. Also what each
 * node's agent runs for a layout (`launchShards`). Ports are allocated
 * through port-ledger.ts, around what the other gangs hold (the controller's
 * index, port-index.ts).
 */
import { z } from 'zod';
import { ErrorCode, MusterError, didYouMeanKeys, issueLines, limitMessage, limitedArray, limitedRecord, limitedString } from '@muster/common';
import { DEFAULT_STARTUP_DEADLINE_MS, rankEnv as contractRankEnv, SPEC_LIMITS, templateBytes } from '@muster/contracts';
import { GangSpec, type PlacementGroup, type Probe, type ShardLaunch } from '@muster/proto';
import type { RoleEndpoint } from '@muster/contracts';
import { checkWarmupAgainst, launchWarmup, warmupInput, warmupSchema } from './gang-warmup.js';
import { gangSpecError } from './gang-issues.js';
import type { LayoutPorts, NodeLookup } from './port-ledger.js';
import { layOutWorld, type RankSlot } from './gang-layout.js';
import { checkRoleBundles, launchRoleShards, parseRoles, planRoleLayout, roleRankEnv, type RoleRank, type ValidGangRole } from './gang-roles.js';

const PORT_NAME = /^[a-z][a-z0-9_]{0,30}$/;
const probeSchema = z
  .strictObject({
    kind: z.enum(['http', 'tcp', 'exec', 'sdk']),
    port: limitedString('refLength').default(''),
    path: limitedString('probePathLength').default('/'),
    command: limitedArray(limitedString('argLength'), 'args').default([]),
    periodMs: z.int().min(0).max(3_600_000).default(0),
    timeoutMs: z.int().min(0).max(3_600_000).default(0),
    failureThreshold: z.int().min(0).max(1000).default(0),
  }, didYouMeanKeys)
  .check((ctx) => {
    const p = ctx.value;
    if ((p.kind === 'http' || p.kind === 'tcp') && p.port === '') ctx.issues.push({ code: 'custom', input: p, path: ['port'], message: `a ${p.kind} probe needs a port (a port name of the template, or a number)` });
    if (p.kind === 'exec' && p.command.length === 0) ctx.issues.push({ code: 'custom', input: p, path: ['command'], message: 'an exec probe needs a command' });
  });

export const gangSpecSchema = z
  .strictObject({
    name: z.string().regex(/^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/, 'must be 1-63 lowercase letters, digits, "." or "-"'),
    placementGroup: limitedString('refLength').min(1, 'name or id of the placement group whose bundles are the PP stages'),
    tp: z.int().min(1).max(1024),
    pp: z.int().min(1).max(1024),
    template: z.strictObject({
      command: limitedString('commandLength').min(1, 'the command to run for every rank'),
      args: limitedArray(limitedString('argLength'), 'args').default([]),
      env: limitedRecord(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'not a valid environment variable name'), limitedString('envValueLength'), 'envEntries', 'envKeyLength').default({}),
      cwd: limitedString('cwdLength').default(''),
      ports: limitedArray(z.strictObject({ name: z.string().regex(PORT_NAME, 'lowercase letters, digits and _'), port: z.int().min(0).max(65535).default(0) }, didYouMeanKeys), 'ports').default([]),
      readiness: probeSchema.optional(),
      liveness: probeSchema.optional(),
      warmup: warmupSchema.optional(),
    }, didYouMeanKeys),
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
  }, didYouMeanKeys)
  .check((ctx) => {
    const t = ctx.value.template;
    const ranks = ctx.value.tp * ctx.value.pp;
    if (ranks > SPEC_LIMITS.ranksPerReplica) ctx.issues.push({ code: 'custom', input: ranks, path: ['tp'], message: `tp × pp = ${limitMessage('ranksPerReplica', ranks, 'ranks')}` });
    const bytes = templateBytes(t);
    if (bytes > SPEC_LIMITS.templateBytes) ctx.issues.push({ code: 'custom', input: bytes, path: ['template'], message: `command, args and env take ${limitMessage('templateBytes', bytes, 'bytes')}` });
    const names = new Set<string>();
    const fixed = new Set<number>();
    t.ports.forEach((p, i) => {
      if (names.has(p.name)) ctx.issues.push({ code: 'custom', input: p, path: ['template', 'ports', i, 'name'], message: `port name "${p.name}" used twice` });
      if (p.port && fixed.has(p.port)) ctx.issues.push({ code: 'custom', input: p, path: ['template', 'ports', i, 'port'], message: `port ${p.port} clashes with another port of the template` });
      names.add(p.name);
      if (p.port) fixed.add(p.port);
    });
    for (const key of ['readiness', 'liveness'] as const) {
      const port = t[key]?.port;
      if (port && !names.has(port) && !/^\d{1,5}$/.test(port)) ctx.issues.push({ code: 'custom', input: port, path: ['template', key, 'port'], message: `"${port}" is neither a port name of the template (${[...names].join(', ') || 'none'}) nor a number` });
    }
    if (t.warmup) checkWarmupAgainst(t.warmup, t, ctx.value.replicaGroup, ctx.issues);
  });

/** With `roles` (gang-roles.ts): validated outside the schema, each role's template as a gang's own. */
export type ValidGangSpec = z.output<typeof gangSpecSchema> & { roles: ValidGangRole<z.output<typeof gangSpecSchema>['template']>[] };

/**
 * Validates a wire spec (proto3 zero values = defaults); errors name the
 * field. `stored`: a spec read back from the store, which skips the record
 * bounds (gangSpecBytes, rankPorts) so a record written under older bounds
 * stays readable; every new spec is checked against them.
 */
export function parseGangSpec(w: GangSpec | undefined, opts: { stored?: boolean } = {}): ValidGangSpec {
  // With roles, the gang's template, tp and pp are its first (entry) role's: derived, never sent or stored twice.
  const entry = w?.roles?.[0];
  if (entry) {
    if (w.template) throw gangSpecError([{ path: 'template', message: 'a gang with roles has no gang-level template (each role has its own; the first role\'s is the gang\'s)' }]);
    if (w.tp > 1 || w.pp > 1) throw gangSpecError([{ path: w.tp > 1 ? 'tp' : 'pp', message: 'a gang with roles sets tp and pp per role' }]);
  }
  const t = entry ? entry.template : w?.template;
  const probe = (p: Probe | undefined) => (p && p.kind ? { kind: p.kind, port: p.port, path: p.path || '/', command: p.command, periodMs: p.periodMs, timeoutMs: p.timeoutMs, failureThreshold: p.failureThreshold } : undefined);
  const input = {
    name: w?.name ?? '',
    placementGroup: w?.placementGroup ?? '',
    tp: entry ? entry.tp || 1 : w?.tp ?? 0,
    pp: entry ? entry.pp || 1 : w?.pp ?? 0,
    template: {
      command: t?.command ?? '',
      args: t?.args ?? [],
      env: t?.env ?? {},
      cwd: t?.cwd ?? '',
      ports: t?.ports ?? [],
      ...(probe(t?.readiness) ? { readiness: probe(t?.readiness) } : {}),
      ...(probe(t?.liveness) ? { liveness: probe(t?.liveness) } : {}),
      ...(warmupInput(t?.warmup) ? { warmup: warmupInput(t?.warmup) } : {}),
    },
    startup: w?.startup ?? undefined,
    logMaxBytes: w?.logMaxBytes ?? 0,
    replicaGroup: w?.replicaGroup ?? '',
    replicaId: w?.replicaId ?? '',
  };
  // Roles first: the gang's own template is its first role's, whose errors name the role.
  const roles = w?.roles?.length ? parseRoles(w.roles, w, (g) => parseGangSpec(g).template) : [];
  const r = gangSpecSchema.safeParse(input);
  if (!r.success) throw gangSpecError(issueLines(r.error.issues));
  const spec = { ...r.data, roles };
  if (opts.stored) return spec;
  const issues = recordIssues(spec);
  if (issues.length) throw gangSpecError(issues);
  return spec;
}

/**
 * The bounds that keep a gang's record (and every answer carrying it) under
 * 1 MiB, checked on the spec as it is stored (defaults spelled out): its
 * encoding without the four references (`gangSpecBytes`) and the named ports
 * all its ranks hold (`rankPorts`). docs/limits.md#records derives them.
 */
function recordIssues(spec: ValidGangSpec): { path: string; message: string }[] {
  const issues: { path: string; message: string }[] = [];
  const bytes = gangSpecBytes(spec);
  if (bytes > SPEC_LIMITS.gangSpecBytes) issues.push({ path: '', message: `the spec takes ${limitMessage('gangSpecBytes', bytes, 'bytes encoded')}` });
  const ports = spec.roles.length
    ? spec.roles.reduce((n, r) => n + r.count * r.tp * r.pp * r.template.ports.length, 0)
    : spec.tp * spec.pp * spec.template.ports.length;
  if (ports > SPEC_LIMITS.rankPorts) issues.push({ path: 'template.ports', message: `ranks × ports = ${limitMessage('rankPorts', ports, 'ports')}` });
  return issues;
}

/** The stored spec's encoding without name, placementGroup, replicaGroup and replicaId (each bounded on its own). */
export function gangSpecBytes(spec: ValidGangSpec): number {
  return GangSpec.encode({ ...wireGangSpec(spec), name: '', placementGroup: '', replicaGroup: '', replicaId: '' }).finish().length;
}

/** The spec back on the wire, with defaults spelled out (with roles, template, tp and pp only in the roles). */
export function wireGangSpec(s: ValidGangSpec): GangSpec {
  const probe = (p: ValidGangSpec['template']['readiness']): Probe | undefined => (p ? { ...p } : undefined);
  const roles = s.roles.length > 0;
  return {
    name: s.name,
    placementGroup: s.placementGroup,
    tp: roles ? 0 : s.tp,
    pp: roles ? 0 : s.pp,
    template: roles ? undefined : { ...s.template, readiness: probe(s.template.readiness), liveness: probe(s.template.liveness), warmup: launchWarmup(s.template.warmup, {}) },
    startup: s.startup,
    logMaxBytes: s.logMaxBytes,
    replicaGroup: s.replicaGroup,
    replicaId: s.replicaId,
    roles: s.roles.map((r) => ({ name: r.name, count: r.count, tp: r.tp, pp: r.pp, template: wireGangSpec({ ...s, template: r.template, roles: [] }).template })),
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

/** A rank of the layout; a gang with roles: with its role instance (gang-roles.ts). */
export interface RankPlan extends RankSlot {
  role?: RoleRank;
}

export interface LayoutPlan {
  ranks: RankPlan[];
  masterAddr: string;
  masterPort: number;
  /** A gang with roles: every role instance's first rank. */
  endpoints?: RoleEndpoint[];
  /** A gang with roles: the role variables every rank shares (MUSTER_ROLES, MUSTER_ROLE_ADDR_*), built once per layout. */
  roleEnv?: Readonly<Record<string, string>>;
}

/**
 * Places the ranks on the group's bundles and allocates ports (`ports`: the
 * lowest free port of its range on the rank's host, around what other gangs
 * hold: port-ledger.ts). Throws INVALID_ARGUMENT on a fixed-port clash.
 * Without roles the gang is one world (gang-layout.ts) whose stages are the
 * bundles node by node.
 */
export function planLayout(spec: ValidGangSpec, pg: PlacementGroup, nodes: NodeLookup, ports: LayoutPorts): LayoutPlan {
  if (spec.roles.length) return planRoleLayout(spec.roles, pg, nodes, ports);
  checkBundles(spec, pg);
  const placements = [...pg.placements].sort((a, b) => a.bundleIndex - b.bundleIndex);
  const nodeOrder = new Map<string, number>();
  for (const p of placements) if (!nodeOrder.has(p.nodeId)) nodeOrder.set(p.nodeId, nodeOrder.size);
  const stages = [...placements].sort((a, b) => nodeOrder.get(a.nodeId)! - nodeOrder.get(b.nodeId)! || a.bundleIndex - b.bundleIndex);
  const refuse = (message: string) => new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid gang spec: ${message}`, { details: { field: 'template.ports' } });
  return layOutWorld({ pp: stages.length, tp: spec.tp, stage: (ppRank) => stages[ppRank]!, ports: spec.template.ports, firstRank: 0 }, nodes, ports, refuse);
}

/** The environment contract of one rank (BRIEF.md), over the template's env. */
export function rankEnv(spec: ValidGangSpec, gangId: string, attempt: number, plan: LayoutPlan, r: RankPlan): Record<string, string> {
  if (r.role) return roleRankEnv({ replicaId: spec.replicaId || gangId, group: spec.replicaGroup || spec.name, gangId, attempt }, spec.template.env, plan.roleEnv ?? {}, r, r.role);
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
  if (spec.roles.length) {
    // Each rank as a plain gang's with its role's template; an instance's first rank checks its own rendezvous port.
    return launchRoleShards(spec.roles, plan.ranks, nodeId, (template, r) => {
      const s = launchShards({ ...spec, template, roles: [] }, gangId, attempt, { ...plan, ranks: [r] }, nodeId)[0]!;
      return r.role && r.role.rank === 0 && r.rank !== 0 ? { ...s, ports: [...s.ports, r.role.masterPort] } : s;
    });
  }
  const t = spec.template;
  const resolve = (p: ValidGangSpec['template']['readiness'], ports: Record<string, number>) =>
    p ? { ...p, port: p.port in ports ? String(ports[p.port]) : p.port } : undefined;
  return plan.ranks.filter((r) => r.nodeId === nodeId).map((r) => ({
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
    // What the agent checks is free before spawning (rank 0 binds the rendezvous port too).
    ports: [...Object.values(r.ports), ...(r.rank === 0 ? [plan.masterPort] : [])],
    // Rank 0's agent runs the warm-up before it reports rank 0 ready (gang-warmup.ts).
    warmup: r.rank === 0 ? launchWarmup(t.warmup, r.ports) : undefined,
  }));
}
