/**
 * The HTTP bridge: shards that speak HTTP (vLLM's OpenAI server, TGI, any
 * web app) join the data plane without knowing about it. For rank 0 of a
 * replica whose group names an `httpPort`, the agent serves the replica's
 * NATS subject itself (the SDK's `serve()`, so routing, limits, deadlines and
 * drain are the same as for TS replicas) and forwards each request to
 * http://127.0.0.1:<port><path> on this node.
 *
 * Request payload: { method?: "POST", path: "/v1/completions", headers?: {…}, body?: JSON | string }
 * Unary answer:    { status, headers, body }  (body parsed when the reply is JSON)
 * Stream chunks:   the response body as text, chunk by chunk (SSE passes through untouched);
 *                  a non-2xx status ends the stream with an error naming it.
 */
import { ErrorCode, MusterError, type NatsConnection } from '@muster/common';
import { serve, type Server } from '@muster/dataplane';

interface HttpRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: unknown;
}

function request(port: number, payload: unknown, signal: AbortSignal): Promise<Response> {
  const r = (payload ?? {}) as HttpRequest;
  if (typeof r !== 'object' || Array.isArray(r) || (r.path !== undefined && typeof r.path !== 'string') || (r.path && !r.path.startsWith('/'))) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, 'HTTP bridge: payload must be { method?, path: "/…", headers?, body? }');
  }
  const body = r.body === undefined ? undefined : typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
  const headers: Record<string, string> = { ...(typeof r.body === 'object' && r.body !== null ? { 'content-type': 'application/json' } : {}), ...r.headers };
  return fetch(`http://127.0.0.1:${port}${r.path ?? '/'}`, { method: r.method ?? (body === undefined ? 'GET' : 'POST'), headers, body, signal });
}

/** Starts serving `env`'s replica subject by forwarding to the shard's HTTP port. */
export async function startHttpBridge(nats: NatsConnection, env: Record<string, string>, port: number): Promise<Server> {
  return serve(
    {
      unary: async (payload, ctx) => {
        const res = await request(port, payload, ctx.signal);
        const text = await res.text();
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
        if (!res.ok || !res.body) throw new MusterError(ErrorCode.APPLICATION, `HTTP ${res.status} from the shard: ${(await res.text()).slice(0, 500)}`);
        const decoder = new TextDecoder();
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) yield decoder.decode(chunk, { stream: true });
      },
    },
    { nats, env },
  );
}
