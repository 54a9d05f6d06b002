/**
 * The `prefix` routing policy: calls with the same key (route-key.ts) prefer
 * the same replica, so an engine's prefix (KV) cache serves them, without
 * letting a hot key overload that replica.
 *
 * Two published algorithms, combined:
 *   - Rendezvous (highest random weight) hashing, Thaler & Ravishankar 1998:
 *     each replica gets a score hash(key, replica id) and the key's replicas
 *     in order of score are its preference list. Adding or removing a replica
 *     moves only the keys whose first choice it is or becomes (~1/n of them);
 *     no ring, no virtual nodes, nothing to rebuild on a membership change.
 *   - Consistent hashing with bounded loads, Mirrokni, Thorup & Zadimoghaddam
 *     2018 (as in HAProxy's `hash-balance-factor`): with total load L over n
 *     replicas and factor c ≥ 1, a replica may take one more call while
 *     load + 1 ≤ ceil(c × (L + 1) / n); a call walks its key's preference
 *     list to the first replica under that bound. No replica ends above c ×
 *     the average, and a hot key spills to its *second* choice (which then
 *     caches it too), not to a random one.
 * Load is what the balancer knows: this router's calls in flight on the
 * replica plus the queue the replica last reported (balancer.ts). A replica
 * the call may not use (tried already, at its in-flight limit) is passed
 * over; when none under the bound can take it, the least loaded usable one
 * does. A call counts as a *hit* when it went to its key's first choice
 * among the reachable replicas, else as a *fallback* (load, a retry, a full
 * replica); calls without a key are routed by p2c and counted *unkeyed*.
 */
import { createHash } from 'node:crypto';

/** How one call was placed under the prefix policy (the `outcome` of muster_router_prefix_routes_total). */
export type PrefixOutcome = 'hit' | 'fallback' | 'unkeyed';

export interface PrefixCandidate {
  readonly id: string;
  readonly load: number;
  /** This call may go there (not tried, below the in-flight limit). */
  readonly usable: boolean;
}

/** A 64-bit hash as two 32-bit halves. */
type Hash = readonly [number, number];

/** A route key's hash, as `pick` takes it (a call computes it once: route-key.ts, routeHashOf). */
export type KeyHash = Hash;

/** The hash of route key `key`. */
export function hashKey(key: string): KeyHash {
  return hash64(key);
}

/** Picks replicas by key; keeps the hashes of replica ids it has seen (bounded: one entry per member, rebuilt by `retain`). */
export class PrefixPicker {
  private readonly ids = new Map<string, Hash>();

  /**
   * The index in `all` of the replica that takes a call whose key hashes to `k` and
   * whether it is the key's first choice; undefined when none is usable.
   * `all`: the reachable replicas among which load is balanced.
   */
  pick(k: KeyHash, all: readonly PrefixCandidate[], loadFactor: number): { index: number; preferred: boolean } | undefined {
    if (all.length === 0) return undefined;
    const scores = all.map((c) => score(k, this.idHash(c.id)));
    let total = 0;
    let top = 0;
    for (let i = 0; i < all.length; i++) {
      total += all[i]!.load;
      if (scores[i]! > scores[top]!) top = i;
    }
    const cap = Math.ceil((loadFactor * (total + 1)) / all.length);
    // The common case, without sorting: the key's first choice can take it.
    const first = all[top]!;
    if (first.usable && first.load + 1 <= cap) return { index: top, preferred: true };
    const order = scores.map((s, i) => ({ i, score: s })).sort((a, b) => b.score - a.score);
    let least: number | undefined;
    for (const { i } of order) {
      const c = all[i]!;
      if (!c.usable) continue;
      if (c.load + 1 <= cap) return { index: i, preferred: i === order[0]!.i };
      if (least === undefined || c.load < all[least]!.load) least = i;
    }
    return least === undefined ? undefined : { index: least, preferred: least === order[0]!.i };
  }

  /** Forgets the hashes of replicas no longer members. */
  retain(ids: Iterable<string>): void {
    const keep = new Set(ids);
    for (const id of this.ids.keys()) if (!keep.has(id)) this.ids.delete(id);
  }

  private idHash(id: string): Hash {
    let h = this.ids.get(id);
    if (!h) {
      h = hash64(id);
      this.ids.set(id, h);
    }
    return h;
  }
}

/** SHA-1's first 8 bytes: well mixed, and the same in every router (they must agree on each key's replica). */
function hash64(s: string): Hash {
  const d = createHash('sha1').update(s).digest();
  return [d.readUInt32LE(0), d.readUInt32LE(4)];
}

/**
 * The rendezvous score of (key, replica): both halves of each hash mixed by
 * MurmurHash3's 32-bit finalizer (full avalanche), 53 bits of it as a number.
 */
function score(k: Hash, r: Hash): number {
  return fmix32((k[0] ^ r[0]) >>> 0) * 2 ** 21 + (fmix32((k[1] ^ r[1]) >>> 0) >>> 11);
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
