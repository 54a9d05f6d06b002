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
import { isWarmupCall, SHARD_ENV, WARMUP_ERROR_CHARS, WARMUP_LIMITS, type WarmupCallMessage, type WarmupResultMessage } from '@muster/contracts';
import type { StreamHandler, UnaryHandler } from './types.js';

/** A send's callback: a channel the agent closed meanwhile is no 'error' event on the process (uncaught, a crash). */
const ignore = (): void => undefined;

/** Starts answering the agent's warm-up calls, when this process is a rank the agent spawned with a channel; returns the stop. */
export function answerWarmups(handlers: { unary?: UnaryHandler | undefined; stream?: StreamHandler | undefined }, ownEnv: boolean): () => void {
  // A rank: launched by an agent (the gang contract is in its environment) with a channel to it.
  if (!ownEnv || !process.env[SHARD_ENV.GANG_ID] || typeof process.send !== 'function' || !process.connected) return () => {};
  const onMessage = (m: unknown): void => {
    if (!isWarmupCall(m)) return;
    void runCall(handlers, m).then((result) => {
      if (process.connected) process.send?.(result, undefined, {}, ignore);
    });
  };
  process.on('message', onMessage);
  process.channel?.unref();
  process.send({ muster: 'serving' }, undefined, {}, ignore);
  return () => process.off('message', onMessage);
}

async function runCall(handlers: { unary?: UnaryHandler | undefined; stream?: StreamHandler | undefined }, m: WarmupCallMessage): Promise<WarmupResultMessage> {
  const ac = new AbortController();
  try {
    const payload: unknown = m.base64 !== undefined ? new Uint8Array(Buffer.from(m.base64, 'base64')) : JSON.parse(m.json ?? 'null');
    const ctx = { id: `warmup-${m.id}`, deadline: Date.now() + WARMUP_LIMITS.timeoutMs, signal: ac.signal };
    if (m.stream) {
      if (!handlers.stream) throw new Error('serve() was given no stream handler');
      for await (const chunk of handlers.stream(payload, ctx)) void chunk;
    } else {
      if (!handlers.unary) throw new Error('serve() was given no unary handler');
      await handlers.unary(payload, ctx);
    }
    return { muster: 'warmup-result', id: m.id, ok: true };
  } catch (e) {
    return { muster: 'warmup-result', id: m.id, ok: false, error: (e instanceof Error ? e.message : String(e)).slice(0, WARMUP_ERROR_CHARS) };
  } finally {
    ac.abort();
  }
}
