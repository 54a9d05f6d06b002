/**
 * The gateway's request log and its metrics configuration: which requests are
 * logged (errors always, the rest sampled), what a line holds (its request
 * id, group and replica; no body), the route label's fixed set, and the
 * refusal of metrics beyond loopback without a token file.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadGatewayConfig } from './gateway-config.js';
import { CLIENT_CLOSED, GatewayObserver, routeOf, type RequestLogLine } from './gateway-metrics.js';

describe('routeOf', () => {
  it.each([
    ['/v1/chat/completions', 'chat/completions'],
    ['/v1/embeddings', 'embeddings'],
    ['/v1/models', 'models'],
    ['/v1/groups/llm/call', 'call'],
    ['/v1/groups/llm/http/v1/completions', 'http'],
    ['/healthz', 'healthz'],
    ['/v1/whatever/%00/../x', 'other'],
  ])('%s → %s', (path, route) => expect(routeOf(path)).toBe(route));
});

describe('GatewayObserver request log', () => {
  let server: Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    server = undefined;
  });

  /** A server that answers each request with the status in its path, through the observer. */
  async function serveWith(observer: GatewayObserver): Promise<string> {
    server = createServer((req, res) => {
      const record = observer.begin(req, res, req.headers['x-request-id'] as string);
      record.group = 'llm';
      record.onReplica({ replicaId: 'r-1', revision: 'rev-1' });
      const status = Number(req.url!.split('/').pop());
      if (status === CLIENT_CLOSED) return void res.write('partial'); // never ended: the client leaves
      res.statusCode = status;
      res.end('{"secret":"body"}');
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('logs every error and no success at sample 0, with the request id, group and replica, never the body', async () => {
    const lines: RequestLogLine[] = [];
    const base = await serveWith(new GatewayObserver({ log: (l) => lines.push(l), sample: 0 }));
    for (const status of [200, 200, 404, 503]) await (await fetch(`${base}/v1/groups/llm/call/${status}`, { headers: { 'x-request-id': `id-${status}` } })).text();
    await expect.poll(() => lines.length).toBe(2);
    expect(lines.map((l) => [l.requestId, l.status])).toEqual([['id-404', 404], ['id-503', 503]]);
    expect(lines[0]).toMatchObject({ msg: 'request', method: 'GET', route: 'call', group: 'llm', replica: 'r-1', revision: 'rev-1' });
    expect(JSON.stringify(lines)).not.toContain('secret');
  });

  it('logs successes with the sample\'s probability, and a client that left as 499', async () => {
    const lines: RequestLogLine[] = [];
    const draws = [0.05, 0.5];
    const base = await serveWith(new GatewayObserver({ log: (l) => lines.push(l), sample: 0.1, random: () => draws.shift()! }));
    await (await fetch(`${base}/a/200`, { headers: { 'x-request-id': 'kept' } })).text();
    await (await fetch(`${base}/a/200`, { headers: { 'x-request-id': 'dropped' } })).text();
    const abort = new AbortController();
    const left = await fetch(`${base}/a/499`, { headers: { 'x-request-id': 'left' }, signal: abort.signal });
    await left.body!.getReader().read();
    abort.abort();
    await expect.poll(() => lines.map((l) => l.requestId)).toEqual(['kept', 'left']);
    expect(lines[1]!.status).toBe(CLIENT_CLOSED);
  });
});

describe('gateway metrics configuration', () => {
  const load = (flags: Record<string, string>) => () => loadGatewayConfig({ flags: { noAuth: 'true', ...flags }, env: {} });

  it('is off by default, takes a loopback address, and refuses one beyond loopback without a token file', () => {
    expect(load({})().metricsListen).toBe('');
    expect(load({ metricsListen: '127.0.0.1:9402' })().metricsListen).toBe('127.0.0.1:9402');
    expect(load({ metricsListen: '0.0.0.0:9402' })).toThrow(/metricsTokenFile.*metrics beyond loopback need --metrics-token-file/s);
    expect(load({ metricsListen: '0.0.0.0:9402', metricsTokenFile: '/run/secrets/scrape' })().metricsTokenFile).toBe('/run/secrets/scrape');
    expect(load({ requestLogSample: '2' })).toThrow(/--request-log-sample.*<=1/);
  });
});
