/**
 * The raw NATS request/reply floor: what a call costs with nothing of Muster
 * in it — the same nats.js v3 client and connection options (connectNats),
 * the same nats-server (the LocalCluster's, TLS, operator mode), two
 * responder processes in a queue group (nats-responder.ts, as the replica
 * group has two replicas) answering a msgpack `null`. The SDK's call is
 * judged against it: p50 one at a time ≤ 1.3× the floor's, throughput with 64
 * in flight ≥ 0.8× the floor's.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { connectNats, type NatsConnection } from '@muster/common';
import type { NatsServer } from '@muster/local';

const SUBJECT = 'peers.floor';
/** msgpack for 1: a payload as small as the one the SDK side sends. */
const ONE = Uint8Array.of(0x01);

export interface Floor {
  /** One request/reply, as a caller makes it. */
  call(): Promise<unknown>;
  close(): Promise<void>;
}

export async function startFloor(nats: NatsServer, responders = 2): Promise<Floor> {
  const children: ChildProcess[] = [];
  let nc: NatsConnection | undefined;
  try {
    for (let i = 0; i < responders; i++) {
      const p = fork(new URL('./nats-responder.ts', import.meta.url), {
        env: { ...process.env, BENCH_NATS_ACCESS: JSON.stringify(nats.access), BENCH_SUBJECT: SUBJECT },
        execArgv: ['--import', 'tsx'],
      });
      children.push(p);
      await new Promise<void>((resolve, reject) => {
        p.once('message', () => resolve());
        p.once('exit', (code) => reject(new Error(`floor responder exited with ${code} before it was ready`)));
      });
    }
    const conn = await connectNats(nats.access, 'peers-floor-client');
    nc = conn;
    return {
      call: () => conn.request(SUBJECT, ONE, { timeout: 10_000 }),
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
