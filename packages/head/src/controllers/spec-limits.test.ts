/**
 * The upper bounds of SPEC_LIMITS at the head: one table-driven test per
 * family (rank and replica counts, item counts, string lengths, a template's
 * total bytes), each refusing one past the limit with the field's path and
 * the limit's number and name, and taking a spec exactly at the limit.
 */
import { describe, expect, it } from 'vitest';
import { checkLength } from '@muster/common';
import { SPEC_LIMITS } from '@muster/contracts';
import type { GangSpec, PlacementGroupSpec, ReplicaGroupSpec } from '@muster/proto';
import { parsePlacementGroupSpec } from '../scheduler/index.js';
import { parseGangSpec } from './gang-spec.js';
import { specInput } from './pg-convert.js';
import { parseRgSpec } from './rg-spec.js';

const L = SPEC_LIMITS;
type Template = NonNullable<GangSpec['template']>;
const template: Template = { command: 'node', args: [], env: {}, cwd: '', ports: [], readiness: undefined, liveness: undefined, warmup: undefined };
const gang = (over: Partial<GangSpec> = {}, t: Partial<Template> = {}): GangSpec => ({
  name: 'g', placementGroup: 'pg', tp: 1, pp: 1, template: { ...template, ...t }, startup: undefined, logMaxBytes: 0, replicaGroup: '', replicaId: '', roles: [], ...over,
});
const rg = (over: Partial<ReplicaGroupSpec> = {}): ReplicaGroupSpec => ({
  name: 'echo', template: { ...template }, tp: 1, pp: 1, resources: undefined, placement: undefined, replicas: { min: 0, max: 2, initial: 1 },
  startup: undefined, rollout: undefined, drainDeadlineMs: 0, httpPort: '', maxReplacements: undefined, autoscaling: undefined,
  models: [], requestTimeoutMs: 0, engineMetrics: undefined, maxInFlightPerReplica: 0, overflow: undefined, routing: undefined, roles: [], ...over,
});
const pg = (over: Partial<PlacementGroupSpec> = {}): PlacementGroupSpec => ({
  name: 'pg', strategy: '', bundles: [{ cpuMillis: 0, memoryBytes: 0, gpus: 0, gpuMemoryMib: 0, migProfile: '', custom: {} }], topology: [], matchLabels: {}, tolerations: [], priority: 0, ...over,
});

const refusal = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    expect((e as { code?: string }).code).toBe('MUSTER_INVALID_ARGUMENT');
    return (e as Error).message;
  }
  throw new Error('expected a refusal');
};
const pgRefusal = (w: PlacementGroupSpec): string => {
  const r = parsePlacementGroupSpec(specInput(w));
  if (r.ok) throw new Error('expected a refusal');
  return r.message;
};
const x = (n: number) => 'x'.repeat(n);
const many = <T>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));
const entries = (n: number, v = 'v') => Object.fromEntries(many(n, (i) => [`K${i}`, v]));

describe('rank and replica counts', () => {
  it('refuses tp × pp over the ranks per replica, on a gang and on a replica group', () => {
    expect(refusal(() => parseGangSpec(gang({ tp: 64, pp: 32 })))).toContain(`tp: tp × pp = 2048 ranks; the limit is ${L.ranksPerReplica} (ranksPerReplica)`);
    expect(refusal(() => parseRgSpec(rg({ tp: 1024, pp: 2 })))).toContain('tp: tp × pp = 2048 ranks; the limit is 1024 (ranksPerReplica)');
    expect(parseGangSpec(gang({ tp: 32, pp: 32 })).tp).toBe(32);
  });

  it('refuses replica counts over the limit, naming each', () => {
    const msg = refusal(() => parseRgSpec(rg({ replicas: { min: 0, max: L.replicas + 1, initial: 1 } })));
    expect(msg).toContain(`replicas.max: ${L.replicas + 1} replicas; the limit is ${L.replicas} (replicas)`);
    expect(refusal(() => parseRgSpec(rg({ replicas: { min: 0, max: 5, initial: 1 }, autoscaling: { metric: '', target: 0, upscaleDelayMs: 0, downscaleDelayMs: 0, maxStep: 0, tolerance: 0, scaleToZeroAfterMs: 0, lookbackMs: 0, floors: many(L.floors + 1, () => ({ cron: '0 9 * * *', durationMs: 1000, timezone: '', min: 1 })), metrics: [] } })))).toContain(`floors: ${L.floors + 1} items; the limit is ${L.floors} (floors)`);
    expect(parseRgSpec(rg({ replicas: { min: 0, max: L.replicas, initial: 1 } })).replicas.max).toBe(L.replicas);
  });
});

describe('item counts', () => {
  it.each([
    ['template.args', () => parseGangSpec(gang({}, { args: many(L.args + 1, () => 'a') })), `${L.args + 1} items; the limit is ${L.args} (args)`],
    ['template.env', () => parseGangSpec(gang({}, { env: entries(L.envEntries + 1) })), `${L.envEntries + 1} entries; the limit is ${L.envEntries} (envEntries)`],
    ['template.ports', () => parseGangSpec(gang({}, { ports: many(L.ports + 1, (i) => ({ name: `p${i}`, port: 0 })) })), `${L.ports + 1} items; the limit is ${L.ports} (ports)`],
    ['template.readiness.command', () => parseGangSpec(gang({}, { readiness: { kind: 'exec', port: '', path: '', command: many(L.args + 1, () => 'a'), periodMs: 0, timeoutMs: 0, failureThreshold: 0 } })), `(args)`],
    ['resources.custom', () => parseRgSpec(rg({ resources: { gpus: 0, cpuMillis: 0, memoryBytes: 0, gpuMemoryMib: 0, migProfile: '', custom: Object.fromEntries(many(L.customResources + 1, (i) => [`r${i}`, 1])) } })), '(customResources)'],
  ])('refuses too many %s', (field, f, message) => {
    const msg = refusal(f);
    expect(msg).toContain(`${field}: `);
    expect(msg).toContain(message);
  });

  it.each([
    ['bundles', pg({ bundles: many(L.bundles + 1, () => pg().bundles[0]!) }), `${L.bundles + 1} items; the limit is ${L.bundles} (bundles)`],
    ['selector.matchLabels', pg({ matchLabels: entries(L.labels + 1) }), `${L.labels + 1} entries; the limit is ${L.labels} (labels)`],
    ['tolerations', pg({ tolerations: many(L.tolerations + 1, (i) => ({ key: `k${i}`, operator: '', value: '', effect: '' })) }), `${L.tolerations + 1} items; the limit is ${L.tolerations} (tolerations)`],
  ])('refuses a placement group with too many %s', (field, w, message) => {
    const msg = pgRefusal(w);
    expect(msg).toContain(`${field}: ${message}`);
  });

  it('takes a template at every count limit', () => {
    const s = parseGangSpec(gang({}, { args: many(L.args, () => 'a'), env: entries(L.envEntries) }));
    expect(s.template.args).toHaveLength(L.args);
  });
});

describe('string lengths', () => {
  it.each([
    ['template.command', gang({}, { command: x(L.commandLength + 1) }), L.commandLength, 'commandLength'],
    ['template.args[1]', gang({}, { args: ['ok', x(L.argLength + 1)] }), L.argLength, 'argLength'],
    ['template.env.K', gang({}, { env: { K: x(L.envValueLength + 1) } }), L.envValueLength, 'envValueLength'],
    ['template.cwd', gang({}, { cwd: x(L.cwdLength + 1) }), L.cwdLength, 'cwdLength'],
    ['template.readiness.path', gang({}, { ports: [{ name: 'http', port: 0 }], readiness: { kind: 'http', port: 'http', path: `/${x(L.probePathLength)}`, command: [], periodMs: 0, timeoutMs: 0, failureThreshold: 0 } }), L.probePathLength, 'probePathLength'],
    ['placementGroup', gang({ placementGroup: x(L.refLength + 1) }), L.refLength, 'refLength'],
  ])('refuses a long %s', (field, w, limit, name) => {
    expect(refusal(() => parseGangSpec(w))).toContain(`${field}: ${limit + 1} characters; the limit is ${limit} (${name})`);
  });

  it('refuses a long env variable name', () => {
    const msg = refusal(() => parseGangSpec(gang({}, { env: { [x(L.envKeyLength + 1)]: 'v' } })));
    expect(msg).toContain(`template.env: key "${x(32)}…": ${L.envKeyLength + 1} characters; the limit is ${L.envKeyLength} (envKeyLength)`);
    expect(msg.length).toBeLessThan(200); // the error does not repeat what it refuses
  });

  it.each([
    ['name', pg({ name: x(L.nameLength + 1) }), 'nameLength'],
    ['selector.matchLabels.zone', pg({ matchLabels: { zone: x(L.labelLength + 1) } }), 'labelLength'],
    ['tolerations[0].value', pg({ tolerations: [{ key: 'k', operator: '', value: x(L.labelLength + 1), effect: '' }] }), 'labelLength'],
  ])('refuses a placement group with a long %s', (field, w, name) => {
    expect(pgRefusal(w)).toContain(`${field}: `);
    expect(pgRefusal(w)).toContain(`(${name})`);
  });

  it('refuses a replica group whose placement or floors carry long strings, naming the replica group field', () => {
    const placement = { strategy: '', topology: [], matchLabels: { zone: x(L.labelLength + 1) }, tolerations: [], priority: 0 };
    expect(refusal(() => parseRgSpec(rg({ placement })))).toContain('placement.selector.matchLabels');
    expect(refusal(() => parseRgSpec(rg({ httpPort: x(L.refLength + 1) })))).toContain(`httpPort: ${L.refLength + 1} characters; the limit is ${L.refLength} (refLength)`);
  });
});

describe('request fields outside a spec', () => {
  it('a request id (stored with its group) or a drain reason over its limit is refused by name; one at it is taken', () => {
    expect(refusal(() => checkLength('request_id', x(L.refLength + 1), 'refLength'))).toBe(`request_id: ${L.refLength + 1} characters; the limit is ${L.refLength} (refLength)`);
    expect(refusal(() => checkLength('reason', x(L.reasonLength + 1), 'reasonLength'))).toContain('(reasonLength)');
    expect(checkLength('reason', x(L.reasonLength), 'reasonLength')).toHaveLength(L.reasonLength);
  });
});

describe('a template in total', () => {
  it('refuses command, args and env that together pass templateBytes, though each is within its own limit', () => {
    const env = Object.fromEntries(many(9, (i) => [`V${i}`, x(L.envValueLength - 8)]));
    const msg = refusal(() => parseGangSpec(gang({}, { env })));
    expect(msg).toMatch(new RegExp(`template: command, args and env take \\d+ bytes; the limit is ${L.templateBytes} \\(templateBytes\\)`));
  });

  it('counts UTF-8 bytes, not characters', () => {
    const env = Object.fromEntries(many(3, (i) => [`V${i}`, '€'.repeat(L.envValueLength)]));
    expect(refusal(() => parseGangSpec(gang({}, { env })))).toContain('(templateBytes)');
    expect(() => parseGangSpec(gang({}, { env: { A: x(L.envValueLength), B: x(L.envValueLength) } }))).not.toThrow();
  });
});

describe('errors are bounded too', () => {
  it('a huge unknown key, or thousands of them, are named shortened and counted, not repeated', () => {
    const many = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`junk${i}`, 1]));
    const r = parsePlacementGroupSpec({ name: 'pg', bundles: [{}], [x(100_000)]: 1, ...many });
    if (r.ok) throw new Error('expected a refusal');
    expect(r.message.length).toBeLessThan(1_000);
    expect(r.message).toContain('and 4991 more');
    expect(r.message).toContain(`"${x(64)}…"`);
  });
});
