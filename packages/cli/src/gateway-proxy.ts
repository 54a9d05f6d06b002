/**
 * Passing an HTTP request to a group whose shards speak HTTP (the worker's
 * bridge, packages/worker/src/http-bridge.ts) and its answer back, as it is.
 *
 * Every request goes as a data-plane stream with `head: true`: the bridge
 * answers first with the shard's status and headers, then the body's bytes
 * as the shard writes them. So the gateway learns from the answer itself,
 * not from the request's Accept header or its body's "stream", whether the
 * body is SSE, and
 *   - the status and error body of the shard pass through (a 404 stays 404);
 *   - an SSE answer (or any other) is written chunk by chunk as it comes; the
 *     next chunk is taken from the router only when the client's socket took
 *     the last one (back-pressure), and the client going away aborts the call:
 *     the router cancels it on the replica, whose bridge aborts the shard's
 *     request (its socket closes, as vLLM expects of a client that left).
 *
 * The body goes as bytes (a multipart upload arrives as it was sent); the
 * gateway's own key header stays here; `x-request-id` goes on.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCode, MusterError, type ReplicaGroup } from '@muster/sdk';
import { REQUEST_ID_HEADER, abortOnClose, pipeChunks } from './gateway-http.js';

/** Request headers an HTTP shard gets (the API key's header only when the key did not come in it). */
const FORWARDED = ['content-type', 'accept', 'authorization', 'user-agent'];

export interface ProxyRequest {
  method: string;
  /** Path and query on the shard. */
  path: string;
  /** The request body as it came (empty: none). */
  body: Uint8Array;
  requestId: string;
  /** The header the gateway's API key came in: not passed on. */
  keyHeader: string | undefined;
  timeoutMs: number;
  idempotent: boolean;
  /** Told the replica that answered (the request log). */
  onReplica?: ((replica: { replicaId: string; revision: string }) => void) | undefined;
  /** The body is JSON (an OpenAI route): said so to the shard when the client did not. */
  json?: boolean;
  /** The payload as an overflow group reads it (gateway-overflow.ts). */
  overflowPayload?: ((group: string, payload: unknown) => unknown) | undefined;
  /** What the group's `prefix` routing policy keys on (gateway-http.ts, gateway-openai.ts). */
  routeKey?: string | undefined;
  routeText?: string | (() => string | undefined) | undefined;
}

/** The HTTP bridge's payload for `p`. */
export function bridgePayload(req: IncomingMessage, p: ProxyRequest, head: boolean): Record<string, unknown> {
  const headers: Record<string, string> = { [REQUEST_ID_HEADER]: p.requestId };
  for (const k of FORWARDED) if (k !== p.keyHeader && typeof req.headers[k] === 'string') headers[k] = req.headers[k];
  if (p.json && !headers['content-type']?.includes('json')) headers['content-type'] = 'application/json';
  return { method: p.method, path: p.path, headers, ...(p.body.length > 0 ? { body: p.body } : {}), ...(head ? { head: true } : {}) };
}

/** Sends `p` to `g` and writes the shard's answer to `res` as it comes (see the top of this file). */
export async function proxyHttp(req: IncomingMessage, res: ServerResponse, g: ReplicaGroup, p: ProxyRequest): Promise<void> {
  const signal = abortOnClose(res);
  const stream = g.stream(bridgePayload(req, p, true), { timeoutMs: p.timeoutMs, idempotent: p.idempotent, signal, onReplica: p.onReplica, overflowPayload: p.overflowPayload, routeKey: p.routeKey, routeText: p.routeText });
  await pipeChunks(res, stream, {
    timeoutMs: p.timeoutMs,
    head: (first) => {
      if (first === undefined) return { status: 502, headers: {} };
      const head = headOf(first);
      return { status: head.status, headers: head.headers, consumed: head.legacy === undefined };
    },
    encode: bodyBytes,
  });
}

/**
 * The shard's status and headers from the first chunk. A worker older than
 * `head: true` streams the body straight away (non-2xx as an error): its
 * first chunk is then body text, answered as 200 and written as it is.
 */
function headOf(chunk: unknown): { status: number; headers: Record<string, string>; legacy?: unknown } {
  const c = chunk as { status?: unknown; headers?: unknown } | undefined;
  if (c && typeof c === 'object' && !(c instanceof Uint8Array) && typeof c.status === 'number' && c.headers && typeof c.headers === 'object') {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(c.headers as Record<string, unknown>)) if (typeof v === 'string' && k !== REQUEST_ID_HEADER) headers[k] = v;
    return { status: c.status, headers };
  }
  return { status: 200, headers: { 'content-type': 'application/octet-stream' }, legacy: chunk };
}

function bodyBytes(chunk: unknown): string | Uint8Array {
  if (chunk instanceof Uint8Array || typeof chunk === 'string') return chunk;
  throw new MusterError(ErrorCode.APPLICATION, 'the HTTP bridge sent a body chunk that is neither bytes nor text');
}

/**
 * A unary answer of the HTTP bridge (`POST /v1/groups/<g>/call` on an HTTP
 * group): its status and body, not wrapped in a 200.
 */
export function writeBridgeAnswer(res: ServerResponse, answer: unknown): boolean {
  const a = answer as { status?: unknown; headers?: unknown; body?: unknown } | undefined;
  if (!a || typeof a !== 'object' || typeof a.status !== 'number' || !a.headers || typeof a.headers !== 'object') return false;
  const ct = (a.headers as Record<string, unknown>)['content-type'];
  res.writeHead(a.status, { 'content-type': typeof ct === 'string' ? ct : 'application/octet-stream' });
  res.end(typeof a.body === 'string' ? a.body : JSON.stringify(a.body));
  return true;
}
