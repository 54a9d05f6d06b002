/**
 * Replica group specs: validation at the edge, the revision a spec runs as,
 * and what one replica is made of (a placement group + a gang). Pure.
 *
 * Defaults (proto3 zero = default): tp/pp 1, resources.gpus 0, placement
 * strategy PACK with `gpu-island` required when a rank group spans GPUs
 * (tp > 1 with GPUs), replicas min 0 / max = max(initial, 1) / initial 1,
 * rollout rolling with maxSurge 1, drain deadline 30 s, router in-flight
 * limit per replica 32 (HTTP shards: 1024, the engine queues), engine
 * metrics scraped with vLLM's names on /metrics every second (HTTP shards),
 * no overflow (`overflowProblems`: a rule and another group's name),
 * routing p2c (rg-routing.ts).
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { ErrorCode, MusterError, didYouMeanKeys, formatIssues, limitMessage, limitedArray, limitedRecord, limitedString } from '@muster/common';
import { DEFAULT_MAX_IN_FLIGHT, DEFAULT_SUBJECT_PREFIX, encodeEngineScrapeConfig, engineScrapeConfig, engineScrapeProblem, MAX_IN_FLIGHT_PER_REPLICA, MAX_OVERFLOW_QUEUE_PER_REPLICA, MAX_REQUEST_TIMEOUT_MS, MODEL_NAME_PATTERN, REPLICA_GROUP_NAME_PATTERN, replicaEnv, replicaSubject, SPEC_LIMITS, type EngineScrapeConfig } from '@muster/contracts';
import type { GangSpec, PlacementGroupSpec, ReplicaGroupSpec } from '@muster/proto';
import { parseGangSpec } from './gang-spec.js';
import { routingProblems } from './rg-routing.js';
import { gangIssuesOf, gangSpecError } from './gang-issues.js';
import { gangRoles, roleBundleField, roleBundles, roleIssues, rolesSpanGpus, rolesWithDefaults, specRoleField, stageBundle } from './rg-roles.js';
import { pgRecordProblem, specInput } from './pg-convert.js';
import { parsePlacementGroupSpec } from '../scheduler/index.js';
import { namedMetricOf, parsePolicy, readsEngine, type AutoscalingPolicy } from '../autoscaler/index.js';

const encodeScrape = (c: EngineScrapeConfig | undefined): string | undefined => (c ? encodeEngineScrapeConfig(c) : undefined);

const replicaCount = z.int().min(0).max(SPEC_LIMITS.replicas, { error: (iss) => `${String(iss.input)} replicas; the limit is ${SPEC_LIMITS.replicas} (replicas)` });
const counts = z
  .strictObject({ min: replicaCount, max: replicaCount, initial: replicaCount }, didYouMeanKeys)
  .check((ctx) => {
    const r = ctx.value;
    if (r.min > r.max) ctx.issues.push({ code: 'custom', input: r, path: ['max'], message: `max ${r.max} is below min ${r.min}` });
    if (r.initial < r.min || r.initial > r.max) ctx.issues.push({ code: 'custom', input: r, path: ['initial'], message: `initial ${r.initial} is outside min ${r.min} … max ${r.max}` });
  });

/** Per-rank resources: the group's, or each role's (a role's are its ranks' as the group's are). */
const resourcesSchema = z.strictObject({ gpus: z.int().min(0).max(64), cpuMillis: z.int().min(0), memoryBytes: z.int().min(0), gpuMemoryMib: z.int().min(0), migProfile: limitedString('refLength'), custom: limitedRecord(z.string(), z.number().min(0), 'customResources', 'labelLength') }, didYouMeanKeys);

const schema = z.strictObject({
  name: z.string().regex(REPLICA_GROUP_NAME_PATTERN, 'must be 1-42 lowercase letters, digits or "-"'),
  tp: z.int().min(1).max(1024),
  pp: z.int().min(1).max(1024),
  resources: resourcesSchema,
  replicas: counts,
  rollout: z.strictObject({ strategy: z.enum(['rolling', 'canary']), canaryWeight: z.number().min(0).max(1), maxSurge: z.int().min(0).max(100) }, didYouMeanKeys),
  drainDeadlineMs: z.int().min(0).max(3_600_000),
  httpPort: limitedString('refLength'),
  maxReplacements: z.int().min(0).max(SPEC_LIMITS.replicas),
  models: limitedArray(limitedString('modelNameLength').regex(MODEL_NAME_PATTERN, 'a model name is printable, without whitespace').min(1, 'a model name is not empty'), 'models').refine((m) => new Set(m).size === m.length, 'a model name is listed twice'),
  requestTimeoutMs: z.int().min(0).max(MAX_REQUEST_TIMEOUT_MS),
  // Checked below as what they become: a gang's template and startup, a placement group, a policy.
  template: z.unknown(),
  startup: z.unknown(),
  placement: z.unknown(),
  maxInFlightPerReplica: z.int().min(0, 'must be ≥ 0 (0: the default)').max(MAX_IN_FLIGHT_PER_REPLICA),
  engineMetrics: z.unknown(),
  autoscaling: z.unknown(),
  overflow: z.strictObject({
    group: z.string().regex(REPLICA_GROUP_NAME_PATTERN, 'must name a replica group: 1-42 lowercase letters, digits or "-"'),
    queuePerReplicaAbove: z.int().min(0, 'must be ≥ 0 (0: overflow whenever a call would wait)').max(MAX_OVERFLOW_QUEUE_PER_REPLICA).optional(),
    onBackPressure: z.boolean(),
  }, didYouMeanKeys).optional(),
  routing: z.unknown(), // rg-routing.ts
  // The rest of each role is checked in rg-roles.ts and as the gang it becomes.
  roles: z.array(z.looseObject({ resources: resourcesSchema })),
}, didYouMeanKeys);

/** The router's limit of calls in flight per replica for this group (membership carries it to routers). */
export function maxInFlightOf(s: Pick<ReplicaGroupSpec, 'maxInFlightPerReplica' | 'httpPort'>): number {
  return s.maxInFlightPerReplica || (s.httpPort ? DEFAULT_MAX_IN_FLIGHT.http : DEFAULT_MAX_IN_FLIGHT.nats);
}

/** The engine metrics scrape configuration of an HTTP group, defaults filled; undefined for a NATS group. */
export function engineScrapeOf(s: Pick<ReplicaGroupSpec, 'engineMetrics' | 'httpPort'>): EngineScrapeConfig | undefined {
  return s.httpPort ? engineScrapeConfig(s.engineMetrics) : undefined;
}

export type ValidRgSpec = ReplicaGroupSpec & { rollout: NonNullable<ReplicaGroupSpec['rollout']>; replicas: NonNullable<ReplicaGroupSpec['replicas']>; maxReplacements: number };

/** Fills defaults and validates; errors name the field. `stored`: a spec read back from the store skips the record bounds (gangSpecBytes, rankPorts, gpusPerGroup, pgSpecBytes). */
export function parseRgSpec(w: ReplicaGroupSpec | undefined, opts: { stored?: boolean } = {}): ValidRgSpec {
  const r = w?.replicas;
  const initial = r ? r.initial || (r.min > 0 ? r.min : 1) : 1;
  const spec: ValidRgSpec = {
    name: w?.name ?? '',
    template: w?.template,
    tp: w?.tp || 1,
    pp: w?.pp || 1,
    resources: { gpus: 0, cpuMillis: 0, memoryBytes: 0, gpuMemoryMib: 0, migProfile: '', custom: {}, ...w?.resources },
    placement: w?.placement,
    replicas: { min: r?.min ?? 0, max: r?.max || Math.max(initial, 1), initial },
    startup: w?.startup,
    rollout: { strategy: w?.rollout?.strategy || 'rolling', canaryWeight: w?.rollout?.canaryWeight ?? 0, maxSurge: w?.rollout?.maxSurge || 1 },
    drainDeadlineMs: w?.drainDeadlineMs || 30_000,
    httpPort: w?.httpPort ?? '',
    maxReplacements: w?.maxReplacements === undefined ? 3 : w.maxReplacements === -1 ? 0 : w.maxReplacements,
    // A spec built in code before `metrics` existed lacks it; stored and sent ones have [].
    autoscaling: w?.autoscaling && { ...w.autoscaling, metrics: w.autoscaling.metrics ?? [] },
    models: w?.models ?? [],
    requestTimeoutMs: w?.requestTimeoutMs ?? 0,
    engineMetrics: w?.engineMetrics,
    maxInFlightPerReplica: w?.maxInFlightPerReplica ?? 0,
    overflow: w?.overflow,
    routing: w?.routing,
    roles: rolesWithDefaults(w?.roles),
  };
  const checked = schema.safeParse(spec);
  const issues = checked.success ? [] : [formatIssues(checked.error.issues)];
  // Also the gang's rule, checked here too so it is reported whatever else the template gets wrong.
  const ranks = spec.tp * spec.pp;
  if (ranks > SPEC_LIMITS.ranksPerReplica) issues.push(`tp: tp × pp = ${limitMessage('ranksPerReplica', ranks, 'ranks')}`);
  if (spec.rollout.strategy === 'canary' && !(spec.rollout.canaryWeight > 0 && spec.rollout.canaryWeight < 1)) issues.push('rollout.canaryWeight: a canary takes a share of traffic strictly between 0 and 1');
  issues.push(...roleIssues(w, spec.roles, spec.httpPort));
  if (spec.httpPort && !spec.roles.length && !spec.template?.ports.some((p) => p.name === spec.httpPort)) issues.push(`httpPort: "${spec.httpPort}" is not a port name of the template (${spec.template?.ports.map((p) => p.name).join(', ') || 'none'})`);
  issues.push(...overflowProblems(spec));
  if (spec.engineMetrics) {
    if (!spec.httpPort) issues.push('engineMetrics: only an HTTP group (httpPort) has an engine to scrape');
    const problem = engineScrapeProblem(engineScrapeConfig(spec.engineMetrics));
    if (problem) issues.push(`engineMetrics.${problem}`);
  }
  issues.push(...routingProblems(spec.routing));
  if (issues.length) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid replica group spec: ${issues.join('; ')}`);
  const policy = spec.autoscaling ? policyOf(spec) : undefined; // refuses a bad policy now, naming the field
  if (policy) checkEngineMetric(policy, spec);
  // The shard template and startup policy are a gang's: validate them as one.
  try {
    parseGangSpec(gangSpecOf(spec, 'check', 'r-check', 'pg-check', undefined), opts);
  } catch (e) {
    const gangIssues = gangIssuesOf(e);
    if (!gangIssues) throw e;
    throw gangSpecError(gangIssues.map((i) => ({ ...i, path: specRoleField(spec.roles, i.path) })), { cause: e, prefix: 'invalid replica group spec' });
  }
  // Placement and resources make each replica's placement group: refuse now what its creation would.
  const pg = parsePlacementGroupSpec(specInput(pgSpecOf(spec, 'check')));
  if (!pg.ok) {
    const why = [...new Set(pg.issues.map((i) => `${spec.roles.length ? roleBundleField(spec.roles, i.path) ?? placementField(i.path) : placementField(i.path)}: ${i.message}`))].join('; ');
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid replica group spec: ${why}`);
  }
  const tooLarge = opts.stored ? undefined : pgRecordProblem(pg.spec);
  if (tooLarge) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid replica group spec: resources and placement: a replica's placement group: ${tooLarge}`, { details: { field: 'resources' } });
  return spec;
}

/** Where a replica's placement group field comes from in the replica group spec. */
function placementField(path: string): string {
  if (path === 'name') return 'name';
  if (path.startsWith('bundles')) return path.includes('.') ? `resources${path.slice(path.indexOf('.'))}` : 'resources';
  return path === 'selector.matchLabels' ? 'placement.selector.matchLabels' : `placement.${path}`;
}

/**
 * An overflow names a rule and another group: one hop (a call sent to the
 * overflow group never overflows again), so a loop is impossible except to
 * itself, which is refused. The overflow group need not exist yet.
 */
function overflowProblems(s: ValidRgSpec): string[] {
  const o = s.overflow;
  if (!o) return [];
  const problems: string[] = [];
  if (o.group === s.name) problems.push(`overflow.group: a group cannot overflow to itself ("${s.name}")`);
  if (o.queuePerReplicaAbove === undefined && !o.onBackPressure) problems.push('overflow: name a saturation rule: queuePerReplicaAbove (calls waiting per replica) and/or onBackPressure');
  return problems;
}

/** An `engine-*` policy needs an engine to scrape, and a named metric must be one the worker reports (each of `metrics`). */
/**
 * What an apply of `s` should tell its caller without refusing it ('' when
 * nothing): a group with roles autoscaled on engine metrics scales on the
 * entry role's engine only (gang rank 0's, the one the worker scrapes).
 */
export function rolesEngineNote(s: ValidRgSpec): string {
  if (!s.roles.length || !s.autoscaling) return '';
  const engine = (policyOf(s)?.metrics ?? []).map((m) => m.metric).filter(readsEngine);
  if (!engine.length) return '';
  const entry = s.roles.find((r) => r.entry) ?? s.roles[0]!;
  return `note: ${engine.join(', ')} read${engine.length > 1 ? '' : 's'} the engine metrics of the entry role ${entry.name} only (gang rank 0); the other roles' engines are not scraped`;
}

function checkEngineMetric(p: AutoscalingPolicy, s: ValidRgSpec): void {
  p.metrics.forEach(({ metric }, i) => {
    if (!readsEngine(metric)) return;
    const field = s.autoscaling?.metrics.length ? `autoscaling.metrics[${i}].metric` : 'autoscaling.metric';
    const scrape = engineScrapeOf(s);
    if (!scrape) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid replica group spec: ${field}: "${metric}" reads the engine's Prometheus metrics, which only HTTP shards have (set httpPort)`, { details: { fields: [field] } });
    const named = namedMetricOf(metric);
    if (named !== undefined && !scrape.metrics.includes(named)) {
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid replica group spec: ${field}: "${named}" is not scraped; add it to engineMetrics.metrics (now: ${scrape.metrics.join(', ') || 'none'})`, { details: { fields: [field] } });
    }
  });
}

/**
 * The revision of a spec: a hash of what runs — the template, parallelism,
 * resources, placement, startup policy, the HTTP port and how the engine is
 * scraped — and nothing else. Replica counts, rollout, autoscaling, drain
 * deadline, replacement budget, the router's in-flight limit, the overflow (and any field
 * added later unless it is listed here) change the group without rolling a
 * replica. The scrape configuration is listed because it reaches the worker
 * in each replica's launch order: a running replica cannot learn a new one.
 */
export function revisionOf(s: ReplicaGroupSpec): string {
  const runs = {
    name: s.name,
    template: s.template,
    tp: s.tp,
    pp: s.pp,
    resources: s.resources,
    placement: s.placement,
    startup: s.startup,
    httpPort: s.httpPort,
    engineMetrics: engineScrapeOf(s),
    roles: s.roles.length ? s.roles : undefined, // absent, not [], so a group without roles keeps its revision
  };
  return createHash('sha256').update(stable(runs)).digest('hex').slice(0, 10);
}

/** JSON with object keys sorted at every level (map fields have no fixed order). */
function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().filter((k) => (v as Record<string, unknown>)[k] !== undefined).map((k) => `${JSON.stringify(k)}:${stable((v as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

/** One replica's placement group: one bundle per PP stage, each holding TP ranks. */
export function pgSpecOf(s: ValidRgSpec, replicaId: string): PlacementGroupSpec {
  const r = s.resources!;
  const tp = s.tp;
  const spans = s.roles.length ? rolesSpanGpus(s.roles) : tp > 1 && r.gpus > 0;
  const topology = s.placement?.topology.length ? s.placement.topology : spans ? [{ level: 'gpu-island', mode: 'required' }] : [];
  return {
    name: `${s.name}-${replicaId}`,
    strategy: s.placement?.strategy || 'PACK',
    bundles: s.roles.length ? roleBundles(s.roles) : Array.from({ length: s.pp }, () => stageBundle(r, tp)),
    topology,
    matchLabels: s.placement?.matchLabels ?? {},
    tolerations: s.placement?.tolerations ?? [],
    priority: s.placement?.priority ?? 0,
  };
}

/** The subject a replica serves on (the data-plane contract's). */
export const subjectOf = replicaSubject;

/**
 * One replica's gang: the template plus what a replica needs to serve on
 * NATS, less its NATS user: that is minted for each launch order and never
 * stored with the spec (gang-executor.ts).
 */
export function gangSpecOf(s: ValidRgSpec, revision: string, replicaId: string, pgId: string, subjectPrefix: string | undefined): GangSpec {
  const prefix = subjectPrefix || DEFAULT_SUBJECT_PREFIX;
  const vars = replicaEnv({ subject: replicaSubject(prefix, s.name, replicaId), revision, subjectPrefix: prefix, httpBridge: s.httpPort, engineMetrics: encodeScrape(engineScrapeOf(s)) });
  const roles = gangRoles(s.roles, vars);
  // With roles, the gang's template, tp and pp are its first (entry) role's (parseGangSpec derives them).
  const t = s.template;
  return {
    name: `${s.name}-${replicaId}`,
    placementGroup: pgId,
    tp: roles.length ? 0 : s.tp,
    pp: roles.length ? 0 : s.pp,
    template: t && !roles.length ? { ...t, env: { ...t.env, ...vars } } : undefined,
    roles,
    startup: s.startup,
    logMaxBytes: 0,
    replicaGroup: s.name,
    replicaId,
  };
}

/**
 * The autoscaling policy of a spec (undefined: not autoscaled). proto3 zero
 * values mean "the default"; min and max are the spec's replica bounds.
 */
export function policyOf(s: ValidRgSpec): AutoscalingPolicy | undefined {
  const a = s.autoscaling;
  if (!a) return undefined;
  const z = <T>(v: T) => (v === 0 || v === '' ? undefined : v);
  return parsePolicy({
    metric: z(a.metric),
    target: z(a.target),
    min: s.replicas.min,
    max: s.replicas.max,
    upscaleDelayMs: z(a.upscaleDelayMs),
    downscaleDelayMs: z(a.downscaleDelayMs),
    maxStep: z(a.maxStep),
    tolerance: z(a.tolerance),
    scaleToZeroAfterMs: z(a.scaleToZeroAfterMs),
    lookbackMs: z(a.lookbackMs),
    floors: a.floors.map((f) => ({ cron: f.cron, durationMs: f.durationMs, timezone: f.timezone || 'UTC', min: f.min })),
    metrics: a.metrics.length ? a.metrics.map((m) => ({ metric: m.metric, target: m.target })) : undefined,
  });
}

/**
 * The model names `spec` would take from another live group: a model name
 * routes the gateway's OpenAI calls, so it belongs to one group at a time
 * (docs/gateway.md). A group being deleted gives its names up.
 */
export function modelConflicts(spec: ValidRgSpec, others: Iterable<{ name: string; models: readonly string[]; deleting: boolean }>): string[] {
  const mine = new Set(spec.models);
  const taken: string[] = [];
  for (const o of others) if (o.name !== spec.name && !o.deleting) for (const m of o.models) if (mine.has(m)) taken.push(`"${m}" (served by ${o.name})`);
  return taken;
}
