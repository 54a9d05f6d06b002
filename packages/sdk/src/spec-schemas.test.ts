/**
 * Strict specs in the SDK: a misspelt key anywhere in a replica group, gang
 * or placement group spec is refused with its path and the key it most
 * likely meant — before anything is sent (the head is never called, so
 * nothing is created) — and a well-formed spec goes through untouched.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '@muster/common';
import { Actors } from './actors.js';
import { connect } from './cluster.js';
import { Gangs } from './gangs.js';
import type { GangSpec, ReplicaGroupSpec } from './specs.js';
import { PlacementGroups } from './placement-groups.js';
import { ReplicaGroups } from './replica-groups.js';
import type { HeadService } from './rpc.js';

/** A head that records what it was asked, and answers nothing. */
function recordingHead() {
  const calls: unknown[] = [];
  const head = { call: (fn: unknown) => (calls.push(fn), Promise.reject(new Error('sent to the head'))) };
  return { head: head as unknown as HeadService<never>, calls };
}
/** The data plane's access: never asked for, as every spec here fails or stops at the head first. */
const noDataPlane = () => Promise.reject(new Error('no data plane'));

const template = { command: 'node', args: ['replica.js'], ports: [{ name: 'http' }], readiness: { kind: 'http' as const, port: 'http', path: '/health' } };
const rg: ReplicaGroupSpec = { name: 'echo', template, tp: 2, resources: { gpus: 1 }, replicas: { initial: 1, max: 4 }, autoscaling: { target: 5 } };

describe('replica group specs from the SDK', () => {
  it.each([
    ['resource', { ...rg, resources: undefined, resource: { gpus: 1 } }, 'resource: unknown key; did you mean "resources"?'],
    ['readines', { ...rg, template: { ...template, readiness: undefined, readines: { kind: 'http', port: 'http' } } }, 'template.readines: unknown key; did you mean "readiness"?'],
    ['taget', { ...rg, autoscaling: { taget: 5 } }, 'autoscaling.taget: unknown key; did you mean "target"?'],
    ['probe key', { ...rg, template: { ...template, readiness: { ...template.readiness, periodMS: 100 } } }, 'template.readiness.periodMS: unknown key; did you mean "periodMs"?'],
    ['rollout', { ...rg, rollout: { strategy: 'canary', canaryWieght: 0.1 } }, 'rollout.canaryWieght: unknown key; did you mean "canaryWeight"?'],
    ['startup', { ...rg, startup: { maxRestart: 2 } }, 'startup.maxRestart: unknown key; did you mean "maxRestarts"?'],
    ['floors', { ...rg, autoscaling: { floors: [{ cron: '0 9 * * *', durationMs: 1, min: 1, timeZone: 'UTC' }] } }, 'autoscaling.floors[0].timeZone: unknown key; did you mean "timezone"?'],
    ['metrics', { ...rg, autoscaling: { metrics: [{ metric: 'cpu', taget: 2 }] } }, 'autoscaling.metrics[0].target: Invalid input: expected number, received undefined; autoscaling.metrics[0].taget: unknown key; did you mean "target"?'],
    ['9 metrics', { ...rg, autoscaling: { metrics: Array.from({ length: 9 }, (_, i) => ({ metric: `custom:g${i}`, target: 1 })) } }, 'autoscaling.metrics: at most 8 metrics'],
    ['far', { ...rg, colour: 'blue' }, 'colour: unknown key (allowed: name, template, tp, pp, resources'],
  ])('%s is refused with its path and a suggestion, and nothing is sent', async (_, spec, message) => {
    const { head, calls } = recordingHead();
    const e = await new ReplicaGroups(head as never, noDataPlane).apply(spec as ReplicaGroupSpec).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    expect((e as Error).message).toContain(`invalid replica group spec: ${message}`);
    expect(calls).toEqual([]);
  });

  it('a well-formed spec is sent', async () => {
    const { head, calls } = recordingHead();
    await expect(new ReplicaGroups(head as never, noDataPlane).apply(rg)).rejects.toThrow('sent to the head');
    expect(calls).toHaveLength(1);
  });

  it('wrong value types are refused by path too', async () => {
    const { head, calls } = recordingHead();
    const e = await new ReplicaGroups(head as never, noDataPlane).apply({ ...rg, replicas: { max: '4' } } as never).catch((x: unknown) => x);
    expect((e as Error).message).toMatch(/replicas\.max: .*expected number/);
    expect(calls).toEqual([]);
  });
});

describe('gang and placement group specs from the SDK', () => {
  it('a gang spec with an unknown key is refused before it is sent', async () => {
    const { head, calls } = recordingHead();
    const gang: GangSpec = { name: 'g', placementGroup: 'pg', tp: 1, pp: 1, template };
    const e = await new Gangs(head as never).launch({ ...gang, template: { ...template, enviroment: { A: '1' } } } as never).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    expect((e as Error).message).toContain('invalid gang spec: template.enviroment: unknown key');
    expect(calls).toEqual([]);
  });

  it('a placement group spec with an unknown key is refused before it is sent', async () => {
    const { head, calls } = recordingHead();
    const e = await new PlacementGroups(head as never).create({ name: 'x', bundles: [{ gpu: 1 }] } as never).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    expect((e as Error).message).toContain('invalid placement group spec: bundles[0].gpu: unknown key; did you mean "gpus"?');
    expect(calls).toEqual([]);
  });
});

describe('actor options', () => {
  it('an unknown option is refused before anything is looked up or applied', async () => {
    const { head, calls } = recordingHead();
    const actors = new Actors(new ReplicaGroups(head as never, noDataPlane));
    const e = await actors.create('./counter.js', 'Counter', { name: 'c1', resource: { gpus: 1 } } as never).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    expect((e as Error).message).toContain('invalid actor options: resource: unknown key; did you mean "resources"?');
    expect(calls).toEqual([]);
  });
});

describe('connect options', () => {
  it('an unknown option is refused with a suggestion before any connection is tried', async () => {
    const e = await connect({ address: '127.0.0.1:1', insecure: true, token: 'x', callTimeout: 500 } as never).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    expect((e as Error).message).toBe('connect(): callTimeout: unknown key; did you mean "callTimeoutMs"?');
  });
});
