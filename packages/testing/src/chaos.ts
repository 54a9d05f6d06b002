/**
 * Faults for chaos tests, on any ManagedProcess (head, worker, etcd,
 * nats-server) or on a bare pid. Shards are grandchildren of the test
 * (test → worker → shard), so they are found through /proc by their
 * environment: the gang env contract (MUSTER_GANG_ID, MUSTER_ATTEMPT, RANK,
 * MUSTER_GROUP, MUSTER_REPLICA_ID) plus MUSTER_TEST_RUN, the run tag the
 * worker passes on from its own environment.
 *
 *   await kill(cluster.workers.get('node-1')!.process);   // SIGKILL, waits for the exit
 *   await cluster.restartWorker('node-1');
 *   await freeze(worker.process, 2_000);                  // SIGSTOP, 2 s, SIGCONT
 *   await killShard(cluster, { gangId, rank: 3 });
 *   await cluster.etcd!.restart({ signal: 'SIGKILL' });   // same ports, same data
 *   await cluster.nats!.restart();
 *   await cluster.restartHead(0, 'SIGKILL');
 *
 * A frozen process is remembered until it is thawed; a test cluster's stop()
 * thaws everything first (createTestCluster hooks thawAll into it), and ManagedProcess.stop() sends SIGCONT after its
 * SIGTERM, so a forgotten freeze cannot hang a teardown.
 */
import { waitFor } from '@muster/common';
import type { LocalCluster, ManagedProcess } from '@muster/local';
import { pidAlive, procInfo, scanProcesses } from './procfs.js';

/** A process the kit started, or any pid (a shard). */
export type Target = ManagedProcess | number;

const pidOf = (t: Target): number => (typeof t === 'number' ? t : t.pid);

/**
 * Signals a ManagedProcess's group, or a bare pid's group when it leads one
 * (shards do: the worker starts each in its own group), else the pid alone.
 */
function send(t: Target, sig: NodeJS.Signals): void {
  if (typeof t !== 'number') return t.signal(sig);
  const group = procInfo(t)?.pgrp === t;
  try {
    process.kill(group ? -t : t, sig);
  } catch {
    // already gone
  }
}

/** SIGKILLs the target (its group) and resolves once it has exited (a zombie counts as gone). */
export async function kill(t: Target, opts: { timeoutMs?: number } = {}): Promise<void> {
  frozen.delete(pidOf(t));
  send(t, 'SIGKILL');
  if (typeof t !== 'number') {
    await t.exited;
    return;
  }
  await waitFor(`pid ${t} to exit after SIGKILL`, () => !pidAlive(t), { timeoutMs: opts.timeoutMs ?? 5_000, intervalMs: 20 });
}

const frozen = new Map<number, Target>();

/**
 * SIGSTOPs the target (its group) and waits until the kernel shows it
 * stopped. With `ms`, thaws it again after that long and resolves then;
 * without, it stays frozen until `thaw()`.
 */
export async function freeze(t: Target, ms?: number): Promise<void> {
  const pid = pidOf(t);
  if (!pidAlive(pid)) throw new Error(`cannot freeze pid ${pid}: not running`);
  frozen.set(pid, t);
  send(t, 'SIGSTOP');
  await waitFor(`pid ${pid} to stop`, () => /^[Tt]$/.test(procInfo(pid)?.state ?? 'T'), { timeoutMs: 5_000, intervalMs: 10 });
  if (ms === undefined) return;
  await new Promise((r) => setTimeout(r, ms));
  thaw(t);
}

/** SIGCONTs a frozen target (harmless on one that runs). */
export function thaw(t: Target): void {
  frozen.delete(pidOf(t));
  send(t, 'SIGCONT');
}

export function isFrozen(t: Target): boolean {
  return frozen.has(pidOf(t));
}

/** Thaws every target this process froze and has not thawed. */
export function thawAll(): void {
  for (const t of [...frozen.values()]) thaw(t);
}

/** A rank process, as its environment describes it. */
export interface ShardProcess {
  pid: number;
  /** Its parent: the worker that launched it, or a reaper once that worker died. */
  ppid: number;
  gangId: string;
  attempt: number;
  rank: number;
  /** MUSTER_GROUP: the gang's name, or its replica group's. */
  group: string;
  replicaId: string;
  /** MUSTER_TEST_RUN, '' when untagged. */
  tag: string;
}

/** Live shard processes on this machine (any process with MUSTER_GANG_ID), narrowed by `filter`. */
export async function findShards(filter: { tag?: string; gangId?: string; rank?: number } = {}): Promise<ShardProcess[]> {
  const found = await scanProcesses((env) =>
    env.has('MUSTER_GANG_ID') &&
    (filter.tag === undefined || env.get('MUSTER_TEST_RUN') === filter.tag) &&
    (filter.gangId === undefined || env.get('MUSTER_GANG_ID') === filter.gangId) &&
    (filter.rank === undefined || env.get('RANK') === String(filter.rank)));
  return found.map((p) => ({
    pid: p.pid,
    ppid: p.ppid,
    gangId: p.env.get('MUSTER_GANG_ID')!,
    attempt: Number(p.env.get('MUSTER_ATTEMPT') ?? 0),
    rank: Number(p.env.get('RANK') ?? -1),
    group: p.env.get('MUSTER_GROUP') ?? '',
    replicaId: p.env.get('MUSTER_REPLICA_ID') ?? '',
    tag: p.env.get('MUSTER_TEST_RUN') ?? '',
  })).sort((a, b) => a.gangId.localeCompare(b.gangId) || a.rank - b.rank || a.pid - b.pid);
}

/** This cluster's live shard processes (those carrying its run tag). */
export async function clusterShards(cluster: LocalCluster, filter: { gangId?: string; rank?: number } = {}): Promise<ShardProcess[]> {
  if (!cluster.runTag) throw new Error('this cluster has no run tag (start it with createTestCluster() or runTag), so its shards cannot be told apart');
  return findShards({ ...filter, tag: cluster.runTag });
}

/** SIGKILLs one rank process of a gang of this cluster (rank 0 unless given) and waits until it is gone. */
export async function killShard(cluster: LocalCluster, sel: { gangId: string; rank?: number }): Promise<ShardProcess> {
  const [victim] = await clusterShards(cluster, { gangId: sel.gangId, rank: sel.rank ?? 0 });
  if (!victim) throw new Error(`no live process of rank ${sel.rank ?? 0} of gang ${sel.gangId}`);
  await kill(victim.pid);
  return victim;
}
