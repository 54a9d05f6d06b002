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
 * JSON body. A TS shard's MusterError answers with its code's status.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCode, MusterError } from '@muster/sdk';
import { HttpError, authorize, type RateLimiter } from './gateway-auth.js';
import { deadlinesOf, type GroupDirectory, type GroupInfo } from './gateway-groups.js';
import { callOptions, parseJson, REQUEST_ID_HEADER, writeAndWait } from './gateway-http.js';
import { keyMayCall, type KeyEntry } from './gateway-keys.js';
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
  body: () => Promise<string>;
  /** The request's metrics and log record (gateway-metrics.ts), told the group and replica. */
  record?: { group: string; onReplica: (replica: { replicaId: string; revision: string }) => void } | undefined;
}

/** GET /v1/models: the models the caller may call. */
export async function listModels(res: ServerResponse, ctx: OpenAiContext): Promise<void> {
  const data = visible(await ctx.groups.models(), ctx.key?.entry).flatMap((g) => g.models.map((id) => ({ id, object: 'model', created: 0, owned_by: 'muster', group: g.name })));
  // Each model once, by name (a model claimed by two groups routes to the first: gateway-groups.ts).
  const seen = new Set<string>();
  const unique = data.filter((m) => !seen.has(m.id) && seen.add(m.id)).sort((a, b) => a.id.localeCompare(b.id));
  res.writeHead(200, { 'content-type': 'application/json', [REQUEST_ID_HEADER]: ctx.requestId });
  res.end(`${JSON.stringify({ object: 'list', data: unique })}\n`);
}

/** POST to one of OPENAI_ROUTES: find the model's group, then pass the request on. */
export async function openAiCall(req: IncomingMessage, res: ServerResponse, path: string, ctx: OpenAiContext): Promise<void> {
  if (req.method !== 'POST') throw new HttpError(405, ErrorCode.INVALID_ARGUMENT, `${req.method} ${path}: use POST with a JSON body`, { allow: 'POST' });
  const text = await ctx.body();
  const body = parseJson(text) as Record<string, unknown> | null;
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `${path}: the body must be a JSON object`);
  const model = body.model;
  if (typeof model !== 'string' || model === '') throw new MusterError(ErrorCode.INVALID_ARGUMENT, `${path}: "model" is required (a model name; GET /v1/models lists them)`, { details: { field: 'model' } });
  const group = await ctx.groups.forModel(model);
  if (!group || (ctx.key && !keyMayCall(ctx.key.entry, group.name))) throw await unknownModel(model, ctx);
  if (ctx.key) {
    authorize(ctx.key.entry, group.name);
    ctx.limiter.take(ctx.key.entry);
  }
  if (ctx.record) ctx.record.group = group.name;
  const handle = await ctx.groups.handle(group.name);
  const opts = { ...callOptions(req, deadlinesOf(group)), onReplica: ctx.record?.onReplica };
  if (group.http) {
    const url = new URL(req.url ?? path, 'http://gateway');
    return proxyHttp(req, res, handle, { method: 'POST', path: `${path}${url.search}`, body: text, requestId: ctx.requestId, keyHeader: ctx.key?.header, json: true, ...opts });
  }
  const payload = { method: 'POST', path, headers: { [REQUEST_ID_HEADER]: ctx.requestId }, body };
  if (body.stream !== true) {
    const answer = await handle.call(payload, opts);
    res.writeHead(200, { 'content-type': 'application/json', [REQUEST_ID_HEADER]: ctx.requestId });
    res.end(`${JSON.stringify(answer)}\n`);
    return;
  }
  await streamAsSse(res, handle.stream(payload, { ...opts, signal: abortOnClose(res) }), ctx.requestId);
}

/** A TS group's stream chunks as SSE events, written as they come (see the top of this file). */
async function streamAsSse(res: ServerResponse, chunks: AsyncIterable<unknown>, requestId: string): Promise<void> {
  let started = false;
  let objects = false;
  for await (const chunk of chunks) {
    if (!started) {
      started = true;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', [REQUEST_ID_HEADER]: requestId });
    }
    const event = typeof chunk === 'string' ? chunk : `data: ${JSON.stringify(chunk)}\n\n`;
    objects ||= typeof chunk !== 'string';
    if (!(await writeAndWait(res, event))) return;
  }
  if (!started) res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', [REQUEST_ID_HEADER]: requestId });
  res.end(objects ? 'data: [DONE]\n\n' : undefined);
}

/** A signal that aborts when the client goes away before its answer ended. */
function abortOnClose(res: ServerResponse): AbortSignal {
  const abort = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) abort.abort(new MusterError(ErrorCode.CANCELLED, 'the client went away'));
  });
  return abort.signal;
}

function visible(groups: GroupInfo[], key: KeyEntry | undefined): GroupInfo[] {
  return key ? groups.filter((g) => keyMayCall(key, g.name)) : groups;
}

/** OpenAI's "model not found" 404, naming the models the caller could call instead. */
async function unknownModel(model: string, ctx: OpenAiContext): Promise<HttpError> {
  const names = [...new Set(visible(await ctx.groups.models(), ctx.key?.entry).flatMap((g) => g.models))].sort();
  const shown = names.length > 20 ? `${names.slice(0, 20).join(', ')} and ${names.length - 20} more (GET /v1/models)` : names.join(', ');
  const err = new HttpError(404, 'model_not_found', `The model "${model}" does not exist. ${names.length ? `Models: ${shown}` : 'No replica group serves a model (a group lists its models in its spec\'s "models")'}`);
  return Object.assign(err, { param: 'model' });
}
