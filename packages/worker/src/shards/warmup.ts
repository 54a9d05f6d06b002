/**
 * The warm-up runner: what rank 0's agent does between "rank 0's readiness
 * passed" and "rank 0 is ready" when its template lists warm-up requests
 * (docs/gangs.md#warm-up). The runner (shard.ts) keeps the rank in `started`
 * meanwhile, so the head does not see it ready, the gang is not READY and a
 * replica is not in its group's membership: no user call can reach it.
 *
 *   started ── readiness passes ──▶ warming (requests in order, one at a time)
 *                                      │ all passed          │ one failed / timeout
 *                                      ▼                     ▼
 *                                    ready            stop: "warm-up request 2 of 3 (…) failed: …"
 *
 * Requests: `call` runs a payload through the rank's own serve() handler
 * over the IPC channel the agent opened at spawn (the agent holds no data-plane
 * credential for it: @muster/contracts warmup.ts says why); `http` goes to
 * 127.0.0.1:<port> and reads the whole answer (an SSE stream to its end);
 * `exec` runs argv as the rank (its env, uid, gid, cwd), like an exec probe.
 * One timeout covers the whole warm-up; the startup deadline covers only
 * readiness. Time spent is reported on the rank's ready status (`warmupMs`)
 * and in `muster_warmup_duration_seconds{group,outcome}`.
 */
import type { ChildProcess } from 'node:child_process';
import { metrics, type Histogram } from '@opentelemetry/api';
import { DEFAULT_WARMUP_TIMEOUT_MS, isServingMessage, SHARD_ENV, toWarmupResult, type WarmupCallMessage } from '@muster/contracts';
import type { Warmup } from '@muster/proto';
import { z } from 'zod';
import type { ProbeContext } from './probes.js';
import { runCommandInGroup } from './process.js';
import type { WarmupSpec, WarmupStep } from './types.js';

const port = z.number().int().min(1).max(65535);
/** The supervisor's check of a spec's warm-up (validate.ts); the head checked the user's form. */
export const warmupSpecSchema = z.object({
  timeoutMs: z.number().int().positive(),
  requests: z.array(z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('call'), stream: z.boolean(), json: z.string().optional(), base64: z.string().optional() }),
    z.object({ kind: z.literal('http'), port, method: z.string(), path: z.string().startsWith('/'), headers: z.record(z.string(), z.string()), body: z.string(), expectStatus: z.number().int() }),
    z.object({ kind: z.literal('exec'), command: z.string().min(1), args: z.array(z.string()) }),
  ])).min(1).max(16),
});

export type WarmupOutcome = { ok: true; ms: number } | { ok: false; ms: number; reason: string };

export interface WarmupContext {
  /** Who exec requests run as (the rank's env, uid, gid, cwd). */
  exec: Omit<ProbeContext, 'sdk'>;
  /** The rank's serve() over IPC (undefined: no channel, e.g. an adopted rank). */
  ipc: WarmupIpc | undefined;
  /** The replica group (metric label). */
  group: string;
  /** Aborted when the rank stops or exits meanwhile: what runs is cut short (an exec request's process killed). */
  signal?: AbortSignal | undefined;
}

/**
 * The histogram, on the global MeterProvider of the moment: the API hands out
 * a no-op meter until the worker registers one (startMetrics, global), which
 * may be after this module loaded, so it is made again when the provider changed.
 */
let made: { provider: unknown; durations: Histogram } | undefined;
function durations(): Histogram {
  const provider = metrics.getMeterProvider();
  if (made?.provider !== provider) {
    made = {
      provider,
      durations: provider.getMeter('@muster/worker').createHistogram('muster_warmup_duration_seconds', {
        description: 'time rank 0 spent on its warm-up requests before it was reported ready, by replica group and outcome (ok, failed)',
        unit: 's',
        advice: { explicitBucketBoundaries: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600] },
      }),
    };
  }
  return made.durations;
}

/** How a request is named in reasons: "call", "http POST :31000/v1/completions", "exec ./warm.sh". */
export function describeStep(s: WarmupStep): string {
  if (s.kind === 'call') return s.stream ? 'call (stream)' : 'call';
  if (s.kind === 'http') return `http ${s.method} :${s.port}${s.path}`;
  return `exec ${s.command}`;
}

/** Runs every request in order; never throws. */
export async function runWarmup(w: WarmupSpec, ctx: WarmupContext): Promise<WarmupOutcome> {
  const started = performance.now();
  const deadline = Date.now() + w.timeoutMs;
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), w.timeoutMs);
  const cancel = () => ac.abort();
  ctx.signal?.addEventListener('abort', cancel, { once: true });
  let outcome: WarmupOutcome | undefined;
  for (const [i, step] of w.requests.entries()) {
    const what = `warm-up request ${i + 1} of ${w.requests.length} (${describeStep(step)})`;
    try {
      await runStep(step, ctx, ac.signal, deadline);
    } catch (e) {
      // On a timeout, a call says what it waited for (serve() to start, or its answer); fetch and execa only say "aborted".
      const waited = step.kind === 'call' ? `: ${(e as Error).message}` : '';
      const why = ac.signal.aborted ? `did not finish within the warm-up timeout (${w.timeoutMs} ms)${waited}` : `failed: ${(e as Error).message}`;
      outcome = { ok: false, ms: Math.round(performance.now() - started), reason: `${what} ${why}` };
      break;
    }
    if (ac.signal.aborted) {
      outcome = { ok: false, ms: Math.round(performance.now() - started), reason: `${what} did not finish within the warm-up timeout (${w.timeoutMs} ms)` };
      break;
    }
  }
  clearTimeout(timer);
  ctx.signal?.removeEventListener('abort', cancel);
  outcome ??= { ok: true, ms: Math.max(1, Math.round(performance.now() - started)) };
  durations().record(outcome.ms / 1000, { group: ctx.group, outcome: outcome.ok ? 'ok' : 'failed' });
  return outcome;
}

async function runStep(s: WarmupStep, ctx: WarmupContext, signal: AbortSignal, deadline: number): Promise<void> {
  switch (s.kind) {
    case 'call': {
      if (!ctx.ipc) throw new Error('the rank has no IPC channel to the agent (adopted after an agent restart?), so serve() cannot be reached');
      // The rank aborts the handler when the warm-up's time is up, as the agent gives up then.
      return ctx.ipc.call({ stream: s.stream, timeoutMs: Math.max(1, deadline - Date.now()), ...(s.json !== undefined ? { json: s.json } : {}), ...(s.base64 !== undefined ? { base64: s.base64 } : {}) }, signal);
    }
    case 'http': {
      // Only ever 127.0.0.1, like the probes: a warm-up must not become a way to reach elsewhere.
      const res = await fetch(`http://127.0.0.1:${s.port}${s.path}`, { method: s.method, headers: s.headers, body: s.body === '' ? undefined : s.body, signal, redirect: 'manual' });
      // Read the whole answer (a streamed one to its end) without keeping it: the work is the point.
      if (res.body) for await (const _ of res.body) void _;
      const ok = s.expectStatus ? res.status === s.expectStatus : res.status >= 200 && res.status < 300;
      if (!ok) throw new Error(`status ${res.status}, expected ${s.expectStatus || '2xx'}`);
      return;
    }
    case 'exec': {
      // Its own process group, killed whole on the timeout or a stop (process.ts).
      const r = await runCommandInGroup(s.command, s.args, ctx.exec, { signal });
      if (!r.ok) throw new Error(r.exitCode !== undefined ? `exited with code ${r.exitCode}` : r.signal ? `killed by ${r.signal}` : r.message);
      return;
    }
  }
}

/**
 * The agent's end of the `call` warm-up over the rank's IPC channel: waits
 * for serve() to say it is up ({ muster: 'serving' }), then sends one call at
 * a time and waits for its result. What the rank sends is untrusted: only a
 * well-formed result for the call in flight is taken.
 */
export class WarmupIpc {
  private serving = false;
  private wakeServing: (() => void) | undefined;
  private pending: { id: number; settle: (error: string | undefined) => void } | undefined;
  private nextId = 1;

  constructor(private readonly child: ChildProcess) {}

  /** Every IPC message of the rank goes through here (shard.ts). */
  message(m: unknown): void {
    if (isServingMessage(m)) {
      this.serving = true;
      this.wakeServing?.();
      return;
    }
    const r = toWarmupResult(m);
    if (r && this.pending?.id === r.id) this.pending.settle(r.ok ? undefined : r.error);
  }

  async call(c: Omit<WarmupCallMessage, 'muster' | 'id'>, signal: AbortSignal): Promise<void> {
    if (!this.serving) await this.until(signal, (wake) => (this.wakeServing = wake), 'serve() never started in the rank');
    const id = this.nextId++;
    const msg: WarmupCallMessage = { muster: 'warmup-call', id, ...c };
    let error: string | undefined;
    await this.until(signal, (wake) => {
      this.pending = { id, settle: (e) => ((error = e), wake()) };
      this.child.send(msg, (err) => err && ((error = `could not reach the rank: ${err.message}`), wake()));
    }, 'no answer from serve()');
    this.pending = undefined;
    if (error !== undefined) throw new Error(`the handler failed: ${error}`);
  }

  /** Resolves when `arm`'s wake is called; rejects when the rank exits or `signal` aborts. */
  private until(signal: AbortSignal, arm: (wake: () => void) => void, why: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        signal.removeEventListener('abort', onAbort);
        this.child.off('exit', onExit);
        if (err) reject(err);
        else resolve();
      };
      const onAbort = () => done(new Error(why));
      const onExit = () => done(new Error('the rank exited'));
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      this.child.once('exit', onExit);
      arm(() => done());
    });
  }
}

/** The metric label of a rank: its replica group (or gang name). */
export function groupOf(env: Record<string, string>): string {
  return env[SHARD_ENV.GROUP] ?? '';
}

/** A launch order's warm-up as the runner takes it (none: no requests). The head resolved port names. */
export function warmupOf(w: Warmup | undefined): WarmupSpec | undefined {
  if (!w || w.requests.length === 0) return undefined;
  const requests = w.requests.map((r): WarmupStep => {
    switch (r.kind) {
      case 'call':
        return r.payload.length > 0 ? { kind: 'call', stream: r.stream, base64: Buffer.from(r.payload).toString('base64') } : { kind: 'call', stream: r.stream, json: r.json || 'null' };
      case 'http':
        return { kind: 'http', port: Number(r.port), method: r.method || (r.body ? 'POST' : 'GET'), path: r.path || '/', headers: r.headers, body: r.body, expectStatus: r.expectStatus };
      default:
        return { kind: 'exec', command: r.command[0] ?? '', args: r.command.slice(1) };
    }
  });
  return { requests, timeoutMs: w.timeoutMs || DEFAULT_WARMUP_TIMEOUT_MS };
}
