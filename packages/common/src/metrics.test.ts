import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { metrics as otelMetrics } from '@opentelemetry/api';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startMetrics, type Metrics } from './metrics.js';
import { createCa, issueCert, writePair, pairPaths } from './pki.js';

describe('the metrics endpoint', () => {
  let dir: string;
  let metrics: Metrics | undefined;
  beforeEach(async () => (dir = await mkdtemp(join(tmpdir(), 'metrics-'))));
  afterEach(async () => {
    await metrics?.close();
    metrics = undefined;
    await rm(dir, { recursive: true, force: true });
  });
  const scrape = async (m: Metrics, token?: string) => {
    const res = await fetch(`http://${m.address}/metrics`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
    return { status: res.status, body: await res.text(), challenge: res.headers.get('www-authenticate') };
  };

  it('asks nothing by default (loopback)', async () => {
    metrics = await startMetrics('test', '127.0.0.1:0');
    metrics.meter.createCounter('muster_test_total').add(1);
    expect(await scrape(metrics)).toMatchObject({ status: 200, body: expect.stringMatching(/muster_test_total/) });
  });

  it('with a token file, refuses a scrape without the token (401) and serves one with it; a new token takes over when the file changes', async () => {
    const file = join(dir, 'token');
    const first = randomBytes(32).toString('base64url');
    await writeFile(file, `${first}\n`, { mode: 0o600 });
    metrics = await startMetrics('test', '127.0.0.1:0', { tokenFile: file });
    metrics.meter.createCounter('muster_test_total').add(1);
    expect(await scrape(metrics)).toEqual({ status: 401, body: expect.stringMatching(/unauthorized/), challenge: 'Bearer realm="muster-metrics"' });
    expect((await scrape(metrics, `${first}x`)).status).toBe(401);
    expect(await scrape(metrics, first)).toMatchObject({ status: 200, body: expect.stringMatching(/muster_test_total/) });
    const second = randomBytes(32).toString('base64url');
    await writeFile(file, second);
    await utimes(file, new Date(), new Date(Date.now() + 5_000)); // a visibly new mtime, whatever the clock's grain
    expect((await scrape(metrics, first)).status).toBe(401);
    expect((await scrape(metrics, second)).status).toBe(200);
  });

  it('refuses to start on an empty or short token file, or half a TLS pair', async () => {
    await writeFile(join(dir, 'empty'), '\n', { mode: 0o600 });
    await writeFile(join(dir, 'short'), 'abc', { mode: 0o600 });
    await expect(startMetrics('test', '127.0.0.1:0', { tokenFile: join(dir, 'empty') })).rejects.toThrow(/holds no token; need 32 bytes/);
    await expect(startMetrics('test', '127.0.0.1:0', { tokenFile: join(dir, 'short') })).rejects.toThrow(/shorter than 32 bytes/);
    await expect(startMetrics('test', '127.0.0.1:0', { tokenFile: join(dir, 'none') })).rejects.toThrow(/cannot read metrics token file/);
    await expect(startMetrics('test', '127.0.0.1:0', { tlsCert: join(dir, 'x.crt') })).rejects.toThrow(/needs both --metrics-tls-cert and --metrics-tls-key/);
  });

  it('serves HTTPS with a certificate of the cluster CA', async () => {
    const ca = await createCa('test-ca');
    await writePair(dir, 'ca', ca);
    await writePair(dir, 'm', await issueCert(ca, { role: 'service', name: 'metrics', hosts: ['127.0.0.1'] }));
    const p = pairPaths(dir, 'm');
    metrics = await startMetrics('test', '127.0.0.1:0', { tlsCert: p.cert, tlsKey: p.key });
    const status = await new Promise<number>((resolve, reject) => {
      httpsGet(`https://${metrics!.address}/metrics`, { ca: ca.cert }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', reject);
    });
    expect(status).toBe(200);
    await expect(fetch(`http://${metrics.address}/metrics`)).rejects.toThrow(); // no plaintext on the HTTPS port
  });

  it('registers the global provider only once the endpoint listens, and warns when another holds the place', async () => {
    const before = otelMetrics.getMeterProvider();
    await expect(startMetrics('test', '127.0.0.1:0', { tokenFile: join(dir, 'none') }, { global: true })).rejects.toThrow(/cannot read metrics token file/);
    expect(otelMetrics.getMeterProvider()).toBe(before); // the failed start left nothing behind
    metrics = await startMetrics('test', '127.0.0.1:0', {}, { global: true });
    expect(otelMetrics.getMeterProvider()).not.toBe(before);
    const warned: string[] = [];
    const second = await startMetrics('other', '127.0.0.1:0', {}, { global: true, warn: (m) => warned.push(m) });
    await second.close();
    expect(warned).toEqual([expect.stringMatching(/metrics of other: another global MeterProvider is already registered/)]);
  });
});
