/**
 * Head failover time with DEFAULT settings (2 s leader lease, 1 s heartbeats,
 * dead after 3 s): three heads on one etcd, two workers. Each run SIGKILLs
 * the leader and measures
 *   - elected: until another head logs "became leader";
 *   - serving: until an SDK control call (through all head addresses,
 *     started right after the kill) has an answer from the new leader.
 * The killed head is started again as a standby before the next run, and a
 * random pause puts each kill at a random phase of the lease renewals.
 *
 *   pnpm build && npx tsx bench/failover.ts [runs]
 */
import { cpus } from 'node:os';
import { LocalCluster, kill } from '@muster/testing';

const runs = Number(process.argv[2] ?? 10);
const cluster = await LocalCluster.start({ store: 'etcd', heads: 3, workers: 2, profile: 'hgx-h100-8' });
const elected: number[] = [];
const serving: number[] = [];
try {
  const sdk = await cluster.connect();
  await cluster.waitForAlive(2);
  for (let i = 0; i < runs; i++) {
    const old = await cluster.waitForLeader();
    await sdk.nodes(); // the SDK talks to the leader now
    const killedAt = Date.now();
    await kill(old.process);
    const answered = sdk.nodes({ state: 'alive' }).then(() => Date.now() - killedAt);
    const next = await cluster.waitForLeader({ not: old, timeoutMs: 15_000 });
    elected.push(Date.now() - killedAt);
    serving.push(await answered);
    console.log(`run ${i + 1}: ${next.name} elected after ${elected.at(-1)} ms, SDK answered after ${serving.at(-1)} ms`);
    await cluster.startHead(old.index);
    await new Promise((r) => setTimeout(r, 1_000 + Math.random() * 1_000));
  }
  sdk.close();
} finally {
  await cluster.stop();
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(JSON.stringify({
  bench: 'failover',
  runs,
  electedMedianMs: median(elected),
  electedMaxMs: Math.max(...elected),
  servingMedianMs: median(serving),
  servingMaxMs: Math.max(...serving),
  machine: `${cpus().length}× ${cpus()[0]?.model}`,
}));
