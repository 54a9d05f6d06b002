/**
 * Resource reports on the load subject (contracts' resource-usage.ts): kept
 * per replica and node, summed into the replica's sample over the nodes
 * heard lately, never taken for a load report, and refused when malformed.
 */
import { describe, expect, it } from 'vitest';
import { createLogger } from '@muster/common/log';
import { RESOURCE_REPORT_FRESH_MS } from '@muster/contracts';
import { LoadReports } from './load-reports.js';

const silent = createLogger('test', { level: 'silent' });
const load = (replicaId: string, extra: object = {}) => ({ v: 1, replicaId, inFlight: 1, queued: 0, timeMs: 1000, ...extra });
const usage = (replicaId: string, node: string, resources: object) => ({ v: 1, kind: 'resources', replicaId, node, timeMs: 1000, resources });
/** The group records: group g's replica r1 has ranks on n1 and n2, r2 on n3. */
const gangNodes: Record<string, Record<string, string[]>> = { g: { r1: ['n1', 'n2'], r2: ['n3'] } };
const runsOn = (group: string, replicaId: string, node: string) => gangNodes[group]?.[replicaId]?.includes(node) ?? false;

describe('LoadReports: resource reports', () => {
  it('sums the nodes of a replica (CPU and memory added, GPU utilisation weighed by GPUs) into its sample', () => {
    let now = 0;
    const r = new LoadReports(undefined, silent, () => now, undefined, runsOn);
    r.heard('muster.load.g', load('r1', { custom: { batch_fill: 3, 'bad name': 1 } }), 'load');
    r.heard('muster.load.g', usage('r1', 'n1', { cpu: 1.5, memoryBytes: 1e9, gpuUtilization: 0.9, gpus: 3, gpuMemoryBytes: 2e9 }), 'load');
    r.heard('muster.load.g', usage('r1', 'n2', { cpu: 0.5, memoryBytes: 2e9, gpuUtilization: 0.5, gpus: 1 }), 'load');
    expect(r.of('g', 'r1')).toEqual({ inFlight: 1, queued: 0, timeMs: 1000, custom: { batch_fill: 3 }, resources: { cpu: 2, memoryBytes: 3e9, gpuUtilization: 0.8, gpus: 4, gpuMemoryBytes: 2e9 } });
    expect(r.window('g', ['r1'], 5000, 2000).samples[0]?.resources?.cpu).toBe(2);
    // A node not heard for RESOURCE_REPORT_FRESH_MS stops counting (its gang moved, or its worker went).
    now = RESOURCE_REPORT_FRESH_MS / 2;
    r.heard('muster.load.g', usage('r1', 'n2', { cpu: 0.25 }), 'load');
    now = RESOURCE_REPORT_FRESH_MS + 1;
    expect(r.of('g', 'r1')?.resources).toEqual({ cpu: 0.25 });
    now = 3 * RESOURCE_REPORT_FRESH_MS;
    expect(r.of('g', 'r1')?.resources).toBeUndefined();
  });

  it('a resource report alone is no load report: the replica has not reported until its own report comes', () => {
    const r = new LoadReports(undefined, silent, () => 0, undefined, runsOn);
    r.heard('muster.load.g', usage('r1', 'n1', { cpu: 1 }), 'load');
    expect(r.of('g', 'r1')).toBeUndefined();
    expect(r.window('g', ['r1'], 5000, 2000).samples).toEqual([]);
  });

  it('drops malformed resource reports and values, and keys by the subject\'s group', () => {
    const dropped: string[] = [];
    const r = new LoadReports(undefined, silent, () => 0, (k) => dropped.push(k), runsOn);
    r.heard('muster.load.g', load('r1'), 'load');
    r.heard('muster.load.g', { ...usage('r1', 'n1', {}), node: '' }, 'load');
    r.heard('muster.load.g', { ...usage('r1', 'n1', {}), kind: 'other' }, 'load');
    r.heard('muster.load.g', { ...usage('r1', 'n1', {}), resources: 'lots' }, 'load');
    expect(dropped).toEqual(['load', 'load', 'load']);
    r.heard('muster.load.g', usage('r1', 'n1', { cpu: -1, memoryBytes: Number.NaN, gpuUtilization: 1.5, gpuMemoryBytes: 5 }), 'load');
    expect(r.of('g', 'r1')?.resources).toEqual({ gpuMemoryBytes: 5 });
    r.heard('muster.load.other', usage('r1', 'n1', { cpu: 9 }), 'load');
    expect(r.of('g', 'r1')?.resources).toEqual({ gpuMemoryBytes: 5 });
    r.forget('g', 'r1');
    r.heard('muster.load.g', load('r1'), 'load');
    expect(r.of('g', 'r1')?.resources).toBeUndefined();
  });

  it('drops (and counts) a report for a replica not in the group\'s record or from a node its gang does not run on', () => {
    const dropped: string[] = [];
    const r = new LoadReports(undefined, silent, () => 0, (k) => dropped.push(k), runsOn);
    r.heard('muster.load.g', load('r1'), 'load');
    r.heard('muster.load.g', usage('r1', 'n1', { cpu: 1 }), 'load');
    // A shard of r2 (on n3) speaks for its sibling r1: from its own node, then from made-up ones.
    r.heard('muster.load.g', usage('r1', 'n3', { cpu: 100 }), 'load');
    for (let i = 0; i < 512; i++) r.heard('muster.load.g', usage('r1', `fake-${i}`, { cpu: 100 }), 'load');
    // A replica the record does not hold.
    r.heard('muster.load.g', usage('ghost', 'n1', { cpu: 100 }), 'load');
    expect(r.of('g', 'r1')?.resources).toEqual({ cpu: 1 });
    expect(dropped).toHaveLength(514);
    expect(new Set(dropped)).toEqual(new Set(['load']));
  });

  it('keeps no resource report without a way to tell the group\'s replicas and their nodes', () => {
    const r = new LoadReports(undefined, silent, () => 0);
    r.heard('muster.load.g', load('r1'), 'load');
    r.heard('muster.load.g', usage('r1', 'n1', { cpu: 1 }), 'load');
    expect(r.of('g', 'r1')?.resources).toBeUndefined();
  });
});
