/**
 * The resource reports the head holds (load-reports.ts): per replica, each
 * node's last share of what its ranks use. Only shares heard in the last
 * RESOURCE_REPORT_FRESH_MS count, so no more is kept: every report drops its
 * replica's older shares and the replicas not heard for that long. Bounded
 * twice: MAX_NODES_PER_REPLICA shares a replica and MAX_RESOURCE_SHARES in
 * all (the replicas heard least recently go first).
 */
import { RESOURCE_REPORT_FRESH_MS, sumResourceUsage, type ResourceUsage } from '@muster/contracts';

/** A replica's ranks span at most this many nodes (TP × PP ≤ 512 ranks, and a node runs at least one). */
export const MAX_NODES_PER_REPLICA = 512;
/** Shares held in all: a share per replica and node, so room for 100,000 single-node replicas twice over. */
export const MAX_RESOURCE_SHARES = 200_000;

interface Share {
  usage: ResourceUsage;
  at: number;
}

export class ResourceShares {
  /** replica key → its shares by node (both in arrival order: a set moves the key to the end) and when it was last heard. */
  private readonly replicas = new Map<string, { nodes: Map<string, Share>; last: number }>();
  private total = 0;

  constructor(private readonly max = MAX_RESOURCE_SHARES) {}

  /** `node`'s share of the replica `key`, heard at `at` (the head's clock). */
  set(key: string, node: string, usage: ResourceUsage, at: number): void {
    const r = this.replicas.get(key) ?? { nodes: new Map<string, Share>(), last: at };
    this.replicas.delete(key);
    this.replicas.set(key, r);
    this.total -= r.nodes.size;
    r.last = at;
    r.nodes.delete(node);
    r.nodes.set(node, { usage, at });
    for (const [n, s] of r.nodes) {
      if (at - s.at <= RESOURCE_REPORT_FRESH_MS && r.nodes.size <= MAX_NODES_PER_REPLICA) break;
      r.nodes.delete(n);
    }
    this.total += r.nodes.size;
    this.prune(at);
    while (this.total > this.max) this.drop(this.replicas.keys().next().value as string);
  }

  /** The sum of the replica's shares heard in the last RESOURCE_REPORT_FRESH_MS; undefined when none. */
  usageOf(key: string, now: number): ResourceUsage | undefined {
    const fresh = [...(this.replicas.get(key)?.nodes.values() ?? [])].filter((s) => now - s.at <= RESOURCE_REPORT_FRESH_MS);
    return fresh.length ? sumResourceUsage(fresh.map((s) => s.usage)) : undefined;
  }

  /** Drops the replicas not heard for RESOURCE_REPORT_FRESH_MS before `now`. */
  prune(now: number): void {
    for (const [key, r] of this.replicas) {
      if (now - r.last <= RESOURCE_REPORT_FRESH_MS) break;
      this.drop(key);
    }
  }

  drop(key: string): void {
    this.total -= this.replicas.get(key)?.nodes.size ?? 0;
    this.replicas.delete(key);
  }

  /** Shares held, over all replicas. */
  get size(): number {
    return this.total;
  }
}
