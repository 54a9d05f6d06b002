import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { engineScrapeConfig } from '@muster/contracts';
import { afterEach, describe, expect, it } from 'vitest';
import { BACKOFF_MAX_MS, EngineScraper, MAX_BODY_BYTES } from './engine-scraper.js';

let server: Server | undefined;
afterEach(async () => {
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

/** An engine on a free loopback port answering `body()` on /metrics. */
async function engine(body: () => { status?: number; text: string; delayMs?: number }): Promise<number> {
  server = createServer((req, res) => {
    const b = body();
    if (req.url !== '/metrics') return void res.writeHead(404).end('no');
    const answer = () => res.writeHead(b.status ?? 200, { 'content-type': 'text/plain; version=0.0.4' }).end(b.text);
    if (b.delayMs) setTimeout(answer, b.delayMs);
    else answer();
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

const log = () => {
  const lines: string[] = [];
  return { lines, warn: (_o: object, m?: string) => void lines.push(`warn ${m}`), info: (_o: object, m?: string) => void lines.push(`info ${m}`) };
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

  it('a refusing endpoint keeps the last values until stale, warns once, and backs off exponentially from the interval', async () => {
    let status = 200;
    const port = await engine(() => ({ status, text: 'vllm:num_requests_waiting 2\n' }));
    const l = log();
    const s = new EngineScraper(port, engineScrapeConfig(undefined), l, () => 0);
    await s.scrapeOnce();
    expect(s.nextDelayMs()).toBe(1_000);
    status = 500;
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      await s.scrapeOnce();
      delays.push(s.nextDelayMs());
    }
    expect(delays).toEqual([2_000, 4_000, 8_000, 16_000, BACKOFF_MAX_MS, BACKOFF_MAX_MS]);
    expect(s.latest()).toEqual({ waiting: 2 });
    expect(l.lines.filter((x) => x.includes('unreadable'))).toHaveLength(1);
    status = 200;
    await s.scrapeOnce();
    expect(l.lines.at(-1)).toMatch(/readable again/);
    expect(s.nextDelayMs()).toBe(1_000);
  });

  it('a body that is not Prometheus text is a refusal (backs off)', async () => {
    const port = await engine(() => ({ text: '<html>hello</html>\n' }));
    const s = new EngineScraper(port, engineScrapeConfig(undefined), log(), () => 0);
    await s.scrapeOnce();
    expect(s.nextDelayMs()).toBe(2_000);
  });

  it('an answer slower than the interval is still read (the deadline is not the interval)', async () => {
    const port = await engine(() => ({ text: 'vllm:num_requests_waiting 4\n', delayMs: 1_500 }));
    const s = new EngineScraper(port, engineScrapeConfig({ intervalMs: 1_000 }), log(), () => 0);
    await s.scrapeOnce();
    expect(s.latest()).toEqual({ waiting: 4 });
  });

  it('no connection is not a refusal: the next try comes after one interval', async () => {
    const port = await engine(() => ({ text: '' }));
    await new Promise<void>((r) => server!.close(() => r()));
    server = undefined;
    const s = new EngineScraper(port, engineScrapeConfig(undefined), log(), () => 0);
    for (let i = 0; i < 4; i++) await s.scrapeOnce();
    expect(s.latest()).toBeUndefined();
    expect(s.nextDelayMs()).toBe(1_000);
  });

  it('logs each configured name a successful scrape lacks, once', async () => {
    const port = await engine(() => ({ text: 'tgi_queue_size 3\nvllm:num_requests_running 1\n' }));
    const l = log();
    const s = new EngineScraper(port, engineScrapeConfig({ metrics: ['tgi_queue_size', 'tgi_typo'] }), l, () => 0);
    await s.scrapeOnce();
    await s.scrapeOnce();
    const warned = l.lines.filter((x) => x.startsWith('warn'));
    expect(warned).toHaveLength(3);
    for (const name of ['vllm:num_requests_waiting', 'vllm:gpu_cache_usage_perc', 'tgi_typo']) expect(warned.some((x) => x.includes(`metric ${name} `))).toBe(true);
    expect(s.latest()).toEqual({ running: 1, named: { tgi_queue_size: 3 } });
  });

  it('reports the fullest KV cache of several models, not their sum', async () => {
    const port = await engine(() => ({ text: 'vllm:gpu_cache_usage_perc{model_name="a"} 0.6\nvllm:gpu_cache_usage_perc{model_name="b"} 0.7\n' }));
    const s = new EngineScraper(port, engineScrapeConfig(undefined), log(), () => 0);
    await s.scrapeOnce();
    expect(s.latest()).toEqual({ kvCache: 0.7 });
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
