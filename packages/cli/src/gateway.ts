/**
 * The HTTP gateway: exposes replica groups to clients that do not speak the
 * SDK (curl, locust), through the same in-process router. Several gateways
 * can run side by side; they share nothing but the head and NATS.
 *
 *   POST /v1/groups/<group>/call     JSON body → JSON answer
 *   POST /v1/groups/<group>/stream   JSON body → NDJSON, one line per chunk, flushed as it comes
 *   ANY  /v1/groups/<group>/http/<path>
 *                                    for groups whose shards speak HTTP (bridged by the worker):
 *                                    the request goes to <path> on a replica's rank 0 as it is;
 *                                    with `accept: text/event-stream` the body streams back
 *                                    chunk by chunk (SSE passes through)
 *   GET  /healthz                    200
 *
 * Headers: `x-muster-timeout-ms` (deadline), `x-muster-idempotent: true`.
 * Errors are JSON `{ "error": { "code", "message" } }` with a status that
 * says whose fault it is: 400 malformed request, 404 unknown group, 429
 * back-pressure, 503 no replica, 504 deadline, 502 replica lost or failed.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ErrorCode, MusterError, isMusterError, type Cluster, type ReplicaGroup } from '@muster/sdk';

const statusOf: Partial<Record<string, number>> = {
  [ErrorCode.INVALID_ARGUMENT]: 400,
  [ErrorCode.NOT_FOUND]: 404,
  [ErrorCode.BACKPRESSURE]: 429,
  [ErrorCode.NO_REPLICAS]: 503,
  [ErrorCode.UNAVAILABLE]: 503,
  [ErrorCode.DEADLINE_EXCEEDED]: 504,
  [ErrorCode.REPLICA_LOST]: 502,
  [ErrorCode.APPLICATION]: 502,
};

const MAX_BODY = 8 * 1024 * 1024;

export interface Gateway {
  readonly address: string;
  close(): Promise<void>;
}

export async function startGateway(cluster: Cluster, listen: { host: string; port: number }): Promise<Gateway> {
  const groups = new Map<string, Promise<ReplicaGroup>>();
  const group = (name: string) => {
    let g = groups.get(name);
    if (!g) {
      g = cluster.replicaGroups.get(name);
      groups.set(name, g);
      g.catch(() => groups.delete(name)); // unknown now may exist later
    }
    return g;
  };
  const forget = (name: string) => {
    const g = groups.get(name);
    groups.delete(name);
    void g?.then((h) => h.close(), () => undefined);
  };

  const server: Server = createServer((req, res) => {
    void handle(req, res).catch((e: unknown) => {
      // A group with no replica may have been deleted: look it up again next time (404 then).
      const name = /^\/v1\/groups\/([a-z0-9-]+)\//.exec(req.url ?? '')?.[1];
      if (name && isMusterError(e) && e.code === ErrorCode.NO_REPLICAS) forget(name);
      fail(res, e);
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://gateway');
    if (req.method === 'GET' && url.pathname === '/healthz') return void res.end('ok\n');
    const h = /^\/v1\/groups\/([a-z0-9-]+)\/http(\/.*)$/.exec(url.pathname);
    if (h) return proxyHttp(req, res, await group(h[1]!), `${h[2]}${url.search}`);
    const m = /^\/v1\/groups\/([a-z0-9-]+)\/(call|stream)$/.exec(url.pathname);
    if (!m) throw new MusterError(ErrorCode.NOT_FOUND, `no route ${req.method} ${url.pathname}: use POST /v1/groups/<group>/call or /stream`);
    if (req.method !== 'POST') throw new MusterError(ErrorCode.INVALID_ARGUMENT, `${req.method} ${url.pathname}: use POST with a JSON body`);
    const payload = await readJson(req);
    const g = await group(m[1]!);
    const timeoutMs = Number(req.headers['x-muster-timeout-ms'] ?? 30_000);
    const opts = { timeoutMs: Number.isFinite(timeoutMs) && timeoutMs > 0 ? timeoutMs : 30_000, idempotent: req.headers['x-muster-idempotent'] === 'true' };
    if (m[2] === 'call') {
      const answer = await g.call(payload, opts);
      res.setHeader('content-type', 'application/json');
      res.end(`${JSON.stringify(answer)}\n`);
      return;
    }
    const abort = new AbortController();
    res.once('close', () => abort.abort());
    let started = false;
    try {
      for await (const chunk of g.stream(payload, { ...opts, signal: abort.signal })) {
        if (!started) {
          started = true;
          res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
        }
        res.write(`${JSON.stringify(chunk)}\n`);
      }
    } catch (e) {
      if (!started) throw e;
      // Headers are gone: the error becomes the last line.
      const err = isMusterError(e) ? e : new MusterError(ErrorCode.INTERNAL, String(e));
      res.write(`${JSON.stringify({ error: { code: err.code, message: err.message } })}\n`);
    }
    if (!started) res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    res.end();
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    address: `${listen.host}:${port}`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      for (const g of groups.values()) (await g.catch(() => undefined))?.close();
    },
  };
}

/** The HTTP bridge's side of the gateway: an HTTP request in, the shard's HTTP answer out. */
async function proxyHttp(req: IncomingMessage, res: ServerResponse, g: ReplicaGroup, path: string): Promise<void> {
  const body = await readText(req);
  const headers: Record<string, string> = {};
  for (const k of ['content-type', 'accept', 'authorization']) if (typeof req.headers[k] === 'string') headers[k] = req.headers[k];
  const payload = { method: req.method, path, headers, ...(body ? { body } : {}) };
  const timeoutMs = Number(req.headers['x-muster-timeout-ms'] ?? 30_000) || 30_000;
  if (req.headers.accept?.includes('text/event-stream')) {
    const abort = new AbortController();
    res.once('close', () => abort.abort());
    let started = false;
    for await (const chunk of g.stream(payload, { timeoutMs, signal: abort.signal })) {
      if (!started) res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      started = true;
      res.write(String(chunk));
    }
    if (!started) res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.end();
    return;
  }
  const answer = (await g.call(payload, { timeoutMs })) as { status: number; headers: Record<string, string>; body: unknown };
  const ct = answer.headers['content-type'] ?? 'application/octet-stream';
  res.writeHead(answer.status, { 'content-type': ct });
  res.end(typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body));
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const text = await readText(req);
  if (text.trim() === '') return null;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `malformed JSON body: ${(e as Error).message}`);
  }
}

async function readText(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `request body larger than ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function fail(res: ServerResponse, e: unknown): void {
  const err = isMusterError(e) ? e : new MusterError(ErrorCode.INTERNAL, e instanceof Error ? e.message : String(e));
  if (res.headersSent) return void res.end();
  res.writeHead(statusOf[err.code] ?? 500, { 'content-type': 'application/json' });
  res.end(`${JSON.stringify({ error: { code: err.code, message: err.message } })}\n`);
}
