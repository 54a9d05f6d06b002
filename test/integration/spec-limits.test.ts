/**
 * The size limits of SPEC_LIMITS at a real head. The SDK checks them too,
 * so these specs go to the head on the SDK's own connection but past its
 * checks (straight onto the wire, as another client could send them): a
 * huge replica group, gang and placement group are each refused with
 * MUSTER_INVALID_ARGUMENT naming the field and the limit, nothing is
 * created, and a drain reason over its limit is refused the same way; so
 * are specs whose stored records would pass 1 MiB (docs/limits.md#records).
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, fromGrpcError, type MusterError } from '@muster/common';
import { SPEC_LIMITS } from '@muster/contracts';
import type * as wire from '@muster/proto';
import type { Cluster } from '@muster/sdk';
import type { LocalCluster } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';

/** The SDK's channel to the head for one service, past the SDK's spec checks. */
interface Raw<C> {
  head: { call<T>(attempt: (c: C, md: unknown, o: unknown, cb: (err: unknown, res?: T) => void) => void): Promise<T> };
}

const L = SPEC_LIMITS;
const template = (over: Partial<wire.ShardTemplate> = {}): wire.ShardTemplate => ({ command: 'node', args: [], env: {}, cwd: '', ports: [], readiness: undefined, liveness: undefined, warmup: undefined, ...over });

async function refusal(p: Promise<unknown>): Promise<MusterError> {
  const e = await p.then(() => undefined, (x: unknown) => fromGrpcError(x));
  if (!e) throw new Error('expected a refusal');
  return e;
}

describe('spec limits at a real head', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;
  useCluster({ workers: 1 }, (fx) => ({ cluster, sdk } = fx));

  it('refuses a huge replica group, naming each field over its limit, and creates nothing', async () => {
    const rgs = sdk.replicaGroups as unknown as Raw<wire.ReplicaGroupServiceClient>;
    const spec: wire.ReplicaGroupSpec = {
      name: 'huge', tp: 64, pp: 32, template: template({ args: Array.from({ length: L.args + 1 }, () => 'a') }),
      resources: undefined, placement: undefined, replicas: { min: 0, max: 1_000_000, initial: 1 }, startup: undefined, rollout: undefined,
      drainDeadlineMs: 0, httpPort: '', maxReplacements: undefined, autoscaling: undefined, models: [], requestTimeoutMs: 0, engineMetrics: undefined, maxInFlightPerReplica: 0,
      overflow: undefined, routing: undefined, roles: [],
    };
    const e = await refusal(rgs.head.call((c, md, o, cb) => c.applyReplicaGroup({ spec }, md as never, o as never, cb)));
    expect(e.code).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(e.message).toContain(`replicas.max: 1000000 replicas; the limit is ${L.replicas} (replicas)`);
    expect(e.message).toContain(`tp: tp × pp = 2048 ranks; the limit is ${L.ranksPerReplica} (ranksPerReplica)`);
    // The template is checked as a gang's once the group's own fields pass.
    const e2 = await refusal(rgs.head.call((c, md, o, cb) => c.applyReplicaGroup({ spec: { ...spec, tp: 1, pp: 1, replicas: { min: 0, max: 2, initial: 1 } } }, md as never, o as never, cb)));
    expect(e2.message).toBe(`invalid replica group spec: template.args: ${L.args + 1} items; the limit is ${L.args} (args)`);
    expect(await sdk.replicaGroups.list()).toEqual([]);
  });

  it('refuses a gang whose template passes the byte limit and a placement group with too many bundles', async () => {
    const gangs = sdk.gangs as unknown as Raw<wire.GangServiceClient>;
    const env = Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`V${i}`, 'x'.repeat(L.envValueLength - 8)]));
    const spec: wire.GangSpec = { name: 'big', placementGroup: 'none', tp: 1, pp: 1, template: template({ env }), startup: undefined, logMaxBytes: 0, replicaGroup: '', replicaId: '', roles: [] };
    const e = await refusal(gangs.head.call((c, md, o, cb) => c.launchGang({ spec, requestId: '' }, md as never, o as never, cb)));
    expect(e.code).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(e.message).toMatch(new RegExp(`template: command, args and env take \\d+ bytes; the limit is ${L.templateBytes} \\(templateBytes\\)`));

    const pgs = sdk.placementGroups as unknown as Raw<wire.PlacementGroupServiceClient>;
    const bundle = { cpuMillis: 1, memoryBytes: 0, gpus: 0, gpuMemoryMib: 0, migProfile: '', custom: {} };
    const pg: wire.PlacementGroupSpec = { name: 'wide', strategy: '', bundles: Array.from({ length: L.bundles + 1 }, () => bundle), topology: [], matchLabels: {}, tolerations: [], priority: 0 };
    const e3 = await refusal(pgs.head.call((c, md, o, cb) => c.createPlacementGroup({ spec: pg, requestId: 'wide-1' }, md as never, o as never, cb)));
    expect(e3.code).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(e3.message).toContain(`bundles: ${L.bundles + 1} items; the limit is ${L.bundles} (bundles)`);
    expect(await sdk.gangs.list()).toEqual([]);
    expect(await sdk.placementGroups.list()).toEqual([]);
  });

  it('refuses specs whose records would pass 1 MiB (pgSpecBytes, gpusPerGroup, gangSpecBytes), naming the size and the cap', async () => {
    const pgs = sdk.placementGroups as unknown as Raw<wire.PlacementGroupServiceClient>;
    const custom = Object.fromEntries(Array.from({ length: L.customResources }, (_, i) => [`${i}${'x'.repeat(250)}`, 1]));
    const bundle = { cpuMillis: 1, memoryBytes: 0, gpus: 0, gpuMemoryMib: 0, migProfile: '', custom };
    const pg: wire.PlacementGroupSpec = { name: 'heavy', strategy: '', bundles: Array.from({ length: 16 }, () => bundle), topology: [], matchLabels: {}, tolerations: [], priority: 0 };
    const e = await refusal(pgs.head.call((c, md, o, cb) => c.createPlacementGroup({ spec: pg, requestId: 'heavy-1' }, md as never, o as never, cb)));
    expect(e.code).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(e.message).toMatch(new RegExp(`^invalid placement group spec: the spec takes \\d+ bytes encoded; the limit is ${L.pgSpecBytes} \\(pgSpecBytes\\)$`));
    const many: wire.PlacementGroupSpec = { ...pg, name: 'many-gpus', bundles: Array.from({ length: L.bundles }, () => ({ ...bundle, custom: {}, gpus: 3 })) };
    const e2 = await refusal(pgs.head.call((c, md, o, cb) => c.createPlacementGroup({ spec: many, requestId: 'many-1' }, md as never, o as never, cb)));
    expect(e2.message).toBe(`invalid placement group spec: bundles: gpus of all bundles together: 3072 GPUs; the limit is ${L.gpusPerGroup} (gpusPerGroup)`);

    const gangs = sdk.gangs as unknown as Raw<wire.GangServiceClient>;
    const env = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`V${i}`, 'x'.repeat(L.envValueLength - 8)])); // within templateBytes
    const spec: wire.GangSpec = { name: 'heavy', placementGroup: 'none', tp: 1, pp: 1, template: template({ env }), startup: undefined, logMaxBytes: 0, replicaGroup: '', replicaId: '', roles: [] };
    const e3 = await refusal(gangs.head.call((c, md, o, cb) => c.launchGang({ spec, requestId: '' }, md as never, o as never, cb)));
    expect(e3.message).toMatch(new RegExp(`^invalid gang spec: the spec takes \\d+ bytes encoded; the limit is ${L.gangSpecBytes} \\(gangSpecBytes\\)$`));
    expect(await sdk.gangs.list()).toEqual([]);
    expect(await sdk.placementGroups.list()).toEqual([]);
  });

  it('refuses a drain reason over its limit, and takes one at it', async () => {
    const node = [...cluster.workers.values()][0]!.nodeId;
    const e = await refusal(sdk.drainNode(node, { reason: 'r'.repeat(L.reasonLength + 1) }));
    expect(e.code).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(e.message).toBe(`reason: ${L.reasonLength + 1} characters; the limit is ${L.reasonLength} (reasonLength)`);
    expect((await sdk.node(node)).draining).toBe(false);
    expect((await sdk.drainNode(node, { reason: 'r'.repeat(L.reasonLength) })).draining).toBe(true);
  });
});
