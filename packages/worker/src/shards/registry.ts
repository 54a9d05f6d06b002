/**
 * The registry of live shards, `<dataDir>/shards.json`: what an agent needs to
 * adopt its shards after a restart (they kept running; the agent did not).
 *
 * Written on every change, atomically (temp file + rename), so a crash leaves
 * either the old or the new registry, never half of one. Mode 0600: specs
 * carry the shards' environments, which may hold secrets. Specs also carry
 * the uid each rank runs as (rank-users.ts), so adoption keeps it.
 *
 * An entry is adopted only when /proc/<pid> exists, is not a zombie, and has
 * the recorded start time: pids are recycled, and a process with our pid but
 * another start time is someone else's, which we must never signal.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { pidAlive } from '@muster/common';
import { NATS_SECRET_ENV } from '@muster/contracts';
import type { ShardSpec } from './types.js';
import { validateSpec } from './validate.js';

export interface RegistryEntry {
  spec: ShardSpec;
  pid: number;
  /** /proc/<pid>/stat field 22 at spawn: with pid, the process's identity. */
  startTime: string;
  logFile: string;
  phase: 'started' | 'ready' | 'stopping';
  /** Wall clock (ms) of the spawn: an adopted shard still starting keeps its original deadline. */
  spawnedAt: number;
  /** Set while stopping: why, and whether stop() asked for it (resumed after adoption). */
  ending?: { reason: string; stopped: boolean } | undefined;
}

const entrySchema = z.object({
  spec: z.unknown(),
  pid: z.number().int().min(2),
  startTime: z.string().regex(/^\d+$/),
  logFile: z.string().min(1),
  phase: z.enum(['started', 'ready', 'stopping']),
  spawnedAt: z.number(),
  ending: z.object({ reason: z.string(), stopped: z.boolean() }).optional(),
});

const fileSchema = z.object({ version: z.literal(1), shards: z.array(z.unknown()) });

export function registryPath(dataDir: string): string {
  return join(dataDir, 'shards.json');
}

type Log = { warn(o: object, msg?: string): void };

/** Reads the registry; a missing file is empty, and unreadable entries are dropped with a warning. */
export function loadRegistry(file: string, log: Log): RegistryEntry[] {
  let raw: string;
  try {
    raw = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') log.warn({ file, err: String(e) }, 'shard registry unreadable; starting empty');
    return [];
  }
  let parsed: z.infer<typeof fileSchema>;
  try {
    parsed = fileSchema.parse(JSON.parse(raw));
  } catch (e) {
    log.warn({ file, err: String(e) }, 'shard registry corrupt; starting empty');
    return [];
  }
  const out: RegistryEntry[] = [];
  for (const item of parsed.shards) {
    const r = entrySchema.safeParse(item);
    try {
      if (!r.success) throw r.error;
      validateSpec(r.data.spec);
      out.push({ ...r.data, spec: r.data.spec });
    } catch (e) {
      log.warn({ file, err: String(e) }, 'dropping invalid shard registry entry');
    }
  }
  return out;
}

/**
 * The rank's data-plane credential is not written (docs/security.md, "NATS:
 * users per role"): an adopted rank keeps the one in its own environment,
 * and a restart of its gang brings a new one with the launch order.
 */

export function saveRegistry(file: string, entries: RegistryEntry[]): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const saved = entries.map((e) => ({ ...e, spec: { ...e.spec, env: Object.fromEntries(Object.entries(e.spec.env).filter(([k]) => !NATS_SECRET_ENV.includes(k))) } }));
  writeFileSync(tmp, JSON.stringify({ version: 1, shards: saved }), { mode: 0o600 });
  renameSync(tmp, file);
}

/** Whether the process of `e` is still the one we spawned. */
export function isAdoptable(e: RegistryEntry): boolean {
  return pidAlive(e.pid, e.startTime);
}
