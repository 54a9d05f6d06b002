/**
 * The shapes of the specs users write — SDK objects, and the YAML/JSON the
 * CLI reads into them — checked before anything goes on the wire.
 *
 * Why here: the wire (protobuf) has no room for a key it does not know, so a
 * misspelt one (`resource:` for `resources:`, `readines:`, `autoscaling:
 * { taget: 5 }`) would vanish between the user and the head and leave a
 * default in its place. These schemas refuse every unknown key, at every
 * level, with its path and the key it most likely meant (common/strict.ts).
 *
 * What they check is the shape: known keys, and the JS type of each value.
 * Value rules (ranges, names, "a canary weight is strictly between 0 and 1")
 * are the head's, which validates every spec it receives whatever the
 * client (controllers/rg-spec.ts, gang-spec.ts, scheduler/spec.ts): one
 * place for each rule, and no client can skip it. Every field is optional
 * here, so what is missing is reported by the head as before.
 *
 * The exception is size: the upper bounds of SPEC_LIMITS (@muster/contracts;
 * string lengths, counts, TP × PP, replicas) are checked here too, with the
 * head's numbers and messages, so a spec the head would refuse for its size
 * is refused before it is encoded (a spec over the gRPC message limit would
 * otherwise fail with a transport error that names no field).
 *
 * The compile-time checks at the end keep each schema and its documented
 * interface (PlacementGroupSpec, GangSpec, ReplicaGroupSpec, ActorOptions) in step: a key
 * added to an interface and not here fails the build.
 */
import { z } from 'zod';
import { ErrorCode, MusterError, didYouMeanKeys, formatIssues, limitMessage, limitedArray, limitedRecord, limitedString } from '@muster/common';
import { MAX_ENGINE_METRIC_NAME, MAX_ENGINE_PATH, MAX_NAMED_ENGINE_METRICS, SPEC_LIMITS, templateBytes, type SpecLimit } from '@muster/contracts';
import type { ActorOptions, GangSpec, PlacementGroupSpec, ReplicaGroupSpec } from './specs.js';
import { warmupShape } from './warmup-spec.js';

/** A strict object whose unknown keys are refused with a "did you mean". */
const strictObject = <S extends z.core.$ZodLooseShape>(shape: S) => z.strictObject(shape, didYouMeanKeys);
const num = z.number().optional();
const str = z.string().optional();
/** A string of at most SPEC_LIMITS[limit] characters. */
const bounded = (limit: SpecLimit) => limitedString(limit).optional();
const metricName = z.string().max(MAX_ENGINE_METRIC_NAME).optional();
const numbers = limitedRecord(z.string(), z.number(), 'customResources', 'labelLength').optional();
const labels = limitedRecord(z.string(), limitedString('labelLength'), 'labels', 'labelLength').optional();
const count = (limit: SpecLimit) => z.number().max(SPEC_LIMITS[limit], { error: (iss) => limitMessage(limit, Number(iss.input), limit === 'replicas' ? 'replicas' : 'items') }).optional();

const topology = z.array(strictObject({ level: z.string(), mode: str })).max(5, 'at most one constraint per level (5 levels)').optional();
const selector = strictObject({ matchLabels: labels }).optional();
const tolerations = limitedArray(strictObject({ key: bounded('labelLength'), operator: str, value: bounded('labelLength'), effect: str }), 'tolerations').optional();

export const placementGroupSpecShape = strictObject({
  name: bounded('nameLength'),
  strategy: str,
  bundles: limitedArray(strictObject({ cpuMillis: num, memoryBytes: num, gpus: num, gpuMemoryMiB: num, migProfile: bounded('refLength'), custom: numbers }), 'bundles').optional(),
  topology,
  selector,
  tolerations,
  priority: num,
}).check((ctx) => {
  const gpus = (ctx.value.bundles ?? []).reduce((n, b) => n + (b.gpus ?? 0), 0);
  if (gpus > SPEC_LIMITS.gpusPerGroup) ctx.issues.push({ code: 'custom', input: gpus, path: ['bundles'], message: `gpus of all bundles together: ${limitMessage('gpusPerGroup', gpus, 'GPUs')}` });
});

/**
 * MUSTER_INVALID_ARGUMENT when a spec's encoding (without its name and
 * references) passes `limit`: the head checks the same bound on the spec as
 * it stores it, defaults spelled out, so this is the check before sending,
 * the head's the one that counts (docs/limits.md#records).
 */
export function checkEncodedSize(what: string, bytes: number, limit: 'pgSpecBytes' | 'gangSpecBytes'): void {
  if (bytes > SPEC_LIMITS[limit]) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid ${what}: the spec takes ${limitMessage(limit, bytes, 'bytes encoded')}`, { details: { field: 'spec' } });
}

const probe = strictObject({
  kind: z.string(),
  port: z.union([limitedString('refLength'), z.number()]).optional(),
  path: bounded('probePathLength'),
  command: limitedArray(limitedString('argLength'), 'args').optional(),
  periodMs: num,
  timeoutMs: num,
  failureThreshold: num,
}).optional();

const template = strictObject({
  command: bounded('commandLength'),
  args: limitedArray(limitedString('argLength'), 'args').optional(),
  env: limitedRecord(z.string(), limitedString('envValueLength'), 'envEntries', 'envKeyLength').optional(),
  cwd: bounded('cwdLength'),
  ports: limitedArray(strictObject({ name: limitedString('refLength'), port: num }), 'ports').optional(),
  readiness: probe,
  liveness: probe,
  warmup: warmupShape,
})
  .check((ctx) => {
    const bytes = templateBytes(ctx.value);
    if (bytes > SPEC_LIMITS.templateBytes) ctx.issues.push({ code: 'custom', input: bytes, message: `command, args and env take ${limitMessage('templateBytes', bytes, 'bytes')}` });
  })
  .optional();

/** TP × PP of a gang or replica group, against SPEC_LIMITS.ranksPerReplica (reported on tp, as the head does). */
const ranksWithinLimit = (ctx: { value: { tp?: number | undefined; pp?: number | undefined }; issues: z.core.$ZodRawIssue[] }) => {
  const ranks = (ctx.value.tp ?? 1) * (ctx.value.pp ?? 1);
  if (ranks > SPEC_LIMITS.ranksPerReplica) ctx.issues.push({ code: 'custom', input: ranks, path: ['tp'], message: `tp × pp = ${limitMessage('ranksPerReplica', ranks, 'ranks')}` });
};

const startup = strictObject({ deadlineMs: num, maxRestarts: num, backoffInitialMs: num, backoffMaxMs: num, gracePeriodMs: num }).optional();

export const gangSpecShape = strictObject({ name: bounded('nameLength'), placementGroup: bounded('refLength'), tp: num, pp: num, template, startup, logMaxBytes: num })
  .check(ranksWithinLimit)
  .check((ctx) => {
    const ports = (ctx.value.tp ?? 1) * (ctx.value.pp ?? 1) * (ctx.value.template?.ports?.length ?? 0);
    if (ports > SPEC_LIMITS.rankPorts) ctx.issues.push({ code: 'custom', input: ports, path: ['template', 'ports'], message: `ranks × ports = ${limitMessage('rankPorts', ports, 'ports')}` });
  });

/** A role of a replica (docs/replica-groups.md, "Roles"). */
const role = strictObject({ name: limitedString('refLength'), count: num, tp: num, pp: num, resources: strictObject({ gpus: num, cpuMillis: num, memoryBytes: num, gpuMemoryMiB: num, migProfile: str, custom: numbers }).optional(), template, entry: z.boolean().optional() }).check(ranksWithinLimit);

export const replicaGroupSpecShape = strictObject({
  name: bounded('nameLength'),
  template,
  tp: num,
  pp: num,
  resources: strictObject({ gpus: num, cpuMillis: num, memoryBytes: num, gpuMemoryMiB: num, migProfile: str, custom: numbers }).optional(),
  placement: strictObject({ strategy: str, topology, selector, tolerations, priority: num }).optional(),
  roles: limitedArray(role, 'roles').optional(),
  replicas: strictObject({ min: count('replicas'), max: count('replicas'), initial: count('replicas') }).optional(),
  startup,
  rollout: strictObject({ strategy: str, canaryWeight: num, maxSurge: num }).optional(),
  drainDeadlineMs: num,
  httpPort: bounded('refLength'),
  maxReplacements: num,
  models: limitedArray(limitedString('modelNameLength'), 'models').optional(),
  requestTimeoutMs: num,
  // The head checks the values (names, interval range); the sizes are @muster/contracts' engine-metrics.ts bounds.
  engineMetrics: strictObject({
    path: z.string().max(MAX_ENGINE_PATH).optional(),
    intervalMs: num,
    waitingMetric: metricName,
    runningMetric: metricName,
    kvCacheMetric: metricName,
    metrics: z.array(z.string().max(MAX_ENGINE_METRIC_NAME)).max(MAX_NAMED_ENGINE_METRICS).optional(),
  }).optional(),
  maxInFlightPerReplica: num,
  overflow: strictObject({ group: bounded('nameLength'), queuePerReplicaAbove: num, onBackPressure: z.boolean().optional() }).optional(),
  // The head checks the values (policy name, ranges: @muster/head rg-routing.ts).
  routing: strictObject({ policy: str, prefixChars: num, loadFactor: num }).optional(),
  autoscaling: strictObject({
    metric: str,
    target: num,
    upscaleDelayMs: num,
    downscaleDelayMs: num,
    maxStep: num,
    tolerance: num,
    scaleToZeroAfterMs: num,
    lookbackMs: num,
    floors: limitedArray(strictObject({ cron: limitedString('floorFieldLength'), durationMs: z.number(), timezone: bounded('floorFieldLength'), min: z.number() }), 'floors').optional(),
    // At most 8 (the head's MAX_POLICY_METRICS); the names are the head's to check.
    metrics: z.array(strictObject({ metric: z.string().max(256), target: z.number() })).max(8, 'at most 8 metrics').optional(),
  }).optional(),
}).check(ranksWithinLimit);

export const actorOptionsShape = strictObject({
  name: bounded('nameLength'),
  args: z.array(z.unknown()).optional(),
  resources: strictObject({ gpus: num, cpuMillis: num, memoryBytes: num }).optional(),
  maxRestarts: num,
});

function check<T>(schema: z.ZodType, what: string, input: unknown): T {
  const r = schema.safeParse(input);
  if (r.success) return input as T;
  throw new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid ${what}: ${formatIssues(r.error.issues)}`, {
    details: { fields: r.error.issues.map((i) => [...i.path, ...(i.code === 'unrecognized_keys' ? i.keys.slice(0, 1) : [])].join('.')) },
  });
}

/** `input` as a placement group spec, or MUSTER_INVALID_ARGUMENT naming every unknown key and wrong type. */
export const checkPlacementGroupSpec = (input: unknown) => check<PlacementGroupSpec>(placementGroupSpecShape, 'placement group spec', input);
/** `input` as a gang spec (see checkPlacementGroupSpec). */
export const checkGangSpec = (input: unknown) => check<GangSpec>(gangSpecShape, 'gang spec', input);
/** `input` as a replica group spec (see checkPlacementGroupSpec). */
export const checkReplicaGroupSpec = (input: unknown) => check<ReplicaGroupSpec>(replicaGroupSpecShape, 'replica group spec', input);
/** `input` as actor options (see checkPlacementGroupSpec). */
export const checkActorOptions = (input: unknown) => check<ActorOptions>(actorOptionsShape, 'actor options', input);

/** Every key path of a spec type ("template.readiness.port", "bundles[].gpus"); maps stop at their own path. */
type Paths<T, P extends string = ''> = T extends ReadonlyArray<infer E>
  ? Paths<E, `${P}[]`>
  : T extends object
    ? string extends keyof T
      ? never
      : { [K in keyof T & string]-?: `${P}.${K}` | Paths<NonNullable<T[K]>, `${P}.${K}`> }[keyof T & string]
    : never;
/** `true` when both types have the same key paths at every depth; else the paths only one of them has. */
type SameKeys<A, B> = [Exclude<Paths<A>, Paths<B>>, Exclude<Paths<B>, Paths<A>>] extends [never, never] ? true : [Exclude<Paths<A>, Paths<B>>, Exclude<Paths<B>, Paths<A>>];

// Each schema allows exactly the keys its documented interface has, at every depth.
const _sameKeys: [
  SameKeys<z.input<typeof placementGroupSpecShape>, PlacementGroupSpec>,
  SameKeys<z.input<typeof gangSpecShape>, GangSpec>,
  SameKeys<z.input<typeof replicaGroupSpecShape>, ReplicaGroupSpec>,
  SameKeys<z.input<typeof actorOptionsShape>, ActorOptions>,
] = [true, true, true, true];
// ...and takes each value type the interface allows.
const _pg = (s: PlacementGroupSpec): z.input<typeof placementGroupSpecShape> => s;
const _gang = (s: GangSpec): z.input<typeof gangSpecShape> => s;
const _rg = (s: ReplicaGroupSpec): z.input<typeof replicaGroupSpecShape> => s;
const _actor = (s: ActorOptions): z.input<typeof actorOptionsShape> => s;
void [_sameKeys, _pg, _gang, _rg, _actor];
