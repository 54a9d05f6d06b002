/**
 * Data plane: an SDK call (Router.call) to a no-op TS replica (`serve()`),
 * over a local nats-server, msgpack payloads. The replica runs in a child
 * process (bench/dataplane-replica.ts); the client is this process.
 *
 *   npx tsx bench/dataplane.ts [--runs 3] [--seq 5000] [--calls 20000] [--inflight 64] [--nn 4] [--tls on|off] [--direct on|off]
 *
 * Per run: latency of `seq` sequential calls (p50, p99), then throughput of
 * `calls` calls with `inflight` in flight. Prints the median of the runs as
 * one JSON line. `--nn N` adds an n:n run: N replica processes and N client
 * processes (this file with --role client), each client doing `calls` calls.
 * NATS runs as a cluster runs it: operator mode, each side its own user
 * (the replica its group's, the client a caller's), over TLS unless
 * `--tls off`. `--direct on` (the SDK's default) lets the routers take the
 * direct path (docs/dataplane.md): the replicas listen on 127.0.0.1.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { cpus, platform, release } from 'node:os';
import { parseArgs } from 'node:util';
import { connectNats } from '@muster/common';
import type { NatsAccess } from '@muster/proto';
import { callerInboxPrefix, callerPermissions, DEFAULT_SUBJECT_PREFIX, natsCredentialEnv, replicaPermissions, replicaSubject, SHARD_ENV } from '@muster/contracts';
import { Router, type Membership } from '@muster/dataplane';
import { startNats, tempDir } from '@muster/testing';

const { values: a } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    seq: { type: 'string', default: '5000' },
    calls: { type: 'string', default: '20000' },
    inflight: { type: 'string', default: '64' },
    warmup: { type: 'string', default: '2000' },
    nn: { type: 'string', default: '0' },
    role: { type: 'string', default: 'main' },
    tls: { type: 'string', default: 'on' },
    direct: { type: 'string', default: 'on' },
  },
});
const [runs, seq, calls, inflight, warmup, nn] = [a.runs, a.seq, a.calls, a.inflight, a.warmup, a.nn].map(Number) as [number, number, number, number, number, number];
const group = 'bench';
const direct = a.direct !== 'off';

async function clientRouter(access: NatsAccess, m: Membership) {
  const conn = await connectNats(access, 'bench-client');
  const router = new Router(conn, undefined, { group, direct, maxOngoingPerReplica: 4_096, maxQueued: 100_000, ...(access.inboxPrefix ? { inboxPrefix: access.inboxPrefix } : {}) });
  router.update(m);
  return { router, close: async () => (router.close(), await conn.close()) };
}

async function sequential(router: Router, n: number): Promise<{ p50Ms: number; p99Ms: number; meanMs: number }> {
  const lat = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await router.call(i);
    lat[i] = performance.now() - t;
  }
  lat.sort();
  const r = (x: number) => Math.round(x * 1_000) / 1_000;
  return { p50Ms: r(lat[Math.floor(n * 0.5)]!), p99Ms: r(lat[Math.floor(n * 0.99)]!), meanMs: r(lat.reduce((s, x) => s + x, 0) / n) };
}

async function throughput(router: Router, n: number, width: number): Promise<number> {
  let next = 0;
  const t = performance.now();
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) {
      next++;
      await router.call(next);
    }
  }));
  return Math.round(n / ((performance.now() - t) / 1_000));
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

if (a.role === 'client') {
  // n:n client process: wait for "go", run, report calls/s.
  const { access, membership } = JSON.parse(process.env.BENCH_SETUP!) as { access: NatsAccess; membership: Membership };
  const c = await clientRouter(access, membership);
  await throughput(c.router, warmup, inflight);
  process.send!('ready');
  process.once('message', async () => {
    const perSec = await throughput(c.router, calls, inflight);
    process.send!({ perSec });
    await c.close();
    process.disconnect();
  });
} else {
  await main();
}

async function main(): Promise<void> {
  const dir = await tempDir('muster-bench-dp-');
  const nats = await startNats({ dir: dir.path, tls: a.tls !== 'off' });
  const callerInbox = callerInboxPrefix('bench');
  const caller = nats.mint('bench caller', callerPermissions(DEFAULT_SUBJECT_PREFIX, [group], callerInbox));
  const children: ChildProcess[] = [];
  const ready = (p: ChildProcess) => new Promise<void>((resolve, reject) => {
    p.once('message', () => resolve());
    p.once('exit', (code) => reject(new Error(`child exited with ${code} before it was ready`)));
  });
  const replica = async (id: string) => {
    const subject = replicaSubject(DEFAULT_SUBJECT_PREFIX, group, id);
    const user = nats.mint(`replica ${group}`, replicaPermissions(DEFAULT_SUBJECT_PREFIX, group));
    const creds = natsCredentialEnv({ servers: [nats.url], jwt: user.jwt, seed: user.seed, caPem: user.caPem });
    const env = { ...process.env, ...creds, [SHARD_ENV.GROUP]: group, [SHARD_ENV.REPLICA_ID]: id, [SHARD_ENV.SUBJECT]: subject, ...(direct ? { [SHARD_ENV.DATA_ADDR]: '127.0.0.1' } : {}) };
    const p = fork(new URL('./dataplane-replica.ts', import.meta.url), { env, execArgv: ['--import', 'tsx'] });
    children.push(p);
    await ready(p);
    return { replicaId: id, revision: 'r1', subject };
  };
  try {
    const one: Membership = { group, version: 1, replicas: [await replica('r0')] };
    const c = await clientRouter(caller, one);
    await sequential(c.router, warmup);
    await throughput(c.router, warmup, inflight);
    const perRun = [];
    for (let i = 0; i < runs; i++) perRun.push({ ...(await sequential(c.router, seq)), callsPerSec: await throughput(c.router, calls, inflight) });
    await c.close();
    let nToN: { clients: number; replicas: number; callsPerSec: number[] } | undefined;
    if (nn > 0) {
      const m: Membership = { group, version: 2, replicas: [one.replicas[0]!, ...(await Promise.all(Array.from({ length: nn - 1 }, (_, i) => replica(`r${i + 1}`))))] };
      const setup = JSON.stringify({ access: caller, membership: m });
      nToN = { clients: nn, replicas: nn, callsPerSec: [] };
      for (let r = 0; r < runs; r++) {
        const clients = Array.from({ length: nn }, () => fork(new URL(import.meta.url), ['--role', 'client', '--calls', String(calls), '--inflight', String(inflight), '--warmup', String(warmup), '--direct', direct ? 'on' : 'off'], { env: { ...process.env, BENCH_SETUP: setup }, execArgv: ['--import', 'tsx'] }));
        children.push(...clients);
        await Promise.all(clients.map(ready));
        const results = clients.map((p) => new Promise<number>((resolve) => p.once('message', (msg: { perSec: number }) => resolve(msg.perSec))));
        for (const p of clients) p.send('go');
        nToN.callsPerSec.push((await Promise.all(results)).reduce((s, x) => s + x, 0));
      }
    }
    console.log(JSON.stringify({
      bench: 'dataplane',
      command: `npx tsx bench/dataplane.ts ${process.argv.slice(2).join(' ')}`.trim(),
      natsTls: a.tls !== 'off',
      direct,
      machine: `${cpus().length}× ${cpus()[0]?.model}, ${platform()} ${release()}, node ${process.version}`,
      runs,
      sequentialCalls: seq,
      throughputCalls: calls,
      inflight,
      p50Ms: median(perRun.map((r) => r.p50Ms)),
      p99Ms: median(perRun.map((r) => r.p99Ms)),
      callsPerSec: median(perRun.map((r) => r.callsPerSec)),
      ...(nToN ? { nToN: { clients: nToN.clients, replicas: nToN.replicas, callsPerSec: median(nToN.callsPerSec) } } : {}),
      perRun,
    }));
  } finally {
    for (const p of children) if (p.exitCode === null) p.kill('SIGTERM');
    await nats.stop();
    await dir.remove();
  }
}
