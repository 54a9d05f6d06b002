/**
 * Liveness: sweeps the registry often enough that a node silent for
 * deadAfterMs is declared dead within deadAfterMs + sweepMs (sweep = a tenth
 * of deadAfterMs, at most 100 ms: 3 s default → dead 3.0-3.1 s after its
 * last heartbeat). The same loop forgets nodes DEAD for deadNodeTtlMs
 * (registry transition 9), checked every tenth of that TTL, at most once a
 * minute: a 24 h TTL is kept to within a minute, without a scan per sweep.
 *
 * A sweep that runs late means the head was not listening (its event loop
 * stalled: a long GC pause, a burst of registrations): heartbeats sat unread
 * in its sockets, so the time beyond STALL_MS is excused for every node
 * (NodeRegistry.excuse) instead of being counted as their silence — a busy
 * head must not declare healthy nodes dead and start a reconnect storm.
 * A node that really died during the stall is found that much later.
 */
import type { Logger } from '@muster/common';
import { NodeState, type Node } from '@muster/proto';
import type { NodeRegistry } from './registry.js';

/** A sweep this late (beyond its period) means the head stalled. */
const STALL_MS = 250;

/**
 * Removes the nodes DEAD for `ttlMs` or more (registry transition 9; wall
 * clock from the persisted `stateChangedAtMs`, so a head restart does not
 * reset it). Returns those removed; one refused (still held) or whose write
 * failed stays and is tried again by the next call.
 */
export async function collectDead(registry: NodeRegistry, ttlMs: number, log: Logger, nowMs = Date.now()): Promise<Node[]> {
  const due = registry.list(NodeState.NODE_STATE_DEAD).filter((n) => nowMs - n.stateChangedAtMs >= ttlMs);
  const results = await Promise.allSettled(due.map((n) => registry.remove(n.nodeId, `dead for more than ${ttlMs} ms (--dead-node-ttl-ms)`)));
  const removed: Node[] = [];
  for (const r of results) {
    if (r.status === 'fulfilled') removed.push(r.value);
    else log.warn({ err: r.reason instanceof Error ? r.reason.message : String(r.reason) }, 'dead node not removed; tried again on the next sweep');
  }
  return removed;
}

export class Liveness {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private lastCollect = 0;
  private every = 100;
  private lastTick = 0;

  constructor(
    private readonly registry: NodeRegistry,
    private readonly deadAfterMs: number,
    private readonly log: Logger,
    /** A DEAD node is removed this long after it died (none: never). */
    private readonly deadNodeTtlMs?: number,
  ) {}

  start(): void {
    this.every = Math.max(20, Math.min(100, Math.floor(this.deadAfterMs / 10)));
    this.lastTick = performance.now();
    // tick() catches its own failure (retried on the next tick); the catch here only keeps a bug in it visible.
    this.timer = setInterval(() => {
      this.tick().catch((e: unknown) => this.log.error({ err: e }, 'liveness tick threw; the next tick sweeps again'));
    }, this.every);
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
      const ttl = this.deadNodeTtlMs;
      if (ttl !== undefined && Date.now() - this.lastCollect >= Math.min(60_000, ttl / 10)) {
        this.lastCollect = Date.now();
        await collectDead(this.registry, ttl, this.log);
      }
    } catch (e) {
      this.log.error({ err: e }, 'liveness sweep failed; retrying on the next tick');
    } finally {
      this.running = false;
    }
  }
}
