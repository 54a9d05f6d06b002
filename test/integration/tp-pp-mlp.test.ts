/**
 * The acceptance run of shard launch: 2 simulated 8-GPU workers, a TP=4 ×
 * PP=2 gang of the real MLP example (examples/tp-pp-mlp). Every rank talks
 * to the others over TCP; a wrong rank layout or environment would give a
 * wrong answer or no READY at all.
 */
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import type { Cluster } from '@muster/sdk';
import { useCluster } from '@muster/testing/vitest';

const rankJs = fileURLToPath(new URL('../../examples/tp-pp-mlp/dist/rank.js', import.meta.url));

describe('examples/tp-pp-mlp as a gang', () => {
  let sdk: Cluster;

  useCluster({ workers: 2 }, (fx) => ({ sdk } = fx));

  it('gets 8 ranks READY and an output equal to the single-process reference', async () => {
    const pg = await sdk.placementGroups.create({ name: 'mlp-pg', bundles: [{ gpus: 4 }, { gpus: 4 }], topology: [{ level: 'gpu-island' }], strategy: 'STRICT_SPREAD' });
    await pg.ready({ timeout: 5_000 });
    const gang = await sdk.gangs.launch({
      name: 'mlp',
      placementGroup: 'mlp-pg',
      tp: 4,
      pp: 2,
      template: { command: process.execPath, args: [rankJs], env: { MODEL_SEED: '7' }, ports: [{ name: 'http' }], readiness: { kind: 'http', port: 'http', path: '/health', periodMs: 50 } },
      startup: { deadlineMs: 30_000, maxRestarts: 0 },
    });
    await gang.ready({ timeout: 30_000 });

    // TP groups inside one island of one node, each rank on the GPU of its placement.
    for (const stage of [0, 1]) {
      const ranks = gang.ranks.filter((r) => r.ppRank === stage);
      expect(new Set(ranks.map((r) => r.nodeId)).size).toBe(1);
      const node = await sdk.node(ranks[0]!.nodeId);
      const island = node.nvlinkIslands.find((i) => i.includes(Number(ranks[0]!.cudaVisibleDevices)))!;
      for (const r of ranks) expect(island).toContain(Number(r.cudaVisibleDevices));
      const bundle = (await pg.refresh()).placements.find((p) => p.nodeId === ranks[0]!.nodeId)!;
      expect(ranks.map((r) => Number(r.cudaVisibleDevices))).toEqual(bundle.gpuIndices);
    }

    const last = gang.ranks.find((r) => r.ppRank === 1 && r.tpRank === 0)!;
    const result = (await (await fetch(`http://127.0.0.1:${last.ports.http}/result`)).json()) as { output: number[][]; ok: boolean; maxAbsErrVsReference: number };
    expect(result.ok).toBe(true);
    expect(result.maxAbsErrVsReference).toBeLessThanOrEqual(1e-5);
    const reference = JSON.parse((await execa(process.execPath, [rankJs, '--reference', '--seed', '7'])).stdout) as { output: number[][] };
    expect(result.output.flat().length).toBe(reference.output.flat().length);
    result.output.flat().forEach((v, i) => expect(Math.abs(v - reference.output.flat()[i]!)).toBeLessThanOrEqual(1e-5));
    await gang.stop();
  });
});
