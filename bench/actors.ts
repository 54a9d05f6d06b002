/**
 * Actor call rates beside Ray's published microbenchmarks (1:1 async actor
 * calls ≈ 8,300/s, n:n ≈ 27,000/s): a real cluster (nats-server, head, 2
 * simulated workers), counter actors hosted on workers, and callers in this
 * process (1:1: one caller, one actor, `inflight` calls in flight; n:n: n
 * callers, each with its own connection, to n actors).
 *
 *   pnpm build && npx tsx bench/actors.ts [--n 2] [--calls 20000] [--inflight 64]
 */
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { LocalCluster } from '@muster/testing';

const { values: a } = parseArgs({ options: { n: { type: 'string', default: '2' }, calls: { type: 'string', default: '20000' }, inflight: { type: 'string', default: '64' } } });
const n = Number(a.n);
const calls = Number(a.calls);
const inflight = Number(a.inflight);
const actorModule = fileURLToPath(new URL('../test/fixtures/counter-actor.mjs', import.meta.url));

async function rate(actors: Array<{ call(m: string, ...x: unknown[]): Promise<unknown> }>, total: number): Promise<number> {
  let issued = 0;
  const t0 = performance.now();
  await Promise.all(actors.flatMap((actor) => Array.from({ length: inflight }, async () => {
    while (issued < total) {
      issued++;
      await actor.call('incr');
    }
  })));
  return Math.round(total / ((performance.now() - t0) / 1000));
}

const cluster = await LocalCluster.start({ workers: 2, profile: 'hgx-h100-8' });
try {
  const conns = await Promise.all(Array.from({ length: n }, () => cluster.connect()));
  const actors = await Promise.all(conns.map((c, i) => c.actors.create(actorModule, 'Counter', { name: `bench-${i}` })));
  await rate([actors[0]!], 2_000); // warm up
  const oneToOne = [];
  for (let r = 0; r < 3; r++) oneToOne.push(await rate([actors[0]!], calls));
  const nToN = [];
  for (let r = 0; r < 3; r++) nToN.push(await rate(actors, calls));
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[1]!;
  console.log(JSON.stringify({ bench: 'actor-calls', inflightPerCaller: inflight, calls, oneToOnePerSec: median(oneToOne), oneToOneRuns: oneToOne, nToN: n, nToNPerSec: median(nToN), nToNRuns: nToN, machine: `${cpus().length}× ${cpus()[0]?.model}` }));
  for (const actor of actors) await actor.kill();
  for (const c of conns) c.close();
} finally {
  await cluster.stop();
}
