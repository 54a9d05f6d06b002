/**
 * The request router. It lives in the caller: no proxy hop, no central
 * component to saturate; each caller balances with what it knows (its own
 * in-flight calls, and the queue lengths replicas report every second).
 *
 *   const router = new Router(nats, group.membership(), { group: 'llama' });
 *   const answer = await router.call({ prompt }, { timeoutMs: 5_000, hedgeAfterMs: 200 });
 *   for await (const token of router.stream({ prompt })) …
 *
 * Membership comes from the head (versioned: a higher version replaces the
 * one we have, an older or equal one is ignored, so a reconnecting watch can
 * replay freely). The router may also be fed by hand with `update()`.
 * Selection and queueing: balancer.ts. One call's outcomes: call.ts (unary.ts,
 * stream.ts); its deadline: deadlines.ts. Calls
 * beyond the group's saturation rule, to its overflow group: overflow.ts.
 *
 * The direct path (direct-links.ts, with `direct`): messages for a replica
 * go on a TLS link of this router's own to it once one is up, else on NATS;
 * everything else here is the same on both.
 *
 * NATS outages (connection.ts): nats.js reconnects by itself and restores the
 * router's subscriptions, but drops what is published while it is down. So
 * when the connection drops, every unsettled call fails at once with
 * MUSTER_UNAVAILABLE (retryable; `details.mayHaveRun` says whether a copy was
 * out), and until it is back new calls fail the same way without being sent
 * — no call waits on a connection that is down, none is buffered. Cancels for
 * the copies that were out are held and sent to each replica when it reports
 * load again (its subscription is back then), so it stops work nobody waits
 * for. Replicas that answered "no responders" while they were reconnecting
 * become candidates again with that first report.
 */
import { randomBytes } from 'node:crypto';
import { decode, encode, ErrorCode, isMusterError, MusterError, type NatsConnection } from '@muster/common';
import type { MsgHdrs, Subscription } from '@nats-io/transport-node';
import { z } from 'zod';
import { Balancer, type ReplicaState } from './balancer.js';
import type { Call, CallHost, ResolvedCallOptions } from './call.js';
import { Link } from './connection.js';
import { Deadlines } from './deadlines.js';
import { DirectLinks, type DirectLink } from './direct-links.js';
import { Framer } from './framer.js';
import { OK, recordPrefixRoute, recordRouterCall, trackRouter } from './metrics.js';
import { checkRouteOptions } from './route-key.js';
import { Inbox } from './inbox.js';
import { StreamCall } from './stream.js';
import { UnaryCall } from './unary.js';
import { Overflow, type GroupPressure, type OpenOverflow, type OverflowTarget } from './overflow.js';
import type { CallOptions, Membership, RouterOptions, WireCancel, WireLoad } from './types.js';
import { DEFAULT_REQUEST_TIMEOUT_MS, demandSubject, loadSubject, MAX_IN_FLIGHT_PER_REPLICA, toLoadReport, type DemandReport } from '@muster/contracts';

/** Where memberships come from: a stream of snapshots, optionally with the one known now. */
export type MembershipFeed = AsyncIterable<Membership> | { current(): Membership | undefined; updates: AsyncIterable<Membership> };

export interface RouterInit extends RouterOptions {
  /** The replica group this router calls. */
  group: string;
  /** First token of every subject (default "muster"). */
  subjectPrefix?: string;
  /**
   * A replica that left the membership and sent no load report for this long
   * is presumed dead; calls on it end with REPLICA_LOST (or are retried when
   * idempotent) instead of waiting for their deadline (default 3000 ms).
   */
  replicaLostAfterMs?: number;
  /** Load reports older than this are ignored when choosing (default 3000 ms). */
  reportFreshMs?: number;
  /**
   * The inbox prefix the connection's NATS user may subscribe under (a
   * caller's `NatsAccess.inboxPrefix`); default nats.js' `_INBOX`.
   */
  inboxPrefix?: string;
  /**
   * Opens a router for the group's overflow group when its membership names
   * one (overflow.ts); absent, an overflow rule is not applied. The SDK's
   * routers have one.
   */
  openOverflow?: OpenOverflow;
}

const initSchema = z.object({
  group: z.string().min(1),
  subjectPrefix: z.string().min(1).default('muster'),
  maxOngoingPerReplica: z.int().min(1).max(MAX_IN_FLIGHT_PER_REPLICA).optional(),
  maxQueued: z.int().min(0).max(10_000_000).default(1_000),
  maxRetries: z.int().min(0).max(100).default(3),
  frames: z.boolean().default(true),
  direct: z.boolean().default(false),
  replicaLostAfterMs: z.int().min(10).max(600_000).default(3_000),
  reportFreshMs: z.int().min(10).max(600_000).default(3_000),
  inboxPrefix: z.string().regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'expected NATS subject tokens').optional(),
});

const MAX_TIMER_MS = 2_147_483_647;
/** At most this many calls that wanted to overflow here are reported in one demand report. */
const MAX_WANTED = 10_000;

export class Router implements OverflowTarget {
  private readonly host: CallHost;
  private readonly overflow: Overflow;
  private readonly balancer: Balancer;
  private readonly inbox: Inbox;
  private readonly link: Link;
  /** Cancels that could not be sent (connection down), per replica id: call id → deadline. */
  private readonly heldCancels = new Map<string, { subject: string; ids: Map<string, number> }>();
  private readonly loadSub: Subscription;
  private readonly sweepTimer: NodeJS.Timeout;
  private readonly lostAfterMs: number;
  private feed: AsyncIterator<Membership> | undefined;
  private closed = false;
  private readonly nats: NatsConnection;
  private readonly demandSubject: string;
  private readonly routerId = randomBytes(4).toString('hex');
  private lastDemand = { waiting: 0, at: 0 };
  /** Calls another group's router would have overflowed here since the last demand report (overflow.ts, `wanted`). */
  private wantedSinceReport = 0;
  /** Leaves the data-plane gauges (metrics.ts) on close. */
  private readonly untrack: () => void;
  /** Why the membership feed stopped, if it failed (the last membership stays in use). */
  feedError: unknown;
  /** What overflow reads of this group at a call's start (one closure, not one per call). */
  private readonly pressureOf = (): GroupPressure => this.balancer.pressure();
  private readonly deadlines = new Deadlines();
  /** Links to the replicas beside NATS (direct-links.ts), when this router takes the direct path. */
  private readonly direct: DirectLinks | undefined;

  constructor(nats: NatsConnection, membership: MembershipFeed | undefined, init: RouterInit) {
    const parsed = initSchema.safeParse(init);
    if (!parsed.success) {
      const i = parsed.error.issues[0]!;
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `Router: ${i.path.join('.')}: ${i.message}`, { details: { field: i.path.join('.') } });
    }
    const o = parsed.data;
    this.lostAfterMs = o.replicaLostAfterMs;
    this.nats = nats;
    this.demandSubject = demandSubject(o.subjectPrefix, o.group);
    this.balancer = new Balancer({ group: o.group, maxOngoing: o.maxOngoingPerReplica, maxQueued: o.maxQueued, reportFreshMs: o.reportFreshMs, onPrefixRoute: (outcome) => recordPrefixRoute(o.group, outcome) });
    this.overflow = new Overflow(o.group, init.openOverflow);
    this.inbox = new Inbox(nats, o.inboxPrefix);
    this.link = new Link(nats, { down: (closed) => this.connectionLost(closed) });
    const calls = new Set<Call>();
    const counters = { retries: 0, hedges: 0, lost: 0, frames: 0 };
    const cancel = (r: ReplicaState, id: string, deadline: number) => this.cancel(r.info.replicaId, r.info.subject, id, deadline, r);
    this.direct = o.direct ? new DirectLinks(nats, this.inbox, { broken: (r, link) => this.linkBroken(r, link), lastReportAt: (id) => this.balancer.lastReportAt(id) }) : undefined;
    const send = (r: ReplicaState, data: Uint8Array, reply?: string, headers?: MsgHdrs) => this.send(r, data, reply, headers);
    const framer = o.frames ? new Framer(nats, this.inbox, send, () => counters.frames++) : undefined;
    this.host = { group: o.group, nats, balancer: this.balancer, inbox: this.inbox, link: this.link, maxRetries: o.maxRetries, calls, counters, cancel, send, deadlines: this.deadlines, framer };
    const direct = this.direct;
    this.untrack = trackRouter({ group: o.group, inFlight: () => calls.size, queued: () => this.balancer.queued, counters, ...(direct ? { direct: () => ({ up: direct.up, sent: direct.sent }) } : {}) });
    this.loadSub = nats.subscribe(loadSubject(o.subjectPrefix, o.group), {
      callback: (err, msg) => {
        if (err) return;
        let load: WireLoad | undefined;
        try {
          load = toLoadReport(decode<unknown>(msg.data));
        } catch {
          return; // not msgpack
        }
        if (!load) return; // not a load report (no id, a negative or absurd count)
        this.balancer.report(load);
        this.sendHeldCancels(load.replicaId);
      },
    });
    this.sweepTimer = setInterval(() => {
      this.sweep();
      this.reportDemand();
    }, Math.max(10, Math.min(250, Math.floor(this.lostAfterMs / 4))));
    this.sweepTimer.unref();
    if (membership) {
      const updates = Symbol.asyncIterator in membership ? membership : membership.updates;
      if (!(Symbol.asyncIterator in membership)) {
        const now = membership.current();
        if (now) this.update(now);
      }
      void this.follow(updates);
    }
  }

  get group(): string {
    return this.host.group;
  }

  /** The membership in use (the newest seen). */
  get membership(): Membership | undefined {
    return this.balancer.membership;
  }

  /** Applies a membership snapshot if newer than the current one; true when applied. */
  update(m: Membership): boolean {
    if (this.closed || !this.balancer.update(m)) return false;
    this.overflow.update(m.overflow);
    this.direct?.retain();
    return true;
  }

  /** What overflow reads of this group now (overflow.ts). */
  pressure(): GroupPressure {
    return this.balancer.pressure();
  }

  /** A call another group would have overflowed here found no ready replica: reported as demand (overflow.ts). */
  wanted(): void {
    if (this.wantedSinceReport === 0) setImmediate(() => this.reportDemand());
    this.wantedSinceReport = Math.min(this.wantedSinceReport + 1, MAX_WANTED);
  }

  /** One request, one answer. Rejects with a MusterError (see docs/dataplane.md for codes). */
  call(payload: unknown, opts?: CallOptions): Promise<unknown> {
    let resolved: ResolvedCallOptions;
    try {
      resolved = this.resolve(opts, payload);
    } catch (e) {
      return Promise.reject(e);
    }
    const spilled = this.overflow.call(payload, opts, this.pressureOf);
    if (spilled) return spilled;
    // The call counts itself in the metrics when it settles (call.ts).
    const call = new UnaryCall(this.host, payload, resolved);
    call.start();
    return call.result;
  }

  /** One request, a stream of chunks in order; throws the replica's error mid-stream. Breaking out cancels it on the replica. */
  async *stream(payload: unknown, opts?: CallOptions): AsyncGenerator<unknown, void, undefined> {
    const resolved = this.resolve(opts, payload);
    const spilled = this.overflow.stream(payload, opts, this.pressureOf);
    if (spilled) return yield* spilled;
    const started = performance.now();
    const call = new StreamCall(this.host, payload, resolved);
    call.start();
    // A stream the caller left before its end counts as CANCELLED.
    let code: string = ErrorCode.CANCELLED;
    try {
      for (;;) {
        const r = await call.next();
        if (r.done) {
          code = OK;
          return;
        }
        yield r.value;
      }
    } catch (e) {
      code = codeOf(e);
      throw e;
    } finally {
      call.abandon();
      recordRouterCall(this.group, call.answeredBy?.revision ?? '', code, started);
    }
  }

  /**
   * Calls waiting in this router, in flight and reported queue per replica
   * (and whether it reads frames), totals of retries, hedges, lost calls and
   * request frames sent, reply subjects listened on now (one per copy of a
   * call out, one per request frame with calls out), whether its NATS
   * connection is up, and with the direct path its links up and messages
   * sent on them.
   */
  stats(): { queued: number; replicas: ReturnType<Balancer['stats']>; retries: number; hedges: number; lost: number; frames: number; replySubjects: number; connected: boolean; overflow: ReturnType<Overflow['stats']>; prefixRoutes: Balancer['prefixRoutes']; direct: { up: number; sent: number } | undefined } {
    const direct = this.direct && { up: this.direct.up, sent: this.direct.sent };
    return { queued: this.balancer.queued, replicas: this.balancer.stats(), ...this.host.counters, replySubjects: this.inbox.size, connected: this.link.up, overflow: this.overflow.stats(), prefixRoutes: { ...this.balancer.prefixRoutes }, direct };
  }

  /**
   * Tells the autoscaler how many calls wait here: at once when calls start
   * waiting, every second while they do, and once more when none is left.
   */
  private reportDemand(): void {
    // Calls that wanted to overflow here count as waiting until the next report after them.
    const waiting = this.balancer.queued + this.wantedSinceReport;
    const now = Date.now();
    const due = waiting > 0 ? this.lastDemand.waiting === 0 || now - this.lastDemand.at >= 1_000 : this.lastDemand.waiting > 0;
    if (!due || !this.link.up || this.closed) return;
    this.lastDemand = { waiting, at: now };
    this.wantedSinceReport = 0;
    const report: DemandReport = { v: 1, routerId: this.routerId, waiting, timeMs: now };
    this.nats.publish(this.demandSubject, encode(report));
  }

  /** Fails calls still pending with CANCELLED and stops listening. Does not close the NATS connection. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweepTimer);
    this.untrack();
    this.overflow.close();
    for (const c of [...this.host.calls]) c.fail(new MusterError(ErrorCode.CANCELLED, `the router of replica group "${this.group}" was closed`));
    this.deadlines.stop();
    this.direct?.close();
    this.link.stop();
    this.heldCancels.clear();
    if (!this.loadSub.isClosed()) this.loadSub.unsubscribe();
    this.inbox.stop();
    void this.feed?.return?.().catch(() => undefined);
  }

  private resolve(o: CallOptions | undefined, payload: unknown): ResolvedCallOptions {
    if (this.closed) throw new MusterError(ErrorCode.CANCELLED, `the router of replica group "${this.group}" is closed`);
    const timeoutMs = o?.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    if (!(typeof timeoutMs === 'number' && timeoutMs > 0 && timeoutMs <= MAX_TIMER_MS)) {
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `timeoutMs: must be a number of ms in (0, ${MAX_TIMER_MS}], got ${String(timeoutMs)}`, { details: { field: 'timeoutMs' } });
    }
    const hedgeAfterMs = o?.hedgeAfterMs;
    if (hedgeAfterMs !== undefined && !(typeof hedgeAfterMs === 'number' && hedgeAfterMs >= 0 && hedgeAfterMs <= MAX_TIMER_MS)) {
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `hedgeAfterMs: must be a number of ms ≥ 0, got ${String(hedgeAfterMs)}`, { details: { field: 'hedgeAfterMs' } });
    }
    const onReplica = o?.onReplica;
    if (onReplica !== undefined && typeof onReplica !== 'function') throw new MusterError(ErrorCode.INVALID_ARGUMENT, 'onReplica: must be a function', { details: { field: 'onReplica' } });
    if (o?.overflowPayload !== undefined && typeof o.overflowPayload !== 'function') throw new MusterError(ErrorCode.INVALID_ARGUMENT, 'overflowPayload: must be a function', { details: { field: 'overflowPayload' } });
    checkRouteOptions(o);
    return { timeoutMs, hedgeAfterMs, idempotent: o?.idempotent === true, signal: o?.signal, onReplica, key: o?.routeKey, text: o?.routeText, payload };
  }

  private async follow(updates: AsyncIterable<Membership>): Promise<void> {
    try {
      const it = updates[Symbol.asyncIterator]();
      this.feed = it;
      for (let r = await it.next(); !r.done && !this.closed; r = await it.next()) this.update(r.value);
    } catch (e) {
      // Keep routing with the last membership we have: the replicas in it still serve.
      this.feedError = e;
    }
  }

  /** Every unsettled call fails UNAVAILABLE at once: see call.ts, connectionLost(). */
  private connectionLost(closed: boolean): void {
    for (const c of [...this.host.calls]) c.connectionLost(closed);
  }

  /** On `r`'s direct link when one is up, else on NATS (CallHost.send). */
  private send(r: ReplicaState, data: Uint8Array, reply?: string, headers?: MsgHdrs): DirectLink | undefined {
    const link = this.direct?.for(r);
    if (link) {
      link.send(data, reply, headers);
      this.direct!.sent++;
      return link;
    }
    this.nats.publish(r.info.subject, data, reply === undefined ? undefined : headers ? { reply, headers } : { reply });
    return undefined;
  }

  /**
   * `r`'s link closed without GOAWAY: the replica died, or the link broke.
   * Copies sent on it may never be answered, so they are lost now (as the
   * sweep would find a little later): resent when idempotent, else
   * REPLICA_LOST. Should the replica live, its answers come on NATS — to a
   * call that has moved on, and are dropped.
   */
  private linkBroken(r: ReplicaState, link: DirectLink): void {
    for (const a of [...r.attempts]) if (a.via === link) a.lost(`closed its direct link while the call was in flight (it died, or the link broke or went dead)`);
  }

  /** Best effort: now if the connection is up, else held until the replica reports load again (or the call's deadline passes: then the replica aborts it by itself). */
  private cancel(replicaId: string, subject: string, id: string, deadline: number, r?: ReplicaState): void {
    if (this.link.up) {
      try {
        const data = encode({ v: 1, id, cancel: true } satisfies WireCancel);
        if (r) this.send(r, data);
        else this.nats.publish(subject, data);
      } catch {
        // best effort
      }
      return;
    }
    if (this.link.closed || deadline <= Date.now()) return;
    const held = this.heldCancels.get(replicaId) ?? { subject, ids: new Map<string, number>() };
    held.ids.set(id, deadline);
    this.heldCancels.set(replicaId, held);
  }

  /** A load report proves the replica's subscription is back (it comes after it on the replica's connection). */
  private sendHeldCancels(replicaId: string): void {
    const held = this.heldCancels.get(replicaId);
    if (!held || !this.link.up) return;
    this.heldCancels.delete(replicaId);
    const now = Date.now();
    for (const [id, deadline] of held.ids) if (deadline > now) this.cancel(replicaId, held.subject, id, deadline);
  }

  /** Fails (or resends) calls on replicas that left the membership and went silent: dead, not draining. */
  private sweep(): void {
    const now = Date.now();
    for (const [replicaId, held] of this.heldCancels) {
      for (const [id, deadline] of held.ids) if (deadline <= now) held.ids.delete(id);
      if (held.ids.size === 0) this.heldCancels.delete(replicaId);
    }
    for (const r of this.balancer.departed) {
      if (r.attempts.size === 0) {
        this.balancer.departed.delete(r);
        continue;
      }
      const last = this.balancer.lastReportAt(r.info.replicaId) ?? 0;
      // Fresh reports from a successor under the same replica id (a restarted
      // gang) do not keep its predecessor's calls alive: those died with it.
      const replacedAt = this.balancer.replacedAt(r.info.replicaId) ?? 0;
      for (const a of [...r.attempts]) {
        if (a.startedAt < replacedAt || now - Math.max(last, a.startedAt) > this.lostAfterMs) a.lost();
      }
    }
  }
}

/** The metrics label of a failed call: its MUSTER_* code. */
function codeOf(e: unknown): string {
  return isMusterError(e) ? e.code : ErrorCode.INTERNAL;
}
