/**
 * One call's life in the router: from "find a replica" to exactly one outcome.
 *
 * A call sends one or more *attempts* (copies of the same request, same id)
 * to replicas. What happens to an attempt decides what the call does next:
 *
 *   answer (reply or stream end/error)  → the call settles; other copies are cancelled
 *   "no responders" from NATS           → it never reached the replica: skip that
 *                                          replica until the next membership, retry
 *                                          elsewhere (maxRetries, tiny backoff)
 *   MUSTER_UNAVAILABLE from the replica → it was closing and never started the call:
 *                                          same as "no responders"
 *   lost (replica left the membership   → REPLICA_LOST; retried only when the caller
 *   and went silent)                       marked the call idempotent
 *   deadline                            → REPLICA_LOST if the replica is gone from the
 *                                          membership, else DEADLINE_EXCEEDED
 *   the router's NATS connection drops  → UNAVAILABLE at once (retryable by the caller,
 *                                          who is told it may have run): its answer
 *                                          can no longer arrive. Never resent here
 *   request over NATS' max_payload      → RESOURCE_EXHAUSTED before anything is sent,
 *                                          naming both sizes (a reply over it comes
 *                                          back from serve() as the same code)
 *
 * A call also fails UNAVAILABLE, without being sent, when it starts (or its
 * turn comes) while the connection is down. Settling is guarded by one flag,
 * and every late message is dropped by its closed inbox token, so the caller
 * never sees two answers.
 */
import { decode, encode, endSpan, ErrorCode, MusterError, type NatsConnection } from '@muster/common';
import { nuid, type Msg, type MsgHdrs } from '@nats-io/transport-node';
import type { Balancer, ReplicaState, Tracked, Waiter } from './balancer.js';
import type { Link } from './connection.js';
import type { DeadlineList, Deadlines, Expiring } from './deadlines.js';
import type { DirectLink } from './direct-links.js';
import type { FramedAttempt, Framer, FrameListener } from './framer.js';
import type { RouteHint } from './route-key.js';
import type { Inbox } from './inbox.js';
import { STREAM_WINDOW, type ReplicaInfo, type WireError } from './types.js';
import { callerContext, startAttemptSpan, type AttemptTrace } from './tracing.js';
import { isNoResponders, maxPayloadOf, tooLargeMessage } from './wire.js';

const NONE: readonly Attempt[] = [];

/** What a call needs from its router. */
export interface CallHost {
  readonly group: string;
  readonly nats: NatsConnection;
  readonly balancer: Balancer;
  readonly inbox: Inbox;
  /** Whether the connection is up now. */
  readonly link: Link;
  readonly maxRetries: number;
  /** Calls not settled yet (the router fails them on close). */
  readonly calls: Set<Call>;
  /** Totals since the router started (observability, tests); `frames`: request frames sent (framer.ts). */
  readonly counters: { retries: number; hedges: number; lost: number; frames: number };
  /**
   * Sends a message for replica `r`'s subject (a request when `reply` is
   * given, else a cancel or a credit): on its direct link when one is up
   * (direct-links.ts), else on NATS. Throws as nats.publish does; returns the
   * link it went on, if any.
   */
  send(r: ReplicaState, data: Uint8Array, reply?: string, headers?: MsgHdrs): DirectLink | undefined;
  /** Holds unary attempts to replicas that read frames until the end of the turn (framer.ts); absent: every request goes alone. */
  readonly framer: Framer | undefined;
  /** Tells a replica to drop call `id` (best effort; held until the replica is reachable again if the connection is down). */
  cancel(replica: ReplicaState, id: string, deadline: number): void;
  /** The router's deadline lists (deadlines.ts): one timer per timeout length, none per call. */
  readonly deadlines: Deadlines;
}

/** A call's options, checked; they are also what the `prefix` routing policy keys on (route-key.ts): one object per call. */
export interface ResolvedCallOptions extends RouteHint {
  timeoutMs: number;
  idempotent: boolean;
  hedgeAfterMs: number | undefined;
  signal: AbortSignal | undefined;
  onReplica: ((replica: { replicaId: string; revision: string; group: string }) => void) | undefined;
}

/** One copy of the request on one replica. */
export class Attempt implements FramedAttempt, Tracked {
  readonly startedAt = Date.now();
  /** Its inbox token and reply subject (inbox.ts). */
  token = 0;
  reply = '';
  ended = false;
  /** Its span and the NATS headers carrying it, when the call is traced (tracing.ts). */
  trace: AttemptTrace | undefined;
  /** How it ended, for its span: set where known (its answer's code, the call's error when that ended it); else OK, or CANCELLED when another copy won. */
  outcome: string | undefined;
  /** The request frame it went in, if it did (framer.ts): told when it ends. */
  frame: FrameListener | undefined;
  /** The direct link it was sent on, if it was (direct-links.ts). */
  via: DirectLink | undefined;

  constructor(
    private readonly call: Call,
    readonly replica: ReplicaState,
  ) {}

  onMessage(msg: Msg): void {
    this.call.onMessage(this, msg);
  }

  /** Its answer's bytes, from an answer frame. */
  onData(data: Uint8Array): void {
    this.call.onData(this, data);
  }

  /** Its answer, decoded already (a replica's answer to a whole frame). */
  onAnswer(body: unknown): void {
    this.call.onAnswer(this, body);
  }

  undecodable(e: unknown): void {
    this.call.undecodable(this, e);
  }

  /** Sends it as a request of its own. */
  publish(): void {
    this.call.publish(this);
  }

  publishFailed(e: unknown): void {
    this.call.publishFailed(this, e);
  }

  lost(why?: string): void {
    this.call.onLost(this, why);
  }
}

export abstract class Call implements Expiring {
  readonly id = nuid.next();
  protected readonly started = Date.now();
  /** The one replica sent to, while it is the only one (most calls): `tried` without a set. */
  private triedFirst: string | undefined;
  private triedSet: Set<string> | undefined;
  /** Replicas that proved the call never reached them ("no responders", closing): only for messages. Made on the first. */
  private bounced: Set<string> | undefined;
  /** The copy out now while it is the only one (most calls): no set is made for it. */
  private onlyAttempt: Attempt | undefined;
  /** The copies out now, once there were two at once (a hedge). */
  private manyAttempts: Set<Attempt> | undefined;
  protected settled = false;
  /** The replica whose answer came first (its revision labels the call's metrics). */
  answeredBy: ReplicaInfo | undefined;
  private retries = 0;
  /** The caller's trace context (undefined: tracing off), the parent of every attempt's span. */
  private readonly traceCtx = callerContext();
  private sent = 0;
  private waiter: Waiter | undefined;
  private readonly request: Uint8Array;
  /** Listens to the caller's signal; made only for a call that has one. */
  private onAbort: (() => void) | undefined;
  // Its place in the router's deadline lists (deadlines.ts).
  dlDue = 0;
  dlPrev: Expiring | undefined = undefined;
  dlNext: Expiring | undefined = undefined;
  dlList: DeadlineList | undefined = undefined;

  constructor(
    protected readonly host: CallHost,
    payload: unknown,
    private readonly stream: boolean,
    protected readonly opts: ResolvedCallOptions,
  ) {
    const deadline = this.started + opts.timeoutMs;
    this.request = encode(stream ? { v: 1, id: this.id, deadline, stream, payload, window: STREAM_WINDOW } : { v: 1, id: this.id, deadline, stream, payload });
  }

  /** Replicas that may hold a copy (sent to, not bounced): never picked again for this call. Made once a retry, hedge or error needs it. */
  protected get tried(): Set<string> {
    if (!this.triedSet) {
      this.triedSet = new Set();
      if (this.triedFirst !== undefined) this.triedSet.add(this.triedFirst);
      this.triedFirst = undefined;
    }
    return this.triedSet;
  }

  start(): void {
    const signal = this.opts.signal;
    if (signal?.aborted) return this.cancelledByCaller();
    if (!this.host.link.up) return this.fail(this.unsent());
    const tooLarge = this.tooLarge();
    if (tooLarge) return this.fail(tooLarge);
    this.host.calls.add(this);
    this.host.deadlines.add(this, this.opts.timeoutMs, this.started + this.opts.timeoutMs); // the request's own deadline
    if (signal) {
      this.onAbort = () => this.cancelledByCaller();
      signal.addEventListener('abort', this.onAbort, { once: true });
    }
    this.launch();
  }

  /** Its deadline passed (deadlines.ts). */
  expire(): void {
    this.onDeadline();
  }

  private cancelledByCaller(): void {
    this.fail(new MusterError(ErrorCode.CANCELLED, `call ${this.id} to replica group "${this.host.group}" was cancelled by its caller`));
  }

  /** How many copies are out now. */
  protected get attemptsOut(): number {
    return this.manyAttempts ? this.manyAttempts.size : this.onlyAttempt ? 1 : 0;
  }

  /** The copies out now, as a list of their own (safe to end() while walking it). */
  protected attempts(): readonly Attempt[] {
    return this.manyAttempts ? [...this.manyAttempts] : this.onlyAttempt ? [this.onlyAttempt] : NONE;
  }

  /** Settles with an error (no-op once settled). */
  abstract fail(e: MusterError): void;

  /** A decoded answer for a live attempt. */
  protected abstract onBody(a: Attempt, body: Record<string, unknown>): void;

  /** Has part of the answer reached the caller already (a stream's chunks)? Then nothing is ever resent. */
  protected delivering(): boolean {
    return false;
  }

  /** May a lost attempt be sent again? (idempotent, and nothing was delivered yet) */
  protected canResend(): boolean {
    return this.opts.idempotent;
  }

  onMessage(a: Attempt, msg: Msg): void {
    if (a.ended || this.settled) return;
    if (isNoResponders(msg)) return this.neverReached(a, 'answered "no responders" (nobody subscribes to its subject)');
    this.onData(a, msg.data);
  }

  onData(a: Attempt, data: Uint8Array): void {
    if (a.ended || this.settled) return;
    let body: unknown;
    try {
      body = decode(data);
    } catch (e) {
      return this.undecodable(a, e);
    }
    this.onAnswer(a, body);
  }

  undecodable(a: Attempt, e: unknown): void {
    if (a.ended || this.settled) return;
    a.outcome = ErrorCode.INTERNAL;
    this.end(a, false);
    for (const other of this.attempts()) other.outcome ??= ErrorCode.CANCELLED; // not broken: cancelled, as this call fails
    this.fail(new MusterError(ErrorCode.INTERNAL, `replica ${a.replica.info.replicaId} sent an undecodable answer: ${(e as Error).message}`, { cause: e }));
  }

  onAnswer(a: Attempt, answer: unknown): void {
    if (a.ended || this.settled) return;
    const body = (typeof answer === 'object' && answer !== null ? answer : {}) as Record<string, unknown>;
    const code = (body.error as WireError | undefined)?.code;
    if (code === ErrorCode.UNAVAILABLE && !this.delivering()) return this.neverReached(a, 'was closing and did not start the call');
    if (code !== undefined) a.outcome = String(code);
    if (!this.answeredBy) {
      this.answeredBy = a.replica.info;
      try {
        this.opts.onReplica?.({ replicaId: a.replica.info.replicaId, revision: a.replica.info.revision, group: this.host.group });
      } catch {
        // the caller's hook: its failure is not the call's
      }
    }
    this.onBody(a, body);
  }

  onLost(a: Attempt, why = 'left the membership and has been silent for a while'): void {
    if (a.ended || this.settled) return;
    a.outcome = ErrorCode.REPLICA_LOST;
    this.end(a, false);
    this.host.counters.lost++;
    const err = this.lostError(a, why);
    if (this.canResend()) return this.retry(() => err);
    if (this.attemptsOut === 0) this.fail(err);
  }

  /**
   * The router's NATS connection dropped. Answers to copies in flight can no
   * longer arrive (nats.js drops what was published during the outage, at
   * both ends), so the call fails now rather than at its deadline. It is not
   * resent: a copy in flight may have run. Calls not sent yet fail too —
   * nothing waits on a connection that is down.
   */
  connectionLost(closed: boolean): void {
    if (this.settled) return;
    if (this.attemptsOut === 0) return this.fail(this.unsent());
    const on = this.attempts().map((a) => a.replica.info.replicaId);
    const what = closed ? 'was closed' : 'was lost';
    this.fail(
      new MusterError(
        ErrorCode.UNAVAILABLE,
        `call ${this.id} to replica group "${this.host.group}": the NATS connection ${what} while the call was in flight; it may have run on replica ${on.join(', ')}. Retry it if running it twice is safe`,
        { details: { group: this.host.group, replicaIds: on, mayHaveRun: true } },
      ),
    );
  }

  /** Sends a copy to the best free replica, or queues for one. */
  protected launch(): void {
    const exclude = this.triedSet ? (this.triedSet.size > 0 ? this.triedSet : undefined) : this.triedFirst !== undefined ? this.tried : undefined;
    const r = this.host.balancer.tryAcquire(exclude, this.opts);
    if (r) return this.send(r);
    if (this.waiter) return;
    try {
      this.waiter = this.host.balancer.enqueue(exclude, (granted) => {
        this.waiter = undefined;
        if (this.settled) this.host.balancer.release(granted);
        else this.send(granted);
      }, this.opts);
    } catch (e) {
      this.fail(e as MusterError);
    }
  }

  protected send(r: ReplicaState): void {
    if (!this.host.link.up) {
      // Published now, it would be dropped by nats.js on reconnect: the call would wait for its deadline.
      this.host.balancer.release(r);
      return this.fail(this.unsent());
    }
    if (!this.triedSet && this.triedFirst === undefined) this.triedFirst = r.info.replicaId;
    else this.tried.add(r.info.replicaId);
    const a = new Attempt(this, r);
    a.token = this.host.inbox.open(a);
    if (!this.onlyAttempt && !this.manyAttempts) this.onlyAttempt = a;
    else {
      this.manyAttempts ??= new Set(this.onlyAttempt ? [this.onlyAttempt] : []);
      this.onlyAttempt = undefined;
      this.manyAttempts.add(a);
    }
    r.attempts.add(a);
    this.sent++;
    if (this.traceCtx) a.trace = startAttemptSpan(this.traceCtx, { group: this.host.group, replicaId: r.info.replicaId, revision: r.info.revision, subject: r.info.subject, callId: this.id, stream: this.stream, attempt: this.sent });
    // A unary request to a replica that reads frames waits for the end of the turn (framer.ts); a traced one carries its context in its own headers.
    if (this.host.framer && r.frames && !this.stream && !a.trace) return this.host.framer.add(r, a, this.request);
    this.publish(a);
  }

  /** Sends attempt `a` as a request of its own, on its own reply subject. */
  publish(a: Attempt): void {
    if (a.ended) return;
    a.reply = this.host.inbox.subject(a.token);
    try {
      a.via = this.host.send(a.replica, this.request, a.reply, a.trace?.headers);
    } catch (e) {
      this.publishFailed(a, e);
    }
  }

  /** nats.js refused to send it (alone or in a frame). */
  publishFailed(a: Attempt, e: unknown): void {
    if (a.ended || this.settled) return;
    // Reconnected to a server with a lower max_payload since start(): say that, not "unavailable".
    const err = this.tooLarge() ?? new MusterError(ErrorCode.UNAVAILABLE, `cannot send call ${this.id} over NATS: ${(e as Error).message}`, { cause: e });
    a.outcome = err.code;
    this.end(a, false);
    this.fail(err);
  }

  /** RESOURCE_EXHAUSTED when the encoded request is over the connection's max_payload: no server would take it. */
  private tooLarge(): MusterError | undefined {
    const limit = maxPayloadOf(this.host.nats);
    if (limit === undefined || this.request.length <= limit) return undefined;
    return new MusterError(ErrorCode.RESOURCE_EXHAUSTED, `call ${this.id} to replica group "${this.host.group}" was not sent: ${tooLargeMessage('its request', this.request.length, limit)}. Send a smaller payload (or store large data elsewhere and send a reference)`, {
      details: { group: this.host.group, field: 'payload', bytes: this.request.length, limit, mayHaveRun: false },
    });
  }

  /** Stops listening to an attempt and frees its slot; `cancel` also tells the replica. */
  protected end(a: Attempt, cancel: boolean): void {
    if (a.ended) return;
    a.ended = true;
    if (a.trace) endSpan(a.trace.span, a.outcome ?? (cancel ? ErrorCode.CANCELLED : 'OK'));
    this.host.inbox.close(a.token);
    a.frame?.ended();
    if (this.onlyAttempt === a) this.onlyAttempt = undefined;
    else this.manyAttempts?.delete(a);
    a.replica.attempts.delete(a);
    this.host.balancer.release(a.replica);
    if (cancel) this.host.cancel(a.replica, this.id, this.started + this.opts.timeoutMs);
  }

  /**
   * Marks the call settled and releases everything; false if it already was. `failure`: the error
   * the call ends with, the outcome of each copy still open (a deadline, a lost connection); none:
   * they are cancelled (another copy answered, the consumer stopped).
   */
  protected settle(failure?: MusterError): boolean {
    if (this.settled) return false;
    this.settled = true;
    this.host.deadlines.remove(this);
    if (this.onAbort) this.opts.signal?.removeEventListener('abort', this.onAbort);
    if (this.waiter) this.host.balancer.dequeue(this.waiter);
    this.waiter = undefined;
    for (const a of this.attempts()) {
      if (failure && a.outcome === undefined) a.outcome = failure.code;
      this.end(a, true);
    }
    this.host.calls.delete(this);
    return true;
  }

  private neverReached(a: Attempt, why: string): void {
    a.outcome = ErrorCode.NO_REPLICAS;
    a.trace?.span.setAttribute('muster.never_reached', why);
    this.end(a, false);
    this.host.balancer.markUnreachable(a.replica);
    // Not a copy it may hold: once the replica is reachable again (it reports load) this call may go back to it.
    this.tried.delete(a.replica.info.replicaId);
    const bounced = (this.bounced ??= new Set());
    bounced.add(a.replica.info.replicaId);
    this.retry(() => {
      const tried = [...new Set([...bounced, ...this.tried])].join(', ');
      return new MusterError(ErrorCode.NO_REPLICAS, `call ${this.id} reached no replica of group "${this.host.group}" after ${this.retries + 1} attempt(s) (tried ${tried}); the last ${why}. The membership is probably stale: replicas are leaving or restarting`, { details: { group: this.host.group, tried } });
    });
  }

  /** Sends the request again elsewhere, unless another copy is still out or the budget is spent. */
  private retry(exhausted: () => MusterError): void {
    if (this.attemptsOut > 0) return; // a hedged copy may still answer
    if (this.retries >= this.host.maxRetries) return this.fail(exhausted());
    this.retries++;
    this.host.counters.retries++;
    // The first retry goes to another replica at once; later ones back off a little (1, 2, 4 … ≤ 50 ms).
    if (this.retries === 1) return this.launch();
    setTimeout(() => this.settled || this.launch(), Math.min(2 ** (this.retries - 2), 50));
  }

  private onDeadline(): void {
    if (this.settled) return;
    if (this.waiter) return this.fail(this.host.balancer.waitError(this.tried.size ? this.tried : undefined, Date.now() - this.started));
    const gone = this.attempts().find((a) => !a.replica.live);
    if (gone) return this.fail(this.lostError(gone, `left the membership before answering (deadline ${this.opts.timeoutMs} ms)`));
    const on = this.attempts().map((a) => a.replica.info.replicaId).join(', ') || 'none';
    this.fail(new MusterError(ErrorCode.DEADLINE_EXCEEDED, `call ${this.id} to replica group "${this.host.group}" got no answer within ${this.opts.timeoutMs} ms (replica(s): ${on})`, { details: { group: this.host.group, timeoutMs: this.opts.timeoutMs } }));
  }

  /** Not sent: the connection is down (or closed). Retryable as is: no replica has seen it. */
  private unsent(): MusterError {
    return new MusterError(ErrorCode.UNAVAILABLE, `call ${this.id} to replica group "${this.host.group}" was not sent: ${this.host.link.why ?? 'not connected to NATS'}. Retry it shortly`, {
      details: { group: this.host.group, mayHaveRun: false },
    });
  }

  private lostError(a: Attempt, why: string): MusterError {
    const id = a.replica.info.replicaId;
    return new MusterError(ErrorCode.REPLICA_LOST, `replica ${id} of group "${this.host.group}" ${why}; call ${this.id} may or may not have run there${this.opts.idempotent ? '' : ' (mark it idempotent to have it retried)'}`, { details: { group: this.host.group, replicaId: id } });
  }
}
