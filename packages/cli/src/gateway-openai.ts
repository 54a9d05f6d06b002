/**
 * OpenAI-compatible routes: a client of OpenAI's API (the openai SDKs,
 * LangChain, locust scripts written for vLLM) points its base URL at
 * `<gateway>/v1` and calls models by name.
 *
 *   POST /v1/chat/completions | /v1/completions | /v1/embeddings
 *        routed by the body's "model" to the replica group that lists it in
 *        its spec's `models` (gateway-groups.ts); a model no group serves is
 *        an OpenAI-style 404 naming the models there are.
 *   GET  /v1/models
 *        the models the caller's key may call, in OpenAI's list shape.
 *
 * To an HTTP group (a vLLM-like server behind the worker's bridge) the
 * request goes as it came, to the same path, and the answer comes back as
 * the server gave it: status, error body, and SSE streamed chunk by chunk
 * (gateway-proxy.ts). To a group of TS `serve()` shards it goes as the
 * bridge's payload shape, `{ method, path, headers, body }` with the body
 * parsed; "stream": true calls the group's stream handler and writes each
 * chunk as an SSE event (an object as `data: <json>`, a string as it is),
 * ending with `data: [DONE]` after objects; otherwise the unary answer is the
 * JSON body. A TS shard's MusterError answers with its code's status. A
 * call its group's router sends to the group's overflow group asks for that
 * group's model (gateway-overflow.ts).
 *
 * For a group with the `prefix` routing policy, a call without a route key
 * header keys on the start of its prompt or messages (`routeTextOf`), so
 * requests sharing a system prompt prefer the replica that has it cached.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCode, MusterError, routeTextOf } from '@muster/sdk';
import { HttpError, type RateLimiter } from './gateway-auth.js';
import { deadlinesOf, type GroupDirectory, type ModelRoute } from './gateway-groups.js';
import { abortOnClose, callOptions, parseJson, pipeChunks, REQUEST_ID_HEADER } from './gateway-http.js';
import { keyMayCall, type KeyEntry } from './gateway-keys.js';
import { renameModel } from './gateway-overflow.js';
import { proxyHttp } from './gateway-proxy.js';

export const OPENAI_ROUTES: ReadonlySet<string> = new Set(['/v1/chat/completions', '/v1/completions', '/v1/embeddings']);

/** What an OpenAI route needs from the gateway around it. */
export interface OpenAiContext {
  groups: GroupDirectory;
  limiter: RateLimiter;
  /** The caller's key (undefined: the gateway runs without keys) and the header it came in. */
  key: { entry: KeyEntry; header: string } | undefined;
  requestId: string;
  /** Reads the request body (capped: 413). */
  body: () => Promise<Buffer>;
  /** The request's metrics and log record (gateway-metrics.ts), told the group and replica. */
  record?: { group: string; onReplica: (replica: { replicaId: string; revision: string }) => void } | undefined;
}

/** GET /v1/models: the models the caller may call, each with the group that routes it. */
export async function listModels(res: ServerResponse, ctx: OpenAiContext): Promise<void> {
  const data = visible(await ctx.groups.models(), ctx.key?.entry).map((m) => ({ id: m.id, object: 'model', created: 0, owned_by: 'muster', group: m.group.name }));
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(`${JSON.stringify({ object: 'list', data })}\n`);
}

/** POST to one of OPENAI_ROUTES: find the model's group, then pass the request on. */
export async function openAiCall(req: IncomingMessage, res: ServerResponse, path: string, ctx: OpenAiContext): Promise<void> {
  if (req.method !== 'POST') throw new HttpError(405, ErrorCode.INVALID_ARGUMENT, `${req.method} ${path}: use POST with a JSON body`, { allow: 'POST' });
  const raw = await ctx.body();
  const body = parseJson(raw) as Record<string, unknown> | null;
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `${path}: the body must be a JSON object`);
  const model = body.model;
  if (typeof model !== 'string' || model === '') throw new MusterError(ErrorCode.INVALID_ARGUMENT, `${path}: "model" is required (a model name; GET /v1/models lists them)`, { details: { field: 'model' } });
  const group = await ctx.groups.forModel(model);
  if (!group || (ctx.key && !keyMayCall(ctx.key.entry, group.name))) throw await unknownModel(model, ctx);
  if (ctx.key) ctx.limiter.take(ctx.key.entry);
  if (ctx.record) ctx.record.group = group.name;
  const handle = await ctx.groups.handle(group.name);
  const opts = { ...callOptions(req, deadlinesOf(group)), onReplica: ctx.record?.onReplica, overflowPayload: renameModel(ctx.groups, body), routeText: () => routeTextOf(body) };
  if (group.http) {
    const url = new URL(req.url ?? path, 'http://gateway');
    return proxyHttp(req, res, handle, { method: 'POST', path: `${path}${url.search}`, body: raw, requestId: ctx.requestId, keyHeader: ctx.key?.header, json: true, ...opts });
  }
  const payload = { method: 'POST', path, headers: { [REQUEST_ID_HEADER]: ctx.requestId }, body };
  if (body.stream !== true) {
    const answer = await handle.call(payload, opts);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(`${JSON.stringify(answer)}\n`);
    return;
  }
  const signal = abortOnClose(res);
  let objects = false;
  await pipeChunks(res, handle.stream(payload, { ...opts, signal }), {
    timeoutMs: opts.timeoutMs,
    head: () => ({ status: 200, headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' } }),
    encode: (chunk) => {
      if (typeof chunk === 'string') return chunk;
      objects = true;
      return `data: ${JSON.stringify(chunk)}\n\n`;
    },
    trailer: () => (objects ? 'data: [DONE]\n\n' : undefined),
  });
}

function visible(models: ModelRoute[], key: KeyEntry | undefined): ModelRoute[] {
  return key ? models.filter((m) => keyMayCall(key, m.group.name)) : models;
}

/** OpenAI's "model not found" 404, naming the models the caller could call instead. */
async function unknownModel(model: string, ctx: OpenAiContext): Promise<HttpError> {
  const names = visible(await ctx.groups.models(), ctx.key?.entry).map((m) => m.id);
  const shown = names.length > 20 ? `${names.slice(0, 20).join(', ')} and ${names.length - 20} more (GET /v1/models)` : names.join(', ');
  const err = new HttpError(404, 'model_not_found', `The model "${model}" does not exist. ${names.length ? `Models: ${shown}` : 'No replica group serves a model (a group lists its models in its spec\'s "models")'}`);
  return Object.assign(err, { param: 'model' });
}
