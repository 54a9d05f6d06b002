/**
 * Liveness: sweeps the registry often enough that a node silent for
 * deadAfterMs is declared dead within deadAfterMs + sweepMs (sweep = a tenth
 * of deadAfterMs, at most 100 ms: 3 s default → dead 3.0-3.1 s after its
 * last heartbeat).
 *
 * A sweep that runs late means the head was not listening (its event loop
 * stalled: a long GC pause, a burst of registrations): heartbeats sat unread
 * in its sockets, so the time beyond STALL_MS is excused for every node
 * (NodeRegistry.excuse) instead of being counted as their silence — a busy
 * head must not declare healthy nodes dead and start a reconnect storm.
 * A node that really died during the stall is found that much later.
 */
import type { Logger } from '@muster/common';
import type { NodeRegistry } from './registry.js';

/** A sweep this late (beyond its period) means the head stalled. */
const STALL_MS = 250;

export class Liveness {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private every = 100;
  private lastTick = 0;

  constructor(
    private readonly registry: NodeRegistry,
    private readonly deadAfterMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.every = Math.max(20, Math.min(100, Math.floor(this.deadAfterMs / 10)));
    this.lastTick = performance.now();
    this.timer = setInterval(() => void this.tick(), this.every);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async tick(): Promise<void> {
    const t = performance.now();
    const late = t - this.lastTick - this.every;
    this.lastTick = t;
    if (late > STALL_MS) {
      this.registry.excuse(late);
      this.log.info({ stalledMs: Math.round(late) }, 'head event loop stalled; node silences excused for that long');
    }
    if (this.running) return; // a slow store must not pile sweeps up
    this.running = true;
    try {
      await this.registry.sweep();
    } catch (e) {
      this.log.error({ err: e }, 'liveness sweep failed; retrying on the next tick');
    } finally {
      this.running = false;
    }
  }
}
