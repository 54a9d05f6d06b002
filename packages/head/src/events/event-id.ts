/**
 * Event ids: a hybrid logical clock, so ids never go backwards across
 * leaders, clock steps and restarts.
 *
 * An id is "<13-digit ms>-<6-digit counter>" and sorts as a string. The ms
 * part is the larger of the wall clock and the last id's ms: a clock stepped
 * back keeps the last ms and counts up; a counter that would overflow moves
 * the ms part one ahead. A new leader starts from the newest id in the store
 * (`EventIds.resumeAfter`), so its first id is above every stored one however
 * its clock reads. The event's `timeMs` stays the wall clock, for humans.
 */
const MAX_COUNTER = 999_999;

export class EventIds {
  private lastMs = 0;
  private counter = 0;

  constructor(private readonly clock: () => number = Date.now) {}

  /** Continues after `id` (the newest stored event's id); ignored if it is not an id or is not newer. */
  resumeAfter(id: string): void {
    const parsed = parseEventId(id);
    if (!parsed) return;
    if (parsed.ms > this.lastMs || (parsed.ms === this.lastMs && parsed.counter > this.counter)) {
      this.lastMs = parsed.ms;
      this.counter = parsed.counter;
    }
  }

  /** The next id, above every id issued or resumed after so far. */
  next(): string {
    const now = this.clock();
    if (now > this.lastMs) {
      this.lastMs = now;
      this.counter = 0;
    } else if (this.counter < MAX_COUNTER) {
      this.counter += 1;
    } else {
      this.lastMs += 1;
      this.counter = 0;
    }
    return formatEventId(this.lastMs, this.counter);
  }
}

export function formatEventId(ms: number, counter: number): string {
  return `${String(ms).padStart(13, '0')}-${String(counter).padStart(6, '0')}`;
}

export function parseEventId(id: string): { ms: number; counter: number } | undefined {
  const m = /^(\d{13})-(\d{6})$/.exec(id);
  return m ? { ms: Number(m[1]), counter: Number(m[2]) } : undefined;
}
