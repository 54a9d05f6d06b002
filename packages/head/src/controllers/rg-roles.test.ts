/**
 * Issue 18, point 3 at the head: a replica group spec with roles is validated
 * at apply (by field), one replica becomes one placement group with every
 * role's bundles and one gang whose ranks carry their role, and each rank's
 * environment is its role instance's world plus the role variables.
 */
import { describe, expect, it } from 'vitest';
import type { Node, PlacementGroup, ReplicaGroupSpec, ReplicaRole, ShardTemplate } from '@muster/proto';
import { readRoleEnv, readShardEnv, SHARD_ENV } from '@muster/contracts';
import { launchShards, parseGangSpec, planLayout } from './gang-spec.js';
import { LayoutPorts, NO_PORTS_TAKEN } from './port-ledger.js';
import { portsInUse } from './port-scan.test-support.js';
import { appliedRecord } from './rg-records.js';
import { gangSpecOf, parseRgSpec, pgSpecOf, revisionOf } from './rg-spec.js';

const template = (command: string, ports = ['http']): ShardTemplate => ({ command, args: [], env: { WHO: command }, cwd: '', ports: ports.map((name) => ({ name, port: 0 })), readiness: undefined, liveness: undefined, warmup: undefined });
const res = (gpus: number) => ({ gpus, cpuMillis: 100, memoryBytes: 0, gpuMemoryMib: 0, migProfile: '', custom: {} });
const httpWarmup = { requests: [{ kind: 'http', json: '', payload: Buffer.alloc(0), stream: false, port: 'http', method: 'GET', path: '/', headers: {}, body: '', expectStatus: 0, command: [] }], timeoutMs: 0 };
const role = (name: string, over: Partial<ReplicaRole> = {}): ReplicaRole => ({ name, count: 1, tp: 1, pp: 1, resources: res(1), template: template(name), entry: false, ...over });

function wire(over: Partial<ReplicaGroupSpec> = {}): ReplicaGroupSpec {
  return {
    name: 'pd', template: undefined, tp: 0, pp: 0, resources: undefined, placement: undefined, replicas: { min: 0, max: 4, initial: 1 },
    startup: undefined, rollout: undefined, drainDeadlineMs: 0, httpPort: 'http', maxReplacements: undefined, autoscaling: undefined,
    models: [], requestTimeoutMs: 0, engineMetrics: undefined, maxInFlightPerReplica: 0, overflow: undefined, routing: undefined,
    roles: [role('prefill'), role('decode', { count: 2, entry: true })],
    ...over,
  };
}

function refusal(w: ReplicaGroupSpec): string {
  try {
    parseRgSpec(w);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('accepted');
}

describe('replica group roles: validation', () => {
  it('accepts prefill ×1 + decode ×2 and fills count/tp/pp defaults', () => {
    const s = parseRgSpec(wire({ roles: [role('prefill', { count: 0, tp: 0, pp: 0 }), role('decode', { count: 2, entry: true })] }));
    expect(s.roles.map((r) => [r.name, r.count, r.tp, r.pp])).toEqual([['prefill', 1, 1, 1], ['decode', 2, 1, 1]]);
  });

  it.each([
    ['a bad role name', { roles: [role('Pre_fill')] }, 'roles[0].name'],
    ['a role declared twice', { roles: [role('decode'), role('decode')] }, 'declared twice'],
    ['two entry roles', { roles: [role('a', { entry: true }), role('b', { entry: true })] }, 'at most one role is the entry'],
    ['a group-level template next to roles', { template: template('x') }, 'template: a group with roles'],
    ['a group-level tp next to roles', { tp: 2 }, 'tp: a group with roles'],
    ['group-level resources next to roles', { resources: res(1) }, 'resources: a group with roles'],
    ['an httpPort the entry role lacks', { roles: [role('prefill'), role('decode', { entry: true, template: template('decode', ['api']) })] }, 'entry role decode'],
    ['a role without a template', { roles: [role('prefill', { template: undefined })] }, 'roles[0].template'],
    ['too many ranks over the roles', { roles: [role('a', { count: 3, tp: 512 })] }, 'ranksPerReplica'],
    ['a negative resource of a role', { roles: [role('prefill'), role('decode', { entry: true, resources: { ...res(1), cpuMillis: -5 } })] }, 'roles[1].resources'],
    ['a role asking for more GPUs per rank than the group schema allows', { roles: [role('prefill', { resources: res(100) }), role('decode', { entry: true })] }, 'roles[0].resources.gpus'],
    ['an unknown resource key of a role', { roles: [role('prefill', { resources: { ...res(1), gpu: 1 } as unknown as ReplicaRole['resources'] }), role('decode', { entry: true })] }, 'roles[0].resources.gpu'],
    ['too many role instances', { roles: [role('a', { count: 200 }), role('b', { count: 100 })] }, 'roleInstances'],
    ['role templates over one template\'s size together', { roles: [role('a', { template: { ...template('a'), args: ['x'.repeat(300_000)] } }), role('b', { template: { ...template('b'), args: ['y'.repeat(300_000)] } })] }, 'templateBytes'],
    ['a bad port in a role template', { roles: [role('a', { template: { ...template('a'), readiness: { kind: 'http', port: 'nope', path: '/', command: [], periodMs: 0, timeoutMs: 0, failureThreshold: 0 } } })] }, 'roles[0].template.readiness.port'],
    ['a warm-up on a role that is not the entry', { roles: [role('prefill', { template: { ...template('prefill'), warmup: httpWarmup } }), role('decode', { count: 2, entry: true })] }, 'roles[0].template.warmup: only the entry role'],
  ])('refuses %s, naming the field', (_why, over, field) => {
    expect(refusal(wire(over as Partial<ReplicaGroupSpec>))).toContain(field);
  });

  it('names each issue of a role after the entry by its place in the spec, not in the gang', () => {
    const probe = (port: string) => ({ kind: 'http', port, path: '/', command: [], periodMs: 0, timeoutMs: 0, failureThreshold: 0 });
    const prefill = role('prefill', { template: { ...template('prefill'), readiness: probe('nope'), liveness: probe('nada') } });
    const why = refusal(wire({ roles: [prefill, role('decode', { count: 2, entry: true })] }));
    expect(why).toContain('roles[0].template.readiness.port');
    expect(why).toContain('roles[0].template.liveness.port');
    expect(why).not.toContain('roles[1]');
  });

  it('one bound for a role\'s count, the gang\'s (roleInstances), named by the spec\'s order', () => {
    const why = refusal(wire({ roles: [role('prefill', { count: 300 }), role('decode', { entry: true })] }));
    expect(why).toContain('roles[0].count: 300 is outside 1 … 256');
    expect(why).not.toContain('1024');
  });

  it('a parsed spec parses again to itself (the head parses the stored spec when it loads it)', () => {
    const once = parseRgSpec(wire());
    const twice = parseRgSpec(once);
    expect(twice).toEqual(once);
    expect(revisionOf(twice)).toBe(revisionOf(once));
  });

  it('a group without roles keeps its revision (roles absent from the hash), and roles change it', () => {
    const plain = parseRgSpec({ ...wire({ roles: [] }), template: template('x'), tp: 1, pp: 1 });
    const { roles: _r, ...noRolesField } = plain;
    expect(revisionOf(plain)).toBe(revisionOf({ ...noRolesField, roles: [] }));
    const a = parseRgSpec(wire());
    const b = parseRgSpec(wire({ roles: [role('prefill'), role('decode', { count: 3, entry: true })] }));
    expect(revisionOf(a)).not.toBe(revisionOf(b));
  });
});

describe('replica group roles: one placement group, one gang', () => {
  const spec = parseRgSpec(wire({ roles: [role('prefill', { tp: 2 }), role('decode', { count: 2, entry: true })] }));

  it('one placement group holds every role instance\'s bundles, entry role first, with gpu-island by default', () => {
    const pg = pgSpecOf(spec, 'r1');
    expect(pg.bundles.map((b) => b.gpus)).toEqual([1, 1, 2]); // decode #0, decode #1, prefill (tp 2)
    expect(pg.topology).toEqual([{ level: 'gpu-island', mode: 'required' }]);
  });

  it('the topology rule between roles is the placement\'s', () => {
    const s = parseRgSpec(wire({ placement: { strategy: '', topology: [{ level: 'node', mode: 'preferred' }], matchLabels: {}, tolerations: [], priority: 0 } }));
    expect(pgSpecOf(s, 'r1').topology).toEqual([{ level: 'node', mode: 'preferred' }]);
  });

  it('one gang with the roles in gang order; only the entry role serves the replica', () => {
    const g = parseGangSpec(gangSpecOf(spec, 'rev1', 'r1', 'pg1', 'muster'));
    expect(g.roles.map((r) => [r.name, r.count, r.tp])).toEqual([['decode', 2, 1], ['prefill', 1, 2]]);
    expect(g.tp).toBe(1);
    expect(g.template.command).toBe('decode');
    const [entry, other] = g.roles;
    expect(entry!.template.env[SHARD_ENV.SUBJECT]).toBe('muster.rg.pd.r1');
    expect(entry!.template.env[SHARD_ENV.HTTP_BRIDGE]).toBe('http');
    for (const k of [SHARD_ENV.SUBJECT, SHARD_ENV.HTTP_BRIDGE, SHARD_ENV.ENGINE_METRICS]) expect(other!.template.env[k]).toBeUndefined();
    for (const r of g.roles) expect(r.template.env[SHARD_ENV.REVISION]).toBe('rev1');
  });
});

describe('gang with roles: rank layout and environment', () => {
  const spec = parseRgSpec(wire({ roles: [role('prefill', { tp: 2 }), role('decode', { count: 2, entry: true })] }));
  const gangSpec = parseGangSpec(gangSpecOf(spec, 'rev1', 'r1', 'pg1', 'muster'));
  const pgSpec = pgSpecOf(spec, 'r1');
  const placement = (bundleIndex: number, nodeId: string, gpus: number[]) => ({ bundleIndex, nodeId, gpuIndices: gpus, migUuids: [], cpuMillis: 0, memoryBytes: 0, custom: {}, gpuUuids: [] });
  const pg = { id: 'pg1', spec: pgSpec, placements: [placement(0, 'n1', [0]), placement(1, 'n1', [1]), placement(2, 'n2', [0, 1])] } as unknown as PlacementGroup;
  const nodes = new Map([['n1', { nodeId: 'n1', address: '10.0.0.1' } as Node], ['n2', { nodeId: 'n2', address: '10.0.0.2' } as Node]]);
  const plan = planLayout(gangSpec, pg, nodes, new LayoutPorts(nodes, NO_PORTS_TAKEN, { first: 30_000, last: 30_100 }));

  it('builds the role variables every rank shares once per layout', () => {
    expect(plan.roleEnv?.[SHARD_ENV.ROLES]).toBe('decode,prefill');
    expect(plan.roleEnv?.[SHARD_ENV.ROLE]).toBeUndefined(); // a rank's own role is its own
    const env = launchShards(gangSpec, 'g1', 1, { ...plan, roleEnv: { ...plan.roleEnv, [SHARD_ENV.ROLES]: 'marker' } }, 'n1')[0]!.env;
    expect(env[SHARD_ENV.ROLES]).toBe('marker'); // taken from the layout, not rebuilt per rank
  });

  it('numbers gang ranks role by role; tp/pp ranks are the instance\'s', () => {
    expect(plan.ranks.map((r) => [r.rank, r.role?.name, r.role?.index, r.role?.rank, r.nodeId, r.cudaVisibleDevices])).toEqual([
      [0, 'decode', 0, 0, 'n1', '0'],
      [1, 'decode', 1, 0, 'n1', '1'],
      [2, 'prefill', 0, 0, 'n2', '0'],
      [3, 'prefill', 0, 1, 'n2', '1'],
    ]);
  });

  it('every rank\'s environment is its instance\'s world, its role, and where every role instance listens', () => {
    const shards = [...launchShards(gangSpec, 'g1', 1, plan, 'n1'), ...launchShards(gangSpec, 'g1', 1, plan, 'n2')];
    const envs = shards.map((s) => s.env);
    const views = envs.map((e) => ({ shard: readShardEnv(e), role: readRoleEnv(e)! }));
    expect(views.map((v) => [v.role.role, v.role.index, v.role.count, v.shard.rank, v.shard.worldSize, v.shard.tpRank])).toEqual([
      ['decode', 0, 2, 0, 1, 0], ['decode', 1, 2, 0, 1, 0], ['prefill', 0, 1, 0, 2, 0], ['prefill', 0, 1, 1, 2, 1],
    ]);
    const p = plan.ranks;
    for (const v of views) {
      expect(v.role.roles).toEqual(['decode', 'prefill']);
      expect(v.role.addrs.prefill!.http).toEqual([`10.0.0.2:${p[2]!.ports.http}`]);
      expect(v.role.addrs.decode!.http).toEqual([`10.0.0.1:${p[0]!.ports.http}`, `10.0.0.1:${p[1]!.ports.http}`]);
    }
    expect(envs.map((e) => e.WHO)).toEqual(['decode', 'decode', 'prefill', 'prefill']);
    expect(shards.map((s) => s.command)).toEqual(['decode', 'decode', 'prefill', 'prefill']);
    // Each instance rendezvouses on its own first rank's host and port.
    expect(envs[2]![SHARD_ENV.MASTER_ADDR]).toBe('10.0.0.2');
    expect(envs[2]![SHARD_ENV.MASTER_PORT]).toBe(envs[3]![SHARD_ENV.MASTER_PORT]);
    expect(new Set([envs[0], envs[1], envs[2]].map((e) => e![SHARD_ENV.MASTER_PORT])).size).toBe(3);
  });

  it('every instance\'s rendezvous port is held (the next gang allocates around it)', () => {
    const ranks = plan.ranks.map((r) => ({ rank: r.rank, nodeId: r.nodeId, ports: r.ports, masterPort: r.role?.rank === 0 ? r.role.masterPort : 0 }));
    const used = portsInUse([{ ranks, masterPort: plan.masterPort } as never], nodes);
    for (const r of plan.ranks) if (r.role?.rank === 0) expect(used.get(nodes.get(r.nodeId)!.address)!.has(r.role.masterPort)).toBe(true);
  });
});

describe('replica group roles: warm-up', () => {
  it('the entry role may warm up (gang rank 0 runs it)', () => {
    const s = parseRgSpec(wire({ roles: [role('prefill'), role('decode', { count: 2, entry: true, template: { ...template('decode'), warmup: httpWarmup } })] }));
    const g = parseGangSpec(gangSpecOf(s, 'rev1', 'r1', 'pg1', 'muster'));
    expect(g.roles[0]!.template.warmup?.requests).toHaveLength(1);
  });
});

describe('replica group roles: engine metrics', () => {
  const autoscaling = (metric: string) => ({ metric, target: 5, upscaleDelayMs: 0, downscaleDelayMs: 0, maxStep: 0, tolerance: 0, scaleToZeroAfterMs: 0, lookbackMs: 0, floors: [], metrics: [] });

  it('an apply autoscaled on an engine metric notes that only the entry role\'s engine is scraped', () => {
    const s = parseRgSpec(wire({ autoscaling: autoscaling('engine-waiting') }));
    expect(appliedRecord(undefined, s, 0).event.message).toContain('engine-waiting reads the engine metrics of the entry role decode only');
  });

  it('no note for a policy that does not read the engine', () => {
    const s = parseRgSpec(wire({ autoscaling: autoscaling('ongoing') }));
    expect(appliedRecord(undefined, s, 0).event.message).not.toContain('note:');
  });
});
