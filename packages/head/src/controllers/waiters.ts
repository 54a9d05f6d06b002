/**
 * Long-poll support for the controllers' Wait RPCs: callers wait for an
 * object to settle, woken whenever it changes, up to a deadline (capped at
 * 60 s per call; clients loop for longer waits).
 */
export class ChangeWaiters {
  private readonly waiting = new Map<string, Set<() => void>>();

  /** Wakes everything waiting on `id`. */
  wake(id: string): void {
    for (const w of this.waiting.get(id) ?? []) w();
  }

  /**
   * Returns `read()` once `settled` says so or the deadline passes,
   * re-reading after every change of `id`.
   */
  async until<T>(id: string, timeoutMs: number, read: () => T, settled: (v: T) => boolean): Promise<T> {
    const deadline = Date.now() + Math.min(Math.max(timeoutMs, 0), 60_000);
    for (;;) {
      const v = read();
      if (settled(v) || Date.now() >= deadline) return v;
      await new Promise<void>((resolve) => {
        const set = this.waiting.get(id) ?? new Set();
        this.waiting.set(id, set);
        const done = () => {
          clearTimeout(timer);
          set.delete(done);
          if (set.size === 0) this.waiting.delete(id);
          resolve();
        };
        const timer = setTimeout(done, deadline - Date.now());
        set.add(done);
      });
    }
  }
}
