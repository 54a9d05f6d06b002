/**
 * A template's `warmup:` as users write it, its strict shape (spec-schemas.ts
 * puts it in every template) and its wire form. What a warm-up does, and
 * why a replica takes no user call before it ends: docs/gangs.md#warm-up.
 *
 *   warmup:
 *     timeoutMs: 120000                  # the whole warm-up (default 60000, at most 600000)
 *     requests:                          # in order, at most 16
 *       - { kind: call, payload: { prompt: "hello" } }          # serve()'s handler (stream: true: its stream handler)
 *       - { kind: http, port: http, path: /v1/completions, body: { prompt: "hi", max_tokens: 8 } }
 *       - { kind: exec, command: [python, warm.py] }           # argv as rank 0, exit 0 passes
 *
 * The shape (keys, types) and the sizes (WARMUP_LIMITS: 16 requests, 64 KiB
 * per payload or body, 128 KiB in all, 32 headers) are checked here, before the spec is
 * sent; the values (kinds, methods, a port name of the template, a call only
 * in a replica group whose shards run serve()) by the head.
 */
import { z } from 'zod';
import { didYouMeanKeys, limitedArray, limitedString } from '@muster/common';
import { utf8Bytes, WARMUP_LIMITS, warmupRequestBytes } from '@muster/contracts';
import type { Warmup, WarmupRequest } from '@muster/proto';
import type { WarmupSpec } from './specs.js';

const num = z.number().optional();
const str = z.string().optional();

/**
 * A payload's or body's size as warmupToWire sends it, or a problem with it:
 * bytes as they are, an http body string as its text, anything else (a
 * payload string included) as JSON text.
 */
function sentBytes(key: 'payload' | 'body', v: unknown): number | string {
  if (key === 'payload' && v instanceof Uint8Array) return v.length;
  try {
    const text = key === 'body' && typeof v === 'string' ? v : JSON.stringify(v);
    return text === undefined ? 'cannot be written as JSON' : utf8Bytes(text);
  } catch (e) {
    return `cannot be written as JSON: ${(e as Error).message}`;
  }
}

const request = z
  .strictObject({
    kind: z.string(),
    payload: z.unknown().optional(),
    stream: z.boolean().optional(),
    port: z.union([limitedString('refLength'), z.number()]).optional(),
    method: str,
    path: z.string().max(WARMUP_LIMITS.pathLength).optional(),
    headers: z.record(z.string(), z.string()).optional(),
    body: z.unknown().optional(),
    expectStatus: num,
    command: limitedArray(limitedString('argLength'), 'args').optional(),
  }, didYouMeanKeys)
  .check((ctx) => {
    for (const key of ['payload', 'body'] as const) {
      if (ctx.value[key] === undefined) continue;
      const n = sentBytes(key, ctx.value[key]);
      if (typeof n === 'string') ctx.issues.push({ code: 'custom', input: ctx.value[key], path: [key], message: n });
      else if (n > WARMUP_LIMITS.bodyBytes) ctx.issues.push({ code: 'custom', input: n, path: [key], message: `${n} bytes; the limit is ${WARMUP_LIMITS.bodyBytes} (warm-up bodyBytes)` });
    }
    const headers = Object.keys(ctx.value.headers ?? {}).length;
    if (headers > WARMUP_LIMITS.headers) ctx.issues.push({ code: 'custom', input: headers, path: ['headers'], message: `${headers} entries; the limit is ${WARMUP_LIMITS.headers} (warm-up headers)` });
  });

export const warmupShape = z
  .strictObject({
    requests: z.array(request).max(WARMUP_LIMITS.requests, { error: (iss) => `${(iss.input as unknown[]).length} items; the limit is ${WARMUP_LIMITS.requests} (warm-up requests)` }),
    timeoutMs: num,
  }, didYouMeanKeys)
  .check((ctx) => {
    const size = (key: 'payload' | 'body', v: unknown) => (v === undefined ? 0 : Math.max(0, Number(sentBytes(key, v)) || 0));
    const bytes = ctx.value.requests.reduce((n, r) => n + warmupRequestBytes(r, size('payload', r.payload) + size('body', r.body)), 0);
    if (bytes > WARMUP_LIMITS.totalBytes) ctx.issues.push({ code: 'custom', input: bytes, path: ['requests'], message: `payloads, bodies, headers and commands take ${bytes} bytes; the limit is ${WARMUP_LIMITS.totalBytes} (warm-up totalBytes)` });
  })
  .optional();

/** The warm-up on the wire: a call's payload as bytes or JSON text, an http body as text (JSON for any other value). */
export function warmupToWire(w: WarmupSpec | undefined): Warmup | undefined {
  if (!w) return undefined;
  return {
    timeoutMs: w.timeoutMs ?? 0,
    requests: w.requests.map((r): WarmupRequest => {
      const bytes = r.payload instanceof Uint8Array;
      const jsonBody = r.body !== undefined && typeof r.body !== 'string';
      const headers = { ...r.headers };
      if (jsonBody && !Object.keys(headers).some((k) => k.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
      return {
        kind: r.kind,
        json: r.payload === undefined || bytes ? '' : JSON.stringify(r.payload),
        payload: bytes ? Buffer.from(r.payload as Uint8Array) : Buffer.alloc(0),
        stream: r.stream ?? false,
        port: r.port === undefined ? '' : String(r.port),
        method: r.method ?? '',
        path: r.path ?? '',
        headers,
        body: r.body === undefined ? '' : jsonBody ? JSON.stringify(r.body) : (r.body as string),
        expectStatus: r.expectStatus ?? 0,
        command: r.command ?? [],
      };
    }),
  };
}
