/**
 * The HTTP bridge: shards that speak HTTP (vLLM's OpenAI server, TGI, any
 * web app) join the data plane without knowing about it. For rank 0 of a
 * replica whose group names an `httpPort`, the agent serves the replica's
 * NATS subject itself (the SDK's `serve()`, so routing, limits, deadlines and
 * drain are the same as for TS replicas) and forwards each request to
 * http://127.0.0.1:<port><path> on this node.
 *
 * Request payload: { method?: "POST", path: "/v1/completions", headers?: {…}, body?: JSON | string | bytes }
 *                  (bytes and text go to the shard unchanged; a JSON value is sent as JSON)
 * Unary answer:    { status, headers, body }  (body parsed when the reply is JSON)
 * Stream chunks:   the response body as text, chunk by chunk (SSE passes through untouched),
 *                  at most STREAM_CHUNK_BYTES each and read from the shard only as fast as the
 *                  caller takes them; a non-2xx status ends the stream with an error naming it.
 * With `head: true` in the payload (what the gateway sends), the stream says what the shard
 *                  answered instead: first { status, headers } (whatever the status; hop-by-hop
 *                  headers and those fetch() undid, content-length and -encoding, left out), then
 *                  the body's bytes as they come. The gateway learns from the first chunk whether
 *                  the answer is SSE, an error to pass through, or a plain body, without asking
 *                  the caller to say in advance. Without `head`, the old contract above holds.
 *
 * Traces: with tracing on in the worker, each forwarded request carries the
 * W3C `traceparent` (and `tracestate`) of the replica's span (serve() runs
 * the handler under it), replacing any the client sent, so an engine that
 * traces (vLLM's --otlp-traces-endpoint) continues the same trace.
 *
 * Bounds: a unary answer is one data-plane message, so its body is read up
 * to MAX_UNARY_BODY_BYTES and refused past it (naming the limit: call it as a
 * stream instead); a streamed body is never held whole. A request body comes
 * in one data-plane message (the data plane has no client streaming), so the
 * NATS payload limit bounds it.
 */
import { ErrorCode, injectTraceHeaders, MusterError, tracingOn, type Logger } from '@muster/common';
import { decodeEngineScrapeConfig, SHARD_ENV } from '@muster/contracts';
import { serve, type Server } from '@muster/dataplane';
import { EngineScraper } from './engine-scraper.js';
import { readCapped } from './read-capped.js';

/** The largest response body a unary call answers with (it travels as one message). */
export const MAX_UNARY_BODY_BYTES = 4 * 1024 * 1024;
/** The largest piece of a streamed response body sent as one chunk. */
export const STREAM_CHUNK_BYTES = 64 * 1024;
/**
 * Calls forwarded to the shard at once. High: an engine such as vLLM batches
 * what it has and queues the rest itself (reported as its waiting metric),
 * so the bridge forwards what the routers send (their per-replica limit,
 * `maxInFlightPerReplica`, is the bound that matters) and queues only past this.
 */
export const BRIDGE_MAX_CONCURRENT = 10_000;

interface HttpRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: unknown;
  head?: boolean;
}

/** Headers of the shard's answer that describe this hop or a body fetch() already decoded: not passed on. */
const DROPPED_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'content-encoding', 'upgrade', 'proxy-connection', 'trailer', 'te']);

/** The first chunk of a `head: true` stream: the shard's status and the headers that still hold. */
function headOf(res: Response): { status: number; headers: Record<string, string> } {
  const headers: Record<string, string> = {};
  for (const [k, v] of res.headers) if (!DROPPED_HEADERS.has(k)) headers[k] = v;
  return { status: res.status, headers };
}

function request(port: number, payload: unknown, signal: AbortSignal): Promise<Response> {
  const r = (payload ?? {}) as HttpRequest;
  if (typeof r !== 'object' || Array.isArray(r) || (r.path !== undefined && typeof r.path !== 'string') || (r.path && !r.path.startsWith('/'))) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, 'HTTP bridge: payload must be { method?, path: "/…", headers?, body? }');
  }
  // Bytes (the gateway's /http/ route: a multipart upload, say) and text go as they are; any other value as JSON.
  const bytes = r.body instanceof Uint8Array;
  const body = r.body === undefined ? undefined : bytes || typeof r.body === 'string' ? (r.body as Uint8Array | string) : JSON.stringify(r.body);
  const json = typeof r.body === 'object' && r.body !== null && !bytes;
  const headers: Record<string, string> = { ...(json ? { 'content-type': 'application/json' } : {}), ...r.headers };
  // Traced (the worker runs with tracing on): the shard continues the replica's span, not whatever the client sent.
  if (tracingOn()) injectTraceHeaders(headers);
  return fetch(`http://127.0.0.1:${port}${r.path ?? '/'}`, { method: r.method ?? (body === undefined ? 'GET' : 'POST'), headers, body, signal });
}

/**
 * Starts serving `env`'s replica subject by forwarding to the shard's HTTP
 * port, on its own NATS connection as the group's user (the credential the
 * head put in the launch order's env), closed when the bridge drains.
 */
export async function startHttpBridge(env: Record<string, string>, port: number, log: Pick<Logger, 'warn' | 'info'>): Promise<Server> {
  // Engine metrics for the autoscaler (engine-scraper.ts): a malformed configuration is the head's bug, not the shard's; serve without.
  let scraper: EngineScraper | undefined;
  try {
    scraper = new EngineScraper(port, decodeEngineScrapeConfig(env[SHARD_ENV.ENGINE_METRICS]), log);
  } catch (e) {
    log.warn({ err: (e as Error).message }, 'engine metrics not scraped');
  }
  const server = await serve(
    {
      unary: async (payload, ctx) => {
        const res = await request(port, payload, ctx.signal);
        const text = await readCapped(res, MAX_UNARY_BODY_BYTES, (max) => new MusterError(ErrorCode.RESOURCE_EXHAUSTED, `HTTP bridge: the shard's response body is over ${max} bytes, the most a unary call answers with; call it as a stream`));
        const json = res.headers.get('content-type')?.includes('json');
        let body: unknown = text;
        if (json) {
          try {
            body = JSON.parse(text);
          } catch {
            // keep the text
          }
        }
        return { status: res.status, headers: Object.fromEntries(res.headers), body };
      },
      stream: async function* (payload, ctx) {
        const res = await request(port, payload, ctx.signal);
        if ((payload as HttpRequest | undefined)?.head === true) {
          yield headOf(res);
          if (!res.body) return;
          // Bytes, not text: msgpack carries them as they are, whatever the body's encoding.
          for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
            for (let at = 0; at < chunk.length; at += STREAM_CHUNK_BYTES) yield chunk.subarray(at, at + STREAM_CHUNK_BYTES);
          }
          return;
        }
        if (!res.ok || !res.body) throw new MusterError(ErrorCode.APPLICATION, `HTTP ${res.status} from the shard: ${(await res.text()).slice(0, 500)}`);
        const decoder = new TextDecoder();
        // Pulled one chunk at a time: the shard's body is read as the caller takes it, never whole.
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          for (let at = 0; at < chunk.length; at += STREAM_CHUNK_BYTES) {
            const text = decoder.decode(chunk.subarray(at, at + STREAM_CHUNK_BYTES), { stream: true });
            if (text) yield text;
          }
        }
        const rest = decoder.decode();
        if (rest) yield rest;
      },
    },
    { env, maxConcurrent: BRIDGE_MAX_CONCURRENT, ...(scraper ? { engineLoad: () => scraper.latest() } : {}) },
  ).catch((e: unknown) => {
    scraper?.stop();
    throw e;
  });
  if (!scraper) return server;
  scraper.start();
  const s = scraper;
  return {
    subject: server.subject,
    group: server.group,
    replicaId: server.replicaId,
    get inFlight() {
      return server.inFlight;
    },
    get queued() {
      return server.queued;
    },
    drain: () => server.drain().finally(() => s.stop()),
    close: () => server.close().finally(() => s.stop()),
  };
}
