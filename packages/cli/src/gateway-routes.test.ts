/**
 * The gateway's routing and HTTP honesty in front of a stand-in cluster
 * (the real one: test/integration/gateway-openai.test.ts): deadlines from
 * headers and group defaults, request ids, model → group, an HTTP shard's
 * status passed through on every route, back-pressure and cancellation of a
 * streamed answer.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, MusterError, type Cluster } from '@muster/sdk';
import { startGateway, type Gateway } from './gateway.js';
import { callOptions, errorAnswer, requestIdOf } from './gateway-http.js';
import { createKey } from './gateway-keys.js';

const headers = (h: Record<string, string>) => ({ headers: h }) as unknown as IncomingMessage;

describe('gateway-http', () => {
  it('takes the deadline from the header, else the group default plus its startup deadline at zero replicas', () => {
    expect(callOptions(headers({ 'x-muster-timeout-ms': '1500' }), { requestTimeoutMs: 9_000, coldStartMs: 60_000 }).timeoutMs).toBe(1_500);
    expect(callOptions(headers({}), { requestTimeoutMs: 9_000, coldStartMs: 0 }).timeoutMs).toBe(9_000);
    expect(callOptions(headers({}), { requestTimeoutMs: 0, coldStartMs: 60_000 }).timeoutMs).toBe(90_000);
    expect(callOptions(headers({ 'x-muster-timeout-ms': 'soon' })).timeoutMs).toBe(30_000);
    expect(callOptions(headers({ 'x-muster-timeout-ms': '99999999999' })).timeoutMs).toBe(3_600_000);
  });

  it('keeps a well-formed request id and replaces any other', () => {
    expect(requestIdOf(headers({ 'x-request-id': 'abc-123:x.y_z' }))).toBe('abc-123:x.y_z');
    expect(requestIdOf(headers({ 'x-request-id': 'has space' }))).toMatch(/^[0-9a-f-]{36}$/);
    expect(requestIdOf(headers({ 'x-request-id': 'x'.repeat(129) }))).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers a request over the data plane limit with 413 and other errors in OpenAI\'s shape', () => {
    const tooLarge = errorAnswer(new MusterError(ErrorCode.RESOURCE_EXHAUSTED, 'not sent', { details: { field: 'payload' } }));
    expect(tooLarge.status).toBe(413);
    expect(JSON.parse(tooLarge.body)).toEqual({ error: { message: 'not sent', type: 'invalid_request_error', param: 'payload', code: 'MUSTER_RESOURCE_EXHAUSTED' } });
    expect(errorAnswer(new MusterError(ErrorCode.RESOURCE_EXHAUSTED, 'answer too large')).status).toBe(502);
    expect(errorAnswer(new MusterError(ErrorCode.DEADLINE_EXCEEDED, 'late')).status).toBe(504);
  });
});

interface StandIn {
  cluster: Cluster;
  calls: unknown[];
  /** Body chunks the stand-in HTTP group has produced (what the client did not take yet stays unproduced). */
  produced: () => number;
  cancelled: () => boolean;
  /** Handles asked of the head (`replicaGroups.get`), by name. */
  gets: string[];
}

/**
 * Groups `llm` (HTTP, models a and b), `ts` (TS, model t) and `other` (HTTP,
 * models b — `llm`, first by name, routes it — and c); `llm` streams `chunks`
 * pieces of 64 KiB.
 */
function standIn(chunks = 1, status = 200): StandIn {
  const calls: unknown[] = [];
  const gets: string[] = [];
  let produced = 0;
  let cancelled = false;
  const handle = (http: boolean) => ({
    call: (payload: unknown) => {
      calls.push(payload);
      return Promise.resolve(http ? { status: 404, headers: { 'content-type': 'text/plain' }, body: 'upstream says no' } : { answer: payload });
    },
    stream: async function* (payload: unknown, opts: { signal?: AbortSignal }) {
      calls.push(payload);
      yield await Promise.resolve({ status, headers: { 'content-type': 'text/event-stream', connection: 'keep-alive' } });
      try {
        for (let i = 0; i < chunks; i++) {
          if (opts.signal?.aborted) return;
          produced++;
          yield new Uint8Array(64 * 1024).fill(0x61);
        }
      } finally {
        cancelled = produced < chunks;
      }
    },
    close: () => undefined,
  });
  const view = (name: string, httpPort: string, models: string[]) => ({ toJSON: () => ({ name, deleting: false, replicas: [{ state: 'ready' }], replicasByState: { ready: 1 }, spec: { httpPort, models, requestTimeoutMs: 0 } }) });
  const cluster = {
    replicaGroups: {
      get: (name: string) => {
        gets.push(name);
        return Promise.resolve(handle(name !== 'ts'));
      },
      list: () => Promise.resolve([view('llm', 'http', ['a', 'b']), view('other', 'http', ['b', 'c']), view('ts', '', ['t'])]),
    },
  } as unknown as Cluster;
  return { cluster, calls, gets, produced: () => produced, cancelled: () => cancelled };
}

describe('the gateway routes', () => {
  let gw: Gateway | undefined;
  afterEach(async () => {
    await gw?.close();
    gw = undefined;
  });
  const start = async (s: StandIn) => (gw = await startGateway(s.cluster, { listen: { host: '127.0.0.1', port: 0 }, noAuth: true }));

  it('routes by model, lists the models, and passes an HTTP shard\'s status through on /call and the OpenAI routes', async () => {
    const s = standIn(1, 429);
    await start(s);
    const models = (await (await fetch(`${gw!.url}/v1/models`)).json()) as { data: Array<{ id: string }> };
    expect(models.data.map((m) => m.id)).toEqual(['a', 'b', 'c', 't']);
    const viaModel = await fetch(`${gw!.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: 'b', prompt: 'x' }) });
    expect(viaModel.status).toBe(429);
    expect(viaModel.headers.get('content-type')).toBe('text/event-stream');
    expect(viaModel.headers.get('connection')).not.toBe('keep-alive-from-upstream');
    expect(s.calls[0]).toMatchObject({ method: 'POST', path: '/v1/completions', head: true, body: Buffer.from('{"model":"b","prompt":"x"}') });
    const ts = await fetch(`${gw!.url}/v1/embeddings`, { method: 'POST', body: JSON.stringify({ model: 't', input: 'x' }) });
    expect(await ts.json()).toEqual({ answer: { method: 'POST', path: '/v1/embeddings', headers: { 'x-request-id': ts.headers.get('x-request-id') }, body: { model: 't', input: 'x' } } });
    const call = await fetch(`${gw!.url}/v1/groups/llm/call`, { method: 'POST', body: '{"path":"/x"}' });
    expect([call.status, await call.text()]).toEqual([404, 'upstream says no']);
    const missing = await fetch(`${gw!.url}/v1/chat/completions`, { method: 'POST', body: '{}' });
    expect(missing.status).toBe(400);
    expect(await missing.json()).toMatchObject({ error: { param: 'model' } });
  });

  it('takes the next chunk only when the client took the last, and cancels the call when the client leaves', async () => {
    const s = standIn(3_000);
    await start(s);
    const url = new URL(`${gw!.url}/v1/groups/llm/http/v1/completions`);
    // A client that reads nothing: the socket buffers fill, then the gateway stops pulling.
    const req = request(url, { method: 'POST' });
    const res = await new Promise<import('node:http').IncomingMessage>((resolve) => req.on('response', resolve).end('{}'));
    res.pause();
    let last = -1;
    // Stable production (two reads 200 ms apart agree) far below the 3,000 chunks: the gateway waits on the client.
    for (let i = 0; i < 100 && s.produced() !== last; i++) {
      last = s.produced();
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(s.produced()).toBe(last);
    expect(s.produced()).toBeLessThan(1_000);
    res.destroy();
    for (let i = 0; i < 100 && !s.cancelled(); i++) await new Promise((r) => setTimeout(r, 50));
    expect(s.cancelled()).toBe(true);
  });

  it('passes a binary body to an HTTP group unchanged', async () => {
    const s = standIn();
    await start(s);
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const r = await fetch(`${gw!.url}/v1/groups/llm/http/v1/audio/transcriptions`, { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=x' }, body: bytes });
    expect(r.status).toBe(200);
    expect((s.calls[0] as { body: Buffer }).body.equals(bytes)).toBe(true);
  });

  it('answers a group not in the list with 404 without asking the head, /http/ on a group that does not speak HTTP with 404, and POST /v1/models with 405', async () => {
    const s = standIn();
    await start(s);
    const nope = await fetch(`${gw!.url}/v1/groups/nope/call`, { method: 'POST', body: '{}' });
    expect([nope.status, ((await nope.json()) as { error: { message: string } }).error.message]).toEqual([404, 'no replica group "nope"']);
    const tooLong = await fetch(`${gw!.url}/v1/groups/${'a'.repeat(43)}/call`, { method: 'POST', body: '{}' });
    expect(tooLong.status).toBe(404);
    const notHttp = await fetch(`${gw!.url}/v1/groups/ts/http/x`);
    expect([notHttp.status, ((await notHttp.json()) as { error: { message: string } }).error.message]).toEqual([404, expect.stringMatching(/"ts" does not speak HTTP/)]);
    expect(s.gets).toEqual([]);
    const post = await fetch(`${gw!.url}/v1/models`, { method: 'POST', body: '{}' });
    expect([post.status, post.headers.get('allow')]).toEqual([405, 'GET']);
  });

  it('lists to a key only the models it may call through the group that routes them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gateway-routes-'));
    try {
      const keysFile = join(dir, 'keys.yaml');
      const key = await createKey(keysFile, { name: 'other-only', groups: ['other'] });
      gw = await startGateway(standIn().cluster, { listen: { host: '127.0.0.1', port: 0 }, keysFile });
      const auth = { authorization: `Bearer ${key}` };
      // "b" is listed by "other" too, but "llm" routes it: a key for "other" cannot call it.
      const models = (await (await fetch(`${gw.url}/v1/models`, { headers: auth })).json()) as { data: unknown[] };
      expect(models.data).toEqual([{ id: 'c', object: 'model', created: 0, owned_by: 'muster', group: 'other' }]);
      const call = await fetch(`${gw.url}/v1/completions`, { method: 'POST', headers: auth, body: JSON.stringify({ model: 'b', prompt: 'x' }) });
      expect(call.status).toBe(404);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('ends a stream to a client that reads nothing at the call\'s deadline, cancelling it on the replica', async () => {
    const s = standIn(3_000);
    await start(s);
    const req = request(new URL(`${gw!.url}/v1/groups/llm/http/v1/completions`), { method: 'POST', headers: { 'x-muster-timeout-ms': '1000' } });
    const res = await new Promise<IncomingMessage>((resolve) => req.on('response', resolve).end('{}'));
    res.pause();
    res.on('error', () => undefined);
    for (let i = 0; i < 100 && !s.cancelled(); i++) await new Promise((r) => setTimeout(r, 100));
    expect(s.cancelled()).toBe(true);
    expect(s.produced()).toBeLessThan(3_000);
    res.destroy();
  });
});
