/**
 * Dynamic batching, the pure half: the options a `serve()` batch handler
 * takes (validated at the edge, errors naming the field) and the one decision
 * the batcher makes again and again — "send a batch now, of how many calls,
 * or wait how long?" — as a function of the queue and the clock, so it can be
 * table-tested without timers. The batcher that acts on it is batch.ts.
 *
 * The rule, in order (Triton's dynamic batcher, which the serving guides
 * follow):
 *   1. nothing queued, or `maxConcurrentBatches` batches already running:
 *      wait (a batch that ends, or a call that arrives, asks again);
 *   2. `maxBatchSize` calls queued: a full batch, now;
 *   3. a preferred size can be formed: the largest one that fits, now (a
 *      model compiled or captured for those sizes runs them best; the rest
 *      stays queued for the next batch);
 *   4. the oldest queued call has waited `maxQueueDelayMs` (or the replica
 *      is draining and nothing more will come): everything queued, now;
 *   5. else wait until the oldest call's delay is up.
 * The delay is a latency budget spent only when the queue is short: under
 * load, batches fill (2, 3) long before it runs out.
 */
import { didYouMeanKeys, ErrorCode, formatIssues, MusterError } from '@muster/common';
import { z } from 'zod';
import type { RequestContext } from './types.js';

/** The largest batch a handler may ask for: a bound on what one replica holds per batch. */
export const MAX_BATCH_SIZE = 1_024;
/** The longest a call may be kept waiting for its batch to fill. */
export const MAX_QUEUE_DELAY_MS = 60_000;
/** The most batches one replica runs at once. */
export const MAX_CONCURRENT_BATCHES = 64;

/** What a batch handler gets beside the payloads. */
export interface BatchContext {
  /**
   * One per payload, in order: the call's id, deadline and signal. A call's
   * signal aborts when it is cancelled by its caller, passes its deadline, or
   * the replica closes; such a call has been answered already (or its caller
   * stopped listening), and whatever the handler returns for it is dropped.
   */
  calls: RequestContext[];
  /** Aborted once no call of the batch still waits for an answer, or the replica closes. */
  signal: AbortSignal;
}

/**
 * Runs one batch: one result per payload, in order. An element that is an
 * `Error` fails that call alone (MUSTER_APPLICATION_ERROR with its message);
 * a throw (or a rejected promise) fails every call of the batch.
 */
export type BatchHandler = (payloads: unknown[], ctx: BatchContext) => unknown[] | Promise<unknown[]>;

/** `serve({ batch: { handler, maxBatchSize, maxQueueDelayMs } })`. */
export interface BatchOptions {
  handler: BatchHandler;
  /** The most calls in one batch (1…1024). */
  maxBatchSize: number;
  /** Sizes to send as soon as they can be formed (ascending, each ≤ maxBatchSize); default none. */
  preferredBatchSizes?: number[];
  /** The longest the oldest queued call waits for its batch to fill (0…60000 ms; 0: send what is queued as soon as a batch may run). */
  maxQueueDelayMs: number;
  /** Batches running at once (1…64, default 1: the model runs one batch at a time; more for a handler that awaits a remote engine). */
  maxConcurrentBatches?: number;
}

/** The options once validated, defaults filled (what `schema` outputs). */
export type ValidBatchOptions = z.output<typeof schema>;

const size = z.int('must be a whole number').min(1, 'must be ≥ 1').max(MAX_BATCH_SIZE, `must be ≤ ${MAX_BATCH_SIZE}`);
const schema = z.strictObject({
  handler: z.custom<BatchHandler>((v) => typeof v === 'function', 'must be a function (payloads, ctx) => results'),
  maxBatchSize: size,
  // No bound of its own: ascending and each ≤ maxBatchSize, it has at most MAX_BATCH_SIZE entries.
  preferredBatchSizes: z.array(size).default([]),
  maxQueueDelayMs: z.number('must be a number of milliseconds').min(0, 'must be ≥ 0').max(MAX_QUEUE_DELAY_MS, `must be ≤ ${MAX_QUEUE_DELAY_MS}`),
  maxConcurrentBatches: z.int('must be a whole number').min(1, 'must be ≥ 1').max(MAX_CONCURRENT_BATCHES, `must be ≤ ${MAX_CONCURRENT_BATCHES}`).default(1),
}, didYouMeanKeys).superRefine((o, ctx) => {
  o.preferredBatchSizes.forEach((p, i) => {
    if (p > o.maxBatchSize) ctx.addIssue({ code: 'custom', path: ['preferredBatchSizes', i], message: `${p} is more than maxBatchSize (${o.maxBatchSize})` });
    const before = o.preferredBatchSizes[i - 1];
    if (before !== undefined && p <= before) ctx.addIssue({ code: 'custom', path: ['preferredBatchSizes', i], message: `must be ascending: ${p} comes after ${before}` });
  });
});

const invalid = (message: string, field: string) => new MusterError(ErrorCode.INVALID_ARGUMENT, `serve(): ${message}`, { details: { field } });

/** Validates `serve()`'s `batch` option; MUSTER_INVALID_ARGUMENT naming the field (`batch.maxBatchSize`, …) otherwise. */
export function parseBatchOptions(raw: unknown): ValidBatchOptions {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const first = r.error.issues[0]!;
  const field = ['batch', ...first.path.map(String)].join('.');
  const issues = r.error.issues.map((i) => ({ ...i, path: ['batch', ...i.path] }));
  throw invalid(formatIssues(issues), field);
}

/**
 * How many calls a batching replica holds (queued for a batch plus in running
 * batches) before it answers MUSTER_BACKPRESSURE: `serve()`'s `maxConcurrent`
 * when given — it must leave room for one full batch — else room for every
 * batch that may run plus one full batch waiting behind them.
 */
export function batchCapacity(o: ValidBatchOptions, maxConcurrent: number | undefined): number {
  if (maxConcurrent === undefined) return o.maxBatchSize * (o.maxConcurrentBatches + 1);
  if (maxConcurrent < o.maxBatchSize) throw invalid(`maxConcurrent: ${maxConcurrent} is less than batch.maxBatchSize (${o.maxBatchSize}); with a batch handler it bounds the calls the replica holds, so a full batch could never form`, 'maxConcurrent');
  return maxConcurrent;
}

/** The queue as the planner sees it. */
export interface BatchQueueState {
  /** Live calls waiting for a batch. */
  queued: number;
  /** How long the oldest of them has waited (ms). */
  oldestWaitedMs: number;
  /** Batches running now. */
  runningBatches: number;
  /** No more calls will come (the replica drains): don't wait for the delay. */
  flushing: boolean;
}

export type BatchPlan =
  | { take: number; reason: 'full' | 'preferred' | 'delay' | 'flush' }
  | { waitMs: number }
  | { idle: 'empty' | 'busy' };

/** The decision described at the top of this file. */
export function planBatch(s: BatchQueueState, o: Pick<ValidBatchOptions, 'maxBatchSize' | 'preferredBatchSizes' | 'maxQueueDelayMs' | 'maxConcurrentBatches'>): BatchPlan {
  if (s.queued === 0) return { idle: 'empty' };
  if (s.runningBatches >= o.maxConcurrentBatches) return { idle: 'busy' };
  if (s.queued >= o.maxBatchSize) return { take: o.maxBatchSize, reason: 'full' };
  const preferred = o.preferredBatchSizes.findLast((p) => p <= s.queued);
  if (preferred !== undefined) return { take: preferred, reason: 'preferred' };
  if (s.flushing) return { take: s.queued, reason: 'flush' };
  if (s.oldestWaitedMs >= o.maxQueueDelayMs) return { take: s.queued, reason: 'delay' };
  return { waitMs: o.maxQueueDelayMs - s.oldestWaitedMs };
}
