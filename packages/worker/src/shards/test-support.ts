/**
 * Helpers for the shard supervisor tests (kept free of vitest so it compiles
 * with the package): free ports, spec builders, and a Harness that remembers
 * every process a test started and kills what is left, checked through
 * /proc, whatever happened. Condition waits are common's `waitFor`.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pidAlive, procStat, waitFor } from '@muster/common';
import { LocalSupervisor, type LocalSupervisorOptions } from './supervisor.js';
import type { ShardSpec, ShardStatus } from './types.js';

/** Alive = in /proc and not a zombie (this sandbox's PID 1 does not reap orphans). */
export const alive = (pid: number): boolean => pidAlive(pid);

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** A shard running `node -e script`. */
export function node(script: string): Pick<ShardSpec, 'command' | 'args'> {
  return { command: process.execPath, args: ['-e', script] };
}

export const silentLog = { info: () => {}, warn: () => {}, error: () => {} };

let seq = 0;

export class Harness {
  readonly dataDir = mkdtempSync(join(tmpdir(), 'muster-shards-'));
  readonly events: ShardStatus[] = [];
  private readonly sups: LocalSupervisor[] = [];
  /** pid → start time of every process the test caused. */
  private readonly pids = new Map<number, string>();

  async open(extra: Partial<LocalSupervisorOptions> = {}): Promise<LocalSupervisor> {
    const sup = await LocalSupervisor.open({
      dataDir: this.dataDir,
      log: silentLog,
      onStatus: (s) => {
        this.events.push(s);
        if (s.pid !== undefined) this.track(s.pid);
      },
      ...extra,
    });
    this.sups.push(sup);
    return sup;
  }

  track(pid: number): void {
    const st = procStat(pid);
    if (pid > 1 && st && !this.pids.has(pid)) this.pids.set(pid, st.startTime);
  }

  /** A valid spec for `gang/attempt/rank`, overridable. */
  spec(over: Partial<ShardSpec> & Pick<ShardSpec, 'command' | 'args'>): ShardSpec {
    const gangId = over.gangId ?? `g${++seq}`;
    const attempt = over.attempt ?? 1;
    const rank = over.rank ?? 0;
    return {
      key: `${gangId}/${attempt}/${rank}`,
      gangId,
      attempt,
      rank,
      env: {},
      startupDeadlineMs: 10_000,
      gracePeriodMs: 2_000,
      logMaxBytes: 1 << 20,
      ...over,
    };
  }

  /** Waits for a status of `key` matching `phase`, and returns it. */
  async status(key: string, phase: ShardStatus['phase'], timeoutMs = 8000): Promise<ShardStatus> {
    await waitFor(`${key} ${phase}`, () => this.events.some((e) => e.key === key && e.phase === phase), { timeoutMs: timeoutMs, intervalMs: 20 });
    return this.events.find((e) => e.key === key && e.phase === phase)!;
  }

  phases(key: string): string[] {
    return this.events.filter((e) => e.key === key).map((e) => e.phase);
  }

  log(s: ShardStatus): string {
    try {
      return readFileSync(s.logFile!, 'utf8');
    } catch {
      return '';
    }
  }

  /** Detaches supervisors, SIGKILLs every tracked process (and its group) still ours, waits until /proc shows them gone. */
  async cleanup(): Promise<void> {
    // Detach first (so no supervisor reacts), but never let a stuck close() keep processes alive.
    const closing = Promise.all(this.sups.splice(0).map((s) => s.close().catch(() => {})));
    await Promise.race([closing, new Promise((r) => setTimeout(r, 1000))]);
    const ours = [...this.pids].filter(([pid, start]) => pidAlive(pid, start));
    for (const [pid] of ours) {
      for (const target of [-pid, pid]) {
        try {
          process.kill(target, 'SIGKILL');
        } catch {
          /* not a group leader, or already gone */
        }
      }
    }
    await waitFor('test processes to be gone', () => ours.every(([pid, start]) => !pidAlive(pid, start)), { timeoutMs: 5000, intervalMs: 20 });
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
