/**
 * The rank's end of `call` warm-up requests (docs/gangs.md#warm-up): rank 0's
 * worker agent sends each payload over the Node IPC channel it opened when it
 * spawned the rank, and serve() runs it through its own handler — the same
 * handler user calls reach, without the data plane (why IPC and not NATS:
 * @muster/contracts warmup.ts). The agent holds the rank back from "ready"
 * until every request answered, so user calls (which only go to members of
 * the group, and a replica is a member only once its gang is READY) come
 * after the warm-up.
 *
 * Only a rank's own serve() answers: serve() reads the process's environment,
 * which has the gang contract (MUSTER_GANG_ID), and the process has an IPC
 * channel. The worker's HTTP bridge (it serves with an explicit `env`) and
 * any other forked process (a test runner's worker) do not. The channel is unref'd: listening for
 * warm-up calls never keeps a rank alive.
 */
import { ErrorCode, MusterError } from '@muster/common';
import { isWarmupCall, SHARD_ENV, WARMUP_ERROR_CHARS, WARMUP_LIMITS, type WarmupCallMessage, type WarmupResultMessage } from '@muster/contracts';
import type { BatchHandler } from './batch-plan.js';
import type { StreamHandler, UnaryHandler } from './types.js';

interface WarmupHandlers {
  unary?: UnaryHandler | undefined;
  stream?: StreamHandler | undefined;
}

/** A send's callback: a channel the agent closed meanwhile is no 'error' event on the process (uncaught, a crash). */
const ignore = (): void => undefined;

/** Whether a serve() of this process answers warm-up calls now: only the first one does (a rank has one agent and one channel). */
let answering = false;

/**
 * Starts answering the agent's warm-up calls, when this process is a rank the
 * agent spawned with a channel; returns the stop (serve()'s drain and close
 * call it), which also aborts the calls still running.
 */
export function answerWarmups(handlers: WarmupHandlers, ownEnv: boolean): () => void {
  // A rank: launched by an agent (the gang contract is in its environment) with a channel to it.
  if (!ownEnv || !process.env[SHARD_ENV.GANG_ID] || typeof process.send !== 'function' || !process.connected || answering) return () => {};
  answering = true;
  const running = new Set<AbortController>();
  const onMessage = (m: unknown): void => {
    if (!isWarmupCall(m)) return;
    const ac = new AbortController();
    running.add(ac);
    void runWarmupCall(handlers, m, ac).then((result) => {
      running.delete(ac);
      if (process.connected) process.send?.(result, undefined, {}, ignore);
    });
  };
  process.on('message', onMessage);
  process.channel?.unref();
  process.send({ muster: 'serving' }, undefined, {}, ignore);
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    answering = false;
    process.off('message', onMessage);
    for (const ac of running) ac.abort(new MusterError(ErrorCode.CANCELLED, 'serve() stopped while a warm-up call ran'));
  };
}

/**
 * A batching replica's warm-up call: its batch handler with a batch of one
 * (the agent sends one call at a time, before any user call can arrive), the
 * one element unwrapped — an Error element fails the call, as it fails a user call.
 */
export function batchOfOne(handler: BatchHandler): UnaryHandler {
  return async (payload, ctx) => {
    const results: unknown = await handler([payload], { calls: [ctx], signal: ctx.signal });
    if (!Array.isArray(results) || results.length !== 1) throw new Error(`the batch handler returned ${Array.isArray(results) ? `${results.length} result(s)` : 'no array'} for a batch of 1 call; it must return one result (or Error) per payload`);
    const r: unknown = results[0];
    if (r instanceof Error) throw r;
    return r;
  };
}

/** The call's deadline: the warm-up's time left when the agent sent it (an older agent sends none: the longest warm-up). */
function deadlineOf(m: WarmupCallMessage): number {
  const left = typeof m.timeoutMs === 'number' && m.timeoutMs > 0 ? Math.min(m.timeoutMs, WARMUP_LIMITS.timeoutMs) : WARMUP_LIMITS.timeoutMs;
  return Date.now() + left;
}

/** Runs one warm-up call through the handler; never throws (exported for the unit tests). */
export async function runWarmupCall(handlers: WarmupHandlers, m: WarmupCallMessage, ac: AbortController): Promise<WarmupResultMessage> {
  const deadline = deadlineOf(m);
  // The agent gives up at the deadline: the handler is told (ctx.signal) rather than left running for nobody.
  const timer = setTimeout(() => ac.abort(new MusterError(ErrorCode.DEADLINE_EXCEEDED, `warm-up call ${m.id} passed its deadline`)), deadline - Date.now());
  timer.unref();
  try {
    const payload: unknown = m.base64 !== undefined ? new Uint8Array(Buffer.from(m.base64, 'base64')) : JSON.parse(m.json ?? 'null');
    const ctx = { id: `warmup-${m.id}`, deadline, signal: ac.signal };
    if (m.stream) {
      if (!handlers.stream) throw new Error('serve() was given no stream handler');
      for await (const chunk of handlers.stream(payload, ctx)) {
        void chunk;
        if (ac.signal.aborted) break;
      }
    } else {
      if (!handlers.unary) throw new Error('serve() was given no unary or batch handler');
      await handlers.unary(payload, ctx);
    }
    if (ac.signal.aborted) throw ac.signal.reason;
    return { muster: 'warmup-result', id: m.id, ok: true };
  } catch (e) {
    return { muster: 'warmup-result', id: m.id, ok: false, error: (e instanceof Error ? e.message : String(e)).slice(0, WARMUP_ERROR_CHARS) };
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
}
