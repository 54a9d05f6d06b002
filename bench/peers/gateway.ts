/**
 * `muster gateway` for the HTTP shape: the built CLI (packages/cli/dist), as
 * an operator starts it, on a free loopback port, plain HTTP and without API
 * keys (`--no-auth`) — the way Ray Serve's proxy is measured beside it (HTTP,
 * no authentication). Returns the URL wrk posts to.
 */
import { fileURLToPath } from 'node:url';
import type { LocalCluster } from '@muster/local';
import { spawnManaged, type ManagedProcess } from '@muster/testing';

const cli = fileURLToPath(new URL('../../packages/cli/dist/main.js', import.meta.url));

export async function startGateway(cluster: LocalCluster, group: string): Promise<{ url: string; process: ManagedProcess }> {
  const gw = spawnManaged('gateway', process.execPath, [cli, 'gateway', '--listen', '127.0.0.1:0', '--no-auth'], { env: cluster.clientEnv() });
  try {
    const ready = JSON.parse(await gw.waitForLine((l) => l.includes('gateway ready'), 60_000)) as { url: string };
    return { url: `${ready.url}/v1/groups/${group}/call`, process: gw };
  } catch (e) {
    await gw.stop();
    throw e;
  }
}
