/**
 * Rotating the NATS account signing key does not break restarts
 * (docs/security.md, "Rotating credentials"): with a second key added and
 * the head restarted on it, a rank that dies comes back with a user minted
 * from the new key; once the old key is retired, users it signed are cut off
 * — the SDK's caller asks the head again and keeps calling.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Cluster, ReplicaGroup } from '@muster/sdk';
import { waitFor, type LocalCluster } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';

const replica = fileURLToPath(new URL('../fixtures/replica.mjs', import.meta.url));

type Answer = { pid: number; replicaId: string };

async function issuerOf(pid: number): Promise<string> {
  const env = (await readFile(`/proc/${pid}/environ`, 'utf8')).split('\0').find((kv) => kv.startsWith('MUSTER_NATS_JWT='))!;
  const jwt = env.slice('MUSTER_NATS_JWT='.length);
  return (JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as { iss: string }).iss;
}

describe('NATS signing-key rotation', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;
  useCluster({ workers: 1 }, (fx) => ({ cluster, sdk } = fx));

  it('restarted ranks get users of the new key; retiring the old one cuts its users and the SDK renews', async () => {
    const group: ReplicaGroup = await sdk.replicaGroups.apply({
      name: 'rot',
      tp: 1,
      resources: { gpus: 1 },
      template: { command: process.execPath, args: [replica], readiness: { kind: 'sdk' } },
      replicas: { min: 1, max: 1, initial: 1 },
      startup: { backoffInitialMs: 100 },
    });
    const call = (p: string) => group.call(p, { timeoutMs: 3_000, idempotent: true }) as Promise<Answer>;
    const first = await waitFor('a first answer', () => call('a').catch(() => undefined), { timeoutMs: 30_000 });
    const oldIssuer = await issuerOf(first.pid);

    const rotation = await cluster.nats!.rotateSigningKey();
    await cluster.restartHead(0);
    process.kill(first.pid, 'SIGKILL');
    const second = await waitFor('an answer from the restarted rank', async () => {
      const a = await call('b').catch(() => undefined);
      return a && a.pid !== first.pid ? a : undefined;
    }, { timeoutMs: 30_000, intervalMs: 200 });
    expect(await issuerOf(second.pid)).toBe(rotation.publicKey);
    expect(rotation.publicKey).not.toBe(oldIssuer);

    // The SDK's caller user was minted from the old key: retiring it cuts the connection,
    // the SDK asks the head (now on the new key) again, and calls go on.
    await rotation.retireOld();
    await waitFor('calls answered after the old key is gone', () => call('c').catch(() => undefined), { timeoutMs: 30_000, intervalMs: 200 });
    expect(await issuerOf(second.pid)).toBe(rotation.publicKey);
  });
});
