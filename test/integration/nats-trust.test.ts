/**
 * NATS least privilege in a whole cluster (docs/security.md, "NATS: users
 * per role"): the launcher runs nats-server in operator mode over TLS, the
 * head mints every user, and no NATS secret is stored or answered.
 *
 *  - a replica's rank connects as its group's user (the credential in its
 *    launch order's env, read from /proc here), whose permissions are its
 *    group's subjects only;
 *  - GetGang, ClusterInfo and the head's store hold no NATS JWT or seed;
 *  - the SDK calls as its own caller user (GetDataPlaneAccess);
 *  - a forged negative load report from a real replica credential of the
 *    group reaches the head and is dropped by its decoder, counted in
 *    muster_load_reports_dropped_total.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { connectNats, encode } from '@muster/common';
import { loadSubject, replicaPermissions } from '@muster/contracts';
import type { Cluster, ReplicaGroup } from '@muster/sdk';
import { waitFor, type LocalCluster } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';

const replica = fileURLToPath(new URL('../fixtures/replica.mjs', import.meta.url));

/** Every file under `dir`, as text. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(await readFile(join(e.parentPath, e.name), 'latin1'));
  }
  return out;
}

function claims(jwt: string): { nats: { pub?: { allow?: string[] }; sub?: { allow?: string[] }; }; exp?: number } {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as ReturnType<typeof claims>;
}

async function metric(cluster: LocalCluster, line: RegExp): Promise<number | undefined> {
  const text = await (await fetch(`http://${cluster.head.metricsAddress}/metrics`)).text();
  const m = text.split('\n').find((l) => line.test(l));
  return m === undefined ? undefined : Number(m.split(' ').at(-1));
}

describe('NATS trust in a cluster', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;
  let group: ReplicaGroup;
  let rankEnv: Record<string, string>;

  useCluster({ workers: 1 }, (fx) => ({ cluster, sdk } = fx));

  it('a replica serves as its group\'s user, minted for its launch: the SDK calls it as a caller', async () => {
    group = await sdk.replicaGroups.apply({
      name: 'trust',
      tp: 1,
      resources: { gpus: 1 },
      template: { command: process.execPath, args: [replica], readiness: { kind: 'sdk' } },
      replicas: { min: 1, max: 1, initial: 1 },
    });
    const answer = await waitFor('a call answered', async () => group.call('hi', { timeoutMs: 2_000, idempotent: true }).catch(() => undefined), { timeoutMs: 30_000 }) as { pid: number };
    const environ = await readFile(`/proc/${answer.pid}/environ`, 'utf8');
    rankEnv = Object.fromEntries(environ.split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    expect(rankEnv.MUSTER_NATS_PASSWORD).toBeUndefined();
    expect(rankEnv.MUSTER_NATS_CA).toContain('BEGIN CERTIFICATE');
    const c = claims(rankEnv.MUSTER_NATS_JWT!);
    expect(c.nats.sub?.allow).toEqual(['muster.rg.trust.>']);
    expect(c.nats.pub?.allow).toEqual(['muster.load.trust', '_INBOX.>']);
    expect(rankEnv.MUSTER_NATS_SEED).toMatch(/^SU/);
  });

  it('no NATS secret in GetGang, ClusterInfo or the head\'s store', async () => {
    const g = await group.refresh();
    const gang = await sdk.gangs.get(g.replicas[0]!.gangId);
    const info = await sdk.info();
    const answers = JSON.stringify({ gang, info });
    expect(answers).not.toContain(rankEnv.MUSTER_NATS_SEED!);
    expect(answers).not.toContain(rankEnv.MUSTER_NATS_JWT!);
    expect(answers).not.toMatch(/MUSTER_NATS_(JWT|SEED|PASSWORD)/);
    expect(info.nats).toMatchObject({ user: '', password: '', jwt: '', seed: '' });
    expect(info.nats?.servers.length).toBeGreaterThan(0);
    const stored = await filesUnder(join(cluster.dataDir, 'head', 'store'));
    expect(stored.length).toBeGreaterThan(0);
    for (const text of stored) {
      expect(text).not.toContain(rankEnv.MUSTER_NATS_SEED!);
      expect(text).not.toContain(rankEnv.MUSTER_NATS_JWT!);
      expect(text).not.toContain('MUSTER_NATS_SEED');
    }
  });

  it('a forged negative load report from a replica of the group reaches the head and is dropped', async () => {
    const dropped = /^muster_load_reports_dropped_total\{.*kind="load".*\}/;
    const before = (await metric(cluster, dropped)) ?? 0;
    const forger = await connectNats(cluster.nats!.mint('replica trust', replicaPermissions('muster', 'trust')), 'forger');
    try {
      forger.publish(loadSubject('muster', 'trust'), encode({ v: 1, replicaId: group.replicas[0]!.id, inFlight: 0, queued: -1_000, timeMs: Date.now() }));
      await forger.flush();
      await waitFor('the head counted the refused report', async () => ((await metric(cluster, dropped)) ?? 0) > before, { timeoutMs: 10_000 });
    } finally {
      await forger.close();
    }
    // The group still answers: its real replica's reports are taken, the forged one was not.
    expect(await group.call('still', { timeoutMs: 5_000 })).toMatchObject({ echo: 'still' });
  });
});
