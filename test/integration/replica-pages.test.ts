/**
 * Replica pages against a real head (issue 15: no answer over 1 MiB; design
 * in packages/head/src/api/replica-pages.ts): a group of 25 one-GPU replicas
 * on simulated agents (bench/agents; they run no ranks, so the replicas stay
 * starting), read with a page size of 10 — three pages.
 *
 * Shows: GetReplicaGroup sends one page with the counts of all replicas;
 * ListReplicaGroups sends counts and no replicas; a token of another group,
 * with other filters, or forged is refused naming page_token; the SDK
 * (`get`, `refresh`, `replicaPages`) and `muster rg get --page-size` read
 * every replica; filters by state and revision are applied by the head.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Metadata, ServiceError } from '@grpc/grpc-js';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grpcChannelCredentials, readToken, tokenMetadata } from '@muster/common';
import { clientChannelOptions } from '@muster/contracts';
import { ReplicaGroupServiceClient, type GetReplicaGroupRequest, type ListReplicaGroupsResponse, type ReplicaGroup } from '@muster/proto';
import type { Cluster } from '@muster/sdk';
import { waitFor, type LocalCluster } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';
import { AgentPool } from '../../bench/agents/pool.js';
import { placeGroup } from '../../bench/rg-bytes/measure.js';

const cli = fileURLToPath(new URL('../../packages/cli/dist/main.js', import.meta.url));
const REPLICAS = 25;

describe('replica pages', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;
  let pool: AgentPool | undefined;
  let rgs: ReplicaGroupServiceClient;
  let md: Metadata;
  useCluster({ workers: 0 }, (fx) => ({ cluster, sdk } = fx));

  beforeAll(async () => {
    pool = await AgentPool.start({ head: cluster.address, token: readFileSync(cluster.tokenFile, 'utf8').trim(), tlsCa: cluster.tls?.ca, agents: 5, channels: 1, profile: 'hgx-h100-8' });
    const agents = pool;
    await waitFor('5 agents registered', () => agents.stats().registered === 5, { timeoutMs: 30_000 });
    await placeGroup(sdk, 'paged', REPLICAS, 60_000);
    await placeGroup(sdk, 'other', 2, 60_000);
    md = tokenMetadata(await readToken(cluster.tokenFile));
    rgs = new ReplicaGroupServiceClient(cluster.address, grpcChannelCredentials(cluster.tls!), clientChannelOptions());
  }, 120_000);
  afterAll(async () => {
    rgs?.close();
    await pool?.stop();
  });

  const get = (req: Partial<GetReplicaGroupRequest>) => new Promise<ReplicaGroup>((resolve, reject) => {
    rgs.getReplicaGroup({ name: 'paged', replicaPageSize: 0, replicaPageToken: '', replicaStates: [], replicaRevision: '', ...req }, md, (err, res) => (err ? reject(err) : resolve(res!)));
  });
  const refusal = async (p: Promise<unknown>): Promise<string> => {
    try {
      await p;
    } catch (e) {
      const err = e as ServiceError;
      return `${String(err.metadata.get('muster-error-code')[0])}: ${err.details}`;
    }
    throw new Error('expected a refusal');
  };

  it('the head sends one page with the counts of every replica; the list sends counts only', async () => {
    const first = await get({ replicaPageSize: 10 });
    expect(first.replicas).toHaveLength(10);
    expect(first.replicaPage!.total).toBe(REPLICAS);
    expect(first.replicaPage!.byState).toEqual({ starting: REPLICAS });
    expect(first.replicaPage!.nextPageToken).not.toBe('');
    const second = await get({ replicaPageSize: 10, replicaPageToken: first.replicaPage!.nextPageToken });
    const third = await get({ replicaPageSize: 10, replicaPageToken: second.replicaPage!.nextPageToken });
    expect([second.replicas.length, third.replicas.length, third.replicaPage!.nextPageToken]).toEqual([10, 5, '']);
    const ids = [...first.replicas, ...second.replicas, ...third.replicas].map((r) => r.id);
    expect(new Set(ids).size).toBe(REPLICAS);
    // No page size (an old client): the default page, here every replica.
    expect((await get({})).replicas.map((r) => r.id)).toEqual(ids);

    const list = await new Promise<ListReplicaGroupsResponse>((resolve, reject) => rgs.listReplicaGroups({ pageSize: 0, pageToken: '', namePrefix: '' }, md, (err, res) => (err ? reject(err) : resolve(res!))));
    expect(list.groups.map((g) => [g.name, g.replicas.length, g.replicaPage!.total, g.replicaPage!.byState])).toEqual([['other', 0, 2, { starting: 2 }], ['paged', 0, REPLICAS, { starting: REPLICAS }]]);
  });

  it('a token of another group, with other filters, or forged is refused naming page_token', async () => {
    const token = (await get({ replicaPageSize: 10 })).replicaPage!.nextPageToken;
    expect(await refusal(get({ name: 'other', replicaPageToken: token }))).toMatch(/^MUSTER_INVALID_ARGUMENT: page_token belongs to the replicas of paged list, not the replicas of other list/);
    expect(await refusal(get({ replicaPageToken: token, replicaStates: ['ready'] }))).toMatch(/^MUSTER_INVALID_ARGUMENT: page_token was issued for other filters/);
    const [body, tag] = token.split('.') as [string, string];
    const edited = Buffer.from(JSON.stringify({ ...(JSON.parse(Buffer.from(body, 'base64url').toString()) as object), k: '0' })).toString('base64url');
    expect(await refusal(get({ replicaPageToken: `${edited}.${tag}` }))).toMatch(/^MUSTER_INVALID_ARGUMENT: page_token is not one this cluster issued/);
    expect(await refusal(get({ replicaPageToken: 'forged' }))).toMatch(/^MUSTER_INVALID_ARGUMENT: page_token is malformed/);
  });

  it('the SDK reads every replica page by page, and filters by state and revision', async () => {
    const all = (await get({})).replicas.map((r) => r.id);
    const g = await sdk.replicaGroups.get('paged', { pageSize: 10 });
    expect(g.replicas.map((r) => r.id)).toEqual(all);
    expect(g.toJSON().replicaCount).toBe(REPLICAS);
    expect((await g.refresh()).replicas).toHaveLength(REPLICAS);
    const pages: string[][] = [];
    for await (const page of sdk.replicaGroups.replicaPages('paged', { pageSize: 10 })) pages.push(page.map((r) => r.id));
    expect(pages.map((p) => p.length)).toEqual([10, 10, 5]);
    expect(pages.flat()).toEqual(all);
    expect((await sdk.replicaGroups.get('paged', { states: ['ready'], pageSize: 10 })).replicas).toEqual([]);
    expect((await sdk.replicaGroups.get('paged', { states: ['starting'], revision: g.toJSON().revision, pageSize: 7 })).replicas).toHaveLength(REPLICAS);
    expect((await sdk.replicaGroups.get('paged', { revision: 'no-such-revision' })).replicas).toEqual([]);
    const listed = (await sdk.replicaGroups.list()).find((x) => x.name === 'paged')!.toJSON();
    expect([listed.replicas.length, listed.replicaCount, listed.replicasByState]).toEqual([0, REPLICAS, { starting: REPLICAS }]);
  });

  it('`muster rg get --page-size` shows every replica; --state filters; a bad flag is refused by name', async () => {
    const env = cluster.clientEnv();
    const all = (await get({})).replicas.map((r) => r.id);
    const out = (await execa(process.execPath, [cli, 'rg', 'get', 'paged', '--page-size', '10'], { env })).stdout;
    expect(out).toMatch(new RegExp(`^replicas: ${REPLICAS} \\(starting ${REPLICAS}\\)$`, 'm'));
    expect(out.split('\n').filter((l) => /^r-/.test(l)).map((l) => l.split(/\s+/)[0])).toEqual(all);
    const json = JSON.parse((await execa(process.execPath, [cli, 'rg', 'get', 'paged', '--page-size', '10', '--json'], { env })).stdout) as { replicas: Array<{ id: string }> };
    expect(json.replicas.map((r) => r.id)).toEqual(all);
    const ready = (await execa(process.execPath, [cli, 'rg', 'get', 'paged', '--state', 'ready'], { env })).stdout;
    expect(ready.split('\n').filter((l) => /^r-/.test(l))).toEqual([]);
    const bad = await execa(process.execPath, [cli, 'rg', 'get', 'paged', '--state', 'redy'], { env, reject: false });
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr).toMatch(/--state: "redy" is not a replica state/);
    const ls = (await execa(process.execPath, [cli, 'rg', 'ls'], { env })).stdout;
    expect(ls).toMatch(/^paged\s+25\s+0\s/m);
  });
});
