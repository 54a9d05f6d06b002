/**
 * LocalSupervisor: the ShardSupervisor that runs shards as local processes.
 *
 * It owns the set of shards on this node (one ShardRunner each), reports every
 * phase change through onStatus, keeps `<dataDir>/shards.json` in step with
 * the live ones (so a restarted agent adopts instead of orphaning them),
 * and bounds their log files: each one's size (logs.ts) and, once its
 * attempt is over, how long it is kept (log-retention.ts). Each rank runs as
 * its gang's user, in its gang's home (rank-users.ts, rank-homes.ts); the
 * data dir, the registry and the logs are the agent's alone (0700 / 0600).
 *
 * Restart story: open() reads the registry and adopts every entry whose
 * process is still the one we spawned (pid + start time); others are dropped
 * and never signalled. close() by default only detaches: timers stop, the
 * registry is saved, the processes keep running for the next agent.
 */
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, MusterError } from '@muster/common';
import { DEFAULT_LOG_RETENTION, sweepAfterLaunches, sweepEveryMs, sweepLogs, type LogRetention } from './log-retention.js';
import { followLog, logPathOf, rotateIfNeeded } from './logs.js';
import { HomeIndex } from './home-index.js';
import { cachedUidInUse, prepareHome, sweepHomes, uidInUse, userForGang } from './rank-homes.js';
import type { RankUser } from './rank-users.js';
import { isAdoptable, loadRegistry, registryPath, saveRegistry, type RegistryEntry } from './registry.js';
import { ShardRunner, type RunnerHost } from './shard.js';
import type { ShardSpec, ShardStatus, ShardSupervisor, SupervisorOptions } from './types.js';
import { parseShardKey, validateSpec } from './validate.js';

export interface LocalSupervisorOptions extends SupervisorOptions {
  /** How often log sizes are checked against logMaxBytes (default 500 ms). */
  logCheckMs?: number;
  /** How often adopted shards' /proc entries are polled for exit (default 200 ms). */
  pollMs?: number;
  /** How many exited shards list() keeps reporting (default 256, oldest dropped first). */
  keepExited?: number;
  /** How long finished attempts' logs are kept, how many per gang and of how many gangs (log-retention.ts; default 24 h, 5, 1,000). */
  logRetention?: LogRetention;
}

export class LocalSupervisor implements ShardSupervisor {
  private readonly shards = new Map<string, ShardRunner>();
  private readonly registryFile: string;
  private readonly host: RunnerHost;
  private readonly logTimer: NodeJS.Timeout;
  private readonly retentionTimer: NodeJS.Timeout;
  private closing = false;
  private detached = false;
  /** Owners of the gang homes on disk (scanned at open, then kept in step). */
  private homes = new HomeIndex();
  private readonly uidsInUse = cachedUidInUse();
  /** Launches since the last retention sweep: a burst of short gangs triggers one before the timer would. */
  private launchesSinceSweep = 0;

  private constructor(private readonly opts: LocalSupervisorOptions) {
    this.registryFile = registryPath(opts.dataDir);
    this.host = { changed: (r) => this.changed(r), log: opts.log, pollMs: opts.pollMs ?? 200 };
    this.logTimer = setInterval(() => this.checkLogs(), opts.logCheckMs ?? 500);
    this.logTimer.unref();
    this.retentionTimer = setInterval(() => this.sweepLogs(), sweepEveryMs(this.retention));
    this.retentionTimer.unref();
  }

  /**
   * Opens the data dir (made private: 0700, whatever it was), adopts the
   * shards a previous agent left running, and reports them through onStatus
   * before resolving.
   */
  static async open(opts: LocalSupervisorOptions): Promise<LocalSupervisor> {
    mkdirSync(opts.dataDir, { recursive: true }); // parents as umask says: homes beside it must stay reachable
    chmodSync(opts.dataDir, 0o700);
    const sup = new LocalSupervisor(opts);
    if (opts.ranks) sup.homes = HomeIndex.scan(opts.ranks.homeRoot);
    const adopted = sup.adoptAll(loadRegistry(sup.registryFile, opts.log));
    sup.save();
    sup.sweepLogs();
    for (const r of adopted) sup.report(r);
    for (const r of adopted) r.resume();
    return sup;
  }

  launch(given: ShardSpec): void {
    if (this.closing) throw new MusterError(ErrorCode.FAILED_PRECONDITION, 'shard supervisor is closed');
    validateSpec(given);
    const prev = this.shards.get(given.key);
    if (prev && prev.phase !== 'exited') {
      throw new MusterError(ErrorCode.ALREADY_EXISTS, `shard ${given.key} is already running (pid ${prev.pid ?? '?'})`, { details: { key: given.key } });
    }
    const spec = this.placeRank(given);
    const r = new ShardRunner(spec, logPathOf(this.opts.dataDir, spec.gangId, spec.attempt, spec.rank), this.host);
    this.shards.delete(spec.key); // re-insert: Map order is age order for pruning
    this.shards.set(spec.key, r);
    try {
      r.start();
    } catch (e) {
      this.shards.delete(spec.key);
      if (prev) this.shards.set(spec.key, prev);
      throw new MusterError(ErrorCode.INTERNAL, `shard ${spec.key}: cannot open log file ${r.logFile}: ${(e as Error).message}`, { cause: e });
    }
    this.prune();
    // Counted per rank launched here (an 8-rank gang counts 8): sweeps come sooner, never later, than the bound says.
    if (++this.launchesSinceSweep >= sweepAfterLaunches(this.retention)) {
      setImmediate(() => this.closing || this.sweepLogs());
    }
  }

  private get retention(): LogRetention {
    return this.opts.logRetention ?? DEFAULT_LOG_RETENTION;
  }

  /**
   * The spec as it will run: under its gang's user, in its gang's home
   * (rank-homes.ts). A spec that already names a user (tests) keeps it.
   */
  private placeRank(spec: ShardSpec): ShardSpec {
    const ranks = this.opts.ranks;
    if (!ranks || spec.user) return spec;
    const live = new Map<string, RankUser>();
    for (const r of this.shards.values()) if (r.phase !== 'exited' && r.spec.user) live.set(r.spec.gangId, r.spec.user);
    const running = this.uidsInUse();
    const homes = ranks.policy.kind === 'per-gang' ? this.homes : undefined;
    let user = userForGang(ranks.policy, spec.gangId, live, (uid) => homes?.heldByOther(uid, spec.gangId) === true || running(uid));
    if (user && user.uid === process.getuid?.() && user.gid === process.getgid?.()) user = undefined; // already us: no switch
    try {
      const home = prepareHome(ranks.homeRoot, spec.gangId, user);
      this.homes.set(spec.gangId, user?.uid ?? process.getuid?.() ?? 0);
      return { ...spec, user, home };
    } catch (e) {
      // prepareHome may have removed a home of another uid before failing: the index follows the disk.
      if (!existsSync(join(ranks.homeRoot, spec.gangId))) this.homes.delete(spec.gangId);
      throw new MusterError(ErrorCode.INTERNAL, `shard ${spec.key}: cannot prepare its home in ${ranks.homeRoot}: ${(e as Error).message}`, { cause: e });
    }
  }

  stop(key: string, reason = 'stopped'): Promise<void> {
    return this.shards.get(key)?.stop(reason, true) ?? Promise.resolve();
  }

  async stopGang(gangId: string, attempt?: number): Promise<void> {
    const mine = [...this.shards.values()].filter((r) => r.spec.gangId === gangId && (attempt === undefined || r.spec.attempt === attempt));
    await Promise.all(mine.map((r) => r.stop('stopped', true)));
  }

  list(): ShardStatus[] {
    return [...this.shards.values()].map((r) => r.status());
  }

  /** Every shard known here, adopted ones too, with its environment: the resource reporter finds each rank's replica in it (resources/reporter.ts). */
  *ranks(): IterableIterator<{ pid: number | undefined; phase: string; env: Readonly<Record<string, string>> }> {
    for (const r of this.shards.values()) yield { pid: r.pid, phase: r.phase, env: r.spec.env };
  }

  /**
   * The shard's log: known shards by their runner; a key no longer known
   * (exited before an agent restart) by its path, read as finished.
   */
  readLog(key: string, opts: { tailBytes?: number; follow?: boolean; signal?: AbortSignal }): AsyncIterable<Uint8Array> {
    const r = this.shards.get(key);
    const k = parseShardKey(key);
    const file = r?.logFile ?? (k && logPathOf(this.opts.dataDir, k.gangId, k.attempt, k.rank));
    if (!file || !existsSync(file)) throw new MusterError(ErrorCode.NOT_FOUND, `no log for shard ${key}`, { details: { key } });
    return followLog(file, {
      tailBytes: opts.tailBytes ?? 64 * 1024,
      follow: opts.follow ?? false,
      signal: opts.signal,
      isDone: () => !r || r.phase === 'exited' || this.detached,
      pollMs: 100,
    });
  }

  /** Detaches (default) or, with stopShards, stops every shard first. Idempotent. */
  async close(opts: { stopShards?: boolean } = {}): Promise<void> {
    if (this.detached) return;
    this.closing = true;
    clearInterval(this.logTimer);
    clearInterval(this.retentionTimer);
    const runners = [...this.shards.values()];
    if (opts.stopShards) await Promise.all(runners.map((r) => r.stop('stopped', true)));
    else await this.finishStops(runners.filter((r) => r.phase === 'stopping'));
    if (this.detached) return;
    this.save();
    this.detached = true;
    for (const r of runners) r.detach();
  }

  /**
   * A stop under way is seen through its SIGKILL rather than left half-done,
   * but not waited on forever (a process stuck in the kernel may take long to
   * die): past grace + 1 s we detach, and the registry says 'stopping', so the
   * next agent resumes the stop.
   */
  private async finishStops(stopping: ShardRunner[]): Promise<void> {
    if (stopping.length === 0) return;
    const limit = Math.max(...stopping.map((r) => r.spec.gracePeriodMs)) + 1000;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(stopping.map((r) => r.done)), new Promise((r) => (timer = setTimeout(r, limit)))]);
    clearTimeout(timer);
  }

  private adoptAll(entries: RegistryEntry[]): ShardRunner[] {
    const out: ShardRunner[] = [];
    for (const e of entries) {
      if (!isAdoptable(e) || this.shards.has(e.spec.key)) {
        this.opts.log.info({ key: e.spec.key, pid: e.pid }, 'shard from the registry is gone; dropped (its pid, if in use, is not ours)');
        continue;
      }
      const r = new ShardRunner(e.spec, e.logFile, this.host);
      r.adopt(e);
      this.shards.set(e.spec.key, r);
      out.push(r);
      this.opts.log.info({ key: e.spec.key, pid: e.pid, phase: e.phase }, 'adopted running shard');
    }
    return out;
  }

  private changed(r: ShardRunner): void {
    if (this.detached) return;
    if (r.phase !== 'prestart') this.save();
    this.report(r);
  }

  private report(r: ShardRunner): void {
    try {
      this.opts.onStatus(r.status());
    } catch (e) {
      this.opts.log.error({ key: r.spec.key, err: String(e) }, 'onStatus handler threw');
    }
  }

  private save(): void {
    const entries = [...this.shards.values()].flatMap((r) => r.entry() ?? []);
    try {
      saveRegistry(this.registryFile, entries);
    } catch (e) {
      this.opts.log.error({ file: this.registryFile, err: String(e) }, 'cannot save shard registry; running shards may be orphaned by an agent restart');
    }
  }

  private checkLogs(): void {
    for (const r of this.shards.values()) {
      if (r.phase === 'exited' || r.phase === 'prestart') continue;
      try {
        if (rotateIfNeeded(r.logFile, r.spec.logMaxBytes)) this.opts.log.info({ key: r.spec.key, file: r.logFile }, 'rotated shard log');
      } catch (e) {
        this.opts.log.warn({ key: r.spec.key, err: String(e) }, 'shard log rotation failed');
      }
    }
  }

  /**
   * Deletes the logs of finished attempts past their retention (never of a
   * shard that runs), then the homes of gangs whose last log went.
   */
  sweepLogs(nowMs = Date.now()): string[] {
    const live = [...this.shards.values()].filter((r) => r.phase !== 'exited');
    const running = new Set(live.map((r) => `${r.spec.gangId}/${r.spec.attempt}`));
    let deleted: string[] = [];
    this.launchesSinceSweep = 0;
    try {
      deleted = sweepLogs(this.opts.dataDir, running, this.retention, nowMs);
      if (deleted.length > 0) this.opts.log.info({ attempts: deleted.length }, 'deleted logs of finished shards past their retention');
      const homes = this.opts.ranks && sweepHomes(this.opts.ranks.homeRoot, join(this.opts.dataDir, 'logs'), new Set(live.map((r) => r.spec.gangId)), uidInUse(), this.homes.gangIds());
      for (const gangId of homes || []) this.homes.delete(gangId);
      if (homes && homes.length > 0) this.opts.log.info({ gangs: homes.length }, 'deleted the homes of gangs whose logs are gone');
    } catch (e) {
      this.opts.log.warn({ err: String(e) }, 'shard log retention sweep failed; tried again later');
    }
    return deleted;
  }

  /** Drops the oldest exited shards beyond keepExited. */
  private prune(): void {
    let extra = [...this.shards.values()].filter((r) => r.phase === 'exited').length - (this.opts.keepExited ?? 256);
    for (const [key, r] of this.shards) {
      if (extra <= 0) break;
      if (r.phase === 'exited') {
        this.shards.delete(key);
        extra--;
      }
    }
  }
}
