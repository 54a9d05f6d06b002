/**
 * Where a rank lives and which uid it gets (the policy is rank-users.ts).
 *
 * uid of a gang (per-gang policy): the uid its ranks already run under on
 * this node when any still runs (also after an agent restart: it is in the
 * persisted specs); otherwise the first uid, from a start fixed by the gang
 * id (so a gang restarted here usually gets its old uid back, and its home
 * with it), that no other live gang holds and no process on the host runs
 * as (a leftover of an earlier gang must not share a uid with a new one).
 *
 * Home of a gang: `<home root>/<gangId>`, owned by the gang's uid, mode
 * 0700; it is the rank's working directory unless its spec names one, and
 * its HOME unless its env sets one. The root is 0711 (owned by the worker):
 * ranks can reach their own home but not list the others. The data dir
 * stays 0700, which is why homes live beside it, not in it. A home goes with
 * the gang's last log (log-retention.ts): once no rank of the gang runs
 * here, its logs are all deleted and no process runs as the home's owner
 * (so nothing can swap paths under the removal), sweepHomes deletes it.
 */
import { chmodSync, chownSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, type Stats } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ErrorCode, MusterError } from '@muster/common';
import type { RankUser, RankUserPolicy } from './rank-users.js';

/** The default home root: beside the data dir, which must stay private. */
export function defaultHomeRoot(dataDir: string): string {
  return `${resolve(dataDir)}-homes`;
}

/** FNV-1a of the gang id: where its search for a free uid starts. */
function startOf(gangId: string, size: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < gangId.length; i++) h = Math.imul(h ^ gangId.charCodeAt(i), 0x01000193) >>> 0;
  return h % size;
}

/**
 * The user a new rank of `gangId` runs as: undefined under the 'worker'
 * policy (no switch). `live` maps each gang with a running rank here to
 * its user; `busy` tells whether some process runs as a uid.
 */
export function userForGang(policy: RankUserPolicy, gangId: string, live: ReadonlyMap<string, RankUser>, busy: (uid: number) => boolean = uidInUse()): RankUser | undefined {
  if (policy.kind === 'worker') return undefined;
  if (policy.kind === 'fixed') return policy.user;
  const mine = live.get(gangId);
  if (mine) return mine;
  const taken = new Set([...live.values()].map((u) => u.uid));
  const size = policy.last - policy.first + 1;
  const start = startOf(gangId, size);
  for (let i = 0; i < size; i++) {
    const uid = policy.first + ((start + i) % size);
    if (!taken.has(uid) && !busy(uid)) return { uid, gid: uid };
  }
  throw new MusterError(ErrorCode.RESOURCE_EXHAUSTED, `no free rank uid in ${policy.first}-${policy.last}: every one is held by a gang or a process on this node; widen --shard-uid-range`);
}

/** A snapshot of the uids processes on this host run as (real, effective, saved or fs uid), read from /proc once, when first asked. */
export function uidInUse(): (uid: number) => boolean {
  return cachedUidInUse(0)();
}

/**
 * uidInUse, but one /proc scan serves every ask within `ttlMs` (a scan
 * reads every process's status: milliseconds on a busy host, too much for
 * each launch). Safe for choosing a uid for a new gang because a uid can
 * only be missing from a snapshot yet in use if a process took it after
 * the scan, which is
 *   - a process already running as it (in the snapshot: seen);
 *   - this worker, for a gang's rank: the gang is live, or its ranks have
 *     exited, and then its home still holds the uid (HomeIndex) until
 *     sweepHomes removes the home — which asks /proc afresh (uidInUse);
 *   - another root process (or a setuid binary of a uid in the range): a
 *     race no fresh scan closes either.
 */
export function cachedUidInUse(ttlMs = 1_000, now: () => number = Date.now, scan: () => Set<number> = procUids): () => (uid: number) => boolean {
  let seen: Set<number> | undefined;
  let at = 0;
  return () => {
    if (!seen || now() - at >= ttlMs) {
      seen = undefined;
      at = now();
    }
    return (uid) => {
      seen ??= scan();
      return seen.has(uid);
    };
  };
}

function procUids(): Set<number> {
  const seen = new Set<number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const line = /^Uid:\s+(.*)$/m.exec(readFileSync(`/proc/${name}/status`, 'utf8'))?.[1] ?? '';
      for (const u of line.trim().split(/\s+/)) seen.add(Number(u));
    } catch {
      // gone meanwhile
    }
  }
  return seen;
}

/**
 * Creates (or takes over) the home of `gangId` for `user`: 0700, owned by
 * the user. A home left by another uid (the gang got a new one) is removed
 * first: its files belong to someone else.
 */
export function prepareHome(root: string, gangId: string, user: RankUser | undefined): string {
  makeHomeRoot(root, user !== undefined);
  const home = join(root, gangId);
  const owner = user ?? { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  let st: Stats | undefined;
  try {
    st = lstatSync(home);
  } catch {
    st = undefined;
  }
  if (st && (!st.isDirectory() || st.uid !== owner.uid)) {
    rmSync(home, { recursive: true, force: true });
    st = undefined;
  }
  if (!st) mkdirSync(home, { mode: 0o700 });
  if (user) chownSync(home, user.uid, user.gid);
  chmodSync(home, 0o700);
  return home;
}

/**
 * Deletes the homes of gangs that are over here: none of `running` (gang ids
 * with a rank not exited), no log directory left under `logsRoot`, and no
 * process running as the home's owner. `names`: the gangs to look at (the
 * supervisor's HomeIndex; default: a listing of `root`). Returns the gang
 * ids whose home went (or was already gone); one that cannot be removed is
 * left for the next sweep without stopping this one.
 */
export function sweepHomes(root: string, logsRoot: string, running: ReadonlySet<string>, busy: (uid: number) => boolean = uidInUse(), names?: readonly string[]): string[] {
  if (!names) {
    try {
      names = readdirSync(root);
    } catch {
      return [];
    }
  }
  const own = process.getuid?.() ?? 0;
  const gone: string[] = [];
  for (const gangId of names) {
    if (running.has(gangId) || statOrUndefined(join(logsRoot, gangId))) continue;
    const st = statOrUndefined(join(root, gangId));
    if (st && st.uid !== own && busy(st.uid)) continue;
    try {
      if (st) rmSync(join(root, gangId), { recursive: true, force: true });
      gone.push(gangId); // gone already (no stat) counts too: the caller's index drops it
    } catch {
      // left for the next sweep; what went before it is still reported
    }
  }
  return gone;
}

/** The home root: 0711 when ranks run as other uids (they reach their home, list nothing), else 0700. Parents as umask says. */
export function makeHomeRoot(root: string, otherUids: boolean): void {
  mkdirSync(root, { recursive: true });
  chmodSync(root, otherUids ? 0o711 : 0o700);
}

/**
 * Throws MUSTER_INVALID_ARGUMENT when a rank running as `user` could not
 * reach `root` (some directory above it is not searchable by that user),
 * so the problem shows at start, not as every rank failing to chdir.
 */
export function checkHomeRootReachable(root: string, user: RankUser): void {
  if (user.uid === 0) return;
  const abs = resolve(root);
  for (let dir = dirname(abs); ; dir = dirname(dir)) {
    const st = statOrUndefined(dir); // not there yet: made by mkdir -p under the umask
    const bit = st && (st.uid === user.uid ? 0o100 : st.gid === user.gid ? 0o010 : 0o001);
    if (st && bit && (st.mode & bit) === 0) {
      throw new MusterError(
        ErrorCode.INVALID_ARGUMENT,
        `rank homes under ${abs} are out of reach of rank uid ${user.uid}: ${dir} (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}, owner ${st.uid}) is not searchable by it; run \`chmod o+x ${dir}\` or pass --shard-home-dir with a reachable directory`,
        { details: { field: 'shardHomeDir' } },
      );
    }
    if (dir === dirname(dir)) return;
  }
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}
