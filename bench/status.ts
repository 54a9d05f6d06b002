/**
 * `muster status` at scale: registers N in-process agents (the worker's own
 * Agent class, real gRPC streams, simulated 8-GPU inventory, default 1 s
 * heartbeats) with one head, then times, R times each:
 *  - `muster status` as a user runs it (a CLI process: summary only above
 *    100 nodes), end to end;
 *  - `muster status --nodes --json` (every node, page by page);
 *  - the SDK's summary() and a full nodes() walk, in process.
 * Prints the medians and the largest ListNodes page (nodes).
 *
 *   pnpm build && npx tsx bench/status.ts [nodes=2000] [runs=5] [--sim [--processes 2]]
 *
 * --sim: the nodes are the agent simulator's (bench/agents, forked processes,
 * `sim: true` label, no rack label) instead of in-process Agents: the way to
 * 10,000 nodes on a small machine.
 */
import { cpus, loadavg } from 'node:os';
import { execFile } from 'node:child_process';
import { parseArgs, promisify } from 'node:util';
import { grpcChannelCredentials, readToken } from '@muster/common';
import { createLogger } from '@muster/common/log';
import { startMetrics } from '@muster/common/metrics';
import { LocalCluster, waitFor } from '@muster/testing';
import { Agent, discoverInventory } from '@muster/worker';
import { Fleet } from './agents/fleet.js';
import { timeRuns } from './timing.js';

const { values: opt, positionals } = parseArgs({ allowPositionals: true, options: { sim: { type: 'boolean', default: false }, processes: { type: 'string', default: '2' } } });
const nodes = Number(positionals[0] ?? 2_000);
const runs = Number(positionals[1] ?? 5);
const cli = new URL('../packages/cli/dist/main.js', import.meta.url).pathname;

const run = promisify(execFile);
const time = (what: string, fn: () => Promise<unknown>) => timeRuns(what, runs, fn);

const cluster = await LocalCluster.start({ workers: 0 });
const agents: Agent[] = [];
let fleet: Fleet | undefined;
try {
  const token = await readToken(cluster.tokenFile);
  const log = createLogger('bench', { level: 'error' });
  const metrics = await startMetrics('bench', undefined);
  const inventory = await discoverInventory({ profile: 'hgx-h100-8', log });
  // The agents register with the cluster token (an admin may register any node id), over TLS.
  const credentials = { channel: grpcChannelCredentials({ ca: cluster.tls!.ca }), tls: true };
  const t0 = Date.now();
  if (opt.sim) fleet = Fleet.start({ head: cluster.address, token, tlsCa: cluster.tls?.ca, agents: nodes, processes: Number(opt.processes) });
  for (let i = 0; i < (opt.sim ? 0 : nodes); i++) {
    const nodeId = `n-${String(i).padStart(5, '0')}`;
    const agent = new Agent(
      { heads: [cluster.address], token, credentials, nodeId, address: '127.0.0.1', labels: { rack: `r${i % 40}` }, taints: [], inventory: { ...inventory, hostname: nodeId }, reconnectMaxMs: 3_000 }, // not the SDK's 2 s: agents get a channel of their own
      log,
      metrics,
    );
    agents.push(agent);
    agent.start();
    if (i % 500 === 499) await new Promise((r) => setTimeout(r, 50)); // let the head breathe between batches
  }
  const sdk = await cluster.connect();
  await waitFor(`${nodes} nodes alive`, async () => ((await sdk.summary()).nodesAlive === nodes) || undefined, { timeoutMs: 600_000, intervalMs: 500 });
  console.log(`${nodes} agents registered in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const env = { ...process.env, ...cluster.clientEnv() };
  const statusMs = await time('muster status', () => run(process.execPath, [cli, 'status'], { env }));
  const listMs = await time('muster status --nodes --json', () => run(process.execPath, [cli, 'status', '--nodes', '--json'], { env, maxBuffer: 1 << 30 }));
  const summaryMs = await time('sdk.summary()', () => sdk.summary());
  let largestPage = 0;
  const walkMs = await time('sdk.nodePages() walk', async () => {
    for await (const page of sdk.nodePages()) largestPage = Math.max(largestPage, page.length);
  });
  sdk.close();
  await metrics.close();
  console.log(
    JSON.stringify({
      bench: 'status',
      nodes,
      agents: opt.sim ? 'simulator' : 'in-process',
      runs,
      statusMedianMs: Math.round(statusMs),
      statusNodesJsonMedianMs: Math.round(listMs),
      sdkSummaryMedianMs: Math.round(summaryMs),
      sdkWalkMedianMs: Math.round(walkMs),
      largestPageNodes: largestPage,
      loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
      machine: `${cpus().length}× ${cpus()[0]?.model}`,
    }),
  );
} finally {
  await Promise.all(agents.map((a) => a.stop()));
  await fleet?.stop();
  await cluster.stop();
}
