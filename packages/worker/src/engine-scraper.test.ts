import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { engineScrapeConfig } from '@muster/contracts';
import { afterEach, describe, expect, it } from 'vitest';
import { EngineScraper, FAILS_BEFORE_BACKOFF, MAX_BODY_BYTES } from './engine-scraper.js';

let server: Server | undefined;
afterEach(async () => {
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

/** An engine on a free loopback port answering `body()` on /metrics. */
async function engine(body: () => { status?: number; text: string }): Promise<number> {
  server = createServer((req, res) => {
    const b = body();
    if (req.url !== '/metrics') return void res.writeHead(404).end('no');
    res.writeHead(b.status ?? 200, { 'content-type': 'text/plain; version=0.0.4' }).end(b.text);
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

const log = () => {
  const lines: string[] = [];
  return { lines, warn: (_o: object, m: string) => void lines.push(`warn ${m}`), info: (_o: object, m: string) => void lines.push(`info ${m}`) };
};

describe('EngineScraper', () => {
  it('reads vLLM names, leaves out what a report may not carry, and forgets values once stale', async () => {
    let text = 'vllm:num_requests_waiting{model_name="a"} 6\nvllm:num_requests_running 8\nvllm:gpu_cache_usage_perc 42\nmy:metric -3\n';
    const port = await engine(() => ({ text }));
    let now = 0;
    const s = new EngineScraper(port, engineScrapeConfig({ metrics: ['my:metric'] }), log(), () => now);
    expect(s.latest()).toBeUndefined();
    await s.scrapeOnce();
    // 42 is a percentage, not the 0…1 fraction a report carries: left out, the rest kept.
    expect(s.latest()).toEqual({ waiting: 6, running: 8, named: { 'my:metric': -3 } });
    text = 'vllm:num_requests_waiting 0\n';
    await s.scrapeOnce();
    expect(s.latest()).toEqual({ waiting: 0 });
    now = 3_001; // three intervals of 1 s without a successful scrape
    expect(s.latest()).toBeUndefined();
  });

  it('a failing endpoint keeps the last values until stale, and warns once when it backs off', async () => {
    let status = 200;
    const port = await engine(() => ({ status, text: 'vllm:num_requests_waiting 2\n' }));
    const l = log();
    const s = new EngineScraper(port, engineScrapeConfig(undefined), l, () => 0);
    await s.scrapeOnce();
    status = 500;
    for (let i = 0; i < FAILS_BEFORE_BACKOFF + 2; i++) await s.scrapeOnce();
    expect(s.latest()).toEqual({ waiting: 2 });
    expect(l.lines.filter((x) => x.startsWith('warn'))).toHaveLength(1);
    status = 200;
    await s.scrapeOnce();
    expect(l.lines.at(-1)).toMatch(/readable again/);
  });

  it('refuses a body over its bound without keeping it', async () => {
    const big = 'x 1\n'.repeat(MAX_BODY_BYTES / 4 + 10);
    const port = await engine(() => ({ text: big }));
    const s = new EngineScraper(port, engineScrapeConfig(undefined), log(), () => 0);
    await s.scrapeOnce();
    expect(s.latest()).toBeUndefined();
  });

  it('start() scrapes without waiting for the first interval', async () => {
    const port = await engine(() => ({ text: 'vllm:num_requests_waiting 1\n' }));
    const s = new EngineScraper(port, engineScrapeConfig({ intervalMs: 60_000 }), log());
    s.start();
    const deadline = Date.now() + 5_000;
    while (s.latest() === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(s.latest()).toEqual({ waiting: 1 });
    s.stop();
  });
});
