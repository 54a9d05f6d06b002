import { describe, expect, it } from 'vitest';
import { rejectionSentence } from './explain.js';
import { schedule } from './pipeline.js';
import { HGX_H100, TWO_TRAY_16, makeNode } from './profiles.js';
import { ReasonCode } from './reasons.js';
import { parsePlacementGroupSpec } from './spec.js';
import type { ValidPgSpec, Reservation } from './types.js';

function spec(input: object): ValidPgSpec {
  const r = parsePlacementGroupSpec({ name: 'pg', ...input });
  if (!r.ok) throw new Error(r.message);
  return r.spec;
}

function busy(nodeId: string, gpuIndices: number[]): Reservation {
  return { groupId: `g-${nodeId}`, bundleIndex: 0, nodeId, gpuIndices, migUuids: [], cpuMillis: 0, memoryBytes: 0, custom: {} };
}

describe('pending explained', () => {
  it('reads like the issue asks: need, largest free island, rejections counted by reason', () => {
    // 9 H100 nodes with 4 GPUs busy (node-3 in a way that leaves one 4-GPU half free), 3 spot nodes.
    const nodes = [
      ...Array.from({ length: 9 }, (_, i) => makeNode(HGX_H100, `node-${i}`)),
      ...Array.from({ length: 3 }, (_, i) => makeNode(HGX_H100, `spot-${i}`, { taints: [{ key: 'spot', value: 'true', effect: 'NoSchedule' }] })),
    ];
    const reservations = nodes.slice(0, 9).map((n, i) => busy(n.id, i === 3 ? [0, 1, 2, 3] : [0, 1, 2, 3, 4, 5]));
    const r = schedule({ nodes, reservations }, spec({ bundles: [{ gpus: 8 }], topology: [{ level: 'gpu-island' }] }));
    expect(r.status).toBe('PENDING');
    if (r.status !== 'PENDING') return;
    expect(r.reason.message).toBe('bundle 0 needs 8 GPUs in one NVLink island; largest free island is 4 (node-3); 12 nodes rejected: 9 insufficient GPU, 3 untolerated taint spot');
    expect(r.reason).toMatchObject({
      code: ReasonCode.GPU,
      bundleIndex: 0,
      nodesTotal: 12,
      largestFreeIsland: { size: 4, nodeId: 'node-3' },
      rejections: [
        { code: ReasonCode.GPU, detail: 'gpu', count: 9 },
        { code: ReasonCode.TAINT, detail: 'spot', count: 3 },
      ],
    });
  });

  it('names the island, not the GPU count, when GPUs are free but split across islands', () => {
    const nodes = [makeNode(TWO_TRAY_16, 'big')];
    const r = schedule({ nodes, reservations: [busy('big', [0, 8])] }, spec({ bundles: [{ gpus: 8 }], topology: [{ level: 'gpu-island' }] }));
    expect(r.status === 'PENDING' && r.reason.message).toBe('bundle 0 needs 8 GPUs in one NVLink island; largest free island is 7 (big); 1 node rejected: 1 NVLink island too small');
  });

  it('says how far a gang got and which bundle stopped it', () => {
    const nodes = [makeNode(HGX_H100, 'a'), makeNode(HGX_H100, 'b')];
    const r = schedule({ nodes, reservations: [busy('b', [0])] }, spec({ strategy: 'STRICT_SPREAD', bundles: [{ gpus: 8 }, { gpus: 8 }] }));
    expect(r.status).toBe('PENDING');
    if (r.status !== 'PENDING') return;
    expect(r.reason.bundlesPlaced).toBe(1);
    expect(r.reason.message).toBe('bundle 1 needs 8 GPUs; most free GPUs on one node is 8 (a); 2 nodes rejected: 1 insufficient GPU, 1 already holds a bundle of this group (STRICT_SPREAD)');
  });

  it('formats rejection sentences', () => {
    expect(rejectionSentence([])).toBe('');
    expect(rejectionSentence([{ code: ReasonCode.CUSTOM, detail: 'rdma/ib', count: 1 }])).toBe('1 node rejected: 1 insufficient rdma/ib');
    expect(rejectionSentence([{ code: 'some-new-code', detail: 'x', count: 2 }])).toBe('2 nodes rejected: 2 some-new-code x');
  });
});
