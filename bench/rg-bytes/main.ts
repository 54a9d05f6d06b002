/**
 * Store bytes per replica change of a large replica group (measure.ts says
 * how): a cluster on etcd, simulated agents with 8 GPUs each, a group of
 * --replicas one-GPU replicas, scaled up by one. Prints one JSON line: the
 * group's keys, the bytes the change wrote and what the old inline layout
 * would have written for the same writes, the bytes of the API's answers
 * about the group (largest replica page, list page, and the one answer with
 * every replica that replica pages replaced), with the load average.
 *
 *   pnpm build && npx tsx bench/rg-bytes/main.ts [--replicas 1000]
 */
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { EtcdStore } from '@muster/head/state';
import { connect } from '@muster/sdk';
import { LocalCluster } from '@muster/testing';
import { AgentPool } from '../agents/pool.js';
import { answerBytes, groupKeys, oneReplicaChange, placeGroup } from './measure.js';

const { values: a } = parseArgs({ options: { replicas: { type: 'string', default: '1000' } }, strict: true });
const replicas = Number(a.replicas);
if (!Number.isInteger(replicas) || replicas < 1) throw new Error(`rg-bytes: --replicas must be a whole number ≥ 1, got ${a.replicas}`);

// Port spaces are per host address. Simulated agents used to share 127.0.0.1, so 10,000 replicas
// needed more than the default 30000-32767; each now registers its own loopback address
// (sim-agent.ts `simAddress`), and the widened range is kept so the command is the one measured
// in docs/benchmarks.md (simulated agents bind nothing).
const cluster = await LocalCluster.start({ workers: 0, store: 'etcd', shardPortRange: '20000-59999' });
let pool: AgentPool | undefined;
let store: EtcdStore | undefined;
try {
  const token = readFileSync(cluster.tokenFile, 'utf8').trim();
  // 8 GPUs an agent, a quarter spare so placement never waits for the last GPU.
  pool = await AgentPool.start({ head: cluster.address, token, tlsCa: cluster.tls?.ca, agents: Math.ceil((replicas + 1) / 6), profile: 'hgx-h100-8' });
  const sdk = await connect(cluster.clientOptions());
  store = await EtcdStore.connect({ endpoints: [cluster.etcd!.endpoint], credentials: cluster.etcd!.credentials() });
  const t0 = performance.now();
  await placeGroup(sdk, 'big', replicas, 1_800_000);
  const placedS = (performance.now() - t0) / 1000;
  const keys = await groupKeys(store, 'big');
  const change = await oneReplicaChange(sdk, store, 'big', 60_000);
  const answers = await answerBytes(cluster, 'big');
  console.log(JSON.stringify({ bench: 'rg-bytes', replicas, store: 'etcd', placedS: Math.round(placedS * 10) / 10, keys, change, answers, load: loadavg().map((l) => Math.round(l * 100) / 100), cpus: cpus().length }));
  sdk.close();
} finally {
  await store?.close();
  await pool?.stop();
  await cluster.stop();
}
