/**
 * The raw NATS request/reply floor: what a call costs with nothing of Muster
 * in it — the same nats.js v3 client and connection options (connectNats),
 * the same nats-server (the LocalCluster's, TLS, operator mode), two
 * responder processes in a queue group (nats-responder.ts, as the replica
 * group has two replicas) answering a msgpack `null`. The SDK's call is
 * judged against it: p50 one at a time ≤ 1.3× the floor's, throughput with 64
 * in flight ≥ 0.8× the floor's.
 *
 * Its users are like the SDK's and the replicas' (not the test kit's
 * all-subjects user): the caller is minted with `callerPermissions` for one
 * group and its own inbox prefix, the responders with `replicaPermissions`
 * of that group, and the floor's subject is a replica subject of it. So
 * nats-server checks the same permissions per message on both sides, and
 * the comparison measures the SDK's code, not the server's permission work.
 *
 * Two ways to ask, both measured: `request` is nats.js' own `nc.request()`
 * (a timer and a promise per call, its shared inbox); `mux` is the least a
 * caller can do — publish with a reply subject under one wildcard inbox
 * subscription, a map from token to waiter, no timer. `mux` is the floor the
 * table uses (the stricter one: it is what the SDK's router does, minus
 * Muster's envelope, balancing and bookkeeping); `request` is printed beside it.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { connectNats, type NatsConnection } from '@muster/common';
import { callerInboxPrefix, callerPermissions, DEFAULT_SUBJECT_PREFIX, replicaPermissions, replicaSubject } from '@muster/contracts';
import type { NatsServer } from '@muster/local';

const GROUP = 'peers-floor';
/** A replica subject of the floor's group: what both floor users' permissions are about. */
const SUBJECT = replicaSubject(DEFAULT_SUBJECT_PREFIX, GROUP, 'floor');
/** msgpack for 1: a payload as small as the one the SDK side sends. */
const ONE = Uint8Array.of(0x01);

export interface Floor {
  /** One request/reply through `nc.request()`. */
  request(): Promise<unknown>;
  /** One request/reply published under the floor's own inbox subscription (no timer). */
  mux(): Promise<unknown>;
  close(): Promise<void>;
}

export async function startFloor(nats: NatsServer, responders = 2): Promise<Floor> {
  const children: ChildProcess[] = [];
  let nc: NatsConnection | undefined;
  try {
    for (let i = 0; i < responders; i++) {
      const p = fork(new URL('./nats-responder.ts', import.meta.url), {
        env: { ...process.env, BENCH_NATS_ACCESS: JSON.stringify(nats.mint(`peers-floor-responder-${i}`, replicaPermissions(DEFAULT_SUBJECT_PREFIX, GROUP))), BENCH_SUBJECT: SUBJECT },
        execArgv: ['--import', 'tsx'],
      });
      children.push(p);
      await new Promise<void>((resolve, reject) => {
        p.once('message', () => resolve());
        p.once('exit', (code) => reject(new Error(`floor responder exited with ${code} before it was ready`)));
      });
    }
    const inbox = callerInboxPrefix(`peers${randomUUID().replaceAll('-', '')}`);
    const conn = await connectNats({ ...nats.mint('peers-floor-client', callerPermissions(DEFAULT_SUBJECT_PREFIX, [GROUP], inbox)), inboxPrefix: inbox }, 'peers-floor-client');
    nc = conn;
    const prefix = `${inbox}.mux.`;
    const waiting = new Map<string, (data: Uint8Array) => void>();
    let next = 0;
    conn.subscribe(`${prefix}*`, {
      callback: (err, msg) => {
        const token = msg.subject.slice(prefix.length);
        const done = err ? undefined : waiting.get(token);
        waiting.delete(token);
        done?.(msg.data);
      },
    });
    await conn.flush();
    return {
      request: () => conn.request(SUBJECT, ONE, { timeout: 10_000 }),
      mux: () => new Promise((resolve) => {
        const token = (next++).toString(36);
        waiting.set(token, resolve);
        conn.publish(SUBJECT, ONE, { reply: prefix + token });
      }),
      async close() {
        await conn.close();
        for (const p of children) if (p.exitCode === null) p.kill('SIGTERM');
      },
    };
  } catch (e) {
    await nc?.close();
    for (const p of children) if (p.exitCode === null) p.kill('SIGTERM');
    throw e;
  }
}
