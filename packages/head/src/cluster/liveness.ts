/**
 * Liveness: sweeps the registry often enough that a node silent for
 * deadAfterMs is declared dead within deadAfterMs + sweepMs (sweep = a tenth
 * of deadAfterMs, at most 100 ms: 3 s default → dead 3.0-3.1 s after its
 * last heartbeat).
 */
import type { Logger } from '@muster/common';
import type { NodeRegistry } from './registry.js';

export class Liveness {
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(
    private readonly registry: NodeRegistry,
    private readonly deadAfterMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    const every = Math.max(20, Math.min(100, Math.floor(this.deadAfterMs / 10)));
    // tick() catches its own failure (retried on the next tick); the catch here only keeps a bug in it visible.
    this.timer = setInterval(() => {
      this.tick().catch((e: unknown) => this.log.error({ err: e }, 'liveness tick threw; the next tick sweeps again'));
    }, every);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async tick(): Promise<void> {
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
