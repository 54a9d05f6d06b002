/**
 * The dashboard's listener (--dashboard-listen): the web app's static files,
 * its JSON API (routes.ts) and two server-sent-event streams, on HTTPS with
 * the head's own certificate (the cluster CA's; plaintext HTTP only on an
 * --insecure head, said in its log).
 *
 * Authentication is the API's: every /api request shows a session cookie
 * (sessions.ts), the cluster token (`Authorization: Bearer`), or a client
 * certificate of the cluster CA on its TLS connection; the call it makes then
 * goes through the gate with that credential (invoke.ts), so the access table
 * decides (viewer is enough to read everything the pages show). The static
 * files are the public build of packages/dashboard (no cluster data, the
 * same for every cluster), served to anyone so the sign-in page can load.
 *
 * A standby head serves the same pages; its API answers 503 with the
 * leader's gRPC address (MUSTER_NOT_LEADER), which the page shows — it does
 * not proxy: the leader's dashboard address is not in the leader key, and a
 * browser should talk to the head it authenticated to.
 *
 *   GET  /api/events?sinceMs=<ms>|after=<id>&kinds=a,b   SSE: WatchEvents (replay, then live; `id:` lines resume)
 *   GET  /api/gangs/<id>/logs?rank=<n>        SSE: StreamLogs (follow), one text chunk per message
 *   POST /api/session | /api/tickets | /api/logout   sessions.ts
 *   GET  /api/whoami                          the session's identity
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { Identity } from '@muster/contracts';
import { ErrorCode, MusterError, bearerToken, identityOf, isMusterError, parseHostPort, toMusterError, type Logger } from '@muster/common';
import { ClusterEvent, ClusterServiceService, GangServiceService, type LogChunk } from '@muster/proto';
import { authorize } from '../api/access.js';
import { authenticate } from '../api/authenticate.js';
import { formatEventId } from '../events/event-id.js';
import { authCall, type GateInvoker, type Credential } from './invoke.js';
import { answer, decodeSegment, type Query } from './routes.js';
import { sessionCookie, setCookie, Sessions } from './sessions.js';
import { loadAssets, type Assets } from './assets.js';

export interface DashboardOptions {
  listen: string;
  /** The head's TLS files; undefined: plaintext (an --insecure head). */
  tls: { ca: Buffer; cert: Buffer; key: Buffer } | undefined;
  /** The built web app (packages/dashboard/dist). */
  assetsDir: string;
  token: string;
  invoke: GateInvoker;
  log: Logger;
}

export interface Dashboard {
  /** "https://host:port" */
  readonly url: string;
  close(): Promise<void>;
}

const MAX_BODY = 4_096;
const JSON_TYPE = 'application/json; charset=utf-8';
const STATUS: Partial<Record<ErrorCode, number>> = {
  [ErrorCode.UNAUTHENTICATED]: 401,
  [ErrorCode.PERMISSION_DENIED]: 403,
  [ErrorCode.NOT_FOUND]: 404,
  [ErrorCode.INVALID_ARGUMENT]: 400,
  [ErrorCode.NOT_LEADER]: 503,
  [ErrorCode.UNAVAILABLE]: 503,
  [ErrorCode.RESOURCE_EXHAUSTED]: 429,
};

export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  const assets = await loadAssets(o.assetsDir);
  if (!assets.has('/index.html')) o.log.warn({ dir: o.assetsDir }, 'dashboard: the web app is not built (pnpm build): its pages answer 404, its API works');
  const sessions = new Sessions();
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    serve(req, res, o, sessions, assets).catch((e: unknown) => fail(res, e));
  };
  const server: Server = o.tls
    ? createHttpsServer({ ca: o.tls.ca, cert: o.tls.cert, key: o.tls.key, requestCert: true, rejectUnauthorized: false }, handle)
    : createHttpServer(handle);
  if (!o.tls) o.log.warn('dashboard over plaintext HTTP (an --insecure head): its session cookie and token travel in clear');
  const { host, port } = parseHostPort(o.listen, '--dashboard-listen');
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as { port: number }).port;
  const url = `${o.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${bound}`;
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function serve(req: IncomingMessage, res: ServerResponse, o: DashboardOptions, sessions: Sessions, assets: Assets): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://dashboard');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
  if (!url.pathname.startsWith('/api/')) {
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(res, 405, { error: 'method not allowed' });
    const file = assets.get(url.pathname === '/' ? '/index.html' : url.pathname);
    if (!file) return reply(res, 404, { error: 'not found' });
    res.writeHead(200, {
      'Content-Type': file.type,
      'Content-Security-Policy': "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
      'X-Frame-Options': 'DENY',
      'Cache-Control': file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
    });
    res.end(req.method === 'HEAD' ? undefined : file.body);
    return;
  }
  res.setHeader('Cache-Control', 'no-store');
  const path = url.pathname.slice('/api'.length);
  const query = Object.fromEntries(url.searchParams) as Query;
  const cookie = sessionCookie(req.headers.cookie);
  if (req.method === 'POST') return post(req, res, path, o, sessions, cookie);
  if (req.method !== 'GET') return reply(res, 405, { error: 'method not allowed' });
  const { cred, who, session } = credentialOf(req, o.token, sessions, cookie);
  if (path === '/whoami') return reply(res, 200, { role: who.role, name: who.name });
  // A stream on a session ends with it (sign-out, expiry); one on a direct credential ends with its connection.
  const until: Until | undefined = session === undefined ? undefined : { watch: (end) => sessions.watch(session, end), alive: () => sessions.get(session) !== undefined };
  if (path === '/events') return events(req, res, o.invoke, cred, query, until);
  const logs = /^\/gangs\/([^/]+)\/logs$/.exec(path);
  if (logs) return rankLog(req, res, o.invoke, cred, decodeSegment(logs[1]!), query, until);
  return reply(res, 200, await answer(o.invoke, path, query, cred));
}

/** The request's credential: a client certificate or the bearer token, else the session (and its id). */
function credentialOf(req: IncomingMessage, token: string, sessions: Sessions, cookie: string | undefined): { cred: Credential; who: Identity; session?: string } {
  const direct = directCredential(req, token);
  if (direct) return direct;
  const held = sessions.get(cookie);
  if (held) return { ...held, session: cookie };
  throw new MusterError(ErrorCode.UNAUTHENTICATED, 'sign in: open the URL `muster dashboard` prints, or give the cluster token on the sign-in page');
}

/**
 * A client certificate of the cluster CA on this connection, or
 * `Authorization: Bearer <cluster token>`, authenticated as a gRPC call
 * showing the same would be (authenticate.ts: a wrong token is refused, a
 * certificate wins over the token beside it); undefined when neither is shown.
 */
export function directCredential(req: IncomingMessage, token: string): { cred: Credential; who: Identity } | undefined {
  const bearer = bearerToken(req.headers.authorization);
  const socket = req.socket as Partial<TLSSocket>;
  const cert = socket.authorized && socket.getPeerCertificate ? socket.getPeerCertificate() : undefined;
  const byCert = cert && identityOf(cert) ? cert : undefined;
  if (bearer === undefined && !byCert) return undefined;
  const who = authenticate(authCall(byCert, bearer), token);
  // The credential the gate's calls will show: the certificate when it decided the identity, else the token.
  return { cred: byCert ? { cert: byCert } : { token: true }, who };
}

/** POST /api/session, /api/tickets, /api/logout. */
async function post(req: IncomingMessage, res: ServerResponse, path: string, o: DashboardOptions, sessions: Sessions, cookie: string | undefined): Promise<void> {
  // Same-origin only: a page of another site may not sign a browser in or out (SameSite covers the cookie; this covers the form).
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== `${(req.socket as Partial<TLSSocket>).encrypted ? 'https' : 'http'}://${req.headers.host ?? ''}`) {
    return reply(res, 403, { error: 'cross-origin request refused' });
  }
  const body = await readBody(req);
  const secure = (req.socket as Partial<TLSSocket>).encrypted === true;
  if (path === '/logout') {
    sessions.close(cookie);
    res.setHeader('Set-Cookie', setCookie('', 0, secure));
    return reply(res, 200, {});
  }
  if (path === '/tickets') {
    // A direct credential only: a session that minted tickets could renew itself forever, past its certificate.
    const direct = directCredential(req, o.token);
    if (!direct) throw new MusterError(ErrorCode.UNAUTHENTICATED, 'a ticket needs a client certificate or the cluster token, not a session');
    const { cred, who } = direct;
    mayView(who);
    return reply(res, 200, sessions.ticket(cred, who));
  }
  if (path === '/session') {
    const ticket = typeof body.ticket === 'string' ? body.ticket : undefined;
    const held = ticket !== undefined ? sessions.redeem(ticket) : directCredential(req, o.token);
    if (!held) throw new MusterError(ErrorCode.UNAUTHENTICATED, ticket !== undefined ? 'the sign-in link was used or has expired (60 s): run `muster dashboard` again' : 'no credential: send the cluster token or a ticket');
    mayView(held.who);
    const s = sessions.open(held.cred, held.who);
    res.setHeader('Set-Cookie', setCookie(s.id, s.maxAgeS, secure));
    return reply(res, 200, { role: held.who.role, name: held.who.name });
  }
  return reply(res, 404, { error: `no dashboard API route "${path.slice(0, 128)}"` });
}

/** A session is for reading the cluster: the identity must be allowed to list nodes (viewer or above). */
function mayView(who: Identity): void {
  authorize(who, ClusterServiceService.listNodes.path);
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `request body over ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  if (size === 0) return {};
  try {
    const v: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {};
  } catch {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, 'request body: expected JSON');
  }
}

/**
 * SSE of WatchEvents: the retained events after `after` (or the Last-Event-ID
 * the browser resumes from), or those of the last `sinceMs` milliseconds
 * (the page asks for the last hour: a fresh page need not replay a day of
 * events), an end-of-replay marker, then live events.
 */
async function events(req: IncomingMessage, res: ServerResponse, invoke: GateInvoker, cred: Credential, q: Query, until?: Until): Promise<void> {
  const unknown = Object.keys(q).filter((k) => k !== 'after' && k !== 'kinds' && k !== 'sinceMs');
  if (unknown.length) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `query: unknown key "${unknown[0]!.slice(0, 64)}" (expected after, sinceMs, kinds)`);
  const since = q.sinceMs === undefined ? undefined : Number(q.sinceMs);
  if (since !== undefined && !(Number.isInteger(since) && since > 0)) throw new MusterError(ErrorCode.INVALID_ARGUMENT, 'sinceMs: expected a positive integer (milliseconds)');
  const resume = String(req.headers['last-event-id'] ?? q.after ?? '').slice(0, 64);
  // Ids sort as "<ms>-<counter>" (events/event-id.ts): every id of a later millisecond is above this one.
  const after = resume || (since ? formatEventId(Math.max(0, Date.now() - since - 1), 999_999) : '');
  const kinds = (q.kinds ?? '').split(',').filter(Boolean).slice(0, 16).map((k) => k.slice(0, 64));
  const request = { replay: true, afterId: after, kinds, markReplayEnd: true };
  await sse(res, until, (write) => invoke.stream<ClusterEvent>(ClusterServiceService, 'watchEvents', request, cred, (e) =>
    e.replayEnd ? write('replay-end', '{}') : write('event', JSON.stringify(ClusterEvent.toJSON(e)), e.id)));
}

/** SSE of StreamLogs (follow): each chunk as a JSON string in an event "log". */
async function rankLog(req: IncomingMessage, res: ServerResponse, invoke: GateInvoker, cred: Credential, gang: string, q: Query, until?: Until): Promise<void> {
  const unknown = Object.keys(q).filter((k) => k !== 'rank');
  if (unknown.length) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `query: unknown key "${unknown[0]!.slice(0, 64)}" (expected rank)`);
  const rank = Number(q.rank ?? '0');
  if (!Number.isInteger(rank) || rank < 0 || rank > 65_535) throw new MusterError(ErrorCode.INVALID_ARGUMENT, 'rank: expected an integer 0…65535');
  const request = { gang, rank, follow: true, tailBytes: 65_536 };
  await sse(res, until, (write) => invoke.stream<LogChunk>(GangServiceService, 'streamLogs', request, cred, (c) => write('log', JSON.stringify(Buffer.from(c.data).toString('utf8')))));
}

type Open = (write: (event: string, data: string, id?: string) => boolean) => { done: Promise<void>; cancel(): void; resume(): void };

/** The session a stream was opened on: `watch` ends the stream when the session ends; `alive` is checked on each ping. */
interface Until {
  watch(end: () => void): () => void;
  alive(): boolean;
}

/**
 * Runs one stream as server-sent events until it ends, the browser goes away
 * or its session ends (`until`); an error ends it with an "error" event.
 */
async function sse(res: ServerResponse, until: Until | undefined, open: Open): Promise<void> {
  res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' });
  res.write(': open\n\n');
  const stream = open((event, data, id) => res.write(`${id ? `id: ${id}\n` : ''}event: ${event}\ndata: ${data}\n\n`));
  res.on('drain', () => stream.resume());
  const unwatch = until?.watch(() => stream.cancel());
  // An expired session is found on the ping at the latest, even when no request of it comes again.
  const ping = setInterval(() => (until && !until.alive() ? stream.cancel() : res.write(': ping\n\n')), 15_000);
  // The response's close: the browser went away (or the stream ended); the request's may come earlier.
  res.once('close', () => stream.cancel());
  try {
    await stream.done;
  } catch (e) {
    const err = toMusterError(e);
    if (!res.writableEnded) res.write(`event: error\ndata: ${JSON.stringify({ code: err.code, error: err.message })}\n\n`);
  } finally {
    clearInterval(ping);
    unwatch?.();
    stream.cancel();
    res.end();
  }
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return void res.end();
  res.writeHead(status, { 'Content-Type': JSON_TYPE });
  res.end(JSON.stringify(body));
}

function fail(res: ServerResponse, e: unknown): void {
  const err = toMusterError(e);
  const status = isMusterError(e) ? (STATUS[err.code] ?? 500) : 500;
  reply(res, status, { code: err.code, error: err.message, ...(typeof err.details.leader === 'string' ? { leader: err.details.leader } : {}) });
}
