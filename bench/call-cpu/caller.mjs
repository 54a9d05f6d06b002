// bench/call-cpu: the caller, one process per tree (BENCH_TREE: its packages/dataplane and common
// dist), so no tree's garbage or JIT state lands in another's counters. One Router, as the SDK's
// replica-group handle makes it (default limits: 32 per replica from the membership's default).
// On {calls, inflight}: that many calls with that many in flight, then replies with its own CPU
// (process.cpuUsage: utime + stime, in µs) and wall time over exactly those calls.
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

const tree = process.env.BENCH_TREE;
const { Router } = await import(pathToFileURL(`${tree}/packages/dataplane/dist/index.js`).href);
const { connectNats } = await import(pathToFileURL(`${tree}/packages/common/dist/index.js`).href);
const { access, membership } = JSON.parse(process.env.BENCH_SETUP);
const nc = await connectNats(access, 'bench-call-cpu');
const router = new Router(nc, undefined, { group: membership.group, ...(access.inboxPrefix ? { inboxPrefix: access.inboxPrefix } : {}) });
router.update(membership);

async function run(n, width) {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) await router.call(next++);
  }));
}

await run(Number(process.env.BENCH_WARMUP ?? 5_000), 64);
process.send('ready');
process.on('message', async (m) => {
  if (m === 'stop') {
    router.close();
    await nc.close();
    process.exit(0);
  }
  if (m.seq) {
    // p50 of m.seq calls made one at a time (ms).
    const lat = new Float64Array(m.seq);
    for (let i = 0; i < m.seq; i++) {
      const t0 = performance.now();
      await router.call(0);
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
