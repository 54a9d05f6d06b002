/**
 * Overflow: when a replica group is saturated by its rule, a call goes to the
 * group's overflow group instead of waiting (docs/replica-groups.md,
 * "Overflow"). The rule and the overflow group's name come with the group's
 * membership (spec field `overflow`); the calls go through the overflow
 * group's own router (its membership, its balancer), opened by the caller's
 * `openOverflow` (the SDK's opens one like any other router).
 *
 * Decided once, before anything is sent (`decideOverflow`, pure): so a call
 * is never sent twice — it goes to one group or the other, or is refused.
 * A replica never answers back-pressure in this data plane (serve() queues,
 * the HTTP bridge passes the engine's 429 through as an answer), so "the
 * back-pressure error" is the router's own: no free slot and its queue full.
 *
 *   primary saturated?  ── no ──▶ the primary (sent, or queued as before)
 *        │ yes
 *   overflow group open, with a ready replica, not saturated by the same rule?
 *        │ yes ──▶ the overflow group's router (counted: muster_overflow_calls_total)
 *        │ no
 *   the primary would refuse it (no free slot, its queue full)?
 *        │ no  ──▶ the primary (it waits there, as without a rule)
 *        │ yes ──▶ MUSTER_BACKPRESSURE naming both groups (muster_overflow_refused_total,
 *                  and muster_router_requests_total{code=MUSTER_BACKPRESSURE})
 *
 * One hop: a call sent to the overflow group never overflows again (it is
 * marked, and its router skips this step), whatever that group's own rule
 * says — so no chain or loop can form, and a group naming itself is refused
 * by the head. A call already queued in the primary stays there.
 */
import { ErrorCode, MusterError } from '@muster/common';
import { recordOverflow, recordRouterCall } from './metrics.js';
import type { CallOptions, OverflowRule } from './types.js';

/** What the decision reads of one group's router at a call's start. */
export interface GroupPressure {
  /** Replicas that may take calls (in the membership, reachable, of a revision with traffic). */
  readyReplicas: number;
  /** A replica can take a call from this router now, without waiting here. */
  freeSlot: boolean;
  /** Calls waiting in this router for a slot. */
  waiting: number;
  /** The queues those replicas last reported (fresh reports only), summed. */
  reportedQueued: number;
  /** This router's queue is at its bound (maxQueued): a call that must wait is refused. */
  queueFull: boolean;
}

/** Why `p` is saturated by `rule` (a sentence), or undefined when it is not. */
export function saturation(p: GroupPressure, rule: OverflowRule): string | undefined {
  if (rule.onBackPressure && !p.freeSlot && p.queueFull) return `no replica has a free slot and ${p.waiting} calls already wait in this router (its maxQueued)`;
  const n = rule.queuePerReplicaAbove;
  if (n !== undefined) {
    // The new call counts when it would wait too; a group with no ready replica counts as one.
    const waiting = p.waiting + p.reportedQueued + (p.freeSlot ? 0 : 1);
    const perReplica = waiting / Math.max(p.readyReplicas, 1);
    if (perReplica > n) return `${Math.round(perReplica * 100) / 100} calls would wait per ready replica (${waiting} over ${p.readyReplicas}), above queuePerReplicaAbove=${n}`;
  }
  return undefined;
}

export type OverflowDecision = { route: 'primary' } | { route: 'overflow'; why: string } | { route: 'refuse'; why: string };

/**
 * Where one call goes. `target`: the overflow group's pressure, or why its
 * router cannot be used (not open yet, not permitted, no such group). A rule
 * is a threshold to spill over, not a limit: when the overflow group cannot
 * take the call, it waits in the primary as it would without a rule, and is
 * refused only when the primary itself would refuse it (no free slot, its
 * queue full).
 */
export function decideOverflow(rule: OverflowRule | undefined, primary: GroupPressure, target: GroupPressure | { unavailable: string }): OverflowDecision {
  if (!rule) return { route: 'primary' };
  const why = saturation(primary, rule);
  if (why === undefined) return { route: 'primary' };
  const cannot = whyNot(target, rule);
  if (cannot === undefined) return { route: 'overflow', why };
  if (primary.freeSlot || !primary.queueFull) return { route: 'primary' };
  return { route: 'refuse', why: `${why}; its overflow group "${rule.group}" ${cannot}` };
}

/** Why the overflow group cannot take a call now (a phrase after its name), or undefined when it can. */
function whyNot(target: GroupPressure | { unavailable: string }, rule: OverflowRule): string | undefined {
  if ('unavailable' in target) return `cannot take it: ${target.unavailable}`;
  if (target.readyReplicas === 0) return 'has no ready replica';
  const full = saturation(target, rule);
  return full === undefined ? undefined : `is saturated too: ${full}`;
}

/** As much of the overflow group's router as overflow needs. */
export interface OverflowTarget {
  pressure(): GroupPressure;
  /** Why its membership feed stopped (the group did not exist, …), if it did. */
  readonly feedError: unknown;
  call(payload: unknown, opts?: CallOptions): Promise<unknown>;
  /** A call would have been sent here but found no ready replica: counted as demand (its autoscaler starts from zero). */
  wanted(): void;
  stream(payload: unknown, opts?: CallOptions): AsyncGenerator<unknown, void, undefined>;
}

/** Opens a router for the overflow group `group`; `release` closes it (the primary's router calls it when it is done with it). */
export type OpenOverflow = (group: string) => Promise<{ target: OverflowTarget; release(): void }>;

/** Call options of a call sent to an overflow group: its router does not overflow it again (one hop). */
const hops = new WeakSet<object>();

/** Whether `opts` are those of a call already sent to an overflow group. */
export function isOverflowHop(opts: CallOptions | undefined): boolean {
  return opts !== undefined && hops.has(opts);
}

/** A failed open, or a feed that stopped, is tried again after this long (the group may be created meanwhile). */
const REOPEN_AFTER_MS = 2_000;

interface Link {
  group: string;
  openedAt: number;
  target?: OverflowTarget;
  release?: () => void;
  failed?: string;
}

/** One router's overflow: the rule in force and the overflow group's router. */
export class Overflow {
  private rule: OverflowRule | undefined;
  private link: Link | undefined;
  private closed = false;
  /** Calls sent to the overflow group, and calls refused because it was saturated too. */
  readonly counts = { sent: 0, refused: 0 };

  constructor(
    private readonly group: string,
    private readonly open: OpenOverflow | undefined,
  ) {}

  /** The rule of a new membership: opens the overflow group's router when its name changes, closes the old one. */
  update(rule: OverflowRule | undefined): void {
    // Without an opener (a router made by hand) there is nowhere to send a call: the rule is not applied.
    this.rule = this.open && rule?.group && rule.group !== this.group ? rule : undefined;
    if (this.link && this.link.group !== this.rule?.group) this.drop();
    if (this.rule && !this.link) this.connect(this.rule.group);
  }

  /** The overflow group and what its router sees now (router.stats()). */
  stats(): { group: string; readyReplicas: number; sent: number; refused: number; unavailable?: string } | undefined {
    if (!this.rule) return undefined;
    const t = this.view();
    return { group: this.rule.group, ...('unavailable' in t ? { readyReplicas: 0, unavailable: t.unavailable } : { readyReplicas: t.readyReplicas }), ...this.counts };
  }

  /**
   * Before a call is sent: undefined when it goes to this router's group;
   * else its answer from the overflow group, or the back-pressure refusal.
   */
  call(payload: unknown, opts: CallOptions | undefined, primary: () => GroupPressure): Promise<unknown> | undefined {
    const d = this.decide(opts, primary);
    if (!d) return undefined;
    if ('error' in d) return Promise.reject(d.error);
    try {
      return d.target.call(d.payload(payload), d.opts);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** As `call`, for a stream (called inside the router's stream generator): the overflow group's stream; throws the refusal. */
  stream(payload: unknown, opts: CallOptions | undefined, primary: () => GroupPressure): AsyncGenerator<unknown, void, undefined> | undefined {
    const d = this.decide(opts, primary);
    if (!d) return undefined;
    if ('error' in d) throw d.error;
    return d.target.stream(d.payload(payload), d.opts);
  }

  close(): void {
    this.closed = true;
    this.drop();
  }

  private decide(opts: CallOptions | undefined, primary: () => GroupPressure): { target: OverflowTarget; opts: CallOptions; payload: (p: unknown) => unknown } | { error: MusterError } | undefined {
    const rule = this.rule;
    if (!rule || isOverflowHop(opts)) return undefined;
    const t = this.target();
    const p = primary();
    const d = decideOverflow(rule, p, t);
    // An overflow group at zero replicas would never see the calls it could take: its router reports them as demand.
    if (d.route !== 'overflow' && !('unavailable' in t) && t.readyReplicas === 0 && saturation(p, rule) !== undefined) this.link?.target?.wanted();
    if (d.route === 'primary') return undefined;
    if (d.route === 'refuse') {
      this.counts.refused++;
      recordOverflow(this.group, rule.group, false);
      recordRouterCall(this.group, '', ErrorCode.BACKPRESSURE, performance.now());
      const message = `replica group "${this.group}" is saturated: ${d.why}. Slow down and retry with backoff, or scale either group up`;
      return { error: new MusterError(ErrorCode.BACKPRESSURE, message, { details: { group: this.group, overflowGroup: rule.group } }) };
    }
    this.counts.sent++;
    recordOverflow(this.group, rule.group, true);
    const { overflowPayload, ...rest } = opts ?? {};
    const hop: CallOptions = rest;
    hops.add(hop);
    const to = rule.group;
    return { target: this.link!.target!, opts: hop, payload: (p) => (overflowPayload ? overflowPayload(to, p) : p) };
  }

  /** The overflow group's pressure, or why its router cannot be used now; reopens it when that may have changed. */
  private target(): GroupPressure | { unavailable: string } {
    const t = this.view();
    const l = this.link;
    // A failed open (not permitted, no connection) or a feed that ended (the group did not exist): try again a little later.
    if ('unavailable' in t && l && (l.target || l.failed !== undefined) && Date.now() - l.openedAt >= REOPEN_AFTER_MS) {
      this.drop();
      this.connect(l.group);
    }
    return t;
  }

  /** As `target()`, without side effects (stats() reads it). */
  private view(): GroupPressure | { unavailable: string } {
    const l = this.link;
    if (!l) return { unavailable: 'its router is not open' };
    if (!l.target && l.failed === undefined) return { unavailable: 'its router is still opening' };
    const p = l.target?.pressure();
    const feedError = l.target?.feedError;
    const why = l.failed ?? (p?.readyReplicas === 0 && feedError !== undefined ? `no membership: ${feedError instanceof Error ? feedError.message : String(feedError)}` : undefined);
    return why === undefined ? p! : { unavailable: why };
  }

  private connect(group: string): void {
    if (this.closed || !this.open) return;
    const l: Link = { group, openedAt: Date.now() };
    this.link = l;
    this.open(group).then(
      ({ target, release }) => {
        if (this.link !== l) return release(); // dropped while opening
        l.target = target;
        l.release = release;
      },
      (e: unknown) => {
        l.failed = e instanceof Error ? e.message : String(e);
      },
    );
  }

  private drop(): void {
    const l = this.link;
    this.link = undefined;
    l?.release?.();
  }
}
