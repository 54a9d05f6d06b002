/**
 * Ray's placement-group shape at cluster scale: one head (embedded store),
 * N simulated agents (bench/agents: they acknowledge reservations), then
 * rounds of "100 one-bundle groups created concurrently, all waited until
 * CREATED, all removed" through the SDK. Prints each round's rate (groups
 * per second, create → ready → remove) and the median; the target is
 * the rate at 10,000 nodes ≥ 0.7× the rate at 100.
 *
 *   pnpm build && npx tsx bench/pg-scale.ts [--nodes 10000] [--rounds 7] [--groups 100] [--processes 2] [--cpu-prof <dir>]
 *                                           [--ready-timeout-ms 60000]
 *
 * --cpu-prof <dir>: the head writes a V8 CPU profile there when it exits.
 */
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { LocalCluster, procInfo, waitFor } from '@muster/testing';
import { Fleet } from './agents/fleet.js';

const { values: a } = parseArgs({
  options: {
    nodes: { type: 'string', default: '10000' },
    rounds: { type: 'string', default: '7' },
    groups: { type: 'string', default: '100' },
    processes: { type: 'string', default: '2' },
    'cpu-prof': { type: 'string' },
    'ready-timeout-ms': { type: 'string', default: '60000' },
  },
});
const nodes = Number(a.nodes);
const rounds = Number(a.rounds);
const groups = Number(a.groups);
const readyTimeoutMs = Number(a['ready-timeout-ms']);
const headNodeArgs = a['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${a['cpu-prof']}`] : [];
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

const cluster = await LocalCluster.start({ workers: 0, headNodeArgs });
const token = readFileSync(cluster.tokenFile, 'utf8').trim();
const fleet = Fleet.start({ head: cluster.address, token, tlsCa: cluster.tls?.ca, agents: nodes, processes: Number(a.processes) });
try {
  const t0 = performance.now();
  await waitFor(`${nodes} agents registered`, () => fleet.stats().registered === nodes, { timeoutMs: 300_000, intervalMs: 500 });
  const registerS = Math.round(performance.now() - t0) / 1000;
  const sdk = await cluster.connect();
  await waitFor(`${nodes} nodes alive`, async () => (await sdk.summary()).nodesAlive === nodes || undefined, { timeoutMs: 60_000, intervalMs: 500 });
  await new Promise((r) => setTimeout(r, 2_000)); // registration's tail (inventories, first heartbeats) settles

  const rates: number[] = [];
  const headCpu = () => procInfo(cluster.head.process.pid)?.cpuMs ?? 0;
  const cpu0 = headCpu();
  for (let round = 0; round < rounds; round++) {
    const t = performance.now();
    const pgs = await Promise.all(Array.from({ length: groups }, (_, i) =>
      sdk.placementGroups.create({ name: `r${round}-${i}`, bundles: [{ cpuMillis: 10 }] })));
    await Promise.all(pgs.map((pg) => pg.ready({ timeout: readyTimeoutMs })));
    await Promise.all(pgs.map((pg) => pg.remove()));
    const rate = Math.round(groups / ((performance.now() - t) / 1000));
    rates.push(rate);
    console.log(JSON.stringify({ round, groupsPerSecond: rate }));
  }
  const headCpuMsPerGroup = Math.round(((headCpu() - cpu0) / (rounds * groups)) * 100) / 100;
  sdk.close();
  console.log(JSON.stringify({
    bench: 'pg-scale', nodes, groups, rounds, registerS,
    medianGroupsPerSecond: median(rates), rates, headCpuMsPerGroup,
    loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
    machine: `${cpus().length}× ${cpus()[0]?.model}`,
  }));
} finally {
  await fleet.stop();
  await cluster.stop();
}
