// bench/call-cpu: what a caller process does with its rounds, the same for the SDK's router
// (caller.mjs) and the raw floor (floor.mjs): warm up (BENCH_WARMUP calls, 64 in flight), say
// "ready", then answer run.ts's messages — {seq}: the p50 (ms) of that many calls made one at a
// time; {calls, inflight}: that many calls with that many in flight, answered with the process's
// CPU (process.cpuUsage: utime + stime, µs) and wall time over exactly those calls; "stop".
import { performance } from 'node:perf_hooks';

/** `call(i)` is one call; `stop()` closes what the caller opened. */
export async function serveRounds(call, stop) {
  const run = async (n, width) => {
    let next = 0;
    await Promise.all(Array.from({ length: width }, async () => {
      while (next < n) await call(next++);
    }));
  };
  await run(Number(process.env.BENCH_WARMUP ?? 5_000), 64);
  process.send('ready');
  process.on('message', async (m) => {
    if (m === 'stop') {
      await stop();
      process.exit(0);
    }
    if (m.seq) {
      const lat = new Float64Array(m.seq);
      for (let i = 0; i < m.seq; i++) {
        const t0 = performance.now();
        await call(0);
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
