/**
 * The embedded store's recent change history, for `watch({ fromRevision })`.
 *
 * Kept in memory, bounded to the last `keep` revisions (etcd keeps history
 * until an explicit compaction; we compact continuously so memory is
 * bounded). A watch asking for an older revision fails with
 * MUSTER_STORE_COMPACTED, and the caller re-reads state with a range and
 * watches from there, exactly as it would against etcd.
 */
import { ErrorCode, MusterError } from '@muster/common';
import type { WatchEvent } from './store.js';

interface Group {
  rev: number;
  events: WatchEvent[];
}

export class History {
  private groups: Group[] = [];
  private start = 0;

  /**
   * @param keep revisions kept.
   * @param compactedRev revisions up to this one have no history (at open:
   *   the snapshot's revision).
   */
  constructor(
    private readonly keep: number,
    public compactedRev: number,
  ) {}

  add(rev: number, events: WatchEvent[]): void {
    this.groups.push({ rev, events });
    while (this.groups.length - this.start > this.keep) this.compactedRev = this.groups[this.start++]!.rev;
    this.shrink();
  }

  /** Drops history up to and including `rev`, as etcd's compact(rev) does for watches. */
  compact(rev: number): void {
    while (this.start < this.groups.length && this.groups[this.start]!.rev <= rev) this.start++;
    this.compactedRev = Math.max(this.compactedRev, rev);
    this.shrink();
  }

  /** Events with from <= revision <= to under `prefix`, in revision order. */
  since(from: number, to: number, prefix: string): WatchEvent[] {
    if (from <= this.compactedRev) {
      throw new MusterError(
        ErrorCode.STORE_COMPACTED,
        `revision ${from} has been compacted; the oldest revision that can be watched is ${this.compactedRev + 1}`,
        { details: { fromRevision: from, compactedRevision: this.compactedRev } },
      );
    }
    let lo = this.start;
    let hi = this.groups.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.groups[mid]!.rev < from) lo = mid + 1;
      else hi = mid;
    }
    const out: WatchEvent[] = [];
    for (let i = lo; i < this.groups.length && this.groups[i]!.rev <= to; i++) {
      for (const e of this.groups[i]!.events) if (eventKey(e).startsWith(prefix)) out.push(e);
    }
    return out;
  }

  private shrink(): void {
    if (this.start > 1024 && this.start * 2 > this.groups.length) {
      this.groups = this.groups.slice(this.start);
      this.start = 0;
    }
  }
}

export function eventKey(e: WatchEvent): string {
  return e.type === 'put' ? e.kv.key : e.key;
}

export function eventRev(e: WatchEvent): number {
  return e.type === 'put' ? e.kv.modRevision : e.modRevision;
}
