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
 *   GET  /healthz                    200, without a key (for load balancers)
 *
 * Every other request carries an API key with the right to call its group
 * (gateway-auth.ts: 401, 403, 429, 413), unless the gateway runs with no
 * keys at all (`--no-auth`). HTTPS when given a certificate and key. A SIGHUP
 * or a change of the keys file reloads the keys (and the certificate): see
 * `reload`.
 *
 * Headers: `x-muster-timeout-ms` (deadline, default 30 s, at most 1 h), `x-muster-idempotent: true`.
 * Errors are JSON `{ "error": { "code", "message" } }` with a status that
 * says whose fault it is: 400 malformed request, 401 no or unknown key, 403
 * group not allowed, 404 unknown group, 413 body too large, 429 key over its
 * rate or back-pressure, 503 no replica, 504 deadline, 502 replica lost or
 * failed.
 */
import { unwatchFile, watchFile } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { MAX_MESSAGE_BYTES } from '@muster/contracts';
import { ErrorCode, MusterError, isMusterError, type Cluster, type ReplicaGroup } from '@muster/sdk';
import { readKeyFile, readPemFile } from '@muster/common';
import { HttpError, RateLimiter, authenticate, authorize, bodyTooLarge, checkDeclaredLength } from './gateway-auth.js';
import { KeyRing, readKeysFile } from './gateway-keys.js';

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

/**
 * Default of `--max-body-bytes`: the data plane's message limit. A larger
 * body could not travel to a replica in one request anyway, so refusing it
 * at the door (413) is the clearer answer.
 */
export const DEFAULT_MAX_BODY_BYTES = MAX_MESSAGE_BYTES;

export interface GatewayOptions {
  listen: { host: string; port: number };
  /** The keys file (gateway-keys.ts); undefined only with `noAuth`. */
  keysFile?: string | undefined;
  /** Serve without authentication: every caller may call every group. */
  noAuth?: boolean;
  maxBodyBytes?: number;
  /** PEM files of the HTTPS certificate (chain) and key; plain HTTP without. */
  tls?: { cert: string; key: string } | undefined;
  /** Where the gateway says what it did (reloads, their failures). */
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

export interface Gateway {
  readonly address: string;
  /** "http://host:port" or "https://host:port". */
  readonly url: string;
  /**
   * Reads the keys file (and the TLS certificate and key) again. A file that
   * does not read or validate changes nothing: the gateway keeps what it had
   * and the error is thrown (and logged).
   */
  reload(): Promise<{ keys: number }>;
  close(): Promise<void>;
}

export async function startGateway(cluster: Cluster, opts: GatewayOptions): Promise<Gateway> {
  if (!opts.keysFile && !opts.noAuth) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, 'the gateway needs --keys-file (API keys: muster gateway key create), or --no-auth to serve every caller without one');
  }
  const log = opts.log ?? (() => undefined);
  const maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const ring = opts.keysFile ? new KeyRing(await readKeysFile(opts.keysFile)) : undefined;
  const limiter = new RateLimiter();
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

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    void handle(req, res).catch((e: unknown) => {
      // A group with no replica may have been deleted: look it up again next time (404 then).
      const name = /^\/v1\/groups\/([a-z0-9-]+)\//.exec(req.url ?? '')?.[1];
      if (name && isMusterError(e) && e.code === ErrorCode.NO_REPLICAS) forget(name);
      fail(req, res, e);
    });
  };
  const tls = opts.tls ? readTls(opts.tls) : undefined;
  const server: Server | HttpsServer = tls ? createHttpsServer(tls, onRequest) : createServer(onRequest);
  // `Expect: 100-continue` (curl sends it for large bodies): the checks run
  // before the client is told to send the body, so a 401 or 413 costs no upload.
  server.on('checkContinue', onRequest);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://gateway');
    if (req.method === 'GET' && url.pathname === '/healthz') return void res.end('ok\n');
    const key = ring ? authenticate(ring, req) : undefined;
    const h = /^\/v1\/groups\/([a-z0-9-]+)\/http(\/.*)$/.exec(url.pathname);
    const m = h ? undefined : /^\/v1\/groups\/([a-z0-9-]+)\/(call|stream)$/.exec(url.pathname);
    if (!h && !m) throw new MusterError(ErrorCode.NOT_FOUND, `no route ${req.method} ${url.pathname}: use POST /v1/groups/<group>/call or /stream`);
    const name = (h ?? m)![1]!;
    if (key) {
      authorize(key.entry, name);
      limiter.take(key.entry);
    }
    checkDeclaredLength(req, maxBody);
    const body = () => readBody(req, res, maxBody);
    // The key that opened the gateway is not the shard's business: only a header it did not come in reaches the shard.
    if (h) return proxyHttp(req, res, await group(name), `${h[2]}${url.search}`, await body(), key?.header);
    if (req.method !== 'POST') throw new MusterError(ErrorCode.INVALID_ARGUMENT, `${req.method} ${url.pathname}: use POST with a JSON body`);
    const payload = parseJson(await body());
    const g = await group(name);
    const callOpts = callOptions(req);
    if (m![2] === 'call') {
      const answer = await g.call(payload, callOpts);
      res.setHeader('content-type', 'application/json');
      res.end(`${JSON.stringify(answer)}\n`);
      return;
    }
    const abort = new AbortController();
    res.once('close', () => abort.abort());
    let started = false;
    try {
      for await (const chunk of g.stream(payload, { ...callOpts, signal: abort.signal })) {
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

  async function reload(): Promise<{ keys: number }> {
    try {
      if (ring && opts.keysFile) {
        ring.replace(await readKeysFile(opts.keysFile));
        limiter.retain(ring.hashes());
      }
      if (opts.tls && 'setSecureContext' in server) server.setSecureContext(readTls(opts.tls));
    } catch (e) {
      log('error', 'gateway reload failed: keeping the keys and certificate it had', { error: (e as Error).message });
      throw e;
    }
    log('info', 'gateway reloaded', { keys: ring?.size ?? 0 });
    return { keys: ring?.size ?? 0 };
  }
  // Polling the file's stat, not fs.watch: it sees a file replaced by a rename
  // (writeKeysFile) and a Kubernetes Secret's symlink swap alike.
  const keysFile = opts.keysFile;
  const onKeysFileChange = (now: { mtimeMs: number; ino: number }, before: { mtimeMs: number; ino: number }) => {
    if (now.mtimeMs !== before.mtimeMs || now.ino !== before.ino) reload().catch(() => undefined);
  };
  if (keysFile && ring) watchFile(keysFile, { interval: 1_000, persistent: false }, onKeysFileChange);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.listen.port, opts.listen.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const address = `${opts.listen.host}:${port}`;
  return {
    address,
    url: `${tls ? 'https' : 'http'}://${address}`,
    reload,
    async close() {
      if (keysFile && ring) unwatchFile(keysFile, onKeysFileChange);
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      for (const g of groups.values()) (await g.catch(() => undefined))?.close();
    },
  };
}

function readTls(files: { cert: string; key: string }): { cert: Buffer; key: Buffer } {
  return { cert: readPemFile(files.cert, "the gateway's TLS certificate"), key: readKeyFile(files.key, "the gateway's TLS key") };
}

/**
 * The HTTP bridge's side of the gateway: an HTTP request in, the shard's HTTP
 * answer out. `keyHeader` is the header the API key came in: it stays here.
 */
async function proxyHttp(req: IncomingMessage, res: ServerResponse, g: ReplicaGroup, path: string, body: string, keyHeader: string | undefined): Promise<void> {
  const headers: Record<string, string> = {};
  for (const k of ['content-type', 'accept', 'authorization']) if (k !== keyHeader && typeof req.headers[k] === 'string') headers[k] = req.headers[k];
  const payload = { method: req.method, path, headers, ...(body ? { body } : {}) };
  const opts = callOptions(req);
  if (req.headers.accept?.includes('text/event-stream')) {
    const abort = new AbortController();
    res.once('close', () => abort.abort());
    let started = false;
    for await (const chunk of g.stream(payload, { ...opts, signal: abort.signal })) {
      if (!started) res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      started = true;
      res.write(String(chunk));
    }
    if (!started) res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.end();
    return;
  }
  const answer = (await g.call(payload, opts)) as { status: number; headers: Record<string, string>; body: unknown };
  const ct = answer.headers['content-type'] ?? 'application/octet-stream';
  res.writeHead(answer.status, { 'content-type': ct });
  res.end(typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body));
}

function parseJson(text: string): unknown {
  if (text.trim() === '') return null;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `malformed JSON body: ${(e as Error).message}`);
  }
}

const DEFAULT_TIMEOUT_MS = 30_000;
/** The longest deadline a request may ask for (and below Node's 2^31 ms timer limit). */
const MAX_TIMEOUT_MS = 3_600_000;

/**
 * A call's options from its headers, the same on every route:
 * `x-muster-timeout-ms` (default 30 s; a value that is no positive number
 * counts as none; at most an hour) and `x-muster-idempotent: true`.
 */
function callOptions(req: IncomingMessage): { timeoutMs: number; idempotent: boolean } {
  const asked = Number(req.headers['x-muster-timeout-ms'] ?? DEFAULT_TIMEOUT_MS);
  const timeoutMs = Number.isFinite(asked) && asked > 0 ? Math.min(asked, MAX_TIMEOUT_MS) : DEFAULT_TIMEOUT_MS;
  return { timeoutMs, idempotent: req.headers['x-muster-idempotent'] === 'true' };
}

/**
 * The request body, at most `max` bytes: past that it stops reading and
 * throws a 413 (a body without a Content-Length, or one that lied). A client
 * waiting on `Expect: 100-continue` is told to send only now, after the checks.
 */
function readBody(req: IncomingMessage, res: ServerResponse, max: number): Promise<string> {
  if (/100-continue/i.test(req.headers.expect ?? '')) res.writeContinue();
  // Listeners, not `for await`: leaving that loop early destroys the socket, and the 413 with it.
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (e: Error | undefined) => {
      req.off('data', onData).off('end', onEnd).off('error', done);
      if (e) {
        req.pause();
        reject(e);
      } else resolve(Buffer.concat(chunks).toString('utf8'));
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > max) done(bodyTooLarge(max, `the body (${size} bytes so far)`));
      else chunks.push(c);
    };
    const onEnd = () => done(undefined);
    req.on('data', onData).on('end', onEnd).on('error', done);
  });
}

/**
 * Answers an error as JSON. When the body was not read to its end the
 * connection closes after the answer: the rest of an oversized upload is
 * not read to keep the connection.
 */
function fail(req: IncomingMessage, res: ServerResponse, e: unknown): void {
  if (res.headersSent) return void res.end();
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (!req.complete) headers.connection = 'close';
  if (e instanceof HttpError) {
    res.writeHead(e.status, { ...headers, ...e.headers });
    res.end(`${JSON.stringify({ error: { code: e.code, message: e.message } })}\n`);
    return;
  }
  const err = isMusterError(e) ? e : new MusterError(ErrorCode.INTERNAL, e instanceof Error ? e.message : String(e));
  res.writeHead(statusOf[err.code] ?? 500, headers);
  res.end(`${JSON.stringify({ error: { code: err.code, message: err.message } })}\n`);
}
