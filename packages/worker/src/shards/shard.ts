/**
 * The lifecycle of one shard (see the diagram in types.ts): spawn, readiness
 * until the startup deadline, liveness once ready, stop, and the report of its
 * exit once its whole process group is gone.
 *
 * A shard is either our child (spawned here: exit code and signal come from
 * the 'exit' event, the sdk probe from the IPC channel) or adopted (spawned by
 * an earlier agent: exit is seen by polling /proc, its exit status is
 * unknowable, and there is no IPC channel, so sdk readiness can no longer
 * pass and sdk liveness is skipped).
 *
 * "Exited" means the group, not just the leader, is gone: a leader that dies
 * leaving children behind gets its group stopped (SIGTERM, grace, SIGKILL),
 * since those children would otherwise hold the rank's GPUs and ports.
 */
import { closeSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { openLogFd, readTailRotated } from './logs.js';
import { pidAlive, procStat } from '@muster/common';
import { childEnv, childIdentity, groupAlive, signalGroup, spawnShard } from './process.js';
import { runProbe, type ProbeContext } from './probes.js';
import type { RegistryEntry } from './registry.js';
import type { ShardPhase, ShardSpec, ShardStatus } from './types.js';
import { describeProbe, LIVENESS_DEFAULTS, READINESS_DEFAULTS } from './validate.js';
import { groupOf, runWarmup, WarmupIpc } from './warmup.js';

export interface RunnerHost {
  /** Called on every phase change: reports the status and persists the registry. */
  changed(r: ShardRunner): void;
  log: { warn(o: object, msg?: string): void };
  /** How often an adopted shard's /proc entry is polled, and a dying group re-checked. */
  pollMs: number;
}

export class ShardRunner {
  phase: ShardPhase = 'prestart';
  pid: number | undefined;
  startTime: string | undefined;
  spawnedAt = Date.now();
  /** Why it is ending, when the end was decided here (stop, deadline, liveness). */
  ending: { reason: string; stopped: boolean } | undefined;
  private child: ChildProcess | undefined;
  private exit: { code?: number | undefined; signal?: string | undefined; reason?: string } | undefined;
  private final: ShardStatus | undefined;
  private sdkReady = false;
  /** Readiness passed and the warm-up runs (warmup.ts): still 'started', the startup deadline no longer applies. */
  private warming = false;
  private warmupMs: number | undefined;
  private warmupIpc: WarmupIpc | undefined;
  private readonly warmupAbort = new AbortController();
  private killing = false;
  private detached = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  private resolveDone!: () => void;
  /** Resolves once the shard is reported exited. */
  readonly done = new Promise<void>((r) => (this.resolveDone = r));

  constructor(
    readonly spec: ShardSpec,
    readonly logFile: string,
    private readonly host: RunnerHost,
  ) {}

  status(): ShardStatus {
    if (this.final) return { ...this.final };
    const { key, gangId, attempt, rank } = this.spec;
    const s: ShardStatus = { key, gangId, attempt, rank, phase: this.phase, pid: this.pid, logFile: this.logFile };
    if (this.phase === 'stopping' && this.ending) s.reason = this.ending.reason;
    if (this.phase === 'ready' && this.warmupMs !== undefined) s.warmupMs = this.warmupMs;
    return s;
  }

  /** prestart (log open) → spawn → started. Throws only if the log file cannot be opened (nothing started then). */
  start(): void {
    const fd = openLogFd(this.logFile);
    this.host.changed(this);
    const ipc = this.spec.readiness?.kind === 'sdk' || this.spec.liveness?.kind === 'sdk' || this.spec.warmup?.requests.some((r) => r.kind === 'call') === true;
    let child: ChildProcess;
    try {
      child = spawnShard(this.spec, fd, ipc);
    } catch (e) {
      this.exit = { reason: `spawn failed: ${(e as Error).message}` };
      this.finish();
      return;
    } finally {
      closeSync(fd); // the child has its own copy
    }
    this.child = child;
    child.on('error', (err) => {
      if (this.pid === undefined && !this.exit) {
        this.exit = { reason: `spawn failed: ${err.message}` };
        this.finish();
      } else if (!this.detached) this.host.log.warn({ key: this.spec.key, err: err.message }, 'shard process error');
    });
    if (child.pid === undefined) return; // 'error' follows (ENOENT, EACCES, bad cwd)
    this.pid = child.pid;
    this.startTime = procStat(child.pid)?.startTime;
    this.spawnedAt = Date.now();
    child.on('exit', (code, signal) => this.leaderExited(code ?? undefined, signal ?? undefined));
    if (ipc && this.spec.warmup) this.warmupIpc = new WarmupIpc(child);
    child.on('message', (m: unknown) => {
      this.warmupIpc?.message(m);
      if ((m as { muster?: unknown } | null)?.muster !== 'ready') return;
      this.sdkReady = true;
      if (this.phase === 'started' && !this.detached) this.readinessPassed();
    });
    this.phase = 'started';
    this.host.changed(this);
    this.startReadiness();
  }

  /** Takes over a shard spawned by an earlier agent; call resume() once it was reported. */
  adopt(e: RegistryEntry): void {
    this.pid = e.pid;
    this.startTime = e.startTime;
    this.spawnedAt = e.spawnedAt;
    this.phase = e.phase;
    this.ending = e.ending;
  }

  resume(): void {
    this.watchAdopted();
    if (this.phase === 'started') this.startReadiness();
    else if (this.phase === 'ready') this.startLiveness();
    else this.killGroup(); // was stopping: finish the stop (grace restarts from now)
  }

  /** SIGTERM to the group, SIGKILL after grace; resolves once reported exited. */
  stop(reason: string, stopped: boolean): Promise<void> {
    if (this.detached) return Promise.resolve(); // another agent's business now
    if (this.phase === 'exited') return this.done;
    this.ending ??= { reason, stopped };
    if (this.pid === undefined) return this.done; // spawn still failing; ends by itself
    if (this.phase !== 'stopping' && !this.exit) {
      this.phase = 'stopping';
      this.host.changed(this);
    }
    this.killGroup();
    return this.done;
  }

  /** The agent goes away without stopping the shard: forget it here, leave the process running. */
  detach(): void {
    this.detached = true;
    this.clearTimers();
    if (this.child?.connected) this.child.disconnect();
    this.child?.unref();
  }

  /** Entry for the registry, when the shard is live and identifiable. */
  entry(): RegistryEntry | undefined {
    if (this.pid === undefined || this.startTime === undefined || this.exit) return undefined;
    if (this.phase !== 'started' && this.phase !== 'ready' && this.phase !== 'stopping') return undefined;
    const { spec, pid, startTime, logFile, phase, spawnedAt, ending } = this;
    return { spec, pid, startTime, logFile, phase, spawnedAt, ending };
  }

  private startReadiness(): void {
    const r = this.spec.readiness;
    if (!r) return this.readinessPassed();
    const deadline = this.spec.startupDeadlineMs;
    const why = `startup deadline ${deadline} ms passed (readiness ${describeProbe(r)} never passed)`;
    this.later(this.spawnedAt + deadline - Date.now(), () => {
      if (this.phase === 'started' && !this.warming) return this.stop(why, false); // later() catches and logs a failure
    });
    if (r.kind === 'sdk') {
      if (this.sdkReady) this.readinessPassed();
      return; // the 'message' handler does the rest
    }
    const period = r.periodMs ?? READINESS_DEFAULTS.periodMs;
    const timeout = r.timeoutMs ?? READINESS_DEFAULTS.timeoutMs;
    const attempt = async (): Promise<void> => {
      const ok = await runProbe(r, timeout, this.probeContext());
      if (this.phase !== 'started' || this.detached) return;
      if (ok) this.readinessPassed();
      else this.later(period, attempt);
    };
    this.later(0, attempt);
  }

  /** Ready, or first the warm-up (warmup.ts): a failed one fails the rank like a missed startup deadline. */
  private readinessPassed(): void {
    const w = this.spec.warmup;
    if (!w) return this.becomeReady();
    if (this.warming) return;
    this.warming = true;
    const { sdk: _, ...exec } = this.probeContext();
    this.later(0, async () => {
      const outcome = await runWarmup(w, { exec, ipc: this.warmupIpc, group: groupOf(this.spec.env), signal: this.warmupAbort.signal });
      if (this.phase !== 'started' || this.detached) return;
      if (!outcome.ok) return this.stop(outcome.reason, false);
      this.warmupMs = outcome.ms;
      this.becomeReady();
    });
  }

  private becomeReady(): void {
    this.phase = 'ready';
    this.host.changed(this);
    this.closeChannel();
    this.startLiveness();
  }

  /**
   * The IPC channel is for readiness (`sdk`) and `call` warm-ups; once ready,
   * only `sdk` liveness still reads it. Otherwise it is closed: the rank
   * cannot send the agent anything more (Node's parent side would buffer a
   * line of any size), and its SDK sees `process.connected` false.
   */
  private closeChannel(): void {
    if (this.spec.liveness?.kind === 'sdk' || this.child?.connected !== true) return;
    this.warmupIpc = undefined;
    this.child.disconnect();
  }

  private startLiveness(): void {
    const l = this.spec.liveness;
    if (!l || (l.kind === 'sdk' && !this.child)) return;
    const period = l.periodMs ?? LIVENESS_DEFAULTS.periodMs;
    const timeout = l.timeoutMs ?? LIVENESS_DEFAULTS.timeoutMs;
    const threshold = l.failureThreshold ?? LIVENESS_DEFAULTS.failureThreshold;
    let failures = 0;
    const tick = async (): Promise<void> => {
      const ok = await runProbe(l, timeout, this.probeContext());
      if (this.phase !== 'ready' || this.detached) return;
      failures = ok ? 0 : failures + 1;
      if (failures >= threshold) await this.stop(`liveness ${describeProbe(l)} failed ${failures} times`, false); // later() catches and logs a failure
      else this.later(period, tick);
    };
    this.later(period, tick);
  }

  private probeContext(): ProbeContext {
    return { env: childEnv(this.spec.env, this.spec.home), ...childIdentity(this.spec), sdk: () => this.sdkReady && this.child?.connected === true };
  }

  /** Adopted shards are not our children: their exit is seen by polling /proc (pid + start time). */
  private watchAdopted(): void {
    const poll = (): void => {
      if (pidAlive(this.pid!, this.startTime)) this.later(this.host.pollMs, poll);
      else this.leaderExited(undefined, undefined);
    };
    poll();
  }

  private killGroup(): void {
    if (this.killing || this.pid === undefined) return;
    this.killing = true;
    signalGroup(this.pid, 'SIGTERM');
    this.later(this.spec.gracePeriodMs, () => signalGroup(this.pid!, 'SIGKILL'));
  }

  private leaderExited(code: number | undefined, signal: string | undefined): void {
    if (this.detached || this.exit) return;
    this.exit = { code, signal };
    const waitGroup = (): void => {
      if (this.detached) return;
      if (!groupAlive(this.pid!)) return this.finish();
      this.killGroup(); // the leader left children behind: stop them too
      this.later(Math.min(this.host.pollMs, 50), waitGroup);
    };
    waitGroup();
  }

  private finish(): void {
    if (this.phase === 'exited') return;
    this.clearTimers();
    const e = this.exit ?? {};
    const reason =
      e.reason ?? // a spawn failure says so even if a stop was asked meanwhile
      this.ending?.reason ??
      (e.code !== undefined ? `exited with code ${e.code}` : e.signal ? `killed by ${e.signal}` : 'exited (status unknown: adopted by a restarted agent)');
    this.phase = 'exited';
    this.final = {
      ...this.status(),
      phase: 'exited',
      exitCode: e.code,
      signal: e.signal,
      reason,
      stopped: this.ending?.stopped ?? false,
      logTail: readTailRotated(this.logFile),
    };
    this.host.changed(this);
    this.resolveDone();
  }

  private later(ms: number, fn: () => unknown): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (this.detached) return;
      // Probes never throw by design; a bug that does must not become an unhandled rejection in the agent.
      Promise.resolve()
        .then(fn)
        .catch((e: unknown) => this.host.log.warn({ key: this.spec.key, err: String(e) }, 'shard supervision step failed'));
    }, Math.max(0, ms));
    this.timers.add(t);
  }

  private clearTimers(): void {
    this.warmupAbort.abort();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}
