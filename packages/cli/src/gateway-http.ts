/**
 * The gateway's HTTP plumbing, the same on every route: the request id, the
 * call's deadline, the body (capped: 413), and error answers.
 *
 * Request ids: `x-request-id` comes in (kept when it is 1-128 characters of
 * [A-Za-z0-9._:-], else replaced) or is made here (a UUID); it goes out on
 * every answer, errors included, and on to an HTTP shard.
 *
 * Deadlines: `x-muster-timeout-ms` (ms, at most 1 h) is the whole call's
 * deadline, streams included. Without it, the group's `requestTimeoutMs`
 * (else 30 s); and when the group has no ready replica as the call arrives
 * (scaled to zero, or starting), the group's startup deadline is added: the
 * call waits for the first replica as long as the head gives one to start,
 * not a fixed 30 s. A value that is no positive number counts as none.
 *
 * Route keys (groups with the `prefix` routing policy, docs/gateway.md):
 * `x-muster-route-key`, else `x-session-id`, is the call's `routeKey`; calls
 * with the same key prefer the same replica. Without either, an OpenAI route
 * keys on the start of the prompt (gateway-openai.ts).
 *
 * Error bodies have OpenAI's shape, so OpenAI clients show them, with the
 * gateway's stable code: `{"error":{"message","type","param","code"}}`.
 * Upstream answers (an HTTP shard's 4xx/5xx) are not errors of the gateway:
 * they pass through as they are (gateway-proxy.ts).
 *
 * Bodies stay bytes (a multipart audio upload to an HTTP shard passes
 * unchanged); only a route that parses JSON decodes them. Streamed answers,
 * whatever their format (NDJSON, SSE, an HTTP shard's bytes), go through one
 * loop, pipeChunks: the next chunk is taken only when the client's socket took
 * the last, and the client leaving or the call's deadline stops it.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DEFAULT_REQUEST_TIMEOUT_MS, MAX_REQUEST_TIMEOUT_MS, MAX_ROUTE_KEY_LENGTH, ROUTE_KEY_HEADER, SESSION_ID_HEADER } from '@muster/contracts';
import { ErrorCode, MusterError, isMusterError } from '@muster/sdk';
import { HttpError, bodyTooLarge } from './gateway-auth.js';

export const REQUEST_ID_HEADER = 'x-request-id';
export const TIMEOUT_HEADER = 'x-muster-timeout-ms';

const statusOf: Partial<Record<string, number>> = {
  [ErrorCode.INVALID_ARGUMENT]: 400,
  [ErrorCode.NOT_FOUND]: 404,
  [ErrorCode.BACKPRESSURE]: 429,
  [ErrorCode.NO_REPLICAS]: 503,
  [ErrorCode.UNAVAILABLE]: 503,
  [ErrorCode.DEADLINE_EXCEEDED]: 504,
  [ErrorCode.REPLICA_LOST]: 502,
  [ErrorCode.APPLICATION]: 502,
  [ErrorCode.PERMISSION_DENIED]: 403,
};

/** OpenAI's error `type` for a status. */
function typeOf(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  if (status === 504) return 'timeout_error';
  return status >= 500 ? 'server_error' : 'invalid_request_error';
}

/** The request's id: the one it came with when well formed, else a new one. */
export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && /^[A-Za-z0-9._:-]{1,128}$/.test(given) ? given : randomUUID();
}

/** What the deadline of a call depends on besides its headers. */
export interface DeadlineDefaults {
  /** The group's `requestTimeoutMs` (0: the gateway's default). */
  requestTimeoutMs: number;
  /** The group's startup deadline, waited in addition when it has no ready replica; 0: none. */
  coldStartMs: number;
}

/** A call's options from its headers and its group's defaults (see the top of this file). */
export function callOptions(req: IncomingMessage, d: DeadlineDefaults = { requestTimeoutMs: 0, coldStartMs: 0 }): { timeoutMs: number; idempotent: boolean; routeKey?: string } {
  const asked = Number(req.headers[TIMEOUT_HEADER]);
  const explicit = Number.isFinite(asked) && asked > 0;
  const timeoutMs = explicit ? asked : (d.requestTimeoutMs || DEFAULT_REQUEST_TIMEOUT_MS) + d.coldStartMs;
  const routeKey = routeKeyOf(req);
  return { timeoutMs: Math.min(timeoutMs, MAX_REQUEST_TIMEOUT_MS), idempotent: req.headers['x-muster-idempotent'] === 'true', ...(routeKey !== undefined ? { routeKey } : {}) };
}

/** The caller's route key: its own key header, else its session id; a value too long is refused, naming the header. */
function routeKeyOf(req: IncomingMessage): string | undefined {
  for (const header of [ROUTE_KEY_HEADER, SESSION_ID_HEADER]) {
    const v = req.headers[header];
    if (typeof v !== 'string' || v === '') continue;
    if (v.length > MAX_ROUTE_KEY_LENGTH) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `${header}: at most ${MAX_ROUTE_KEY_LENGTH} characters, got ${v.length}`, { details: { field: header } });
    return v;
  }
  return undefined;
}

/**
 * The request body, at most `max` bytes: past that it stops reading and
 * throws a 413 (a body without a Content-Length, or one that lied). A client
 * waiting on `Expect: 100-continue` is told to send only now, after the checks.
 */
export function readBody(req: IncomingMessage, res: ServerResponse, max: number): Promise<Buffer> {
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
      } else resolve(Buffer.concat(chunks));
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

/** A JSON body (as UTF-8); an empty one is null. */
export function parseJson(body: Buffer): unknown {
  const text = body.toString('utf8');
  if (text.trim() === '') return null;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `malformed JSON body: ${(e as Error).message}`);
  }
}

/** An error the gateway answers with, as status, headers and OpenAI-shaped body. */
export function errorAnswer(e: unknown): { status: number; headers: Record<string, string>; body: string } {
  if (e instanceof HttpError) return { status: e.status, headers: e.headers, body: errorBody(e.status, e.code, e.message, (e as { param?: string }).param ?? null) };
  const err = isMusterError(e) ? e : new MusterError(ErrorCode.INTERNAL, e instanceof Error ? e.message : String(e));
  // A request over the data plane's message limit never left: the client's body is too large.
  const status = err.code === ErrorCode.RESOURCE_EXHAUSTED ? ((err.details as { field?: unknown } | undefined)?.field === 'payload' ? 413 : 502) : (statusOf[err.code] ?? 500);
  const param = (err.details as { field?: unknown } | undefined)?.field;
  return { status, headers: {}, body: errorBody(status, err.code, err.message, typeof param === 'string' ? param : null) };
}

export function errorBody(status: number, code: string, message: string, param: string | null = null): string {
  return `${JSON.stringify({ error: { message, type: typeOf(status), param, code } })}\n`;
}

/**
 * Answers an error as JSON. When the body was not read to its end the
 * connection closes after the answer: the rest of an oversized upload is
 * not read to keep the connection. Once headers are out, the answer can only
 * be cut: the connection is destroyed, so the client sees it unfinished.
 */
export function fail(req: IncomingMessage, res: ServerResponse, e: unknown): void {
  if (res.headersSent) {
    markFailed(res, failureStatus(e));
    return void res.destroy();
  }
  const a = errorAnswer(e);
  const headers: Record<string, string> = { 'content-type': 'application/json', ...a.headers };
  if (!req.complete) headers.connection = 'close';
  res.writeHead(a.status, headers);
  res.end(a.body);
}

/**
 * The status of an answer the gateway cut or ended early because the call
 * failed after its headers went out (the client saw 200 and a torn or
 * last-words body): what the request log and metrics record instead of the
 * status sent, or 499 for a torn one (gateway-metrics.ts).
 */
const failed = new WeakMap<ServerResponse, number>();

/** 504 for a call past its deadline, else 502: the failure of an answer whose headers are out. */
function failureStatus(e: unknown): number {
  return isMusterError(e) && e.code === ErrorCode.DEADLINE_EXCEEDED ? 504 : 502;
}

function markFailed(res: ServerResponse, status: number): void {
  if (res.destroyed || failed.has(res)) return; // already cut (the client left: 499)
  failed.set(res, status);
}

/** The status recorded for an answer that failed after its headers (above); undefined when it did not. */
export function failedStatusOf(res: ServerResponse): number | undefined {
  return failed.get(res);
}

/** A signal that aborts when the client goes away before its answer ended: the call's `signal`. */
export function abortOnClose(res: ServerResponse): AbortSignal {
  const abort = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) abort.abort(new MusterError(ErrorCode.CANCELLED, 'the client went away'));
  });
  return abort.signal;
}

/**
 * Writes `chunk` and waits until the socket takes more (back-pressure): the
 * next chunk is pulled from the replica only then. False when the client
 * went away meanwhile or `signal` aborted (the call's deadline passed).
 */
export function writeAndWait(res: ServerResponse, chunk: string | Uint8Array, signal?: AbortSignal): Promise<boolean> {
  if (res.destroyed || signal?.aborted) return Promise.resolve(false);
  if (res.write(chunk)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onDrain = () => settle(true);
    const onClose = () => settle(false);
    const settle = (ok: boolean) => {
      res.off('drain', onDrain).off('close', onClose);
      signal?.removeEventListener('abort', onClose);
      resolve(ok);
    };
    res.once('drain', onDrain).once('close', onClose);
    signal?.addEventListener('abort', onClose, { once: true });
  });
}

/** How pipeChunks writes one kind of streamed answer. */
export interface PipeOptions {
  /** The answer's status and headers, given the first chunk (undefined: the stream had none); `consumed`: that chunk was the head, not body. */
  head: (first: unknown) => { status: number; headers: Record<string, string>; consumed?: boolean };
  /** One chunk as the bytes or text written. */
  encode: (chunk: unknown) => string | Uint8Array;
  /** Written after the last chunk (SSE's `[DONE]`). */
  trailer?: () => string | undefined;
  /** The stream failed after the headers went out: its last words (NDJSON's error line); none: the connection is cut. */
  lastWords?: (e: unknown) => string;
  /** The call's deadline (ms from now): a write still waiting on the client then gives up. */
  timeoutMs: number;
}

/**
 * Writes a streamed answer as it comes, with back-pressure (writeAndWait).
 * An error before the first chunk is thrown (the caller answers it as an
 * error); after it, `lastWords` ends the body, or the connection is cut. The
 * client leaving, or the deadline passing while a write waits for a client
 * that reads nothing, leaves the loop (the connection cut), which cancels
 * the call on its replica. (The deadline of the call itself is the router's:
 * it ends the stream with DEADLINE_EXCEEDED, the 504 or last words above.)
 */
export async function pipeChunks(res: ServerResponse, chunks: AsyncIterable<unknown>, o: PipeOptions): Promise<void> {
  let started = false;
  const start = (first: unknown) => {
    started = true;
    const h = o.head(first);
    res.writeHead(h.status, h.headers);
    res.flushHeaders();
    return h.consumed === true;
  };
  const late = new AbortController();
  const timer = setTimeout(() => late.abort(), o.timeoutMs);
  try {
    for await (const chunk of chunks) {
      if (!started && start(chunk)) continue;
      if (!(await writeAndWait(res, o.encode(chunk), late.signal))) {
        if (late.signal.aborted) markFailed(res, 504); // the deadline, not the client leaving
        return void res.destroy(); // leaving the loop cancels the call
      }
    }
  } catch (e) {
    if (!started || !o.lastWords) throw e;
    markFailed(res, failureStatus(e));
    res.end(o.lastWords(e));
    return;
  } finally {
    clearTimeout(timer);
  }
  if (!started) start(undefined);
  res.end(o.trailer?.());
}
