/**
 * Node failure detection time with DEFAULT settings (1 s heartbeats, dead
 * after 3 s of silence): SIGKILL a worker, time until the SDK receives its
 * `node.dead` event. Repeats N times (default 7) and prints the median.
 *
 *   pnpm build && npx tsx bench/node-failure.ts [runs]
 */
import { cpus } from 'node:os';
import { LocalCluster, waitFor } from '@muster/testing';

const runs = Number(process.argv[2] ?? 7);
const cluster = await LocalCluster.start({ workers: 2, profile: 'hgx-h100-8' });
const results: number[] = [];
try {
  const sdk = await cluster.connect();
  const info = await sdk.info();
  console.log(`heartbeat ${info.heartbeatIntervalMs} ms, dead after ${info.deadAfterMs} ms`);
  for (let i = 0; i < runs; i++) {
    const stop = new AbortController();
    const dead: number[] = [];
    let live = false;
    const watching = (async () => {
      for await (const e of sdk.events({ replay: true, signal: stop.signal, kinds: ['node.'] })) {
        live = true;
        if (e.kind === 'node.dead' && e.nodeId === 'node-2') dead.push(Date.now());
      }
    })();
    await waitFor('event stream', () => live);
    dead.length = 0;
    const killedAt = Date.now();
    cluster.workers.get('node-2')!.process.signal('SIGKILL');
    await waitFor('node.dead', () => dead.length > 0, { timeoutMs: 10_000 });
    results.push(dead[0]! - killedAt);
    console.log(`run ${i + 1}: detected after ${dead[0]! - killedAt} ms`);
    stop.abort();
    await watching;
    await cluster.restartWorker('node-2');
    // Let the restarted node heartbeat a while, so the next kill lands at a random phase.
    await new Promise((r) => setTimeout(r, 1_000 + Math.random() * 1_000));
  }
  sdk.close();
} finally {
  await cluster.stop();
}
const sorted = [...results].sort((a, b) => a - b);
const median = sorted[Math.floor(sorted.length / 2)]!;
console.log(JSON.stringify({ bench: 'node-failure', runs, medianMs: median, minMs: sorted[0], maxMs: sorted.at(-1), machine: `${cpus().length}× ${cpus()[0]?.model}` }));
