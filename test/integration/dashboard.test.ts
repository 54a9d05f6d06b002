/**
 * The web dashboard in a real browser (Debian's chromium, headless, driven by
 * playwright-core) against a real local cluster: two simulated GPU nodes (a
 * DGX-1 with its hybrid cube-mesh NVLink, an A100 cut into MIG slices), a gang
 * writing a log line every 100 ms, a pending and an infeasible placement group and a
 * replica group.
 *
 * `muster dashboard` (the CLI, with the admin's certificate) prints the
 * sign-in link; the browser opens it and gets a session (a viewer's
 * certificate gives a viewer's session; a caller's is refused). Then: the overview
 * counts the nodes and GPUs; a placement group created while the page is
 * open shows up in its events without a reload; the nodes page lists both
 * nodes; a node's page draws its GPUs, its topology matrix and which
 * group and rank hold a GPU; the waiting groups show the scheduler's
 * reason; the gang's log view streams (a line written after the view
 * opened arrives); the replica group page draws its chart. The API refuses
 * a request without a credential, and a used sign-in link.
 *
 * Screenshots of each page go to a temp dir, or to docs/dashboard/ with
 * UPDATE_SCREENSHOTS=1 (how docs/dashboard.md's pictures are made).
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cluster, Gang } from '@muster/sdk';
import type { LocalCluster } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';
import { launchBrowser } from '../browser.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'packages/cli/dist/main.js');
const TICK = `let n = 0; setInterval(() => console.log('tick ' + n++), 100);`;

describe('dashboard in a browser', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let shots: string;
  let gang: Gang;
  useCluster(
    {
      nats: true,
      workers: [
        { nodeId: 'dgx-1', profile: 'dgx1-v100-8', labels: { 'muster.io/zone': 'z1', 'muster.io/rack': 'r1' } },
        { nodeId: 'mig-1', profile: 'a100-mig-7x1g', labels: { 'muster.io/zone': 'z1', 'muster.io/rack': 'r2' } },
      ],
    },
    (fx) => ({ cluster, sdk } = fx),
  );

  beforeAll(async () => {
    shots = process.env.UPDATE_SCREENSHOTS ? join(root, 'docs/dashboard') : await mkdtemp(join(tmpdir(), 'muster-dashboard-'));
    await mkdir(shots, { recursive: true });
    browser = await launchBrowser();
    // The cluster CA is not in the browser's trust store (docs/dashboard.md says how to add it).
    context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1360, height: 900 } });
    page = await context.newPage();
  });
  afterAll(async () => {
    await browser?.close();
    if (!process.env.UPDATE_SCREENSHOTS && shots) await rm(shots, { recursive: true, force: true });
  });

  const shot = (name: string) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

  /** `muster dashboard` with a client certificate (the admin's unless another pair is named). */
  async function signInLink(pair?: string): Promise<string> {
    const tls = cluster.tls!;
    const [cert, key] = pair ? [join(cluster.pkiDir!, `${pair}.crt`), join(cluster.pkiDir!, `${pair}.key`)] : [tls.cert, tls.key];
    const r = await execa(process.execPath, [cli, 'dashboard', '--url', cluster.dashboardUrl!, '--address', cluster.address, '--tls-ca', tls.ca, '--tls-cert', cert, '--tls-key', key], { env: { MUSTER_CONFIG: join(shots, 'no-config.yaml') } });
    return r.stdout.trim();
  }

  it('refuses the API without a credential, and a sign-in link twice', async () => {
    const url = cluster.dashboardUrl!;
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const anon = await context.request.get(`${url}/api/cluster`);
    expect(anon.status()).toBe(401);
    const link = await signInLink();
    expect(link).toMatch(new RegExp(`^${url}/#ticket=[A-Za-z0-9_-]{43}$`));
    const ticket = link.split('#ticket=')[1]!;
    const other = await browser.newContext({ ignoreHTTPSErrors: true });
    try {
      expect((await other.request.post(`${url}/api/session`, { data: { ticket } })).status()).toBe(200);
      const again = await other.request.post(`${url}/api/session`, { data: { ticket } });
      expect(again.status()).toBe(401);
      expect(((await again.json()) as { error: string }).error).toMatch(/used or has expired/);
    } finally {
      await other.close();
    }
  });

  it('signs a viewer in with its own identity; refuses a caller (the access table)', async () => {
    for (const [name, role] of [['vera', 'viewer'], ['app', 'caller']]) {
      await execa(process.execPath, [cli, 'cert', 'client', '--dir', cluster.pkiDir!, '--name', name!, '--role', role!]);
    }
    const viewer = await browser.newContext({ ignoreHTTPSErrors: true });
    try {
      const ticket = (await signInLink('vera')).split('#ticket=')[1]!;
      expect(await (await viewer.request.post(`${cluster.dashboardUrl}/api/session`, { data: { ticket } })).json()).toEqual({ role: 'viewer', name: 'vera' });
      expect((await viewer.request.get(`${cluster.dashboardUrl}/api/nodes`)).status()).toBe(200);
    } finally {
      await viewer.close();
    }
    const refused = await signInLink('app').then(() => undefined, (e: Error) => e.message);
    expect(refused).toMatch(/403 caller "app" may not call ClusterService\/ListNodes: it needs role viewer/);
  });

  it('signs in with the link and shows the overview: nodes and GPUs', async () => {
    await page.goto(await signInLink());
    await expect.poll(() => page.locator('[data-testid=nodes-alive] .value').textContent(), { timeout: 15_000 }).toBe('2');
    // 8 V100s + the A100 (MIG) = 9 GPUs, none used yet.
    await expect.poll(() => page.locator('[data-testid=gpus] .value').textContent()).toBe('0 / 9');
    expect(page.url()).not.toContain('ticket'); // taken out of the address bar
    await expect.poll(() => page.locator('[data-testid=domains] tbody tr').count()).toBe(2);
  });

  it('shows an event that happens while the page is open, without a reload', async () => {
    await page.locator('[data-testid=events] li').first().waitFor();
    const pg = await sdk.placementGroups.create({ name: 'live-one', bundles: [{ gpus: 1 }] });
    await pg.ready({ timeout: 10_000 });
    await page.locator('[data-testid=events] li[data-kind="pg.created"]', { hasText: 'live-one' }).waitFor({ timeout: 10_000 });
    await expect.poll(() => page.locator('[data-testid=gpus] .value').textContent(), { timeout: 10_000 }).toBe('1 / 9');
    await shot('overview');
  });

  it('shows a pending group\'s reason', async () => {
    // dgx-1 has 7 GPUs free (live-one holds one), mig-1 none whole: 8 on one node waits; 16 never fits.
    const waits = await sdk.placementGroups.create({ name: 'waits', bundles: [{ gpus: 8 }] });
    await sdk.placementGroups.create({ name: 'too-big', bundles: [{ gpus: 16 }] });
    await page.goto(`${cluster.dashboardUrl}/#/placement-groups`);
    const row = page.locator('[data-testid="pg-waits"]');
    await row.locator('[data-testid=pending-reason]').waitFor({ timeout: 10_000 });
    expect(await row.locator('.state').textContent()).toBe('PENDING');
    expect(await row.locator('[data-testid=pending-reason]').textContent()).toMatch(/8/);
    await page.locator('[data-testid="pg-too-big"] [data-testid=pending-reason]').waitFor({ timeout: 10_000 });
    await shot('placement-groups');
    await waits.remove();
  });

  it('lists the nodes, and draws a node\'s GPUs, topology and holders', async () => {
    const pg = await sdk.placementGroups.create({ name: 'train', bundles: [{ gpus: 2 }], strategy: 'STRICT_PACK' });
    await pg.ready({ timeout: 10_000 });
    gang = await sdk.gangs.launch({ name: 'trainer', placementGroup: 'train', tp: 2, pp: 1, template: { command: process.execPath, args: ['-e', TICK] } });
    await gang.ready({ timeout: 20_000 });
    await page.goto(`${cluster.dashboardUrl}/#/nodes`);
    await expect.poll(() => page.locator('[data-testid=nodes] tbody tr').count(), { timeout: 10_000 }).toBe(2);
    await shot('nodes');
    const nodeId = gang.ranks[0]!.nodeId;
    await page.goto(`${cluster.dashboardUrl}/#/nodes/${nodeId}`);
    await expect.poll(() => page.locator('[data-testid=gpu]').count(), { timeout: 10_000 }).toBe(8);
    expect(await page.locator('[data-testid=topology] rect').count()).toBe(64);
    await page.locator('[data-testid=gpu] .holder', { hasText: 'trainer' }).first().waitFor({ timeout: 10_000 });
    expect(await page.locator('[data-testid=gpu] .holder', { hasText: 'rank 1' }).count()).toBe(1);
    await shot('node');
    // The MIG node: one GPU cut into 7 slices, one held.
    await sdk.placementGroups.create({ name: 'slice', bundles: [{ gpus: 1, migProfile: '1g.10gb' }] }).then((p) => p.ready({ timeout: 10_000 }));
    await page.goto(`${cluster.dashboardUrl}/#/nodes/mig-1`);
    await expect.poll(() => page.locator('[data-testid=gpu] .mig').count(), { timeout: 10_000 }).toBe(7);
    await page.locator('[data-testid=gpu] .mig .holder', { hasText: 'slice' }).waitFor({ timeout: 10_000 });
    await page.locator('[data-testid=events] li', { hasText: 'node mig-1 registered' }).waitFor({ timeout: 10_000 });
    expect(await page.locator('[data-testid=events] li', { hasText: 'dgx-1' }).count()).toBe(0); // this node's events only
    await shot('node-mig');
  });

  it('streams a rank\'s log in the gang view', async () => {
    await page.goto(`${cluster.dashboardUrl}/#/gangs/${gang.id}`);
    await expect.poll(() => page.locator('[data-testid=ranks] tbody tr').count(), { timeout: 10_000 }).toBe(2);
    await page.locator('[data-testid=log-0]').click();
    const log = page.locator('[data-testid=log]');
    await expect.poll(async () => (await log.textContent()) ?? '', { timeout: 10_000 }).toMatch(/tick \d+/);
    // A line written after the view opened arrives: the last tick number grows.
    const last = async () => Math.max(...[...((await log.textContent()) ?? '').matchAll(/tick (\d+)/g)].map((m) => Number(m[1])));
    const first = await last();
    await expect.poll(last, { timeout: 10_000 }).toBeGreaterThan(first + 5);
    await shot('gang');
  });

  it('shows a replica group with its chart', async () => {
    await sdk.replicaGroups.apply({ name: 'chat', resources: { gpus: 1 }, template: { command: process.execPath, args: ['-e', 'setInterval(() => {}, 1 << 30)'] }, replicas: { min: 1, max: 3, initial: 2 } });
    await page.goto(`${cluster.dashboardUrl}/#/replica-groups`);
    await page.locator('[data-testid=replica-groups] a', { hasText: 'chat' }).click();
    await expect.poll(() => page.locator('[data-testid=replicas] tbody tr').count(), { timeout: 15_000 }).toBe(2);
    await page.locator('[data-testid=rg-chart] canvas').waitFor({ timeout: 10_000 });
    // Its history (the rg.created event) and two live samples: a line to look at.
    await expect.poll(async () => Number(await page.locator('[data-testid=rg-chart]').getAttribute('data-points')), { timeout: 15_000 }).toBeGreaterThanOrEqual(3);
    await shot('replica-group');
    await gang.stop();
  });
});
