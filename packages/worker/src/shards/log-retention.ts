/**
 * Retention of finished shards' log files on the worker, so a node that runs
 * gangs for months does not fill its disk with logs of attempts long over.
 *
 * Logs live at `<dataDir>/logs/<gangId>/<attempt>/rank-<r>.log[.1]` (logs.ts).
 * An attempt directory none of whose shards still runs here is finished; a
 * finished attempt's directory is deleted when
 *   - nothing in it was written for `maxAgeMs` (default 24 h), or
 *   - it is not among the newest `attemptsKept` finished attempts of its gang
 *     (default 5; newest by last write), or
 *   - its gang runs nothing here and is not among the newest `gangsKept` such
 *     gangs (default 1,000; newest by last write of any attempt);
 * and a gang directory left empty goes too. What runs is never touched: its
 * directory is skipped whatever its age. `muster logs` of a deleted attempt
 * answers NOT_FOUND (supervisor.readLog).
 *
 * The gang bound is what keeps a node that runs many short gangs bounded: by
 * age alone, a day of gangs a second is 86,400 directories (and as many gang
 * homes, which go with their logs). It is enforced on the timer and after
 * every `gangsKept / 4` launches (sweepAfterLaunches), so a burst of short
 * gangs cannot pile up more than about a quarter over it between sweeps.
 */
import { readdirSync, rmSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface LogRetention {
  maxAgeMs: number;
  attemptsKept: number;
  /** Finished gangs (nothing of theirs runs here) whose logs are kept at all; undefined: 1,000. */
  gangsKept?: number;
}

export const DEFAULT_GANGS_KEPT = 1_000;
export const DEFAULT_LOG_RETENTION: LogRetention = { maxAgeMs: 24 * 60 * 60 * 1000, attemptsKept: 5, gangsKept: DEFAULT_GANGS_KEPT };

/** How often the supervisor sweeps: a tenth of the age bound, between 1 s and 1 min. */
export function sweepEveryMs(r: LogRetention): number {
  return Math.max(1_000, Math.min(60_000, Math.floor(r.maxAgeMs / 10)));
}

/** Launches after which the supervisor sweeps without waiting for its timer: a quarter of the gang bound (at least 16). */
export function sweepAfterLaunches(r: LogRetention): number {
  return Math.max(16, Math.floor((r.gangsKept ?? DEFAULT_GANGS_KEPT) / 4));
}

/**
 * Deletes the finished attempts' logs that `policy` no longer keeps. `running`
 * holds `<gangId>/<attempt>` of every shard that has not exited. Returns the
 * directories deleted (relative to `<dataDir>/logs`).
 */
export function sweepLogs(dataDir: string, running: ReadonlySet<string>, policy: LogRetention, nowMs = Date.now()): string[] {
  const root = join(dataDir, 'logs');
  const deleted: string[] = [];
  const gangs = list(root).map((gang) => {
    const attempts = list(join(root, gang));
    const finished = attempts
      .filter((attempt) => !running.has(`${gang}/${attempt}`))
      .map((attempt) => ({ attempt, lastWrite: lastWrite(join(root, gang, attempt)) }))
      .sort((a, b) => b.lastWrite - a.lastWrite);
    return { gang, finished, runs: finished.length < attempts.length };
  });
  // Gangs with nothing running here, newest first: past gangsKept, all their logs go.
  const over = new Set(
    gangs
      .filter((g) => !g.runs)
      .sort((a, b) => (b.finished[0]?.lastWrite ?? 0) - (a.finished[0]?.lastWrite ?? 0))
      .slice(policy.gangsKept ?? DEFAULT_GANGS_KEPT)
      .map((g) => g.gang),
  );
  for (const { gang, finished } of gangs) {
    const gangDir = join(root, gang);
    finished.forEach(({ attempt, lastWrite: at }, i) => {
      if (!over.has(gang) && i < policy.attemptsKept && nowMs - at < policy.maxAgeMs) return;
      rmSync(join(gangDir, attempt), { recursive: true, force: true });
      deleted.push(`${gang}/${attempt}`);
    });
    try {
      rmdirSync(gangDir); // only if empty
    } catch {
      // still holds attempts
    }
  }
  return deleted;
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch {
    return [];
  }
}

/** The newest mtime of the files in `dir` (its own mtime when empty). */
function lastWrite(dir: string): number {
  let newest = 0;
  try {
    newest = statSync(dir).mtimeMs;
    for (const f of readdirSync(dir)) newest = Math.max(newest, statSync(join(dir, f)).mtimeMs);
  } catch {
    // gone meanwhile: oldest
  }
  return newest;
}
