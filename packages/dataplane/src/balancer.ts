/**
 * Which replica gets the next call, and who waits when none can take it.
 * No I/O: the router feeds it memberships and load reports and asks it for
 * slots; tests drive it directly.
 *
 * Selection, in this order (docs/dataplane.md has the why):
 *   1. candidates: replicas of the latest membership that did not answer
 *      "no responders" since that version (or have sent a load report, not
 *      draining, since), that this call has not tried, and that have a free
 *      slot (in flight from this router < maxOngoing: the caller's
 *      option, else the group's `maxInFlightPerReplica` from its membership —
 *      high for HTTP shards, whose engine queues and batches — else 32);
 *   2. a revision, by smooth weighted round robin among those with a
 *      candidate (membership.revisionWeights; absent or all zero: by replica
 *      count) — canaries and blue/green; a revision of weight 0 gets none;
 *   3. power of two choices inside it: two candidates at random, the one
 *      with less load wins, load = in flight from this router + the queue
 *      the replica last reported, if that report is fresh — or, when the
 *      group's routing policy is `prefix` and the call has a key, the key's
 *      replica by rendezvous hashing with bounded loads (prefix-policy.ts).
 * When no replica can take the call it waits in one FIFO queue (bounded by
 * maxQueued) until a slot frees, the membership changes or a replica becomes
 * reachable again.
 */
import { ErrorCode, MusterError } from '@muster/common';
import { DEFAULT_MAX_IN_FLIGHT, MAX_IN_FLIGHT_PER_REPLICA, routingConfig, type RoutingConfig } from '@muster/contracts';
import type { GroupPressure } from './overflow.js';
import { FRAME_VERSION } from './frames.js';
import { PrefixPicker, type PrefixOutcome } from './prefix-policy.js';
import { routeHashOf, type RouteHint } from './route-key.js';
import type { Membership, ReplicaInfo, WireLoad } from './types.js';

/** Something in flight on a replica that must hear when the replica is found lost. */
export interface Tracked {
  readonly startedAt: number;
  /** The direct link it was sent on (direct-links.ts), if it was. */
  readonly via?: object | undefined;
  /** Its replica is gone (`why`: how we know; default: it left the membership and went silent). */
  lost(why?: string): void;
}

export interface ReplicaState {
  readonly info: ReplicaInfo;
  /** Calls from this router on it now. */
  inFlight: number;
  /** In the latest membership. */
  live: boolean;
  /** Answered "no responders": skipped until the next membership version or its next load report (not draining). */
  unreachable: boolean;
  /** Its load reports say it reads request frames (frames.ts). */
  frames: boolean;
  readonly attempts: Set<Tracked>;
}

export interface Waiter {
  readonly exclude: ReadonlySet<string> | undefined;
  readonly grant: (r: ReplicaState) => void;
  readonly route?: RouteHint | undefined;
}

interface Revision {
  name: string;
  weight: number;
  /** Smooth weighted round robin state. */
  current: number;
  replicas: ReplicaState[];
}

/** The per-replica limit when neither the caller nor the group's membership sets one (a NATS group's default). */
export const DEFAULT_MAX_ONGOING = DEFAULT_MAX_IN_FLIGHT.nats;

export interface BalancerOptions {
  group: string;
  /** Calls in flight per replica from this router; undefined: the membership's `maxInFlightPerReplica`, else DEFAULT_MAX_ONGOING. */
  maxOngoing?: number | undefined;
  maxQueued: number;
  /** Load reports older than this are ignored (ms). */
  reportFreshMs: number;
  random?: () => number;
  /** Told how each call was placed while the group's policy is `prefix` (metrics). */
  onPrefixRoute?: (outcome: PrefixOutcome) => void;
}

export class Balancer {
  private current: Membership | undefined;
  private readonly replicas = new Map<string, ReplicaState>();
  private revisions: Revision[] = [];
  private readonly reports = new Map<string, { queued: number; engineWaiting: number; at: number; incarnation?: string; replacedAt?: number; frames: boolean }>();
  /** Left the membership with calls still on them (watched for loss). */
  readonly departed = new Set<ReplicaState>();
  private readonly queue: Waiter[] = [];
  private pumping = false;
  private pumpAgain = false;
  private readonly random: () => number;
  /** The per-replica limit in force: the caller's, else the group's (from its membership), else the default. */
  private maxOngoing: number;
  private routing: RoutingConfig = routingConfig(undefined);
  private readonly prefix = new PrefixPicker();
  /** Calls placed under the `prefix` policy, by outcome (stats()). */
  readonly prefixRoutes: Record<PrefixOutcome, number> = { hit: 0, fallback: 0, unkeyed: 0 };

  constructor(private readonly opts: BalancerOptions) {
    this.random = opts.random ?? Math.random;
    this.maxOngoing = opts.maxOngoing ?? DEFAULT_MAX_ONGOING;
  }

  get membership(): Membership | undefined {
    return this.current;
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Applies a membership if it is newer than the one we have; true when applied. */
  update(m: Membership): boolean {
    if (m.group !== this.opts.group || (this.current && m.version <= this.current.version)) return false;
    this.current = m;
    const groupLimit = m.maxInFlightPerReplica;
    if (this.opts.maxOngoing === undefined) {
      this.maxOngoing = groupLimit && Number.isInteger(groupLimit) && groupLimit > 0 ? Math.min(groupLimit, MAX_IN_FLIGHT_PER_REPLICA) : DEFAULT_MAX_ONGOING;
    }
    this.routing = routingConfig(m.routing);
    this.prefix.retain(m.replicas.map((r) => r.replicaId));
    const next = new Map<string, ReplicaState>();
    for (const info of m.replicas) {
      const old = this.replicas.get(info.replicaId);
      // A replica that answered "no responders" stays skipped across membership versions until
      // its next load report proves it subscribed: in a scale-up the versions come faster than
      // a fresh replica's first report, and each retry to it would spend the call's budget.
      const s = old && old.info.subject === info.subject && old.info.revision === info.revision ? old : { info, inFlight: 0, live: true, unreachable: false, frames: this.reports.get(info.replicaId)?.frames ?? false, attempts: new Set<Tracked>() };
      next.set(info.replicaId, s);
    }
    for (const [id, s] of this.replicas) {
      if (next.get(id) === s) continue;
      s.live = false;
      if (s.attempts.size > 0) this.departed.add(s);
    }
    this.replicas.clear();
    for (const [id, s] of next) this.replicas.set(id, s);
    const byRevision = new Map<string, ReplicaState[]>();
    for (const s of next.values()) byRevision.set(s.info.revision, [...(byRevision.get(s.info.revision) ?? []), s]);
    const w = m.revisionWeights ?? {};
    const weighted = [...byRevision.keys()].some((rev) => (w[rev] ?? 0) > 0);
    this.revisions = [...byRevision].map(([name, replicas]) => ({ name, replicas, current: 0, weight: weighted ? Math.max(0, w[name] ?? 0) : replicas.length }));
    const old = Date.now() - 20 * this.opts.reportFreshMs;
    for (const [id, r] of this.reports) if (r.at < old) this.reports.delete(id);
    this.pump();
    return true;
  }

  /**
   * A replica's load report. It also proves the replica is subscribed again
   * if it had answered "no responders" (a replica reconnecting after a NATS
   * outage): on its connection the report follows its subscription, and on
   * ours it follows the "no responders". A draining replica has unsubscribed
   * for good and says so.
   */
  report(load: WireLoad): void {
    if (typeof load?.replicaId !== 'string' || typeof load.queued !== 'number') return;
    // Only replicas this router knows (members, or departed ones it still has calls on): the map
    // stays bounded by the membership, whatever ids a publisher makes up.
    if (!this.replicas.has(load.replicaId) && ![...this.departed].some((d) => d.info.replicaId === load.replicaId)) return;
    const now = Date.now();
    const before = this.reports.get(load.replicaId);
    const replaced = before?.incarnation !== undefined && load.incarnation !== undefined && before.incarnation !== load.incarnation;
    // An HTTP shard's bridge queues little (`queued`): the engine behind it queues the rest, and says so in the same report.
    const engineWaiting = load.engine?.waiting ?? 0;
    const frames = (load.frames ?? 0) >= FRAME_VERSION;
    this.reports.set(load.replicaId, { queued: load.queued, engineWaiting, at: now, incarnation: load.incarnation, replacedAt: replaced ? now : before?.replacedAt, frames });
    const r = this.replicas.get(load.replicaId);
    if (r) r.frames = frames;
    if (r?.unreachable && load.draining !== true) {
      r.unreachable = false;
      if (this.queue.length > 0) this.pump();
    }
  }

  /** When this replica last reported its load (epoch ms, local clock), or undefined. */
  lastReportAt(replicaId: string): number | undefined {
    return this.reports.get(replicaId)?.at;
  }

  /**
   * When (epoch ms, local clock) another process last took over this replica
   * id — a report with a new incarnation after one with another (a restarted
   * gang); undefined if never seen. Attempts sent before it were held by the
   * process that died.
   */
  replacedAt(replicaId: string): number | undefined {
    return this.reports.get(replicaId)?.replacedAt;
  }

  markUnreachable(r: ReplicaState): void {
    r.unreachable = true;
  }

  /** A slot on the best replica now, or undefined when none is free. It runs for every call: no allocation. */
  tryAcquire(exclude?: ReadonlySet<string>, route?: RouteHint): ReplicaState | undefined {
    // Smooth weighted round robin (as nginx does) over the revisions that can take the call:
    // exact shares over any window, where a random draw would wander by ±3% over 1,000 calls.
    let total = 0;
    let chosen: Revision | undefined;
    let n = 0; // usable replicas of the chosen revision
    for (const rv of this.revisions) {
      const usable = rv.weight > 0 ? this.usableIn(rv.replicas, exclude) : 0;
      if (usable === 0) continue;
      rv.current += rv.weight;
      total += rv.weight;
      if (!chosen || rv.current > chosen.current) {
        chosen = rv;
        n = usable;
      }
    }
    if (!chosen) return undefined;
    chosen.current -= total;
    const keyed = route && this.routing.policy === 'prefix' ? this.byKey(chosen.replicas, exclude, route) : undefined;
    if (keyed) {
      keyed.inFlight++;
      return keyed;
    }
    // Power of two choices among the revision's usable replicas (counted above, then the i-th and j-th picked: no array made).
    let r: ReplicaState;
    if (n > 1) {
      const i = Math.floor(this.random() * n);
      let j = Math.floor(this.random() * (n - 1));
      if (j >= i) j++;
      const a = this.nthUsable(chosen.replicas, exclude, i);
      const b = this.nthUsable(chosen.replicas, exclude, j);
      const now = Date.now();
      r = this.load(b, now) < this.load(a, now) ? b : a;
    } else r = this.nthUsable(chosen.replicas, exclude, 0);
    r.inFlight++;
    return r;
  }

  /** How many of `replicas` can take a call now (not `exclude`d). */
  private usableIn(replicas: readonly ReplicaState[], exclude: ReadonlySet<string> | undefined): number {
    let n = 0;
    for (const r of replicas) if (this.usable(r, exclude)) n++;
    return n;
  }

  /** The `k`-th (from 0) of `replicas` that can take a call now; k < usableIn(replicas, exclude). */
  private nthUsable(replicas: readonly ReplicaState[], exclude: ReadonlySet<string> | undefined, k: number): ReplicaState {
    for (const r of replicas) if (this.usable(r, exclude) && k-- === 0) return r;
    throw new Error('balancer: nthUsable past the usable replicas'); // unreachable: callers count first
  }

  /** Queues for a slot; BACKPRESSURE when the queue is full. */
  enqueue(exclude: ReadonlySet<string> | undefined, grant: (r: ReplicaState) => void, route?: RouteHint): Waiter {
    if (this.queue.length >= this.opts.maxQueued) {
      const { group, maxQueued } = this.opts;
      const maxOngoing = this.maxOngoing;
      const n = this.replicas.size;
      throw new MusterError(
        ErrorCode.BACKPRESSURE,
        n === 0
          ? `replica group "${group}" has no ready replica and ${maxQueued} calls (maxQueued) already wait for one in this router: slow down and retry with backoff, or scale the group up`
          : `replica group "${group}" is saturated: its ${n} replica(s) each have maxOngoingPerReplica=${maxOngoing} calls from this router and ${maxQueued} more (maxQueued) already wait. Slow down and retry with backoff, scale the group up, or raise maxOngoingPerReplica/maxQueued`,
        { details: { group, replicas: n, maxOngoingPerReplica: maxOngoing, maxQueued } },
      );
    }
    const w: Waiter = { exclude, grant, route };
    this.queue.push(w);
    return w;
  }

  dequeue(w: Waiter): void {
    const i = this.queue.indexOf(w);
    if (i >= 0) this.queue.splice(i, 1);
  }

  release(r: ReplicaState): void {
    r.inFlight--;
    if (this.queue.length > 0) this.pump();
  }

  /** Why a waiter got nothing before its deadline: no replica at all, or no free slot. */
  waitError(exclude: ReadonlySet<string> | undefined, waitedMs: number): MusterError {
    const { group } = this.opts;
    const maxOngoing = this.maxOngoing;
    const eligible = this.revisions.filter((rv) => rv.weight > 0).flatMap((rv) => rv.replicas).filter((r) => !r.unreachable && !exclude?.has(r.info.replicaId));
    if (eligible.length === 0) {
      const tried = exclude?.size ? ` that this call had not tried already (tried: ${[...exclude].join(', ')})` : '';
      return new MusterError(ErrorCode.NO_REPLICAS, `replica group "${group}" had no ready replica${tried} for ${waitedMs} ms (membership version ${this.current?.version ?? 'none yet'}, ${this.replicas.size} replica(s))`, { details: { group } });
    }
    return new MusterError(ErrorCode.DEADLINE_EXCEEDED, `deadline passed after ${waitedMs} ms waiting for a free slot on replica group "${group}": its ${eligible.length} replica(s) each had maxOngoingPerReplica=${maxOngoing} calls from this router`, { details: { group } });
  }

  /**
   * What overflow's decision reads (overflow.ts): replicas that may take
   * calls, free slots, waiting calls — here, and on the replicas as their
   * fresh reports say (their queue, plus their engine's waiting requests).
   */
  pressure(): GroupPressure {
    // One pass, no allocation: it runs at the start of every call of a group with an overflow rule.
    const now = Date.now();
    let readyReplicas = 0;
    let reportedQueued = 0;
    let freeSlot = false;
    for (const rv of this.revisions) {
      if (!(rv.weight > 0)) continue;
      for (const r of rv.replicas) {
        if (r.unreachable) continue;
        readyReplicas++;
        if (r.inFlight < this.maxOngoing) freeSlot = true;
        const rep = this.reports.get(r.info.replicaId);
        if (rep && now - rep.at < this.opts.reportFreshMs) reportedQueued += rep.queued + rep.engineWaiting;
      }
    }
    return { readyReplicas, freeSlot, waiting: this.queue.length, reportedQueued, queueFull: this.queue.length >= this.opts.maxQueued };
  }

  /** Per replica: in flight from this router, last reported queue. */
  stats(): { replicaId: string; revision: string; inFlight: number; reportedQueued: number | undefined; frames: boolean }[] {
    return [...this.replicas.values()].map((r) => ({ replicaId: r.info.replicaId, revision: r.info.revision, inFlight: r.inFlight, reportedQueued: this.reports.get(r.info.replicaId)?.queued, frames: r.frames }));
  }

  private usable(r: ReplicaState, exclude: ReadonlySet<string> | undefined): boolean {
    return !r.unreachable && r.inFlight < this.maxOngoing && !exclude?.has(r.info.replicaId);
  }

  /** The `prefix` policy's choice among `replicas` (one revision's), counted; undefined: the call has no key (p2c then). */
  private byKey(replicas: readonly ReplicaState[], exclude: ReadonlySet<string> | undefined, route: RouteHint): ReplicaState | undefined {
    const key = routeHashOf(route, this.routing.prefixChars);
    if (key === undefined) return void this.counted('unkeyed');
    const reachable = replicas.filter((r) => !r.unreachable);
    const now = Date.now();
    const picked = this.prefix.pick(key, reachable.map((r) => ({ id: r.info.replicaId, load: this.load(r, now), usable: this.usable(r, exclude) })), this.routing.loadFactor);
    if (!picked) return undefined;
    this.counted(picked.preferred ? 'hit' : 'fallback');
    return reachable[picked.index];
  }

  private counted(o: PrefixOutcome): void {
    this.prefixRoutes[o]++;
    this.opts.onPrefixRoute?.(o);
  }

  private load(r: ReplicaState, now: number): number {
    const rep = this.reports.get(r.info.replicaId);
    return r.inFlight + (rep && now - rep.at < this.opts.reportFreshMs ? rep.queued : 0);
  }

  /** Hands free slots to waiters, oldest first; a waiter that can't use any free slot (all tried) doesn't block the next. */
  private pump(): void {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        for (let i = 0; i < this.queue.length; ) {
          const w = this.queue[i]!;
          const r = this.tryAcquire(w.exclude, w.route);
          if (r) {
            this.queue.splice(i, 1);
            w.grant(r);
          } else if (this.anyFree()) i++;
          else break;
        }
      } while (this.pumpAgain);
    } finally {
      this.pumping = false;
    }
  }

  private anyFree(): boolean {
    return this.revisions.some((rv) => rv.weight > 0 && rv.replicas.some((r) => this.usable(r, undefined)));
  }
}
