/**
 * A template's warm-up as the head sees it: the strict schema every gang and
 * replica group spec is validated with (gang-spec.ts hooks it in), rank 0's
 * resolved copy for its launch order, and the `gang.warmed-up` event staged
 * when rank 0's agent reports the warm-up passed. Pure, no I/O.
 *
 * Design (docs/gangs.md#warm-up): rank 0's worker agent runs the requests, in
 * order, after rank 0's readiness passed and before it reports rank 0 ready;
 * the gang is READY only once every rank is, so a replica joins its group's
 * membership (rg-plan.ts: only READY gangs are members) only after its
 * warm-up. A failed or timed-out warm-up is rank 0 failing its startup: the
 * ordinary gang restart with backoff, counted against maxRestarts, its
 * reason naming the request and what went wrong.
 *
 * Bounds (WARMUP_LIMITS in @muster/contracts, checked by the SDK too): at most
 * 16 requests, a payload or body of at most 64 KiB, 128 KiB for all requests
 * together, 32 headers, a timeout of at most 10 minutes for the whole warm-up.
 */
import { z } from 'zod';
import { didYouMeanKeys, limitedArray, limitedString } from '@muster/common';
import { DEFAULT_WARMUP_TIMEOUT_MS, SHARD_ENV, utf8Bytes, WARMUP_LIMITS, warmupRequestBytes } from '@muster/contracts';
import type { Warmup, WarmupRequest } from '@muster/proto';

const KINDS = ['call', 'http', 'exec'] as const;
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
/** Which fields each kind may set (the others must stay empty: a field of another kind is a mistake, not a no-op). */
const FIELDS: Record<(typeof KINDS)[number], readonly string[]> = {
  call: ['json', 'payload', 'stream'],
  http: ['port', 'method', 'path', 'headers', 'body', 'expectStatus'],
  exec: ['command'],
};
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/;

const requestSchema = z
  .strictObject({
    kind: z.enum(KINDS),
    json: z.string().default(''),
    payload: z.instanceof(Uint8Array).default(() => new Uint8Array()),
    stream: z.boolean().default(false),
    port: limitedString('refLength').default(''),
    method: z.string().default(''),
    path: z.string().max(WARMUP_LIMITS.pathLength).default(''),
    headers: z.record(z.string().regex(HEADER_NAME, 'not a valid HTTP header name'), z.string().max(8192)).default({}),
    body: z.string().default(''),
    expectStatus: z.int().min(0).max(599).default(0),
    command: limitedArray(limitedString('argLength'), 'args').default([]),
  }, didYouMeanKeys)
  .check((ctx) => {
    const r = ctx.value;
    const bad = (path: string, message: string) => ctx.issues.push({ code: 'custom', input: r, path: [path], message });
    for (const f of Object.keys(r) as (keyof typeof r)[]) {
      if (f === 'kind' || FIELDS[r.kind].includes(f) || isEmpty(r[f])) continue;
      bad(f, `only for ${KINDS.filter((k) => FIELDS[k].includes(f)).join(' or ')} requests, not ${r.kind}`);
    }
    const tooBig = (path: string, bytes: number) => bytes > WARMUP_LIMITS.bodyBytes && bad(path, `${bytes} bytes; the limit is ${WARMUP_LIMITS.bodyBytes} (warm-up bodyBytes)`);
    if (r.kind === 'call') {
      if (r.json !== '' && r.payload.length > 0) bad('json', 'give json or payload, not both');
      if (r.json !== '') {
        tooBig('json', utf8Bytes(r.json));
        try {
          JSON.parse(r.json);
        } catch (e) {
          bad('json', `not valid JSON: ${(e as Error).message}`);
        }
      }
      tooBig('payload', r.payload.length);
    } else if (r.kind === 'http') {
      if (r.port === '') bad('port', 'an http request needs a port (a port name of the template, or a number)');
      if (r.method !== '' && !(METHODS as readonly string[]).includes(r.method)) bad('method', `"${r.method}" is not one of ${METHODS.join(', ')}`);
      if (r.path !== '' && !r.path.startsWith('/')) bad('path', 'must start with "/"');
      if (Object.keys(r.headers).length > WARMUP_LIMITS.headers) bad('headers', `${Object.keys(r.headers).length} entries; the limit is ${WARMUP_LIMITS.headers} (warm-up headers)`);
      tooBig('body', utf8Bytes(r.body));
      if (r.body !== '' && (r.method === 'GET' || r.method === 'HEAD')) bad('body', `a ${r.method} request has no body`);
    } else if (r.command.length === 0 || r.command[0] === '') bad('command', 'an exec request needs a command (argv)');
  });

export const warmupSchema = z
  .strictObject({
    requests: z.array(requestSchema).min(1, 'a warm-up needs at least one request').max(WARMUP_LIMITS.requests, { error: (iss) => `${(iss.input as unknown[]).length} items; the limit is ${WARMUP_LIMITS.requests} (warm-up requests)` }),
    timeoutMs: z.int().min(0).max(WARMUP_LIMITS.timeoutMs).default(0).transform((ms) => ms || DEFAULT_WARMUP_TIMEOUT_MS),
  }, didYouMeanKeys)
  .check((ctx) => {
    const bytes = ctx.value.requests.reduce((n, r) => n + warmupRequestBytes(r, utf8Bytes(r.json) + r.payload.length + utf8Bytes(r.body)), 0);
    if (bytes > WARMUP_LIMITS.totalBytes) ctx.issues.push({ code: 'custom', input: bytes, path: ['requests'], message: `payloads, bodies, headers and commands take ${bytes} bytes; the limit is ${WARMUP_LIMITS.totalBytes} (warm-up totalBytes)` });
  });

export type ValidWarmup = z.output<typeof warmupSchema>;

function isEmpty(v: unknown): boolean {
  if (v === '' || v === 0 || v === false) return true;
  if (v instanceof Uint8Array || Array.isArray(v)) return v.length === 0;
  return typeof v === 'object' && v !== null && Object.keys(v).length === 0;
}

/** The schema's input from the wire: absent, or no requests at all, is no warm-up (proto3 cannot tell them apart). */
export function warmupInput(w: Warmup | undefined): { requests: WarmupRequest[]; timeoutMs: number } | undefined {
  return w && w.requests.length > 0 ? { requests: w.requests, timeoutMs: w.timeoutMs } : undefined;
}

/**
 * The rules that need the rest of the template (gang-spec.ts calls this
 * from its own check): an http request's port must be one of the template's
 * (or a number), and a `call` needs serve() in rank 0 — a replica group's
 * shard that is not bridged (an HTTP shard's serve() is the worker's bridge:
 * warm it up with `http` requests).
 */
export function checkWarmupAgainst(w: ValidWarmup, t: { ports: { name: string }[]; env: Record<string, string> }, replicaGroup: string, issues: z.core.$ZodRawIssue[]): void {
  const names = new Set(t.ports.map((p) => p.name));
  w.requests.forEach((r, i) => {
    const at = (f: string): (string | number)[] => ['template', 'warmup', 'requests', i, f];
    if (r.kind === 'http' && r.port && !names.has(r.port) && !/^\d{1,5}$/.test(r.port)) {
      issues.push({ code: 'custom', input: r.port, path: at('port'), message: `"${r.port}" is neither a port name of the template (${[...names].join(', ') || 'none'}) nor a number` });
    }
    if (r.kind === 'call' && !replicaGroup) issues.push({ code: 'custom', input: r, path: at('kind'), message: 'a call goes to serve(), which only a replica group\'s shards run; use http or exec in a plain gang' });
    else if (r.kind === 'call' && t.env[SHARD_ENV.HTTP_BRIDGE]) issues.push({ code: 'custom', input: r, path: at('kind'), message: 'an HTTP shard (httpPort) runs no serve() of its own; warm it up with http requests' });
  });
}

/** The warm-up on the wire: rank 0's copy for its launch order, port names resolved to this rank's numbers (none given: as the spec has them). */
export function launchWarmup(w: ValidWarmup | undefined, ports: Record<string, number>): Warmup | undefined {
  if (!w) return undefined;
  return { timeoutMs: w.timeoutMs, requests: w.requests.map((r) => ({ ...r, payload: Buffer.from(r.payload), port: r.port in ports ? String(ports[r.port]) : r.port })) };
}

/**
 * How long the head gives an attempt to be READY before its own backstop
 * fails it (gang-plan.ts, gangs.ts, plus their slack): the agents' startup
 * deadline (readiness) and then rank 0's warm-up, which has its own timeout.
 */
export function startupBudgetMs(spec: { startup: { deadlineMs: number }; template: { warmup?: ValidWarmup | undefined } }): number {
  return spec.startup.deadlineMs + (spec.template.warmup?.timeoutMs ?? 0);
}

/** Where a staged event goes (the gang executor's sink: events.stage + commits.stage). */
export interface WarmupEventSink {
  stage(kind: string, e: { message: string; attributes: Record<string, string> }): void;
}

/**
 * A report of rank 0 turning ready after its warm-up, for the current
 * attempt: stages `gang.warmed-up` with its duration, to be written with the
 * report's own commit. Called before the report is planned (so "rank 0 was
 * not ready yet" reads the record before this report).
 */
export function stageWarmedUp(sink: WarmupEventSink, g: { id: string; attempt: number; ranks: { rank: number; phase: string }[] }, name: string, report: { attempt: number; rank: number; phase: string; warmupMs: number }): void {
  if (report.phase !== 'ready' || report.rank !== 0 || !(report.warmupMs > 0) || report.attempt !== g.attempt) return;
  if (g.ranks.find((r) => r.rank === 0)?.phase === 'ready') return; // a repeat (inventory after a reconnect)
  sink.stage('gang.warmed-up', {
    message: `gang ${name}: rank 0 warmed up in ${report.warmupMs} ms (attempt ${report.attempt})`,
    attributes: { gang: g.id, name, attempt: String(report.attempt), durationMs: String(report.warmupMs) },
  });
}
