/** `muster gateway` as the integration tests start it: the built CLI, a cluster's client environment, its ready line read. */
import { fileURLToPath } from 'node:url';
import { spawnManaged, type LocalCluster, type ManagedProcess } from '@muster/testing';

const cli = fileURLToPath(new URL('../../packages/cli/dist/main.js', import.meta.url));

export interface TestGateway {
  gw: ManagedProcess;
  /** `http://<address>` */
  base: string;
  /** Its ready line: where it serves, and its metrics and traces when it has them. */
  ready: { address: string; metrics?: string; traces?: string };
}

/**
 * Starts `muster gateway --listen 127.0.0.1:0 …args` and waits for it to serve.
 * `env` adds to (or, with undefined, removes from) the cluster's client environment.
 */
export async function startTestGateway(cluster: LocalCluster, args: readonly string[], opts: { name?: string; env?: Record<string, string | undefined> } = {}): Promise<TestGateway> {
  const gw = spawnManaged(opts.name ?? 'gateway', process.execPath, [cli, 'gateway', '--listen', '127.0.0.1:0', ...args], { env: { ...cluster.clientEnv(), ...opts.env } });
  const ready = JSON.parse(await gw.waitForLine((l) => l.includes('gateway ready'))) as TestGateway['ready'];
  return { gw, base: `http://${ready.address}`, ready };
}
