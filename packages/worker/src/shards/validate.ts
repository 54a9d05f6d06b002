/**
 * Validation of a ShardSpec at the edge of the supervisor: a bad spec is
 * rejected with MUSTER_INVALID_ARGUMENT naming the field, before any file is
 * opened or process started. The spec also names a log directory
 * (`logs/<gangId>/<attempt>/rank-<rank>.log`), so gangId is held to a safe
 * path segment: a spec must never be able to write outside the data dir.
 */
import { z } from 'zod';
import { ErrorCode, MusterError } from '@muster/common';
import type { ProbeSpec, ProbeTiming, ShardSpec } from './types.js';
import { warmupSpecSchema } from './warmup.js';

/** Defaults of the probe timings (kubelet-like, but tighter for readiness: startup speed is a goal). */
export const READINESS_DEFAULTS: ProbeTiming = { periodMs: 200, timeoutMs: 1000, failureThreshold: 1 };
export const LIVENESS_DEFAULTS: ProbeTiming = { periodMs: 1000, timeoutMs: 1000, failureThreshold: 3 };

/** A string the kernel can take as an argument (execve stops at NUL). */
const text = z.string().refine((s) => !s.includes('\0'), 'must not contain a NUL byte');
const port = z.number().int().min(1).max(65535);
const positiveMs = z.number().int().positive();
const timing = {
  periodMs: positiveMs.optional(),
  timeoutMs: positiveMs.optional(),
  failureThreshold: z.number().int().positive().optional(),
};

const probeSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('http'), port, path: text.refine((p) => p.startsWith('/'), 'must start with "/"'), ...timing }),
  z.object({ kind: z.literal('tcp'), port, ...timing }),
  z.object({ kind: z.literal('exec'), command: text.pipe(z.string().min(1)), args: z.array(text), ...timing }),
  z.object({ kind: z.literal('sdk'), ...timing }),
]);

/** One path segment: no "/", no leading dot, so never ".." */
export const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

const specSchema = z.object({
  key: z.string(),
  gangId: z.string().regex(SEGMENT, 'must be 1-128 characters of A-Z a-z 0-9 . _ - not starting with "." (it names a log directory)'),
  attempt: z.number().int().nonnegative(),
  rank: z.number().int().nonnegative(),
  command: text.pipe(z.string().min(1, 'must not be empty')),
  args: z.array(text),
  env: z.record(z.string().regex(/^[^=\0]+$/, 'must be non-empty and contain no "=" or NUL'), text),
  cwd: text.pipe(z.string().min(1)).optional(),
  user: z.object({ uid: z.number().int().min(0).max(0xfffffffe), gid: z.number().int().min(0).max(0xfffffffe) }).optional(),
  home: text.pipe(z.string().min(1)).optional(),
  startupDeadlineMs: positiveMs,
  readiness: probeSchema.optional(),
  liveness: probeSchema.optional(),
  warmup: warmupSpecSchema.optional(),
  gracePeriodMs: z.number().int().nonnegative(),
  logMaxBytes: z.number().int().min(1024, 'must be at least 1024'),
});

function invalid(field: string, msg: string): MusterError {
  return new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid shard spec: ${field}: ${msg}`, { details: { field } });
}

/** Throws MUSTER_INVALID_ARGUMENT (details.field = dotted path) unless `spec` is a valid ShardSpec. */
export function validateSpec(spec: unknown): asserts spec is ShardSpec {
  const r = specSchema.safeParse(spec);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const field = issue.path.map(String).join('.') || 'spec';
    throw invalid(field, issue.message);
  }
  const s = r.data;
  const want = shardKey(s.gangId, s.attempt, s.rank);
  if (s.key !== want) throw invalid('key', `must be "${want}" (gangId/attempt/rank)`);
}

export function shardKey(gangId: string, attempt: number, rank: number): string {
  return `${gangId}/${attempt}/${rank}`;
}

/** The inverse of shardKey for well-formed keys (used to find logs of shards no longer known). */
export function parseShardKey(key: string): { gangId: string; attempt: number; rank: number } | undefined {
  const m = /^([^/]+)\/(\d{1,9})\/(\d{1,9})$/.exec(key);
  if (!m || !SEGMENT.test(m[1]!)) return undefined;
  return { gangId: m[1]!, attempt: Number(m[2]), rank: Number(m[3]) };
}

/** How a probe is named in reasons: "http :8000/health", "tcp :9000", "exec ./check.sh", "sdk". */
export function describeProbe(p: ProbeSpec): string {
  switch (p.kind) {
    case 'http':
      return `http :${p.port}${p.path}`;
    case 'tcp':
      return `tcp :${p.port}`;
    case 'exec':
      return `exec ${p.command}`;
    case 'sdk':
      return 'sdk';
  }
}
