// bench/call-cpu: the raw NATS request/reply floor's two ends, as bench/peers/floor.ts measures it
// (the same nats.js client and connectNats options, an all-subjects user, a queue group of two
// responders answering a msgpack null; the caller publishes under one wildcard inbox
// subscription, a map from token to waiter, no timer). BENCH_ROLE: "responder" or "caller";
// the caller answers {calls, inflight} as caller.mjs does.
import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';

const { connectNats } = await import(pathToFileURL(`${process.env.BENCH_TREE}/packages/common/dist/index.js`).href);
const access = JSON.parse(process.env.BENCH_ACCESS);
const SUBJECT = 'bench.floor';
const nc = await connectNats(access, `bench-floor-${process.env.BENCH_ROLE}`);
if (process.env.BENCH_ROLE === 'responder') {
  const NULL = Uint8Array.of(0xc0);
  nc.subscribe(SUBJECT, { queue: 'floor', callback: (_err, msg) => void msg.respond(NULL) });
  await nc.flush();
  process.send('ready');
  const stop = () => void nc.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('disconnect', stop);
} else {
  const ONE = Uint8Array.of(0x01);
  const prefix = `_INBOX.floor-${randomUUID()}.`;
  const waiting = new Map();
  let next = 0;
  nc.subscribe(`${prefix}*`, {
    callback: (err, msg) => {
      const token = msg.subject.slice(prefix.length);
      const done = err ? undefined : waiting.get(token);
      waiting.delete(token);
      done?.(msg.data);
    },
  });
  await nc.flush();
  const call = () => new Promise((resolve) => {
    const token = (next++).toString(36);
    waiting.set(token, resolve);
    nc.publish(SUBJECT, ONE, { reply: prefix + token });
  });
  const run = async (n, width) => {
    let i = 0;
    await Promise.all(Array.from({ length: width }, async () => {
      while (i < n) {
        i++;
        await call();
      }
    }));
  };
  await run(Number(process.env.BENCH_WARMUP ?? 5_000), 64);
  process.send('ready');
  process.on('message', async (m) => {
    if (m === 'stop') {
      await nc.close();
      process.exit(0);
    }
    if (m.seq) {
      // p50 of m.seq calls made one at a time (ms).
      const lat = new Float64Array(m.seq);
      for (let i = 0; i < m.seq; i++) {
        const t0 = performance.now();
        await call();
        lat[i] = performance.now() - t0;
      }
      lat.sort();
      process.send({ p50Ms: lat[Math.floor(m.seq / 2)] });
      return;
    }
    const cpu = process.cpuUsage();
    const t = performance.now();
    await run(m.calls, m.inflight);
    const wallMs = performance.now() - t;
    const d = process.cpuUsage(cpu);
    process.send({ cpuUs: d.user + d.system, wallMs });
  });
}
