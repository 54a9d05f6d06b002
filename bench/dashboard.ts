/**
 * The dashboard at scale (issue 20: "answers within 1 s per page at 2,000
 * simulated nodes"). Registers N simulated agents (bench/agents, forked
 * processes, hgx-h100-8 inventory, 1 s heartbeats) with one head, places G
 * one-bundle groups of 8 GPUs, then times, R times each:
 *  - every JSON API answer a page needs (HTTPS, the cluster token), end to end;
 *  - each page in a real browser (Debian's chromium, headless, through
 *    playwright-core): from navigation until the page shows its data
 *    (overview: the node count; nodes: the first page's rows; a node: its 8
 *    GPUs with their holders; placement groups: the first page's rows).
 * Prints the medians as one JSON line, with the load average.
 *
 *   pnpm build && npx tsx bench/dashboard.ts [nodes=2000] [runs=5] [groups=500]
 */
import { request } from 'node:https';
import { cpus, loadavg } from 'node:os';
import { readFileSync } from 'node:fs';
import { readToken } from '@muster/common';
import { LocalCluster, waitFor } from '@muster/testing';
import { Fleet } from './agents/fleet.js';
import { launchBrowser } from '../test/browser.js';
import { timeRuns } from './timing.js';

const nodes = Number(process.argv[2] ?? 2_000);
const runs = Number(process.argv[3] ?? 5);
const groups = Number(process.argv[4] ?? 500);
const time = async (what: string, fn: () => Promise<unknown>) => Math.round(await timeRuns(what, runs, fn));

const cluster = await LocalCluster.start({ workers: 0 });
let fleet: Fleet | undefined;
try {
  const token = await readToken(cluster.tokenFile);
  const url = cluster.dashboardUrl!;
  const ca = readFileSync(cluster.tls!.ca);
  const api = (path: string) =>
    new Promise<number>((resolve, reject) => {
      const req = request(`${url}/api${path}`, { ca, headers: { Authorization: `Bearer ${token}` } }, (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => (bytes += c.length));
        res.on('end', () => (res.statusCode === 200 ? resolve(bytes) : reject(new Error(`${path}: ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end();
    });

  const t0 = Date.now();
  fleet = Fleet.start({ head: cluster.address, token, tlsCa: cluster.tls?.ca, agents: nodes, processes: 2 });
  const sdk = await cluster.connect();
  await waitFor(`${nodes} nodes alive`, async () => ((await sdk.summary()).nodesAlive === nodes) || undefined, { timeoutMs: 600_000, intervalMs: 500 });
  console.log(`${nodes} agents registered in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const pgs = await Promise.all(Array.from({ length: groups }, (_, i) => sdk.placementGroups.create({ name: `bench-${i}`, bundles: [{ gpus: 8 }] })));
  await Promise.all(pgs.map((p) => p.ready({ timeout: 120_000 })));
  const held = pgs[0]!.placements[0]!.nodeId;
  console.log(`${groups} groups placed; node ${held} is held by bench-0`);

  const answers: Record<string, number> = {};
  for (const path of ['/cluster', '/overview', '/nodes', `/nodes/${held}`, '/placement-groups', '/gangs', '/replica-groups']) {
    answers[path] = await time(`GET /api${path} (${await api(path)} bytes)`, () => api(path));
  }

  const browser = await launchBrowser();
  const pages: Record<string, number> = {};
  try {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1360, height: 900 } });
    const signIn = await context.request.post(`${url}/api/session`, { headers: { Authorization: `Bearer ${token}` } });
    if (!signIn.ok()) throw new Error(`sign-in: ${signIn.status()}`);
    const page = await context.newPage();
    const visit = async (hash: string, ready: () => Promise<unknown>) => {
      await page.goto('about:blank');
      await page.goto(`${url}/${hash}`);
      await ready();
    };
    pages.overview = await time('page overview', () => visit('#/', () => page.locator('[data-testid=nodes-alive] .value', { hasText: String(nodes) }).waitFor().then(() => page.locator('[data-testid=domains] tbody tr').first().waitFor())));
    pages.nodes = await time('page nodes', () => visit('#/nodes', () => page.locator('[data-testid=nodes] tbody tr').nth(Math.min(nodes, 100) - 1).waitFor()));
    pages.node = await time('page node', () => visit(`#/nodes/${held}`, () => page.locator('[data-testid=gpu] .holder').nth(7).waitFor()));
    pages.placementGroups = await time('page placement groups', () => visit('#/placement-groups', () => page.locator('[data-testid=placement-groups] tbody tr').nth(Math.min(groups, 100) - 1).waitFor()));
  } finally {
    await browser.close();
  }
  sdk.close();
  console.log(
    JSON.stringify({
      bench: 'dashboard',
      nodes,
      groups,
      runs,
      apiMedianMs: answers,
      pageMedianMs: pages,
      loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
      machine: `${cpus().length}× ${cpus()[0]?.model}`,
    }),
  );
} finally {
  await fleet?.stop();
  await cluster.stop();
}
