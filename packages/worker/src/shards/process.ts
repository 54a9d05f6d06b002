/**
 * One shard process as the kernel sees it: spawn into its own process group,
 * signal the group, and tell whether a pid / group is still alive.
 *
 * Liveness is read from /proc rather than from `kill(pid, 0)` alone, for two
 * reasons: a zombie still answers kill() (and inside containers whose PID 1
 * does not reap, orphaned zombies stay forever), and after an agent restart
 * the shard is no longer our child, so the only safe identity check is pid +
 * start time (field 22 of /proc/<pid>/stat): a recycled pid has another one.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { procStat } from '@muster/common';
import { execa } from 'execa';
import type { ShardSpec } from './types.js';

/**
 * The child's environment: exactly `env`, plus the agent's PATH when `env`
 * has none (so a bare command name still resolves) and HOME = the gang's
 * home when `env` has none. Nothing else leaks from the agent (tokens,
 * MUSTER_* config). Note Node adds NODE_CHANNEL_FD /
 * NODE_CHANNEL_SERIALIZATION_MODE when an IPC channel is requested (sdk probes).
 */
export function childEnv(env: Record<string, string>, home?: string): Record<string, string> {
  const out = { ...env };
  if (out.PATH === undefined && process.env.PATH !== undefined) out.PATH = process.env.PATH;
  if (out.HOME === undefined && home !== undefined) out.HOME = home;
  return out;
}

/** How the child is run: its uid/gid (when not the agent's) and working directory. */
export function childIdentity(spec: Pick<ShardSpec, 'user' | 'cwd' | 'home'>): { uid?: number; gid?: number; cwd?: string | undefined } {
  return { ...(spec.user ? { uid: spec.user.uid, gid: spec.user.gid } : {}), cwd: spec.cwd ?? spec.home };
}

/**
 * Spawns the shard as the leader of a new process group (detached), stdin
 * closed, stdout and stderr both on `logFd` (an O_APPEND file the caller
 * opened): the shard writes straight to the file, so it keeps logging even if
 * the agent dies. No `cleanup`-style kill on agent exit: shards outlive it.
 * Under its gang's uid/gid when the spec names one (libuv drops the agent's
 * supplementary groups then); the agent, as root, still signals its group.
 */
export function spawnShard(spec: ShardSpec, logFd: number, ipc: boolean): ChildProcess {
  return spawn(spec.command, spec.args, {
    env: childEnv(spec.env, spec.home),
    ...childIdentity(spec),
    detached: true,
    stdio: ipc ? ['ignore', logFd, logFd, 'ipc'] : ['ignore', logFd, logFd],
    serialization: 'json',
  });
}

/** How an exec probe's or warm-up request's command ended. */
export interface CommandEnd {
  /** It exited 0 and was not stopped. */
  ok: boolean;
  /** It was stopped (timeout or abort). */
  stopped: boolean;
  exitCode?: number | undefined;
  signal?: string | undefined;
  /** execa's one-line account (a spawn error: ENOENT, EACCES). */
  message: string;
}

/** Grace between SIGTERM and SIGKILL for a stopped command's group. */
const COMMAND_KILL_GRACE_MS = 1_000;

/**
 * Runs an exec probe's or warm-up request's command as the rank would (its
 * env, cwd, uid/gid), as the leader of a process group of its own, like a
 * rank. Stopped (`timeoutMs` passed or `signal` aborted), the whole group
 * gets SIGTERM and, if any of it is left after a grace, SIGKILL: what the
 * command forked (a shell's `sleep`, a `curl`) goes with it. execa's own
 * timeout would kill only the direct child, and its children — in the
 * agent's process group, not the rank's — would outlive the probe and the
 * rank. Resolves once the command exited (and, when stopped, its group is gone
 * or was SIGKILLed); never throws.
 */
export async function runCommandInGroup(command: string, args: readonly string[], ctx: { env: Record<string, string>; cwd?: string | undefined; uid?: number; gid?: number }, stop: { timeoutMs?: number; signal?: AbortSignal | undefined }): Promise<CommandEnd> {
  const sub = execa(command, args, {
    env: ctx.env,
    extendEnv: false,
    cwd: ctx.cwd,
    ...(ctx.uid !== undefined ? { uid: ctx.uid } : {}),
    ...(ctx.gid !== undefined ? { gid: ctx.gid } : {}),
    stdio: 'ignore',
    detached: true,
    reject: false,
  });
  let stopped = false;
  const kill = (): void => {
    if (stopped || sub.pid === undefined) return;
    stopped = true;
    signalGroup(sub.pid, 'SIGTERM');
  };
  const timer = stop.timeoutMs !== undefined ? setTimeout(kill, stop.timeoutMs) : undefined;
  stop.signal?.addEventListener('abort', kill, { once: true });
  if (stop.signal?.aborted) kill();
  const r = await sub;
  clearTimeout(timer);
  stop.signal?.removeEventListener('abort', kill);
  if (stopped && sub.pid !== undefined) {
    // The leader is gone; what it forked may ignore SIGTERM. The group's id stays reserved while any of it lives.
    const until = Date.now() + COMMAND_KILL_GRACE_MS;
    while (groupExists(sub.pid) && Date.now() < until) await sleep(20);
    signalGroup(sub.pid, 'SIGKILL');
  }
  return { ok: !stopped && !r.failed && r.exitCode === 0, stopped, exitCode: r.exitCode, signal: r.signal, message: r.shortMessage ?? r.message ?? '' };
}

/** Whether group `pgid` has any process (zombies included: it is still reserved then). */
function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** True while any non-zombie process is in group `pgid`. */
export function groupAlive(pgid: number): boolean {
  assertGroup(pgid);
  try {
    process.kill(-pgid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  // kill() also succeeds on zombies: confirm with a scan of /proc (only reached while the group looks alive).
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = procStat(Number(name));
    if (st && st.pgrp === pgid && st.state !== 'Z' && st.state !== 'X') return true;
  }
  return false;
}

/** Sends `signal` to every process of group `pgid`; false when the group no longer exists. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  assertGroup(pgid);
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/** kill(-0) is our own group and kill(-1) is every process we may signal: never. */
function assertGroup(pgid: number): void {
  if (!Number.isInteger(pgid) || pgid <= 1) throw new Error(`refusing to signal process group ${pgid}`);
}
