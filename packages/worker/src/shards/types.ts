/**
 * Shard supervision on a worker: the contract between the agent (which gets
 * launch/stop orders from the head) and the supervisor (which runs processes).
 *
 *            launch()
 *               │
 *               ▼
 *   ┌────────────────────┐ spawn failed / startup deadline passed / exited early
 *   │ prestart → started │──────────────────────────────────────────────┐
 *   └────────────────────┘                                              │
 *               │ readiness passes (then the warm-up, if any: warmup.ts) │
 *               ▼                                                        ▼
 *          ┌─────────┐   liveness fails / process exits            ┌────────┐
 *          │  ready  │────────────────────────────────────────────▶│ exited │
 *          └─────────┘                                              └────────┘
 *               │ stop(): SIGTERM to the process group                   ▲
 *               ▼                                                        │
 *          ┌──────────┐  exited, or SIGKILL to the group after grace     │
 *          │ stopping │──────────────────────────────────────────────────┘
 *          └──────────┘
 *
 * Hooks, in order, each reported through `onStatus`: prestart (validated,
 * log file open), started (pid known), ready (probes and warm-up passed), stopping
 * (stop requested), exited (process group gone; exit code / signal /
 * reason / last log lines).
 */
import type { RankUserPolicy } from './rank-users.js';

export type ProbeSpec =
  | { kind: 'http'; port: number; path: string }
  | { kind: 'tcp'; port: number }
  | { kind: 'exec'; command: string; args: string[] }
  /** The shard calls `ready()` from @muster/sdk (a message over the Node IPC channel). */
  | { kind: 'sdk' };

/** One warm-up request, resolved for this rank (warmup.ts runs them; docs/gangs.md#warm-up). */
export type WarmupStep =
  | { kind: 'call'; stream: boolean; json?: string | undefined; base64?: string | undefined }
  | { kind: 'http'; port: number; method: string; path: string; headers: Record<string, string>; body: string; expectStatus: number }
  | { kind: 'exec'; command: string; args: string[] };

export interface WarmupSpec {
  requests: WarmupStep[];
  /** The whole warm-up's timeout. */
  timeoutMs: number;
}

export interface ProbeTiming {
  /** Between two attempts. */
  periodMs: number;
  /** One attempt's timeout. */
  timeoutMs: number;
  /** Consecutive failures that fail the probe (liveness) — readiness just waits. */
  failureThreshold: number;
}

export interface ShardSpec {
  /** Unique per launch on this node: `${gangId}/${attempt}/${rank}`. */
  key: string;
  gangId: string;
  attempt: number;
  rank: number;
  command: string;
  args: string[];
  /** The complete environment of the process (the agent merges the contract in). */
  env: Record<string, string>;
  cwd?: string | undefined;
  /**
   * The uid/gid the process runs as (rank-users.ts); undefined: the agent's
   * own. Set by the supervisor at launch and persisted with the spec, so an
   * adopted rank keeps its gang's uid.
   */
  user?: { uid: number; gid: number } | undefined;
  /** The gang's home on this node (rank-homes.ts): the cwd when none is given, and HOME unless env sets it. */
  home?: string | undefined;
  /** Startup must finish (readiness passes) within this, from spawn. */
  startupDeadlineMs: number;
  /** Readiness (none = ready as soon as started). */
  readiness?: (ProbeSpec & Partial<ProbeTiming>) | undefined;
  /** Requests run after readiness passes and before the shard is reported ready (rank 0 only; warmup.ts). */
  warmup?: WarmupSpec | undefined;
  /** Liveness once ready (none = only process exit counts). */
  liveness?: (ProbeSpec & Partial<ProbeTiming>) | undefined;
  /** SIGTERM → this long → SIGKILL to the whole process group. */
  gracePeriodMs: number;
  /** Max bytes of each log file before it rotates (one old file kept). */
  logMaxBytes: number;
}

export type ShardPhase = 'prestart' | 'started' | 'ready' | 'stopping' | 'exited';

export interface ShardStatus {
  key: string;
  gangId: string;
  attempt: number;
  rank: number;
  phase: ShardPhase;
  pid?: number | undefined;
  /** When phase is 'exited'. */
  exitCode?: number | undefined;
  signal?: string | undefined;
  /** Why it exited / failed, in words: "exited with code 3", "startup deadline 5000 ms passed", "liveness http :8000/health failed 3 times", "stopped". */
  reason?: string | undefined;
  /** True when it exited because stop() was asked (not a failure). */
  stopped?: boolean | undefined;
  /** Last lines of its output when it exited (at most ~20 lines / 4 KiB). */
  logTail?: string | undefined;
  /** The log file path on this node. */
  logFile?: string | undefined;
  /** Phase 'ready' after a warm-up: how long it took (ms). */
  warmupMs?: number | undefined;
  /** Never started: this allocated port was held by another process on the host (shards/ports.ts). */
  portInUse?: number | undefined;
}

export interface ShardSupervisor {
  /** Validates and starts; status flows through `onStatus`. Throws (MUSTER_INVALID_ARGUMENT) on a bad spec before starting anything. */
  launch(spec: ShardSpec): void;
  /** SIGTERM → grace → SIGKILL; resolves when the process group is gone. Unknown key: resolves. */
  stop(key: string, reason?: string): Promise<void>;
  /** Stops every shard of a gang attempt (attempt undefined: all attempts). */
  stopGang(gangId: string, attempt?: number): Promise<void>;
  /** Current status of every shard known (running or recently exited). */
  list(): ShardStatus[];
  /**
   * Reads a shard's log: `tailBytes` from the end, then (follow) new data as it
   * is written, until `signal` aborts or the shard has exited and all is read.
   */
  readLog(key: string, opts: { tailBytes?: number; follow?: boolean; signal?: AbortSignal }): AsyncIterable<Uint8Array>;
  /** Stops everything (agent shutdown with --stop-shards) or just detaches (shards keep running; default). */
  close(opts?: { stopShards?: boolean }): Promise<void>;
}

export interface SupervisorOptions {
  /** Where log files and the shard registry (for adoption after an agent restart) live. */
  dataDir: string;
  /**
   * Who ranks run as and where their homes are (rank-users.ts, rank-homes.ts).
   * Undefined: as the agent, in the agent's cwd, with no home made (unit tests).
   */
  ranks?: { policy: RankUserPolicy; homeRoot: string } | undefined;
  onStatus: (s: ShardStatus) => void;
  log: { info(o: object, msg?: string): void; warn(o: object, msg?: string): void; error(o: object, msg?: string): void };
}
