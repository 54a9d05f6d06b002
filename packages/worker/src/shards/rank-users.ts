/**
 * Who ranks run as. Ranks run other people's code (model servers with
 * `trust_remote_code`, custom shards), so they must not run as the worker:
 * under the worker's uid a rank could read the cluster token, the node's
 * keys, `shards.json` (every shard's environment) and /proc/<worker>/environ.
 *
 * Policies, decided once at start (resolveRankUsers):
 *   per-gang  each gang gets a uid of its own from a range (gid = uid), so
 *             ranks of different gangs cannot read each other's files or
 *             /proc/<pid>/environ either. Default when the worker runs as
 *             root: 200000-299999;
 *             `--shard-uid-range FIRST-LAST` picks another range. The uids
 *             need not exist in /etc/passwd.
 *   fixed     every rank runs as `--shard-user name|uid[:gid]`.
 *   worker    ranks run as the worker's own uid: a worker not run as root
 *             that was given neither flag. Warned once at start.
 *
 * Only root switches. A non-root worker given CAP_SETUID as an ambient
 * capability would hand it on to every rank it starts (ambient capabilities
 * survive exec, and setuid between non-zero uids keeps them): the rank could
 * then become any user, the worker's included. Root loses every capability
 * on its switch to a non-zero uid, so its ranks get none.
 *
 * The uid a gang got is part of its shard specs, so it is persisted with the
 * shard registry and survives an agent restart (adopted ranks keep theirs,
 * and a new launch of a gang still running here gets the same one).
 */
import { readFileSync } from 'node:fs';
import { execa } from 'execa';
import { ErrorCode, MusterError } from '@muster/common';

export interface RankUser {
  uid: number;
  gid: number;
}

export type RankUserPolicy =
  | { kind: 'per-gang'; first: number; last: number }
  | { kind: 'fixed'; user: RankUser }
  | { kind: 'worker' };

/** The range per-gang uids come from when no --shard-uid-range is given. */
export const DEFAULT_SHARD_UID_RANGE = { first: 200_000, last: 299_999 } as const;

/** `--shard-user`: a user name, or a numeric uid with an optional gid. */
export const SHARD_USER = /^(?:[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?|\d{1,10}(?::\d{1,10})?)$/;
/** `--shard-uid-range`: FIRST-LAST. */
export const SHARD_UID_RANGE = /^(\d{1,10})-(\d{1,10})$/;

/** What the policy depends on in the process and the system (injected in tests). */
export interface HostFacts {
  uid: number;
  gid: number;
  /** Whether ranks may be switched to other users: the worker runs as root. */
  canSwitch: boolean;
  /** Text of /proc/self/uid_map and gid_map (undefined: no user namespaces, all ids valid). */
  uidMap: string | undefined;
  gidMap: string | undefined;
  /** Resolves a user name to its uid and primary gid (undefined: no such user). */
  lookupUser(name: string): Promise<RankUser | undefined>;
}

export interface RankUserFlags {
  shardUser?: string | undefined;
  shardUidRange?: string | undefined;
}

/**
 * The policy for these flags on this host; throws MUSTER_INVALID_ARGUMENT
 * naming the flag when it cannot be honoured. `warn` is called once when
 * ranks will share the worker's uid.
 */
export async function resolveRankUsers(flags: RankUserFlags, host: HostFacts, warn: (msg: string) => void): Promise<RankUserPolicy> {
  if (flags.shardUser !== undefined && flags.shardUidRange !== undefined) {
    throw invalid('shardUser', '--shard-user and --shard-uid-range exclude each other: one user for every rank, or one uid per gang from a range');
  }
  if (flags.shardUser !== undefined) {
    const user = await parseShardUser(flags.shardUser, host);
    if (user.uid === 0) warn(`--shard-user ${flags.shardUser}: ranks run as root and can read every credential of this node`);
    if (user.uid === host.uid && user.gid === host.gid) return { kind: 'fixed', user };
    if (!host.canSwitch) {
      throw invalid('shardUser', `--shard-user ${flags.shardUser} (uid ${user.uid}, gid ${user.gid}): this worker runs as uid ${host.uid}, not root, and cannot switch ranks to it; run the worker as root, or drop --shard-user`);
    }
    checkMapped('shardUser', '--shard-user', user.uid, user.uid, user.gid, user.gid, host);
    return { kind: 'fixed', user };
  }
  if (flags.shardUidRange !== undefined) {
    const { first, last } = parseUidRange(flags.shardUidRange);
    if (!host.canSwitch) {
      throw invalid('shardUidRange', `--shard-uid-range ${flags.shardUidRange}: this worker runs as uid ${host.uid}, not root, and cannot switch ranks to other uids; run the worker as root, or drop the flag`);
    }
    checkMapped('shardUidRange', '--shard-uid-range', first, last, first, last, host);
    return { kind: 'per-gang', first, last };
  }
  if (!host.canSwitch) {
    warn(`ranks run as the worker's own uid ${host.uid} (the worker cannot switch users): a rank can read this worker's token, keys and data dir; run the worker as root to give each gang its own uid`);
    return { kind: 'worker' };
  }
  const { first, last } = DEFAULT_SHARD_UID_RANGE;
  checkMapped('shardUidRange', 'the default per-gang uid range', first, last, first, last, host);
  return { kind: 'per-gang', first, last };
}

export function parseUidRange(raw: string): { first: number; last: number } {
  const m = SHARD_UID_RANGE.exec(raw);
  const first = Number(m?.[1]);
  const last = Number(m?.[2]);
  if (!m || first < 1 || last < first || last > 0xfffffffe) {
    throw invalid('shardUidRange', `--shard-uid-range "${raw}": expected FIRST-LAST with 1 ≤ FIRST ≤ LAST < 4294967295 (e.g. 200000-299999)`);
  }
  return { first, last };
}

async function parseShardUser(raw: string, host: HostFacts): Promise<RankUser> {
  if (!SHARD_USER.test(raw)) throw invalid('shardUser', `--shard-user "${raw}": expected a user name or uid[:gid]`);
  const numeric = /^(\d+)(?::(\d+))?$/.exec(raw);
  if (numeric) {
    const uid = Number(numeric[1]);
    return { uid, gid: numeric[2] !== undefined ? Number(numeric[2]) : uid };
  }
  const found = await host.lookupUser(raw);
  if (!found) throw invalid('shardUser', `--shard-user ${raw}: no such user on this host (getent passwd ${raw} found nothing); create it or give a numeric uid[:gid]`);
  return found;
}

/** The ids must exist in this user namespace, or setuid fails at every launch: say so at start instead. */
function checkMapped(field: string, what: string, uidFirst: number, uidLast: number, gidFirst: number, gidLast: number, host: HostFacts): void {
  const gaps = [
    covered(host.uidMap, uidFirst, uidLast) ? '' : `uids ${uidFirst}-${uidLast} are not all mapped in /proc/self/uid_map`,
    covered(host.gidMap, gidFirst, gidLast) ? '' : `gids ${gidFirst}-${gidLast} are not all mapped in /proc/self/gid_map`,
  ].filter(Boolean);
  if (gaps.length > 0) throw invalid(field, `${what}: ${gaps.join('; ')} (a user namespace); pass --shard-uid-range within the mapped ids, or --shard-user`);
}

/** Whether every id in first..last is inside one of the map's "inside outside count" lines. */
export function covered(map: string | undefined, first: number, last: number): boolean {
  if (map === undefined) return true;
  const lines = map.trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number)).filter((l) => l.length === 3 && l.every(Number.isFinite));
  const spans = lines.map(([inside, , count]) => [inside!, inside! + count! - 1] as const).sort((a, b) => a[0] - b[0]);
  let next = first;
  for (const [lo, hi] of spans) {
    if (lo > next) break;
    if (hi >= next) next = hi + 1;
    if (next > last) return true;
  }
  return next > last;
}

/** The facts of this process and host. */
export function hostFacts(): HostFacts {
  const uid = process.getuid?.() ?? 0;
  return {
    uid,
    gid: process.getgid?.() ?? 0,
    canSwitch: uid === 0,
    uidMap: read('/proc/self/uid_map'),
    gidMap: read('/proc/self/gid_map'),
    lookupUser: async (name) => {
      const r = await execa('getent', ['passwd', name], { reject: false, timeout: 5_000 });
      const fields = r.exitCode === 0 ? String(r.stdout).split(':') : [];
      return fields.length >= 4 ? { uid: Number(fields[2]), gid: Number(fields[3]) } : undefined;
    },
  };
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function invalid(field: string, message: string): MusterError {
  return new MusterError(ErrorCode.INVALID_ARGUMENT, message, { details: { field } });
}
