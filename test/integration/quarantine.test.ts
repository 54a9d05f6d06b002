/**
 * A stored gang the head cannot read, on a real head with its embedded store
 * (packages/head/src/controllers/quarantine.ts): with the head stopped, a
 * running gang's record is rewritten with a name today's validator refuses
 * (as an older head's record looks to a stricter one), and another running
 * gang's record is deleted. The restarted head must stop the second one's
 * ranks (an unknown gang: the marker that the agent's inventory was
 * decided) and leave the first one's running, list it as quarantined, count
 * it in the cluster summary and record a `gang.quarantined` event; stopping
 * it by hand deletes its record and stops its ranks.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EmbeddedStore } from '@muster/head/state';
import { Gang as WireGang } from '@muster/proto';
import { ErrorCode, type Cluster, type Gang } from '@muster/sdk';
import { findShards, waitFor, type LocalCluster } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';

const shard = fileURLToPath(new URL('../fixtures/shard.mjs', import.meta.url));
const GANGS_PREFIX = '/muster/gangs/';

/** Pids of the live processes whose environment says they belong to `gangId`, in order. */
const gangPids = async (gangId: string): Promise<number[]> => (await findShards({ gangId })).map((p) => p.pid).sort((a, b) => a - b);

describe('a stored record the head cannot read', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;
  useCluster({ workers: 1 }, (fx) => ({ cluster, sdk } = fx));

  async function launch(name: string): Promise<Gang> {
    const pg = await sdk.placementGroups.create({ name: `${name}-pg`, bundles: [{ gpus: 1 }] });
    await pg.ready({ timeout: 10_000 });
    const gang = await sdk.gangs.launch({
      name, placementGroup: pg.name, tp: 1, pp: 1,
      template: { command: process.execPath, args: [shard], ports: [{ name: 'http' }], readiness: { kind: 'http', port: 'http', path: '/health', periodMs: 50 } },
      startup: { gracePeriodMs: 500 },
    });
    await gang.ready({ timeout: 15_000 });
    return gang;
  }

  it('is kept across a head restart: its rank keeps running, it is listed as quarantined, and stopping it deletes it and stops the rank', async () => {
    const victim = await launch('victim');
    const witness = await launch('witness');
    const victimPids = await gangPids(victim.id);
    expect(victimPids).toHaveLength(1);
    expect(await gangPids(witness.id)).toHaveLength(1);

    await cluster.stopHead('SIGTERM');
    const store = await EmbeddedStore.open(join(cluster.headDataDir(0), 'store'));
    try {
      const kv = await store.get(GANGS_PREFIX + victim.id);
      const stored = WireGang.decode(kv!.value);
      await store.put(kv!.key, WireGang.encode({ ...stored, spec: { ...stored.spec!, name: 'Victim_Upper' } }).finish());
      await store.delete(GANGS_PREFIX + witness.id);
    } finally {
      await store.close();
    }
    await cluster.startHead();
    const client = await cluster.connect();
    try {
      // The witness's rank is stopped as an unknown gang's once the agent's inventory is decided: the window was observed.
      await waitFor('the unknown gang\'s rank to be stopped', async () => (await gangPids(witness.id)).length === 0, { timeoutMs: 20_000 });
      expect(await gangPids(victim.id)).toEqual(victimPids);

      const shown = await client.gangs.get(victim.id);
      expect(shown.toJSON()).toMatchObject({ id: victim.id, name: 'Victim_Upper', state: 'ready', message: expect.stringMatching(/^quarantined: .*delete it, or run a head version that accepts it/) });
      expect((await client.gangs.list()).map((g) => g.id)).toContain(victim.id);
      expect((await client.summary()).gangs).toMatchObject({ QUARANTINED: 1 });
      const kinds = [];
      for await (const e of client.events({ replay: true, untilReplayed: true })) if (e.attributes.gang === victim.id) kinds.push(e.kind);
      expect(kinds).toContain('gang.quarantined');

      await client.gangs.stop(victim.id);
      await waitFor('the quarantined gang\'s rank to be stopped', async () => (await gangPids(victim.id)).length === 0, { timeoutMs: 15_000 });
      await expect(client.gangs.get(victim.id)).rejects.toMatchObject({ code: ErrorCode.NOT_FOUND });
    } finally {
      client.close();
    }
  });
});
