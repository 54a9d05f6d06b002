/**
 * Head CPU per gang launch at cluster scale (issue 15, point 4: the ports in
 * use were found by a scan of every live gang per launch; now an index,
 * packages/head/src/controllers/port-index.ts). One head (embedded store),
 * N simulated agents (bench/agents, each its own loopback address, so its
 * own port space as a real host; `runShards`: they acknowledge launches, so
 * gangs reach READY), then:
 *  1. --live one-rank gangs launched and READY (one-GPU groups: at most 8 a
 *     node; more than the 2,768 ports of one host's range, so they must
 *     spread over hosts);
 *  2. --rounds rounds: the head's CPU over an idle window as long as the
 *     last round (heartbeats of N agents cost CPU too), then --batch gangs
 *     launched concurrently on groups placed beforehand and waited READY,
 *     then stopped (outside the measurement, so the live count stays).
 * Prints each round and the medians: head CPU ms per launch (as measured,
 * and net of the idle window's rate), launches per second.
 *
 *   pnpm build && npx tsx bench/gang-scale.ts [--nodes 10000] [--live 3000] [--batch 100] [--rounds 7] [--processes 2]
 *                                             [--cpu-prof <dir>]
 */
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { connect, type Cluster } from '@muster/sdk';
import { LocalCluster, procInfo, waitFor } from '@muster/testing';
import { Fleet } from './agents/fleet.js';

const { values: a } = parseArgs({
  options: {
    nodes: { type: 'string', default: '10000' },
    live: { type: 'string', default: '3000' },
    batch: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '7' },
    processes: { type: 'string', default: '2' },
    'cpu-prof': { type: 'string' },
  },
  strict: true,
});
const num = (name: 'nodes' | 'live' | 'batch' | 'rounds' | 'processes'): number => {
  const v = Number(a[name]);
  if (!Number.isInteger(v) || v < 1) throw new Error(`gang-scale: --${name} must be a whole number ≥ 1, got ${a[name]}`);
  return v;
};
const [nodes, live, batch, rounds] = [num('nodes'), num('live'), num('batch'), num('rounds')];
if ((live + batch * rounds) > nodes * 8) throw new Error(`gang-scale: ${live + batch * rounds} one-GPU groups do not fit on ${nodes} nodes of 8 GPUs`);
const headNodeArgs = a['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${a['cpu-prof']}`] : [];
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const round2 = (x: number) => Math.round(x * 100) / 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `work` over `items`, at most `width` at a time. */
async function chunked<T>(items: readonly T[], width: number, work: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += width) await Promise.all(items.slice(i, i + width).map(work));
}

const placeGroups = (sdk: Cluster, names: readonly string[]) =>
  chunked(names, 100, async (name) => (await sdk.placementGroups.create({ name, strategy: 'PACK', bundles: [{ gpus: 1 }] })).ready({ timeout: 120_000 }));
const launchGang = async (sdk: Cluster, name: string) => {
  const g = await sdk.gangs.launch({ name, placementGroup: name, tp: 1, pp: 1, template: { command: '/bin/true', ports: [{ name: 'http' }] } });
  await g.ready({ timeout: 120_000 });
  return g;
};

const cluster = await LocalCluster.start({ workers: 0, headNodeArgs });
const token = readFileSync(cluster.tokenFile, 'utf8').trim();
const fleet = Fleet.start({ head: cluster.address, token, tlsCa: cluster.tls?.ca, agents: nodes, processes: num('processes'), runShards: true });
try {
  await waitFor(`${nodes} agents registered`, () => fleet.stats().registered === nodes, { timeoutMs: 300_000, intervalMs: 500 });
  // A loaded 2-core machine with 10,000 agents: calls get a minute, not the default 10 s (creates and launches carry request ids: a retry is not a second one).
  const sdk = await connect({ ...cluster.clientOptions(), callTimeoutMs: 120_000 });
  await waitFor(`${nodes} nodes alive`, async () => (await sdk.summary()).nodesAlive === nodes || undefined, { timeoutMs: 60_000, intervalMs: 500 });
  const headCpu = () => procInfo(cluster.head.process.pid)?.cpuMs ?? 0;
  await sleep(2_000); // registration's tail (inventories, first heartbeats) settles

  const liveNames = Array.from({ length: live }, (_, i) => `live-${i}`);
  const roundNames = Array.from({ length: rounds }, (_, r) => Array.from({ length: batch }, (_, i) => `r${r}-${i}`));
  const t0 = performance.now();
  await placeGroups(sdk, [...liveNames, ...roundNames.flat()]);
  const placedS = round2((performance.now() - t0) / 1000);
  const t1 = performance.now();
  await chunked(liveNames, 100, (name) => launchGang(sdk, name));
  const liveS = round2((performance.now() - t1) / 1000);
  console.log(JSON.stringify({ nodes, groupsPlaced: live + batch * rounds, placedS, liveGangs: live, liveS }));

  const perLaunch: number[] = [];
  const netPerLaunch: number[] = [];
  const rates: number[] = [];
  let lastS = 2;
  for (let r = 0; r < rounds; r++) {
    // The idle rate now (heartbeats, sweeps), over as long as the last round took.
    const i0 = headCpu();
    const it = performance.now();
    await sleep(lastS * 1000);
    const idleCores = (headCpu() - i0) / (performance.now() - it);
    const c0 = headCpu();
    const t = performance.now();
    const gangs = await Promise.all(roundNames[r]!.map((name) => launchGang(sdk, name)));
    const ms = performance.now() - t;
    const cpuMs = headCpu() - c0;
    lastS = Math.max(1, ms / 1000);
    perLaunch.push(round2(cpuMs / batch));
    netPerLaunch.push(round2(Math.max(0, cpuMs - idleCores * ms) / batch));
    rates.push(Math.round(batch / (ms / 1000)));
    console.log(JSON.stringify({ round: r, headCpuMsPerLaunch: perLaunch.at(-1), netOfIdle: netPerLaunch.at(-1), idleCores: round2(idleCores), launchesPerSecond: rates.at(-1) }));
    await Promise.all(gangs.map((g) => g.stop()));
  }
  sdk.close();
  console.log(JSON.stringify({
    bench: 'gang-scale', nodes, liveGangs: live, batch, rounds,
    medianHeadCpuMsPerLaunch: median(perLaunch), medianNetOfIdle: median(netPerLaunch), medianLaunchesPerSecond: median(rates),
    perLaunch, netPerLaunch, rates,
    loadavg: loadavg().map(round2),
    machine: `${cpus().length}× ${cpus()[0]?.model}`,
  }));
} finally {
  await fleet.stop();
  await cluster.stop();
}
