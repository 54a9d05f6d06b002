/**
 * Call deadlines without a timer per call: one router's calls wait in lists,
 * one list per timeout length, each list ordered by deadline and watched by
 * one timer.
 *
 * Why: a `setTimeout` + `clearTimeout` per call (a Timeout object, a libuv
 * clock read, the process's timer lists) was a visible share of the caller's
 * CPU per call at tens of thousands of calls a second. Calls of one router
 * nearly all share one timeout (DEFAULT_REQUEST_TIMEOUT_MS, or the caller's
 * fixed one), so appending at a list's tail keeps it in deadline order, and
 * an entry is its own list node: adding and removing are O(1) and allocate
 * nothing.
 *
 *   add(entry, ms)   ─▶ tail of list[ms]; the list's timer is armed for its head
 *   remove(entry)    ─▶ unlinked (the timer is left as is: it fires, finds a later
 *                        head or none, and re-arms or stops)
 *   timer fires      ─▶ every entry due by now is unlinked, then told (`expire()`),
 *                        oldest first; re-armed for the new head, or the list is dropped
 *
 * The timer is re-armed lazily, so a list whose calls all settle costs one
 * spurious wake-up per timeout length, not one clearTimeout per call. It holds
 * the process open only while its list has calls (unref'd when emptied, as
 * the per-call timers were cleared), so a settled call never keeps a process
 * alive. An entry expires no earlier than `ms` after add() (by Date.now(), the
 * clock the replica checks the same deadline with). Lists are bounded by the
 * calls in flight (the router's limits) plus one per timeout length in use;
 * `stop()` clears every timer (the router's close).
 */

/** Something with a deadline: a call. Its `dl*` fields belong to Deadlines. */
export interface Expiring {
  /** When it is due (epoch ms); set by add(). */
  dlDue: number;
  dlPrev: Expiring | undefined;
  dlNext: Expiring | undefined;
  /** The list it is in; undefined when in none. */
  dlList: DeadlineList | undefined;
  /** Its deadline passed; it was removed first. */
  expire(): void;
}

export interface DeadlineList {
  readonly ms: number;
  head: Expiring | undefined;
  tail: Expiring | undefined;
  size: number;
  timer: NodeJS.Timeout | undefined;
  /** When the timer is set to fire (epoch ms). */
  firesAt: number;
}

export class Deadlines {
  private readonly lists = new Map<number, DeadlineList>();
  private stopped = false;

  /** Lists (timeout lengths) with a timer: tests, leaks. */
  get timers(): number {
    let n = 0;
    for (const l of this.lists.values()) if (l.timer) n++;
    return n;
  }

  /** Timers that hold the process open (their list has entries). */
  get holding(): number {
    let n = 0;
    for (const l of this.lists.values()) if (l.timer?.hasRef()) n++;
    return n;
  }

  /** Entries waiting for their deadline. */
  get pending(): number {
    let n = 0;
    for (const l of this.lists.values()) n += l.size;
    return n;
  }

  /**
   * Calls `e.expire()` once `ms` have passed, unless removed before. `due`:
   * when that is (epoch ms) if the caller has read the clock already (a call's
   * start + its timeout; at most now + ms, so the list stays in order).
   */
  add(e: Expiring, ms: number, due = Date.now() + ms): void {
    if (e.dlList) this.remove(e);
    let l = this.lists.get(ms);
    if (!l) {
      l = { ms, head: undefined, tail: undefined, size: 0, timer: undefined, firesAt: 0 };
      this.lists.set(ms, l);
    }
    e.dlDue = due;
    e.dlList = l;
    e.dlNext = undefined;
    e.dlPrev = l.tail;
    if (l.tail) l.tail.dlNext = e;
    else l.head = e;
    l.tail = e;
    l.size++;
    if (this.stopped) return; // a closed router fails its calls itself; nothing is armed
    if (!l.timer) this.arm(l, ms);
    else if (l.size === 1) l.timer.ref();
  }

  remove(e: Expiring): void {
    const l = e.dlList;
    if (!l) return;
    if (e.dlPrev) e.dlPrev.dlNext = e.dlNext;
    else l.head = e.dlNext;
    if (e.dlNext) e.dlNext.dlPrev = e.dlPrev;
    else l.tail = e.dlPrev;
    e.dlPrev = e.dlNext = e.dlList = undefined;
    if (--l.size === 0) l.timer?.unref();
  }

  /** Clears every timer; entries still in lists are left for their owner (the router fails them). */
  stop(): void {
    this.stopped = true;
    for (const l of this.lists.values()) clearTimeout(l.timer);
    this.lists.clear();
  }

  private arm(l: DeadlineList, inMs: number): void {
    l.firesAt = Date.now() + inMs;
    l.timer = setTimeout(() => this.fire(l), inMs);
  }

  private fire(l: DeadlineList): void {
    l.timer = undefined;
    if (this.stopped) return;
    const now = Date.now();
    for (let e = l.head; e && e.dlDue <= now; e = l.head) {
      this.remove(e);
      e.expire();
    }
    if (l.timer) return; // re-armed by an add() from inside expire()
    if (l.head) this.arm(l, Math.max(1, l.head.dlDue - now));
    // Dropped when empty (and not refilled by an expire()): a later add() makes a new one.
    else if (this.lists.get(l.ms) === l && l.size === 0) this.lists.delete(l.ms);
  }
}
