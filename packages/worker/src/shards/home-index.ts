/**
 * Which uid owns which gang home, kept in memory so that placing a rank
 * costs the same with 10 homes as with 10,000.
 *
 * A finished gang's home keeps its uid to itself until sweepHomes removes it
 * (rank-homes.ts). Asking that of the file system on every launch (readdir
 * plus a stat per home) made each launch slower as homes piled up: a soak of
 * short gangs ran at a third of its rate after a few minutes. The supervisor
 * is the only writer of the home root while it runs, so one scan when it opens
 * and an update at each prepareHome / removal keep this index exact; its size
 * is the number of homes on disk, which log retention bounds (log-retention.ts).
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export class HomeIndex {
  private readonly uidOf = new Map<string, number>();
  private readonly homesOf = new Map<number, number>();

  /** The homes under `root` now (none when it does not exist yet). */
  static scan(root: string): HomeIndex {
    const index = new HomeIndex();
    let names: string[] = [];
    try {
      names = readdirSync(root);
    } catch {
      // no homes yet
    }
    for (const name of names) {
      try {
        index.set(name, statSync(join(root, name)).uid);
      } catch {
        // gone meanwhile
      }
    }
    return index;
  }

  /** The gangs with a home (a copy: callers may delete while iterating). */
  gangIds(): string[] {
    return [...this.uidOf.keys()];
  }

  get size(): number {
    return this.uidOf.size;
  }

  /** `gangId`'s home is (now) owned by `uid`. */
  set(gangId: string, uid: number): void {
    this.delete(gangId);
    this.uidOf.set(gangId, uid);
    this.homesOf.set(uid, (this.homesOf.get(uid) ?? 0) + 1);
  }

  delete(gangId: string): void {
    const uid = this.uidOf.get(gangId);
    if (uid === undefined) return;
    this.uidOf.delete(gangId);
    const n = (this.homesOf.get(uid) ?? 1) - 1;
    if (n > 0) this.homesOf.set(uid, n);
    else this.homesOf.delete(uid);
  }

  /** Does a home of some gang other than `gangId` belong to `uid`? */
  heldByOther(uid: number, gangId: string): boolean {
    const n = this.homesOf.get(uid) ?? 0;
    return n - (this.uidOf.get(gangId) === uid ? 1 : 0) > 0;
  }
}
