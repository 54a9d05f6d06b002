/**
 * Store bytes a replica group writes for one replica's change (issue 15,
 * point 5): a group of N one-GPU replicas on simulated agents (bench/agents),
 * on a cluster whose store is etcd, is scaled from N to N + 1; a watch on the
 * group's keys counts every write the head makes until the new replica has
 * its placement group and gang, and the bytes each one put.
 *
 * "Before" is worked out from the same run, not measured on the old code:
 * until the one-key-per-replica layout (rg-store.ts), every write of a group
 * put the whole group record with its replicas inline, so a write cost
 * `inlineBytes` (this group's record as the old layout stored it, built from
 * the keys read back) and the head made the same writes.
 *
 * Also the bytes of the API's answers about the group (answerBytes): each
 * page of GetReplicaGroup, ListReplicaGroups, and what one answer with every
 * replica (the answer before replica pages) would weigh.
 *
 * Shared by the command (main.ts) and the integration test at CI scale
 * (test/integration/rg-keys.test.ts).
 */
import { credentials, type Metadata, type ServiceError } from '@grpc/grpc-js';
import { grpcChannelCredentials, readToken, tokenMetadata } from '@muster/common';
import { clientChannelOptions } from '@muster/contracts';
import { ListReplicaGroupsResponse, Replica, ReplicaGroup, ReplicaGroupServiceClient, type GetReplicaGroupRequest } from '@muster/proto';
import { readAll, type StateStore, type WatchEvent } from '@muster/head/state';
import type { Cluster } from '@muster/sdk';
import { waitFor } from '@muster/testing';

const PREFIX = '/muster/rgs/';

export interface GroupKeys {
  keys: number;
  /** Bytes of the group's own key (key + value). */
  groupBytes: number;
  /** Largest replica key (key + value). */
  maxReplicaBytes: number;
  /** The group record as the old layout stored it (replicas inline), key + value. */
  inlineBytes: number;
  /** The group record still carries replicas inline. */
  inline: boolean;
}

export interface ChangeCost {
  /** Writes (store revisions) that touched the group's keys during the change. */
  writes: number;
  /** Bytes those writes put (keys + values). */
  bytes: number;
  /** The largest single write. */
  maxWriteBytes: number;
  /** What the same writes cost in the old layout: writes × inlineBytes. */
  inlineBytes: number;
}

/** The group's keys as stored now. */
export async function groupKeys(store: StateStore, name: string): Promise<GroupKeys> {
  const { kvs } = await readAll(store, `${PREFIX}${name}`);
  const own = kvs.filter((kv) => kv.key === `${PREFIX}${name}` || kv.key.startsWith(`${PREFIX}${name}/`));
  const group = own.find((kv) => kv.key === `${PREFIX}${name}`);
  if (!group) throw new Error(`no record of replica group ${name} in the store`);
  const record = ReplicaGroup.decode(group.value);
  const replicas = own.filter((kv) => kv !== group);
  const inlineRecord = { ...record, replicas: [...record.replicas, ...replicas.map((kv) => Replica.decode(kv.value))] };
  return {
    keys: own.length,
    groupBytes: group.key.length + group.value.byteLength,
    maxReplicaBytes: Math.max(0, ...replicas.map((kv) => kv.key.length + kv.value.byteLength)),
    inlineBytes: group.key.length + ReplicaGroup.encode(inlineRecord).finish().byteLength,
    inline: record.replicas.length > 0,
  };
}

/** Applies `name` with `replicas` one-GPU replicas and waits until each has a placement group and a gang. */
export async function placeGroup(sdk: Cluster, name: string, replicas: number, timeoutMs: number): Promise<void> {
  await sdk.replicaGroups.apply({
    name, tp: 1, pp: 1, resources: { gpus: 1 },
    template: { command: 'sleep', args: ['3600'] },
    replicas: { min: 0, max: replicas + 1, initial: replicas },
    // Simulated agents run no ranks: the gangs stay STARTING, and must not time out while we measure.
    startup: { deadlineMs: 3_600_000 },
    // Nothing serves traffic: a replica scaled away need not wait for in-flight calls.
    drainDeadlineMs: 200,
  });
  await waitFor(`${replicas} replicas of ${name} placed`, async () => (await sdk.replicaGroups.get(name)).replicas.filter((r) => r.gangId).length === replicas, { timeoutMs });
}

/** Scales `name` up by one and counts the store writes of its keys until the new replica has its gang. */
export async function oneReplicaChange(sdk: Cluster, store: StateStore, name: string, timeoutMs: number): Promise<ChangeCost> {
  const before = await sdk.replicaGroups.get(name);
  const ids = new Set(before.replicas.map((r) => r.id));
  const { inlineBytes } = await groupKeys(store, name);
  const watch = await store.watch(`${PREFIX}${name}`, { fromRevision: (await store.revision()) + 1 });
  const perRevision = new Map<number, number>();
  let seenRevision = 0;
  const own = (key: string) => key === `${PREFIX}${name}` || key.startsWith(`${PREFIX}${name}/`);
  const count = (e: WatchEvent) => {
    const rev = e.type === 'put' ? e.kv.modRevision : e.modRevision;
    seenRevision = Math.max(seenRevision, rev);
    if (!own(e.type === 'put' ? e.kv.key : e.key)) return;
    const bytes = e.type === 'put' ? e.kv.key.length + e.kv.value.byteLength : e.key.length;
    perRevision.set(rev, (perRevision.get(rev) ?? 0) + bytes);
  };
  const reading = (async () => {
    for await (const batch of watch) batch.forEach(count);
  })();
  try {
    await sdk.replicaGroups.scale(name, before.replicas.length + 1);
    await waitFor('the new replica has its gang', async () => (await sdk.replicaGroups.get(name)).replicas.some((r) => !ids.has(r.id) && r.gangId), { timeoutMs });
    // The marker: the watch has delivered the last write under the prefix, so none is missed.
    const { kvs } = await readAll(store, PREFIX);
    const last = Math.max(...kvs.map((kv) => kv.modRevision));
    await waitFor('the watch caught up', () => seenRevision >= last, { timeoutMs });
  } finally {
    await watch.close();
    await reading.catch(() => undefined);
  }
  const writes = [...perRevision.values()];
  return { writes: writes.length, bytes: writes.reduce((a, b) => a + b, 0), maxWriteBytes: Math.max(0, ...writes), inlineBytes: writes.length * inlineBytes };
}

export interface AnswerBytes {
  /** GetReplicaGroup pages at the default page size, and the largest of them (encoded bytes). */
  getPages: number;
  maxGetBytes: number;
  /** Replicas read over all pages (the whole group). */
  replicasRead: number;
  /** One ListReplicaGroups page holding the group. */
  listBytes: number;
  /** The group with every replica in one answer, as GetReplicaGroup sent it before replica pages. */
  wholeBytes: number;
}

/** The encoded sizes of the head's answers about `name`, read with a raw gRPC client (the SDK hides them). */
export async function answerBytes(head: { address: string; tokenFile: string; tls: { ca: string; cert: string; key: string } | undefined }, name: string): Promise<AnswerBytes> {
  const client = new ReplicaGroupServiceClient(head.address, head.tls ? grpcChannelCredentials(head.tls) : credentials.createInsecure(), clientChannelOptions());
  const md: Metadata = tokenMetadata(await readToken(head.tokenFile));
  const get = (req: GetReplicaGroupRequest) => new Promise<ReplicaGroup>((resolve, reject) => client.getReplicaGroup(req, md, (err: ServiceError | null, res?: ReplicaGroup) => (err ? reject(err) : resolve(res!))));
  try {
    const sizes: number[] = [];
    const replicas: Replica[] = [];
    let page: ReplicaGroup | undefined;
    do {
      page = await get({ name, replicaPageSize: 0, replicaPageToken: page?.replicaPage?.nextPageToken ?? '', replicaStates: [], replicaRevision: '' });
      sizes.push(ReplicaGroup.encode(page).finish().byteLength);
      replicas.push(...page.replicas);
    } while (page.replicaPage?.nextPageToken);
    const list = await new Promise<ListReplicaGroupsResponse>((resolve, reject) => client.listReplicaGroups({ pageSize: 0, pageToken: '', namePrefix: name }, md, (err, res) => (err ? reject(err) : resolve(res!))));
    return {
      getPages: sizes.length,
      maxGetBytes: Math.max(...sizes),
      replicasRead: replicas.length,
      listBytes: ListReplicaGroupsResponse.encode(list).finish().byteLength,
      wholeBytes: ReplicaGroup.encode({ ...page, replicas, replicaPage: undefined }).finish().byteLength,
    };
  } finally {
    client.close();
  }
}
