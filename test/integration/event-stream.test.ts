/**
 * Cluster events at scale of time (issue 15, points 6 and 7), on etcd with
 * two heads:
 *  - ids keep increasing across a failover whose new leader's clock is an
 *    hour behind the old one's (a clock step, injected by the test-only
 *    --test-clock-offset-ms), and a watcher that resumes across the failover
 *    sees every retained event once, in order;
 *  - a consumer that stops reading is cut by the head with
 *    MUSTER_CONSUMER_TOO_SLOW ("resume from id N") after a bounded number of
 *    events, and the SDK's events() resumes by itself from its last id,
 *    losing and repeating none.
 * And the leader compacts etcd's history (every 10 s here, 5 min by
 * default; head/src/state/compactor.ts), across the failover too.
 */
import { appendFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromGrpcError, grpcChannelCredentials, tokenMetadata } from '@muster/common';
import { ClusterServiceClient, type ClusterEvent } from '@muster/proto';
import type { Cluster, ClusterEventView } from '@muster/sdk';
import { openStore, type StateStore } from '@muster/head/state';
import { LocalCluster, waitFor } from '@muster/testing';

const BUFFER = 16;
let cluster: LocalCluster;
let sdk: Cluster;
let nodeId: string;

beforeAll(async () => {
  const logDir = process.env.MUSTER_TEST_LOGS;
  const onLine = logDir ? (name: string, line: string) => appendFileSync(join(logDir, `event-stream-${name}.log`), `${line}\n`) : undefined;
  cluster = await LocalCluster.start({ store: 'etcd', heads: 2, workers: 1, headArgs: ['--stream-buffer-messages', String(BUFFER), '--store-compaction-interval-ms', '10000'], onLine });
  sdk = await cluster.connect();
  await cluster.waitForAlive(1);
  nodeId = (await sdk.nodes())[0]!.id;
}, 60_000);

afterAll(async () => {
  sdk?.close();
  await cluster?.stop();
});

/** Two events per round: node.draining, node.uncordoned. */
async function drainRounds(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await sdk.drainNode(nodeId, { reason: `round ${i}` });
    await sdk.uncordonNode(nodeId);
  }
}

async function retained(): Promise<ClusterEventView[]> {
  const all: ClusterEventView[] = [];
  for await (const e of sdk.events({ replay: true, untilReplayed: true })) all.push(e);
  return all;
}

const increasing = (ids: string[]) => ids.every((id, i) => i === 0 || id > ids[i - 1]!);

describe('cluster events', () => {
  it('cuts a consumer that stops reading, with the id to resume from; the SDK resumes by itself and loses none', async () => {
    const leader = await cluster.waitForLeader();
    const token = (await readFile(cluster.tokenFile, 'utf8')).trim();
    const raw = new ClusterServiceClient(leader.address, grpcChannelCredentials(cluster.tls!));
    const slow = raw.watchEvents({ replay: false, afterId: '', kinds: [], markReplayEnd: true }, tokenMetadata(token));
    const ended = new Promise<unknown>((resolve) => {
      slow.on('error', resolve);
      slow.on('end', () => resolve(undefined));
    });
    // A first message, then the raw reader stops reading.
    const first = await new Promise<ClusterEvent>((resolve) => slow.once('data', resolve));
    expect(first.replayEnd).toBe(true);
    slow.pause();

    // An SDK reader that stops after its first event until the raw reader was cut.
    const abort = new AbortController();
    const seen: ClusterEventView[] = [];
    let replayed = false;
    let open: () => void = () => {};
    const gate = new Promise<void>((r) => (open = r));
    const watching = (async () => {
      for await (const e of sdk.events({ signal: abort.signal, onReplayed: () => (replayed = true) })) {
        seen.push(e);
        if (seen.length === 1) await gate;
      }
    })();
    await waitFor('the SDK watcher to be live', () => replayed || undefined);

    const before = (await retained()).length;
    // Enough events to fill the HTTP/2 window, grpc-js's buffer and then the head's 16.
    // grpc-js hands a stream's status to the client only after its messages, so the head's count shows the cuts.
    const cuts = async () => {
      const metrics = await (await fetch(`http://${leader.metricsAddress}/metrics`)).text();
      return Number(/muster_rpc_total(?:_total)?\{[^}]*code="MUSTER_CONSUMER_TOO_SLOW"[^}]*\} (\d+)/.exec(metrics)?.[1] ?? 0);
    };
    for (let round = 0; round < 60 && (await cuts()) < 2; round++) await drainRounds(50);
    expect(await cuts()).toBe(2); // the raw reader and the SDK's, both stalled
    open();
    slow.resume();
    const err = fromGrpcError(await ended);
    expect(err.code).toBe('MUSTER_CONSUMER_TOO_SLOW');
    expect(err.message).toMatch(/consumer too slow: the event stream fell more than 16 messages behind; resume from id \d{13}-\d{6}/);
    raw.close();

    // The SDK's watcher, cut too, resumed by itself and missed nothing.
    const all = (await retained()).slice(before);
    await waitFor('the SDK watcher to catch up', () => seen.length >= all.length || undefined, { timeoutMs: 30_000 });
    abort.abort();
    await watching;
    expect(seen.slice(0, all.length).map((e) => e.id)).toEqual(all.map((e) => e.id));
  }, 120_000);

  it('ids keep increasing across a failover to a head whose clock is an hour behind; a resumed watcher sees each event once', async () => {
    const abort = new AbortController();
    const seen: ClusterEventView[] = [];
    const watching = (async () => {
      for await (const e of sdk.events({ replay: true, signal: abort.signal })) seen.push(e);
    })();
    await drainRounds(3);
    const old = await cluster.waitForLeader();
    const standby = cluster.heads.find((h) => h.index !== old.index)!;
    // The standby comes back with its clock stepped back an hour, then takes over.
    process.env.MUSTER_TEST_CLOCK_OFFSET_MS = String(-3_600_000);
    try {
      await cluster.restartHead(standby.index);
    } finally {
      delete process.env.MUSTER_TEST_CLOCK_OFFSET_MS;
    }
    const lastBefore = (await retained()).at(-1)!;
    await cluster.stopHead(old.index, 'SIGKILL');
    const next = await cluster.waitForLeader({ not: old, timeoutMs: 30_000 });
    expect(next.index).toBe(standby.index);
    await drainRounds(3);

    const all = await retained();
    const after = all.filter((e) => e.id > lastBefore.id);
    expect(after.length).toBeGreaterThanOrEqual(6);
    // The new leader's clock is behind: its events' times are, their ids are not.
    expect(after.at(-1)!.time.getTime()).toBeLessThan(lastBefore.time.getTime() - 3_000_000);
    expect(increasing(all.map((e) => e.id))).toBe(true);
    await waitFor('the watcher to resume and catch up', () => seen.some((e) => e.id === all.at(-1)!.id) || undefined, { timeoutMs: 30_000 });
    abort.abort();
    await watching;
    const ids = seen.map((e) => e.id);
    expect(increasing(ids)).toBe(true); // never back, never twice
    expect(ids.slice(0, all.length)).toEqual(all.map((e) => e.id)); // none skipped
  }, 120_000);

  it('the leader compacts etcd\'s history: a revision older than one interval can no longer be read', async () => {
    const store: StateStore = await openStore({ kind: 'etcd', endpoints: [cluster.etcd!.endpoint], credentials: cluster.etcd!.credentials() });
    try {
      const before = await store.revision();
      // Writes after `before`, so the next ticks have something to compact past.
      await (await sdk.placementGroups.create({ name: 'compaction-marker', strategy: 'PACK', bundles: [{ cpuMillis: 10 }] })).remove();
      const compacted = await waitFor('etcd history below the marker compacted', async () => {
        const r = await store.range('/muster/', { revision: before, limit: 1 }).then(() => undefined, (e: { code?: string }) => e.code);
        return r === 'MUSTER_STORE_COMPACTED' ? r : undefined;
      }, { timeoutMs: 45_000 });
      expect(compacted).toBe('MUSTER_STORE_COMPACTED');
      // The cluster still answers after it (a watch resumed from a compacted revision reads everything again).
      expect((await sdk.nodes()).length).toBeGreaterThan(0);
    } finally {
      await store.close();
    }
  }, 60_000);
});
