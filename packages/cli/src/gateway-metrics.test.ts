/**
 * The gateway's request log and its metrics configuration: which requests are
 * logged (errors always, the rest sampled), what a line holds (its request
 * id, group and replica; no body), the route label's fixed set, and the
 * refusal of metrics beyond loopback without a token file.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, MusterError } from '@muster/sdk';
import { isLoopbackListen, loadGatewayConfig } from './gateway-config.js';
import { fail, pipeChunks } from './gateway-http.js';
import { CLIENT_CLOSED, GatewayObserver, RequestRecord, routeOf, statusLabel, type DroppedLogLine, type RequestLogLine } from './gateway-metrics.js';

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

describe('RequestRecord', () => {
  it('takes the group of the replica that answered: an overflowed call is labelled with the overflow group', () => {
    const record = new RequestRecord('chat/completions');
    record.group = 'big';
    record.onReplica({ replicaId: 'r-9', revision: 'rev-2', group: 'small' });
    expect({ group: record.group, replica: record.replica, revision: record.revision }).toEqual({ group: 'small', replica: 'r-9', revision: 'rev-2' });
    record.onReplica({ replicaId: 'r-1', revision: 'rev-1' });
    expect(record.group).toBe('small');
  });
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
      const last = req.url!.split('/').pop()!;
      // A stream that fails after its headers: cut (fail), or ended with NDJSON last words.
      if (last === 'cut' || last === 'lastwords' || last === 'deadline') {
        const e = new MusterError(last === 'deadline' ? ErrorCode.DEADLINE_EXCEEDED : ErrorCode.REPLICA_LOST, 'lost');
        const chunks = (async function* () {
          yield 'one';
          throw e;
        })();
        return void pipeChunks(res, chunks, { head: () => ({ status: 200, headers: {} }), encode: (c) => `${String(c)}\n`, timeoutMs: 10_000, ...(last === 'cut' ? {} : { lastWords: () => '{"error":"lost"}\n' }) })
          .catch((err: unknown) => fail(req, res, err));
      }
      const status = Number(last);
      if (status === CLIENT_CLOSED) return void res.write('partial'); // never ended: the client leaves
      res.statusCode = status;
      res.end('{"secret":"body"}');
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('logs every error and no success at sample 0, with the request id, group and replica, never the body', async () => {
    const lines: (RequestLogLine | DroppedLogLine)[] = [];
    const base = await serveWith(new GatewayObserver({ log: (l) => lines.push(l), sample: 0 }));
    for (const status of [200, 200, 404, 503]) await (await fetch(`${base}/v1/groups/llm/call/${status}`, { headers: { 'x-request-id': `id-${status}` } })).text();
    await expect.poll(() => lines.length).toBe(2);
    expect(lines.map((l) => 'requestId' in l && [l.requestId, l.status])).toEqual([['id-404', 404], ['id-503', 503]]);
    expect(lines[0]).toMatchObject({ msg: 'request', method: 'GET', route: 'call', group: 'llm', replica: 'r-1', revision: 'rev-1' });
    expect(JSON.stringify(lines)).not.toContain('secret');
  });

  it('logs successes with the sample\'s probability, and a client that left as 499', async () => {
    const lines: (RequestLogLine | DroppedLogLine)[] = [];
    const draws = [0.05, 0.5];
    const base = await serveWith(new GatewayObserver({ log: (l) => lines.push(l), sample: 0.1, random: () => draws.shift()! }));
    await (await fetch(`${base}/a/200`, { headers: { 'x-request-id': 'kept' } })).text();
    await (await fetch(`${base}/a/200`, { headers: { 'x-request-id': 'dropped' } })).text();
    const abort = new AbortController();
    const left = await fetch(`${base}/a/499`, { headers: { 'x-request-id': 'left' }, signal: abort.signal });
    await left.body!.getReader().read();
    abort.abort();
    await expect.poll(() => lines.map((l) => 'requestId' in l && l.requestId)).toEqual(['kept', 'left']);
    expect(lines[1]).toMatchObject({ status: CLIENT_CLOSED });
  });

  it('records a stream that failed after its headers as 502 (504 past its deadline), not 499 or 200', async () => {
    const lines: (RequestLogLine | DroppedLogLine)[] = [];
    const base = await serveWith(new GatewayObserver({ log: (l) => lines.push(l), sample: 0 }));
    for (const how of ['cut', 'lastwords', 'deadline']) {
      const res = await fetch(`${base}/v1/groups/llm/stream/${how}`, { headers: { 'x-request-id': how } });
      expect(res.status).toBe(200);
      await res.text().catch(() => undefined); // the cut one fails to read to its end
    }
    await expect.poll(() => lines.length).toBe(3);
    expect(lines.map((l) => 'requestId' in l && [l.requestId, l.status])).toEqual([['cut', 502], ['lastwords', 502], ['deadline', 504]]);
  });

  it('logs at most 20 4xx lines a second, then one line with the count dropped', async () => {
    const lines: (RequestLogLine | DroppedLogLine)[] = [];
    let now = 0;
    const base = await serveWith(new GatewayObserver({ log: (l) => lines.push(l), sample: 0, now: () => now }));
    for (let i = 0; i < 25; i++) await (await fetch(`${base}/a/401`)).text();
    await (await fetch(`${base}/a/500`)).text(); // 5xx: always, even over the cap
    await expect.poll(() => lines.length).toBe(21);
    now = 1_000;
    await (await fetch(`${base}/a/401`)).text();
    await expect.poll(() => lines.length).toBe(23);
    expect(lines[21]).toEqual({ msg: 'request log dropped', dropped: 5 });
    expect(lines[22]).toMatchObject({ status: 401 });
  });
});

describe('status labels', () => {
  it.each([[200, '200'], [401, '401'], [499, '499'], [504, '504'], [201, '2xx'], [418, '4xx'], [599, '5xx'], [999, '9xx']])('%i → %s', (status, label) => expect(statusLabel(status)).toBe(label));
});

describe('isLoopbackListen', () => {
  it.each([
    ['localhost:9402', true], ['127.0.0.1:9402', true], ['127.1.2.3:9402', true], ['[::1]:9402', true], ['[0:0:0:0:0:0:0:1]:9402', true],
    ['127.example.com:9402', false], ['127.0.0.1.nip.io:9402', false], ['0.0.0.0:9402', false], ['[::]:9402', false], ['10.0.0.1:9402', false],
  ])('%s → %s', (listen, loopback) => expect(isLoopbackListen(listen)).toBe(loopback));
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
