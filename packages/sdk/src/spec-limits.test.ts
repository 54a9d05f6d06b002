/**
 * The SDK checks the size limits of SPEC_LIMITS before a spec is encoded,
 * with the head's numbers and wording: counts (TP × PP, replicas, items) and
 * string lengths, each refusal naming the field and the limit. A spec at the
 * limits goes through.
 */
import { describe, expect, it } from 'vitest';
import { SPEC_LIMITS } from '@muster/contracts';
import { checkGangSpec, checkPlacementGroupSpec, checkReplicaGroupSpec } from './spec-schemas.js';
import { Gangs } from './gangs.js';
import { PlacementGroups } from './placement-groups.js';
import type { GangSpec, ReplicaGroupSpec } from './specs.js';

const L = SPEC_LIMITS;
const gang: GangSpec = { name: 'g', placementGroup: 'pg', tp: 1, pp: 1, template: { command: 'node' } };
const rg: ReplicaGroupSpec = { name: 'echo', template: { command: 'node' } };
const x = (n: number) => 'x'.repeat(n);
const many = <T>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));

const refusal = (f: () => unknown): { message: string; code: string } => {
  try {
    f();
  } catch (e) {
    return e as { message: string; code: string };
  }
  throw new Error('expected a refusal');
};

describe('size limits in the SDK', () => {
  it.each([
    ['tp × pp', () => checkGangSpec({ ...gang, tp: 64, pp: 32 }), `tp: tp × pp = 2048 ranks; the limit is ${L.ranksPerReplica} (ranksPerReplica)`],
    ['replicas', () => checkReplicaGroupSpec({ ...rg, replicas: { max: L.replicas + 1 } }), `replicas.max: ${L.replicas + 1} replicas; the limit is ${L.replicas} (replicas)`],
    ['bundles', () => checkPlacementGroupSpec({ name: 'pg', bundles: many(L.bundles + 1, () => ({ gpus: 1 })) }), `bundles: ${L.bundles + 1} items; the limit is ${L.bundles} (bundles)`],
    ['args', () => checkGangSpec({ ...gang, template: { command: 'node', args: many(L.args + 1, () => 'a') } }), `template.args: ${L.args + 1} items; the limit is ${L.args} (args)`],
    ['env entries', () => checkReplicaGroupSpec({ ...rg, template: { command: 'node', env: Object.fromEntries(many(L.envEntries + 1, (i) => [`K${i}`, ''])) } }), `template.env: ${L.envEntries + 1} entries; the limit is ${L.envEntries} (envEntries)`],
    ['labels', () => checkPlacementGroupSpec({ name: 'pg', bundles: [{}], selector: { matchLabels: Object.fromEntries(many(L.labels + 1, (i) => [`k${i}`, 'v'])) } }), `selector.matchLabels: ${L.labels + 1} entries; the limit is ${L.labels} (labels)`],
  ])('refuses too many: %s', (_, f, message) => {
    const e = refusal(f);
    expect(e.code).toBe('MUSTER_INVALID_ARGUMENT');
    expect(e.message).toContain(message);
  });

  it.each([
    ['template.command', () => checkGangSpec({ ...gang, template: { command: x(L.commandLength + 1) } }), L.commandLength, 'commandLength'],
    ['template.args[0]', () => checkGangSpec({ ...gang, template: { command: 'node', args: [x(L.argLength + 1)] } }), L.argLength, 'argLength'],
    ['template.env.K', () => checkGangSpec({ ...gang, template: { command: 'node', env: { K: x(L.envValueLength + 1) } } }), L.envValueLength, 'envValueLength'],
    ['template.readiness.path', () => checkGangSpec({ ...gang, template: { command: 'node', readiness: { kind: 'http', port: 8000, path: x(L.probePathLength + 1) } } }), L.probePathLength, 'probePathLength'],
    ['name', () => checkPlacementGroupSpec({ name: x(L.nameLength + 1), bundles: [{}] }), L.nameLength, 'nameLength'],
  ])('refuses a long %s', (field, f, limit, name) => {
    expect(refusal(f).message).toContain(`${field}: ${limit + 1} characters; the limit is ${limit} (${name})`);
  });

  it('refuses a template whose command, args and env pass templateBytes together', () => {
    const env = Object.fromEntries(many(9, (i) => [`V${i}`, x(L.envValueLength - 8)]));
    expect(refusal(() => checkGangSpec({ ...gang, template: { command: 'node', env } })).message).toContain(`the limit is ${L.templateBytes} (templateBytes)`);
  });

  it('takes specs at the limits', () => {
    expect(() => checkGangSpec({ ...gang, tp: 32, pp: 32, template: { command: x(L.commandLength), args: many(L.args, () => 'a') } })).not.toThrow();
    expect(() => checkReplicaGroupSpec({ ...rg, replicas: { max: L.replicas } })).not.toThrow();
  });
});

describe('record bounds in the SDK (docs/limits.md#records)', () => {
  /** A head that records what it was asked, and answers nothing. */
  const recordingHead = () => {
    const calls: unknown[] = [];
    return { head: { call: (fn: unknown) => (calls.push(fn), Promise.reject(new Error('sent to the head'))) } as never, calls };
  };

  it('refuses GPUs past gpusPerGroup and ranks × ports past rankPorts by name', () => {
    expect(refusal(() => checkPlacementGroupSpec({ name: 'pg', bundles: many(L.bundles, () => ({ gpus: 3 })) })).message).toContain(`bundles: gpus of all bundles together: 3072 GPUs; the limit is ${L.gpusPerGroup} (gpusPerGroup)`);
    expect(refusal(() => checkGangSpec({ ...gang, tp: 8, pp: 128, template: { command: 'node', ports: many(3, (i) => ({ name: `p${i}` })) } })).message).toContain(`template.ports: ranks × ports = 3072 ports; the limit is ${L.rankPorts} (rankPorts)`);
    expect(checkGangSpec({ ...gang, tp: 8, pp: 16, template: { command: 'node', ports: many(8, (i) => ({ name: `p${i}` })) } }).pp).toBe(16);
  });

  it('refuses a spec whose encoding passes pgSpecBytes or gangSpecBytes before it is sent', async () => {
    const { head, calls } = recordingHead();
    const custom = Object.fromEntries(many(64, (i) => [`${i}${x(250)}`, 1]));
    const pg = await new PlacementGroups(head).create({ name: 'pg', bundles: many(16, () => ({ gpus: 1, custom })) }).catch((e: unknown) => e);
    expect((pg as Error).message).toMatch(new RegExp(`invalid placement group spec: the spec takes \\d+ bytes encoded; the limit is ${L.pgSpecBytes} \\(pgSpecBytes\\)`));
    const env = Object.fromEntries(many(5, (i) => [`K${i}`, x(L.envValueLength - 10)]));
    const g = await new Gangs(head).launch({ ...gang, template: { command: 'node', env } }).catch((e: unknown) => e);
    expect((g as Error).message).toMatch(new RegExp(`invalid gang spec: the spec takes \\d+ bytes encoded; the limit is ${L.gangSpecBytes} \\(gangSpecBytes\\)`));
    expect(calls).toEqual([]);
  });
});
