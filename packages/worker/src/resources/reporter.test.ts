/**
 * The resource reporter's message (AgentMessage.usage): which ranks it
 * measures (replicas' ranks that run, adopted ones included — shown on a
 * real supervisor restarted over a running rank), how a sample becomes
 * messages of at most MAX_USAGE_ENTRIES entries, and that a message the
 * stream does not take is dropped, not queued: the next tick sends a fresh
 * sample.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_USAGE_ENTRIES, SHARD_ENV } from '@muster/contracts';
import type { AgentMessage, NodeUsage } from '@muster/proto';
import { Harness, node } from '../shards/test-support.js';
import { replicaRanks, ResourceReporter, usageMessages, type RankSeen } from './reporter.js';
import type { RankRef, ReplicaUsage } from './sampler.js';

const silent = { warn: () => undefined, debug: () => undefined };
const env = (group: string, replicaId: string, devices?: string): Record<string, string> => ({
  [SHARD_ENV.GROUP]: group,
  [SHARD_ENV.REPLICA_ID]: replicaId,
  ...(devices === undefined ? {} : { [SHARD_ENV.CUDA_VISIBLE_DEVICES]: devices }),
});

describe('replicaRanks', () => {
  it('takes the running ranks of replicas, with their GPUs; not plain gangs\' ranks, nor ranks not started or gone', () => {
    const ranks: RankSeen[] = [
      { pid: 10, phase: 'ready', env: env('web', 'r1', '0,1') },
      { pid: 11, phase: 'started', env: env('web', 'r1', 'GPU-aa') },
      { pid: 12, phase: 'stopping', env: env('web', 'r2') },
      { pid: 13, phase: 'ready', env: { MUSTER_GANG_ID: 'plain' } },
      { pid: 14, phase: 'exited', env: env('web', 'r3') },
      { pid: undefined, phase: 'prestart', env: env('web', 'r4') },
    ];
    expect(replicaRanks(ranks)).toEqual([
      { group: 'web', replicaId: 'r1', pid: 10, devices: ['0', '1'] },
      { group: 'web', replicaId: 'r1', pid: 11, devices: ['GPU-aa'] },
      { group: 'web', replicaId: 'r2', pid: 12, devices: [] },
    ]);
  });
});

describe('usageMessages', () => {
  it('carries each replica\'s values as measured (gpus 0 when not counted), at most MAX_USAGE_ENTRIES a message', () => {
    const sample: ReplicaUsage[] = Array.from({ length: MAX_USAGE_ENTRIES + 3 }, (_, i) => ({ group: 'g', replicaId: `r${i}`, usage: { memoryBytes: i } }));
    sample[0] = { group: 'g', replicaId: 'r0', usage: { cpu: 1.5, memoryBytes: 7, gpuUtilization: 0.5, gpuMemoryBytes: 9, gpus: 2 } };
    const out = usageMessages(sample, 1234);
    expect(out.map((m) => m.replicas.length)).toEqual([MAX_USAGE_ENTRIES, 3]);
    expect(out.every((m) => m.sampledAtMs === 1234)).toBe(true);
    expect(out[0]!.replicas[0]).toEqual({ group: 'g', replicaId: 'r0', usage: { cpu: 1.5, memoryBytes: 7, gpuUtilization: 0.5, gpuMemoryBytes: 9, gpus: 2 } });
    expect(out[0]!.replicas[1]).toEqual({ group: 'g', replicaId: 'r1', usage: { cpu: undefined, memoryBytes: 1, gpuUtilization: undefined, gpuMemoryBytes: undefined, gpus: 0 } });
    expect(out[1]!.replicas.at(-1)?.replicaId).toBe(`r${MAX_USAGE_ENTRIES + 2}`);
    expect(usageMessages([], 1)).toEqual([]);
  });
});

describe('ResourceReporter', () => {
  /** A sampler that answers `cpu` = the tick's number for every replica it is given. */
  function fakeSampler() {
    let tick = 0;
    const given: RankRef[][] = [];
    return {
      given,
      sample: async (ranks: readonly RankRef[]) => {
        tick++;
        given.push([...ranks]);
        return [...new Set(ranks.map((r) => r.replicaId))].map((replicaId) => ({ group: 'g', replicaId, usage: { cpu: tick } }));
      },
    };
  }

  it('sends one sample a tick; one the stream does not take is dropped, and the next tick sends a fresh one', async () => {
    const sampler = fakeSampler();
    const sent: NodeUsage[] = [];
    let room = true;
    const ranks: RankSeen[] = [{ pid: 5, phase: 'ready', env: env('g', 'r1') }];
    const r = new ResourceReporter({
      sampler,
      ranks: () => ranks,
      send: (m: AgentMessage) => {
        if (!room || m.msg?.$case !== 'usage') return false;
        sent.push(m.msg.value);
        return true;
      },
      log: silent,
      clock: () => 42,
    });
    await r.tick();
    room = false;
    await r.tick(); // the stream is busy (or no head): nothing written, nothing kept for later
    room = true;
    await r.tick();
    expect(sent.map((m) => [m.sampledAtMs, m.replicas.map((e) => [e.replicaId, e.usage?.cpu])])).toEqual([
      [42, [['r1', 1]]],
      [42, [['r1', 3]]],
    ]);
    // No replica here: the sampler is still asked (it forgets its CPU times), nothing is sent.
    ranks.length = 0;
    await r.tick();
    expect(sent).toHaveLength(2);
    expect(sampler.given.at(-1)).toEqual([]);
  });

  describe('after an agent restart', () => {
    let h: Harness;
    beforeEach(() => {
      h = new Harness();
    });
    afterEach(async () => {
      await h.cleanup();
    });

    it('measures the ranks the new supervisor adopted, found by the environment kept in the shard registry', async () => {
      const first = await h.open();
      const spec = { ...h.spec(node('setInterval(() => {}, 1000)')), env: { ...env('web', 'r1', '3'), MUSTER_NATS_SEED: 'SUSEED' } };
      first.launch(spec);
      const ready = await h.status(spec.key, 'ready');
      await first.close(); // the agent goes; the rank runs on
      const second = await h.open();
      expect(replicaRanks(second.ranks())).toEqual([{ group: 'web', replicaId: 'r1', pid: ready.pid, devices: ['3'] }]);
      await second.stop(spec.key);
    });
  });
});
