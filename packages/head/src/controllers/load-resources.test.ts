/**
 * What replicas' ranks use, as the head takes it: from each agent's usage
 * report (AgentMessage.usage) filed under the node its stream registered,
 * kept per replica and node, summed into the replica's sample over the nodes
 * heard lately, never taken for a load report; malformed entries, entries for
 * a replica with no rank on that node and entries past the cap dropped and
 * counted; a resource report on the NATS load subject (older workers) dropped
 * and counted whatever it says.
 */
import { describe, expect, it } from 'vitest';
import { createLogger } from '@muster/common/log';
import { MAX_USAGE_ENTRIES, RESOURCE_REPORT_FRESH_MS } from '@muster/contracts';
import type { NodeUsage } from '@muster/proto';
import { LoadReports, type DroppedKind } from './load-reports.js';

const silent = createLogger('test', { level: 'silent' });
const load = (replicaId: string, extra: object = {}) => ({ v: 1, replicaId, inFlight: 1, queued: 0, timeMs: 1000, ...extra });
type Usage = NonNullable<NodeUsage['replicas'][number]['usage']>;
const entry = (replicaId: string, usage: Partial<Usage>, group = 'g') => ({ group, replicaId, usage: { gpus: 0, ...usage } });
const report = (...replicas: NodeUsage['replicas']): NodeUsage => ({ sampledAtMs: 1_000, replicas });
/** The group records: group g's replica r1 has ranks on n1 and n2, r2 on n3. */
const gangNodes: Record<string, Record<string, string[]>> = { g: { r1: ['n1', 'n2'], r2: ['n3'] } };
const runsOn = (group: string, replicaId: string, node: string) => gangNodes[group]?.[replicaId]?.includes(node) ?? false;

function reports(now: () => number = () => 0) {
  const dropped: Array<[DroppedKind, number]> = [];
  const r = new LoadReports(undefined, silent, now, (kind, n = 1) => dropped.push([kind, n]), runsOn);
  const count = (kind: DroppedKind) => dropped.filter(([k]) => k === kind).reduce((a, [, n]) => a + n, 0);
  return { r, count };
}

describe('LoadReports: usage from the agents\' streams', () => {
  it('sums the nodes of a replica (CPU and memory added, GPU utilisation weighed by GPUs) into its sample', () => {
    let now = 0;
    const { r } = reports(() => now);
    r.heard('muster.load.g', load('r1', { custom: { batch_fill: 3, 'bad name': 1 } }), 'load');
    r.nodeUsage('n1', report(entry('r1', { cpu: 1.5, memoryBytes: 1e9, gpuUtilization: 0.9, gpus: 3, gpuMemoryBytes: 2e9 })));
    r.nodeUsage('n2', report(entry('r1', { cpu: 0.5, memoryBytes: 2e9, gpuUtilization: 0.5, gpus: 1 })));
    expect(r.of('g', 'r1')).toEqual({ inFlight: 1, queued: 0, timeMs: 1000, custom: { batch_fill: 3 }, resources: { cpu: 2, memoryBytes: 3e9, gpuUtilization: 0.8, gpus: 4, gpuMemoryBytes: 2e9 } });
    expect(r.window('g', ['r1'], 5000, 2000).samples[0]?.resources?.cpu).toBe(2);
    // A node not heard for RESOURCE_REPORT_FRESH_MS stops counting (its gang moved, or its worker went).
    now = RESOURCE_REPORT_FRESH_MS / 2;
    r.nodeUsage('n2', report(entry('r1', { cpu: 0.25 })));
    now = RESOURCE_REPORT_FRESH_MS + 1;
    expect(r.of('g', 'r1')?.resources).toEqual({ cpu: 0.25 });
    now = 3 * RESOURCE_REPORT_FRESH_MS;
    expect(r.of('g', 'r1')?.resources).toBeUndefined();
  });

  it('a usage report alone is no load report: the replica has not reported until its own report comes', () => {
    const { r } = reports();
    r.nodeUsage('n1', report(entry('r1', { cpu: 1 })));
    expect(r.of('g', 'r1')).toBeUndefined();
    expect(r.window('g', ['r1'], 5000, 2000).samples).toEqual([]);
  });

  it('files an entry under the stream\'s node: one that hosts no rank of the replica is dropped and counted, whatever it claims', () => {
    const { r, count } = reports();
    r.heard('muster.load.g', load('r1'), 'load');
    r.nodeUsage('n1', report(entry('r1', { cpu: 1 })));
    // n3's agent (it runs r2) speaks for r1, and for a replica no record holds, and for another group.
    r.nodeUsage('n3', report(entry('r1', { cpu: 100 }), entry('ghost', { cpu: 100 }), entry('r1', { cpu: 100 }, 'other'), entry('r2', { cpu: 0.5 })));
    // A node no gang runs on.
    r.nodeUsage('intruder', report(entry('r1', { cpu: 100 })));
    expect(r.of('g', 'r1')?.resources).toEqual({ cpu: 1 });
    expect(count('resources')).toBe(4);
    // n3's own replica was kept all the same.
    r.heard('muster.load.g', load('r2'), 'load');
    expect(r.of('g', 'r2')?.resources).toEqual({ cpu: 0.5 });
  });

  it('drops (and counts) malformed entries whole, a second entry for the same replica, and a message without a sample time', () => {
    const { r, count } = reports();
    r.heard('muster.load.g', load('r1'), 'load');
    r.nodeUsage('n1', report(
      entry('r1', { cpu: -1, memoryBytes: 5 }),
      entry('r1', { memoryBytes: Number.NaN }),
      entry('r1', { gpuUtilization: 1.5 }),
      entry('r1', { gpus: -2 }),
      entry('', { cpu: 1 }),
      entry('r1', { cpu: 1 }, ''),
      entry('r'.repeat(300), { cpu: 1 }),
      { group: 'g', replicaId: 'r1', usage: undefined },
    ));
    expect(count('resources')).toBe(8);
    expect(r.of('g', 'r1')?.resources).toBeUndefined();
    r.nodeUsage('n1', report(entry('r1', { memoryBytes: 7, gpus: 0 }), entry('r1', { memoryBytes: 9e9 })));
    expect(count('resources')).toBe(9);
    expect(r.of('g', 'r1')?.resources).toEqual({ memoryBytes: 7 });
    r.nodeUsage('n1', { sampledAtMs: 0, replicas: [entry('r1', { cpu: 3 }), entry('r1', { cpu: 4 })] });
    expect(count('resources')).toBe(11);
    expect(r.of('g', 'r1')?.resources).toEqual({ memoryBytes: 7 });
  });

  it('takes at most MAX_USAGE_ENTRIES entries a message; the rest are dropped and counted', () => {
    const many: Record<string, string[]> = {};
    for (let i = 0; i < MAX_USAGE_ENTRIES + 10; i++) many[`m${i}`] = ['n1'];
    gangNodes.many = many;
    try {
      const { r, count } = reports();
      r.nodeUsage('n1', report(...Object.keys(many).map((id) => entry(id, { cpu: 1 }, 'many'))));
      expect(r.sizes.resourceShares).toBe(MAX_USAGE_ENTRIES);
      expect(count('resources')).toBe(10);
    } finally {
      delete gangNodes.many;
    }
  });

  it('a resource report on the NATS load subject (an older worker, or a shard holding the group\'s credential) is dropped and counted', () => {
    const { r, count } = reports();
    r.heard('muster.load.g', load('r1'), 'load');
    r.nodeUsage('n1', report(entry('r1', { cpu: 0.5 })));
    r.heard('muster.load.g', { v: 1, kind: 'resources', replicaId: 'r1', node: 'n1', timeMs: 1000, resources: { cpu: 100, memoryBytes: 1e14 } }, 'load');
    expect(count('load')).toBe(1);
    expect(r.of('g', 'r1')?.resources).toEqual({ cpu: 0.5 });
  });

  it('forgets a replica that leaves its group, and keeps nothing without a way to tell replicas and their nodes', () => {
    const { r } = reports();
    r.heard('muster.load.g', load('r1'), 'load');
    r.nodeUsage('n1', report(entry('r1', { cpu: 1 })));
    r.forget('g', 'r1');
    r.heard('muster.load.g', load('r1'), 'load');
    expect(r.of('g', 'r1')?.resources).toBeUndefined();
    const blind = new LoadReports(undefined, silent, () => 0);
    blind.heard('muster.load.g', load('r1'), 'load');
    blind.nodeUsage('n1', report(entry('r1', { cpu: 1 })));
    expect(blind.of('g', 'r1')?.resources).toBeUndefined();
  });
});
