/**
 * What `serve()` takes (serve.ts): its handlers and options, checked, with
 * the defaults a replica-group shard gets from its environment (the head sets
 * MUSTER_SUBJECT, MUSTER_GROUP, MUSTER_REPLICA_ID and the group's NATS user).
 * A wrong or missing one fails `serve()` with INVALID_ARGUMENT naming it.
 */
import { connectNats, ErrorCode, MusterError, unknownKeysMessage, type NatsConnection } from '@muster/common';
import { DEFAULT_SUBJECT_PREFIX, portVar, readNatsCredentialEnv, SHARD_ENV, ShardEnvError, type EngineLoad } from '@muster/contracts';
import { z } from 'zod';
import { batchCapacity, parseBatchOptions, type BatchOptions, type ValidBatchOptions } from './batch-plan.js';
import type { StreamHandler, UnaryHandler } from './types.js';

export interface ServeHandlers {
  unary?: UnaryHandler;
  stream?: StreamHandler;
  /** Unary calls in batches instead of one by one (batch.ts; not with `unary`). */
  batch?: BatchOptions;
}

export interface ServeOptions {
  /** A connection to use (not closed by the server); default: connect as the group's NATS user (MUSTER_NATS_URL/JWT/SEED/CA). */
  nats?: NatsConnection;
  /** Default MUSTER_SUBJECT. */
  subject?: string;
  /** Default MUSTER_GROUP. */
  group?: string;
  /** Default MUSTER_REPLICA_ID. */
  replicaId?: string;
  /** The revision label of this replica's metrics; default MUSTER_REVISION, else "". */
  revision?: string;
  /** Default MUSTER_NATS_SUBJECT_PREFIX, else "muster". */
  subjectPrefix?: string;
  /** Handlers running at once (default 64); more requests wait in a FIFO queue, reported as `queued`. With `batch`: the most calls held for batches, queued or running (default maxBatchSize × (maxConcurrentBatches + 1)); beyond it, MUSTER_BACKPRESSURE. */
  maxConcurrent?: number;
  /** Requests waiting for a handler slot at most (default 10,000; not with `batch`, whose bound is maxConcurrent); one more is answered MUSTER_BACKPRESSURE. Routers keep each replica's share small (maxInFlightPerReplica), so this bounds only many routers at once, or a caller that is not a router. */
  maxQueued?: number;
  /** Period of load reports (default 1000 ms). */
  loadIntervalMs?: number;
  /** Where the defaults come from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Engine metrics to add to each load report (the worker's HTTP bridge: its scraper's latest values). */
  engineLoad?: () => EngineLoad | undefined;
  /**
   * Gauges of this replica, read at each load report, for `custom:<name>`
   * autoscaling metrics (docs/autoscaling.md, "Resource metrics"): at most 8
   * names of letters, digits, `_` and `:`; a value not finite is left out.
   */
  customMetrics?: () => Record<string, number> | undefined;
  /**
   * The direct path (docs/dataplane.md, "The direct path"): the address this
   * replica listens at for callers' TLS links beside NATS (port 0 or absent:
   * any free one). Default: MUSTER_DATA_ADDR, which the worker sets to its
   * node's address, and the template's port named `direct` (MUSTER_PORT_DIRECT,
   * allocated in the shard port range) when it has one; `false`: no
   * listener, calls come on NATS only. A listener
   * given here that cannot start fails serve(); one from MUSTER_DATA_ADDR is
   * left out with a process warning.
   */
  direct?: false | { host: string; port?: number; maxLinkAgeMs?: number };
}

export interface Server {
  readonly subject: string;
  readonly group: string;
  readonly replicaId: string;
  /** Handlers running now. */
  readonly inFlight: number;
  /** Requests waiting for a handler slot. */
  readonly queued: number;
  /** Its direct-path listener (docs/dataplane.md), when it has one: where, and the callers' links open now. */
  readonly direct?: { readonly host: string; readonly port: number; readonly links: number } | undefined;
  /** Stops taking requests, resolves once every accepted one is answered. */
  drain(): Promise<void>;
  /** Stops now: queued requests are answered MUSTER_UNAVAILABLE (never started, so routers retry them), running ones are aborted. */
  close(): Promise<void>;
}

const HANDLER_KEYS = ['unary', 'stream', 'batch'];

/** The template port whose allocated number the direct-path listener takes (MUSTER_PORT_DIRECT). */
export const DIRECT_PORT = 'direct';

const directSchema = z.strictObject({
  host: z.string().min(1),
  port: z.int().min(0).max(65_535).optional(),
  maxLinkAgeMs: z.int().min(100).max(86_400_000).optional(),
});

const limits = z.object({
  maxConcurrent: z.int().min(1).max(100_000).default(64),
  maxQueued: z.int().min(0).max(1_000_000).default(10_000),
  loadIntervalMs: z.int().min(10).max(60_000).default(1_000),
});

function required(given: string | undefined, env: NodeJS.ProcessEnv, name: string, opt: string): string {
  const v = given ?? env[name];
  if (v) return v;
  throw missing(name, opt);
}

function missing(name: string, opt: string): MusterError {
  return new MusterError(ErrorCode.INVALID_ARGUMENT, `serve(): ${name} is not set and opts.${opt} was not given (the head sets ${name} for replica-group shards)`, { details: { field: name } });
}

/** A replica server's settings, checked and defaulted. */
export interface ServeConfig {
  maxConcurrent: number;
  maxQueued: number;
  loadIntervalMs: number;
  subject: string;
  group: string;
  replicaId: string;
  revision: string;
  prefix: string;
  batch: { options: ValidBatchOptions; capacity: number } | undefined;
  engineLoad?: (() => EngineLoad | undefined) | undefined;
  customMetrics?: (() => Record<string, number> | undefined) | undefined;
  /** Where the direct path listens; `given`: by serve()'s options (a failure to listen fails serve()), else from MUSTER_DATA_ADDR. */
  direct: { host: string; port?: number; maxLinkAgeMs?: number; given: boolean } | undefined;
}

/** The handlers and options checked, with their defaults; throws INVALID_ARGUMENT naming what is wrong. */
export function serveConfig(handlers: ServeHandlers, opts: ServeOptions): ServeConfig {
  const unknown = Object.keys(handlers).filter((k) => !HANDLER_KEYS.includes(k));
  if (unknown.length > 0) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `serve(): handlers: ${unknownKeysMessage(unknown, HANDLER_KEYS)}`, { details: { field: unknown[0] } });
  if (!handlers.unary && !handlers.batch && !handlers.stream) throw new MusterError(ErrorCode.INVALID_ARGUMENT, 'serve(): give a unary, batch or stream handler (or a stream handler beside one of the others)');
  if (handlers.unary && handlers.batch) throw new MusterError(ErrorCode.INVALID_ARGUMENT, 'serve(): give unary or batch, not both: both answer unary calls', { details: { field: 'batch' } });
  const batch = handlers.batch ? parseBatchOptions(handlers.batch) : undefined;
  const parsed = limits.safeParse({ maxConcurrent: opts.maxConcurrent, maxQueued: opts.maxQueued, loadIntervalMs: opts.loadIntervalMs });
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `serve(): ${i.path.join('.')}: ${i.message}`, { details: { field: i.path.join('.') } });
  }
  const env = opts.env ?? process.env;
  let direct: ServeConfig['direct'];
  if (opts.direct !== undefined && opts.direct !== false) {
    const d = directSchema.safeParse(opts.direct);
    if (!d.success) {
      const i = d.error.issues[0]!;
      const field = ['direct', ...i.path].join('.');
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `serve(): ${field}: ${i.message}`, { details: { field } });
    }
    direct = { ...d.data, given: true };
  } else if (opts.direct === undefined) {
    const host = env[SHARD_ENV.DATA_ADDR];
    const port = Number(env[portVar(DIRECT_PORT)] ?? 0);
    if (host) direct = { host, ...(Number.isInteger(port) && port > 0 && port <= 65_535 ? { port } : {}), given: false };
  }
  return {
    ...parsed.data,
    subject: required(opts.subject, env, SHARD_ENV.SUBJECT, 'subject'),
    group: required(opts.group, env, SHARD_ENV.GROUP, 'group'),
    replicaId: required(opts.replicaId, env, SHARD_ENV.REPLICA_ID, 'replicaId'),
    revision: opts.revision ?? env[SHARD_ENV.REVISION] ?? '',
    prefix: opts.subjectPrefix ?? (env[SHARD_ENV.NATS_SUBJECT_PREFIX] || DEFAULT_SUBJECT_PREFIX),
    batch: batch && { options: batch, capacity: batchCapacity(batch, opts.maxConcurrent) },
    engineLoad: opts.engineLoad,
    customMetrics: opts.customMetrics,
    direct,
  };
}

/** Connects as the group's NATS user the head put in the environment (MUSTER_NATS_URL/JWT/SEED/CA). */
export async function replicaConnection(env: NodeJS.ProcessEnv, cfg: ServeConfig): Promise<NatsConnection> {
  let cred: ReturnType<typeof readNatsCredentialEnv>;
  try {
    cred = readNatsCredentialEnv(env);
  } catch (e) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `serve(): ${(e as Error).message}`, { details: { field: e instanceof ShardEnvError ? e.field : SHARD_ENV.NATS_JWT } });
  }
  if (!cred) throw missing(SHARD_ENV.NATS_URL, 'nats'); // undefined only without MUSTER_NATS_URL
  return connectNats({ servers: [...cred.servers], jwt: cred.jwt, seed: cred.seed, caPem: cred.caPem, inboxPrefix: '', user: cred.user ?? '', password: cred.password ?? '' }, `muster-replica ${cfg.group}/${cfg.replicaId}`);
}
