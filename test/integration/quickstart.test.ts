/**
 * The tour `npm run demo` runs (examples/quickstart) passes its own checks on
 * a fresh cluster and leaves nothing behind: a README promise kept by CI.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import type { Cluster } from '@muster/sdk';
import { type LocalCluster } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';

const tour = fileURLToPath(new URL('../../examples/quickstart/dist/main.js', import.meta.url));

describe('the quick start tour', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;

  useCluster({ workers: 3 }, (fx) => ({ cluster, sdk } = fx));

  it('places, launches and serves the model, every check passing, and removes what it made', async () => {
    const run = await execa(process.execPath, [tour], { env: cluster.clientEnv(), reject: false, timeout: 90_000 });
    expect(run.exitCode, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/ok {3}the gang's answer equals the single-process reference/);
    expect(run.stdout).toMatch(/ok {3}the new replica takes calls/);
    expect(run.stdout).toMatch(/all checks passed/);
    expect(run.stdout).not.toMatch(/FAIL/);
    expect(await sdk.placementGroups.list()).toEqual([]);
    expect((await sdk.gangs.list()).filter((g) => g.state !== 'stopped')).toEqual([]);
  });
});
