/**
 * Metrics endpoints with a scrape token, on the real binaries: a head and a
 * worker started with `--metrics-token-file` refuse a scrape without the
 * token (401, `WWW-Authenticate`) and serve it with the token.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnManaged, tempDir, type ManagedProcess } from '@muster/testing';

const headBin = fileURLToPath(new URL('../../packages/head/dist/main.js', import.meta.url));
const workerBin = fileURLToPath(new URL('../../packages/worker/dist/main.js', import.meta.url));
const started: ManagedProcess[] = [];
afterAll(async () => {
  for (const p of started.reverse()) await p.stop(5_000);
});

describe('metrics endpoints with a scrape token', () => {
  it('head and worker refuse an unauthenticated scrape and serve one with the token', async () => {
    const dir = await tempDir('muster-metrics-auth-');
    try {
      const tokenFile = join(dir.path, 'scrape-token');
      const token = randomBytes(32).toString('base64url');
      await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
      const head = spawnManaged('head', process.execPath, [headBin, '--listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0', '--data-dir', join(dir.path, 'head'), '--metrics-token-file', tokenFile, '--insecure']);
      started.push(head);
      const h = JSON.parse(await head.waitForLine((l) => l.includes('"head ready"'))) as { address: string; metrics: string; tokenFile: string };
      const worker = spawnManaged('worker', process.execPath, [
        workerBin, 'run', '--head', h.address, '--token-file', h.tokenFile, '--node-id', 'metrics-1', '--profile', 'hgx-h100-8',
        '--metrics-listen', '127.0.0.1:0', '--data-dir', join(dir.path, 'worker'), '--stop-shards-on-exit', 'true', '--metrics-token-file', tokenFile, '--insecure', '--shard-user', '0:0',
      ]);
      started.push(worker);
      const w = JSON.parse(await worker.waitForLine((l) => l.includes('"worker registered"'))) as { metrics: string };

      for (const [who, address, metric] of [['head', h.metrics, /service_name="muster-head"/], ['worker', w.metrics, /muster_agent_registered\{[^}]*\} 1/]] as const) {
        const refused = await fetch(`http://${address}/metrics`);
        expect(refused.status, who).toBe(401);
        expect(refused.headers.get('www-authenticate'), who).toBe('Bearer realm="muster-metrics"');
        expect(await refused.text(), who).not.toMatch(/muster_/);
        expect((await fetch(`http://${address}/metrics`, { headers: { authorization: 'Bearer not-the-token' } })).status, who).toBe(401);
        const served = await fetch(`http://${address}/metrics`, { headers: { authorization: `Bearer ${token}` } });
        expect(served.status, who).toBe(200);
        expect(await served.text(), who).toMatch(metric);
      }
    } finally {
      for (const p of started.splice(0).reverse()) await p.stop(5_000);
      await dir.remove();
    }
  });
});
