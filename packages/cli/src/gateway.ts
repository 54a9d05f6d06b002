/**
 * The HTTP gateway: exposes replica groups to clients that do not speak the
 * SDK (curl, locust, OpenAI clients), through the same in-process router.
 * Several gateways can run side by side; they share nothing but the head and
 * NATS. docs/gateway.md is the user's guide.
 *
 *   POST /v1/chat/completions, /v1/completions, /v1/embeddings
 *                                    OpenAI-compatible, routed by the body's "model" (gateway-openai.ts)
 *   GET  /v1/models                  the models the caller may call
 *   POST /v1/groups/<group>/call     JSON body → JSON answer (an HTTP group: the shard's status and body)
 *   POST /v1/groups/<group>/stream   JSON body → NDJSON, one line per chunk, flushed as it comes
 *   ANY  /v1/groups/<group>/http/<path>
 *                                    for groups whose shards speak HTTP (bridged by the worker):
 *                                    the request goes to <path> on a replica's rank 0 as it is, and
 *                                    the answer comes back as it is, streamed (gateway-proxy.ts)
 *   GET  /healthz                    200, without a key (for load balancers)
 *
 * Every other request carries an API key with the right to call its group
 * (gateway-auth.ts: 401, 403, 429, 413), unless the gateway runs with no
 * keys at all (`--no-auth`). HTTPS when given a certificate and key. A SIGHUP
 * or a change of the keys file reloads the keys (and the certificate): see
 * `reload`.
 *
 * Headers, deadlines, request ids and error bodies: gateway-http.ts. Errors
 * of the gateway have a status that says whose fault it is: 400 malformed
 * request, 401 no or unknown key, 403 group not allowed, 404 unknown group,
 * model or route, 413 body too large, 429 key over its rate or back-pressure,
 * 503 no replica, 504 deadline, 502 replica lost or failed. An HTTP shard's
 * own status passes through.
 */
import { unwatchFile, watchFile } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { MAX_MESSAGE_BYTES } from '@muster/contracts';
import { ErrorCode, MusterError, isMusterError, type Cluster } from '@muster/sdk';
import { readKeyFile, readPemFile } from '@muster/common';
import { HttpError, RateLimiter, authenticate, authorize, checkDeclaredLength } from './gateway-auth.js';
import { GroupDirectory, checkGroupName, deadlinesOf } from './gateway-groups.js';
import { REQUEST_ID_HEADER, abortOnClose, callOptions, fail, parseJson, pipeChunks, readBody, requestIdOf } from './gateway-http.js';
import { KeyRing, readKeysFile } from './gateway-keys.js';
import type { GatewayObserver, RequestRecord } from './gateway-metrics.js';
import { OPENAI_ROUTES, listModels, openAiCall } from './gateway-openai.js';
import { proxyHttp, writeBridgeAnswer } from './gateway-proxy.js';
import { tracedRequest } from './gateway-tracing.js';

const ROUTES_HINT = 'use POST /v1/chat/completions, /v1/completions or /v1/embeddings (by "model"), GET /v1/models, POST /v1/groups/<group>/call or /stream, or ANY /v1/groups/<group>/http/<path> for a group whose shards speak HTTP';

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
  /** Continue a client's W3C traceparent (default: a new trace per request, linked to the client's span; gateway-tracing.ts). */
  trustTraceparent?: boolean;
  /** PEM files of the HTTPS certificate (chain) and key; plain HTTP without. */
  tls?: { cert: string; key: string } | undefined;
  /** Counts and logs each request (gateway-metrics.ts); none: neither. */
  observer?: GatewayObserver | undefined;
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
  const groups = new GroupDirectory(cluster);

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const requestId = requestIdOf(req);
    res.setHeader(REQUEST_ID_HEADER, requestId);
    const record = opts.observer?.begin(req, res, requestId);
    void tracedRequest(req, res, requestId, record, opts.trustTraceparent === true, () => handle(req, res, requestId, record)).catch((e: unknown) => fail(req, res, e));
  };
  const tls = opts.tls ? readTls(opts.tls) : undefined;
  const server: Server | HttpsServer = tls ? createHttpsServer(tls, onRequest) : createServer(onRequest);
  // `Expect: 100-continue` (curl sends it for large bodies): the checks run
  // before the client is told to send the body, so a 401 or 413 costs no upload.
  server.on('checkContinue', onRequest);
  // Small answers and SSE chunks leave at once (no Nagle wait for the client's delayed ACK).
  server.on('connection', (socket: { setNoDelay(on: boolean): void }) => socket.setNoDelay(true));

  async function handle(req: IncomingMessage, res: ServerResponse, requestId: string, record: RequestRecord | undefined): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://gateway');
    if (req.method === 'GET' && url.pathname === '/healthz') return void res.end('ok\n');
    const key = ring ? authenticate(ring, req) : undefined;
    const body = () => readBody(req, res, maxBody);
    if (url.pathname === '/v1/models' || OPENAI_ROUTES.has(url.pathname)) {
      checkDeclaredLength(req, maxBody);
      const ctx = { groups, limiter, key, requestId, body, record };
      if (url.pathname !== '/v1/models') return openAiCall(req, res, url.pathname, ctx);
      if (req.method !== 'GET') throw new HttpError(405, ErrorCode.INVALID_ARGUMENT, `${req.method} /v1/models: use GET`, { allow: 'GET' });
      return listModels(res, ctx);
    }
    const h = /^\/v1\/groups\/([^/]+)\/http(\/.*)$/.exec(url.pathname);
    const m = h ? undefined : /^\/v1\/groups\/([^/]+)\/(call|stream)$/.exec(url.pathname);
    if (!h && !m) throw new MusterError(ErrorCode.NOT_FOUND, `no route ${req.method} ${url.pathname}: ${ROUTES_HINT}`);
    const name = checkGroupName((h ?? m)![1]!);
    if (key) {
      authorize(key.entry, name);
      limiter.take(key.entry);
    }
    checkDeclaredLength(req, maxBody);
    const { group: info, known } = await groups.info(name);
    // The list was read and has no such group: no lookup on the head per made-up name.
    if (!info && known) throw new MusterError(ErrorCode.NOT_FOUND, `no replica group "${name}"`, { details: { field: 'group' } });
    // Only a group that exists becomes a metrics label: made-up names in paths must not add series.
    if (record && info) record.group = name;
    if (h && info && !info.http) throw new MusterError(ErrorCode.NOT_FOUND, `replica group "${name}" does not speak HTTP (its spec has no httpPort): call it with POST /v1/groups/${name}/call or /stream`, { details: { field: 'group' } });
    const callOpts = { ...callOptions(req, deadlinesOf(info)), onReplica: record?.onReplica };
    // The key that opened the gateway is not the shard's business: only a header it did not come in reaches the shard.
    if (h) {
      const raw = await body();
      return proxyHttp(req, res, await groups.handle(name), { method: req.method ?? 'GET', path: `${h[2]}${url.search}`, body: raw, requestId, keyHeader: key?.header, ...callOpts });
    }
    if (req.method !== 'POST') throw new MusterError(ErrorCode.INVALID_ARGUMENT, `${req.method} ${url.pathname}: use POST with a JSON body`);
    const payload = parseJson(await body());
    const g = await groups.handle(name);
    if (m![2] === 'call') {
      const answer = await g.call(payload, callOpts);
      // An HTTP group's answer is the shard's: its status, not a 200 around it.
      if (info?.http && writeBridgeAnswer(res, answer)) return;
      res.setHeader('content-type', 'application/json');
      res.end(`${JSON.stringify(answer)}\n`);
      return;
    }
    const signal = abortOnClose(res);
    await pipeChunks(res, g.stream(payload, { ...callOpts, signal }), {
      timeoutMs: callOpts.timeoutMs,
      head: () => ({ status: 200, headers: { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' } }),
      encode: (chunk) => `${JSON.stringify(chunk)}\n`,
      // Headers are gone: the error becomes the last line.
      lastWords: (e) => {
        const err = isMusterError(e) ? e : new MusterError(ErrorCode.INTERNAL, String(e));
        return `${JSON.stringify({ error: { code: err.code, message: err.message } })}\n`;
      },
    });
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
      groups.close();
    },
  };
}

function readTls(files: { cert: string; key: string }): { cert: Buffer; key: Buffer } {
  return { cert: readPemFile(files.cert, "the gateway's TLS certificate"), key: readKeyFile(files.key, "the gateway's TLS key") };
}
