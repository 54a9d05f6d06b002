/**
 * Retention of finished shards' log files on the worker, so a node that runs
 * gangs for months does not fill its disk with logs of attempts long over.
 *
 * Logs live at `<dataDir>/logs/<gangId>/<attempt>/rank-<r>.log[.1]` (logs.ts).
 * An attempt directory none of whose shards still runs here is finished; a
 * finished attempt's directory is deleted when
 *   - nothing in it was written for `maxAgeMs` (default 24 h), or
 *   - it is not among the newest `attemptsKept` finished attempts of its gang
 *     (default 5; newest by last write);
 * and a gang directory left empty goes too. What runs is never touched: its
 * directory is skipped whatever its age. `muster logs` of a deleted attempt
 * answers NOT_FOUND (supervisor.readLog).
 */
import { readdirSync, rmSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface LogRetention {
  maxAgeMs: number;
  attemptsKept: number;
}

export const DEFAULT_LOG_RETENTION: LogRetention = { maxAgeMs: 24 * 60 * 60 * 1000, attemptsKept: 5 };

/** How often the supervisor sweeps: a tenth of the age bound, between 1 s and 10 min. */
export function sweepEveryMs(r: LogRetention): number {
  return Math.max(1_000, Math.min(600_000, Math.floor(r.maxAgeMs / 10)));
}

/**
 * Deletes the finished attempts' logs that `policy` no longer keeps. `running`
 * holds `<gangId>/<attempt>` of every shard that has not exited. Returns the
 * directories deleted (relative to `<dataDir>/logs`).
 */
export function sweepLogs(dataDir: string, running: ReadonlySet<string>, policy: LogRetention, nowMs = Date.now()): string[] {
  const root = join(dataDir, 'logs');
  const deleted: string[] = [];
  for (const gang of list(root)) {
    const gangDir = join(root, gang);
    const finished = list(gangDir)
      .filter((attempt) => !running.has(`${gang}/${attempt}`))
      .map((attempt) => ({ attempt, lastWrite: lastWrite(join(gangDir, attempt)) }))
      .sort((a, b) => b.lastWrite - a.lastWrite);
    finished.forEach(({ attempt, lastWrite: at }, i) => {
      if (i < policy.attemptsKept && nowMs - at < policy.maxAgeMs) return;
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
