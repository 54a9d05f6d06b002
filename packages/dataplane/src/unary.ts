/**
 * A request/response call (the router's `call()`): one answer settles it.
 * With hedgeAfterMs, a second copy goes to another replica after that delay,
 * only to one free right now. What each attempt's outcome does: call.ts.
 *
 * Its outcome is counted (metrics.ts) where it settles, not in a `.then` of
 * its promise: no promise and reactions per call for the metrics
 * (docs/dataplane.md, "What one call costs").
 */
import type { MusterError } from '@muster/common';
import { Call, type Attempt, type CallHost, type ResolvedCallOptions } from './call.js';
import { OK, recordRouterCall } from './metrics.js';
import type { WireError } from './types.js';
import { errorFromWire } from './wire.js';

export class UnaryCall extends Call {
  readonly result: Promise<unknown>;
  private resolve!: (v: unknown) => void;
  private reject!: (e: unknown) => void;
  private hedgeTimer: NodeJS.Timeout | undefined;
  /** performance.now() at creation: the latency metric's start. */
  private readonly t0 = performance.now();

  constructor(host: CallHost, payload: unknown, opts: ResolvedCallOptions) {
    super(host, payload, false, opts);
    this.result = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  override start(): void {
    super.start();
    if (this.opts.hedgeAfterMs !== undefined && !this.settled) this.hedgeTimer = setTimeout(() => this.hedge(), this.opts.hedgeAfterMs);
  }

  fail(e: MusterError): void {
    if (!this.settle(e)) return;
    if (this.hedgeTimer) clearTimeout(this.hedgeTimer);
    this.counted(e.code);
    this.reject(e);
  }

  protected onBody(a: Attempt, body: Record<string, unknown>): void {
    this.end(a, false);
    if (!this.settle()) return;
    if (this.hedgeTimer) clearTimeout(this.hedgeTimer);
    if (body.ok === true) {
      this.counted(OK);
      this.resolve(body.result);
    } else {
      const e = errorFromWire(body.error as WireError | undefined, a.replica.info.replicaId);
      this.counted(e.code);
      this.reject(e);
    }
  }

  private counted(code: string): void {
    recordRouterCall(this.host.group, this.answeredBy?.revision ?? '', code, this.t0);
  }

  /** Only to a replica free right now: a hedge must never wait behind the queue it tries to beat. */
  private hedge(): void {
    if (this.settled || this.attemptsOut !== 1) return;
    const r = this.host.balancer.tryAcquire(this.tried, this.opts);
    if (!r) return;
    this.host.counters.hedges++;
    this.send(r);
  }
}
