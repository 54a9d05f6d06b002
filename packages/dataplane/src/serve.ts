/**
 * serve(): the replica side of the data plane, for shards written in TS.
 *
 *   import { serve } from '@muster/sdk';   // or '@muster/dataplane'
 *   const server = await serve({ unary: async (req) => model.run(req) });
 *   process.on('SIGTERM', () => server.drain().then(() => process.exit(0)));
 *
 * One subscription on the replica's own subject (queue group "muster"), a
 * concurrency limit with a FIFO queue behind it, deadlines checked before a
 * handler starts and signalled (ctx.signal) while it runs, and a load report
 * every second that routers (and the head's autoscaler) read.
 *
 * Why drain() unsubscribes before waiting: once the NATS server has dropped
 * the subscription, a request that still picks this replica is answered
 * "no responders" by NATS itself, and the router sends it elsewhere. NATS'
 * subscription drain also hands over what was already on the wire, so no
 * request is lost between "removed from membership" and "stopped".
 *
 * Unary requests may also come several to a message, in a request frame
 * (frames.ts; its load reports say it reads them): each is served as if it
 * came alone, and their answers go back in answer frames (answers.ts).
 *
 * An answer larger than the connection's max_payload (NATS would refuse it,
 * and the caller would wait for its deadline) is replaced by a small
 * MUSTER_RESOURCE_EXHAUSTED error naming both sizes; a stream ends with it
 * and its handler is stopped.
 *
 * The direct path (direct-listener.ts): with an address to listen at
 * (MUSTER_DATA_ADDR, or `direct`), callers' routers also bring requests on
 * TLS links of their own, set up by a hello on the replica's subject; a
 * request is answered where it came from (its job's `out`).
 *
 * NATS outages need nothing from the handlers: nats.js reconnects and
 * restores the subscription by itself, and the server reports its load at
 * once when the connection is back — that first report is what tells routers
 * it is reachable again. Handlers running during the outage go on; answers
 * published while disconnected are lost (their callers have already failed
 * with MUSTER_UNAVAILABLE, and their routers send a cancel after that report).
 */
import { randomBytes } from 'node:crypto';
import { decode, encode, endSpan, ErrorCode, isMusterError, MusterError, otelContext, tracingOn, type NatsConnection } from '@muster/common';
import type { Msg, Subscription } from '@nats-io/transport-node';
import { customMetricsOf, loadSubject, QUEUE_GROUP } from '@muster/contracts';
import { Answers, type AnswerFrame } from './answers.js';
import { Batcher, type BatchOutcome } from './batch.js';
import { CallAbort, HandlerContext } from './call-abort.js';
import { Link } from './connection.js';
import { listenForLinks, type DirectHost, type DirectListener, type Outlet } from './direct-listener.js';
import { helloOf } from './direct-wire.js';
import { decodeItem, FRAME_VERSION, frameItems } from './frames.js';
import { OK, recordReplicaBatch, recordReplicaRequest, trackReplica } from './metrics.js';
import { replicaConnection, serveConfig, type ServeConfig, type ServeHandlers, type ServeOptions, type Server } from './serve-options.js';
import { startServeSpan } from './tracing.js';
import type { RequestContext, WireCancel, WireChunk, WireCredit, WireLoad, WireReply, WireRequest } from './types.js';
import { answerWarmups, batchOfOne } from './warmup.js';
import { wireError } from './wire.js';

export type { ServeHandlers, ServeOptions, Server } from './serve-options.js';

export async function serve(handlers: ServeHandlers, opts: ServeOptions = {}): Promise<Server> {
  const cfg = serveConfig(handlers, opts);
  const nc = opts.nats ?? (await replicaConnection(opts.env ?? process.env, cfg));
  const server = new ReplicaServer(nc, !opts.nats, handlers, cfg);
  if (cfg.direct) {
    try {
      server.direct = await listenForLinks(nc, server, cfg.direct, cfg.replicaId);
    } catch (e) {
      await server.close();
      throw e;
    }
  }
  await nc.flush(); // the subscription is live at the NATS server before we say we serve
  // The agent's warm-up calls (warmup.ts); a batching replica's go to its batch handler, a batch of one.
  server.stopWarmups = answerWarmups({ unary: handlers.unary ?? (cfg.batch && batchOfOne(cfg.batch.options.handler)), stream: handlers.stream }, opts.env === undefined);
  return server;
}

interface Job {
  id: string;
  deadline: number;
  stream: boolean;
  payload: unknown;
  reply: string;
  /** Where its answer goes: NATS, or the direct link it came on (direct-listener.ts). */
  out: Outlet;
  /** It came in a request frame (frames.ts): its answer goes in an answer frame, under its token. */
  frame: AnswerFrame | undefined;
  token: number;
  /** performance.now() at arrival; the outcome's code once known (metrics.ts). */
  arrived: number;
  code: string;
  /** Set once started (call-abort.ts: its AbortController only made if the handler reads ctx.signal). */
  abort?: CallAbort;
  /** The caller cancelled it (a WireCancel), as against the replica closing. */
  cancelled?: boolean;
  /** Streams with flow control: chunks sent past `credit` at most (the caller's WireCredit). */
  window?: number;
  credit: number;
  onCredit?: () => void;
  /** Its span and the context the handler runs in, when traced (tracing.ts). */
  trace: ReturnType<typeof startServeSpan>;
}

class ReplicaServer implements Server, DirectHost {
  private running = 0;
  private readonly waiting: Job[] = [];
  /** Started and waiting jobs by request id, for cancels. */
  private readonly jobs = new Map<string, Job>();
  private readonly sub: Subscription;
  private readonly loadTimer: NodeJS.Timeout;
  /** This process's incarnation in load reports (LoadReport.incarnation). */
  private readonly incarnation = randomBytes(8).toString('hex');
  private readonly link: Link;
  private state: 'serving' | 'draining' | 'closed' = 'serving';
  private idleWaiters: (() => void)[] = [];
  readonly subject: string;
  readonly group: string;
  readonly replicaId: string;
  private readonly revision: string;
  private readonly untrack: () => void;
  /** Unary calls go here when the replica batches them. */
  private readonly batcher: Batcher<Job> | undefined;
  /** Stops answering the agent's warm-up calls (warmup.ts); drain and close call it. */
  stopWarmups: () => void = () => undefined;
  private readonly answers: Answers;
  /** The direct path's listener (direct-listener.ts), when this replica offers one. */
  direct: DirectListener | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly ownsConnection: boolean,
    private readonly handlers: ServeHandlers,
    private readonly cfg: ServeConfig,
  ) {
    this.subject = cfg.subject;
    this.group = cfg.group;
    this.replicaId = cfg.replicaId;
    this.revision = cfg.revision;
    this.answers = new Answers(nc, cfg.replicaId);
    this.batcher = cfg.batch && new Batcher<Job>({
      ...cfg.batch,
      where: `replica ${cfg.replicaId} of group ${cfg.group}`,
      settle: (job, out) => this.answerBatched(job, out),
      dispatched: (size, waitedMs) => recordReplicaBatch(cfg.group, cfg.revision, size, waitedMs),
      idle: () => this.checkIdle(),
    });
    this.untrack = trackReplica({ group: cfg.group, revision: cfg.revision, inFlight: () => this.inFlight, queued: () => this.queued, directLinks: () => this.direct?.links ?? 0 });
    this.sub = nc.subscribe(cfg.subject, { queue: QUEUE_GROUP, callback: (err, msg) => {
      if (!err) this.onMessage(msg);
    } });
    this.loadTimer = setInterval(() => this.report(), cfg.loadIntervalMs);
    this.loadTimer.unref();
    // Back after an outage: say so now rather than at the next tick (routers wait for it, see balancer.ts).
    this.link = new Link(nc, {
      up: () => {
        if (this.state !== 'closed') this.report();
      },
    });
    this.report();
  }

  get inFlight(): number {
    return this.running + (this.batcher?.running ?? 0);
  }

  get queued(): number {
    return this.waiting.length + (this.batcher?.queued ?? 0);
  }

  get serving(): boolean {
    return this.state === 'serving';
  }

  /** A message on the replica's subject; `out` is where its answers go (NATS, or the link it came on). */
  onMessage(msg: Msg, out: Outlet = this.nc): void {
    let req: Partial<WireRequest & WireCancel & WireCredit> | undefined;
    try {
      req = decode(msg.data);
    } catch {
      req = undefined;
    }
    if (req?.cancel === true) return this.cancel(String(req.id));
    if (typeof req?.credit === 'number') return this.credit(String(req.id), req.credit);
    if (!msg.reply) return; // nobody to answer: not a data-plane request
    if (typeof req === 'object' && req !== null && 'frame' in req) return this.onFrame(req, msg, msg.reply, out);
    const hello = out === this.nc ? helloOf(req) : undefined;
    if (hello) return this.onHello(hello, msg.reply);
    this.onRequest(req, msg, msg.reply, out, undefined, 0);
  }

  /** A caller asks for the direct path (direct-wire.ts): where to connect, or why not. */
  private onHello(hello: NonNullable<ReturnType<typeof helloOf>>, reply: string): void {
    const answer = this.direct?.hello(hello) ?? 'it offers no direct path';
    if (typeof answer !== 'string') return void this.answers.publish(reply, answer);
    this.answers.publish(reply, { v: 1, ok: false, error: wireError(ErrorCode.UNAVAILABLE, `replica ${this.replicaId}: no direct link: ${answer}`) });
  }

  /** A request frame (frames.ts): each of its calls as if it came alone, answered in an answer frame. */
  private onFrame(body: unknown, msg: Msg, reply: string, out: Outlet): void {
    const got = frameItems(body);
    if (typeof got !== 'object') {
      // Answered as a whole: the router hands this error to each call of the frame.
      this.answers.publish(reply, { v: 1, ok: false, error: wireError(ErrorCode.INVALID_ARGUMENT, `replica ${this.replicaId}: a request frame that is not one: ${got ?? 'no frame'}`) }, undefined, out);
      return;
    }
    const frame = this.answers.openFrame(reply, out);
    for (const [token, bytes] of got.items) this.onRequest(decodeItem(bytes) as Partial<WireRequest> | undefined, msg, reply, out, frame, token);
  }

  private onRequest(req: Partial<WireRequest> | undefined, msg: Msg, reply: string, out: Outlet, frame: AnswerFrame | undefined, token: number): void {
    if (req?.v !== 1 || typeof req.id !== 'string' || typeof req.deadline !== 'number' || (frame && req.stream === true)) {
      const why = req?.v === 1 && frame ? 'a stream request cannot come in a request frame' : 'not a v1 data-plane request';
      const error: WireReply = { v: 1, ok: false, error: wireError(ErrorCode.INVALID_ARGUMENT, `replica ${this.replicaId}: ${why}`) };
      if (frame) this.answers.add(frame, token, encode(error));
      else this.answers.publish(reply, error, undefined, out);
      return;
    }
    const window = Number.isInteger(req.window) && req.window! > 0 ? req.window : undefined;
    // Off (no tracer provider), one check: no span, no headers read.
    const trace = tracingOn() ? startServeSpan(msg, { group: this.group, replicaId: this.replicaId, revision: this.revision, subject: this.subject, callId: req.id, stream: req.stream === true }) : undefined;
    const job: Job = { id: req.id, deadline: req.deadline, stream: req.stream === true, payload: req.payload, reply, out, frame, token, arrived: performance.now(), code: OK, credit: 0, trace };
    if (window) job.window = window;
    if (!(job.stream ? this.handlers.stream : this.handlers.unary ?? this.batcher)) {
      return this.fail(job, ErrorCode.INVALID_ARGUMENT, `replica ${this.replicaId} of group ${this.group} serves no ${job.stream ? 'stream' : 'unary'} handler`);
    }
    if (this.state === 'closed') return this.fail(job, ErrorCode.UNAVAILABLE, `replica ${this.replicaId} is closed; the call never started`);
    const late = Date.now() - job.deadline;
    if (late >= 0) return this.fail(job, ErrorCode.DEADLINE_EXCEEDED, `call ${job.id} reached replica ${this.replicaId} ${late} ms after its deadline; not started`);
    if (this.batcher && !job.stream) {
      if (!this.batcher.add(job)) this.fail(job, ErrorCode.BACKPRESSURE, `replica ${this.replicaId} of group ${this.group} already holds ${this.cfg.batch!.capacity} calls for its batch handler (queued or running; serve()'s maxConcurrent). Slow down and retry with backoff, or scale the group up`);
      return;
    }
    if (this.running >= this.cfg.maxConcurrent && this.waiting.length >= this.cfg.maxQueued) {
      return this.fail(job, ErrorCode.BACKPRESSURE, `replica ${this.replicaId} of group ${this.group} runs ${this.running} calls and has ${this.waiting.length} waiting (serve()'s maxQueued); the call never started. Slow down and retry with backoff, or scale the group up`);
    }
    this.jobs.set(job.id, job);
    if (this.running >= this.cfg.maxConcurrent) this.waiting.push(job);
    else if (this.start(job)) this.finish(job);
  }

  /**
   * Runs a job's handler. True when it has finished already (a unary handler
   * that returned a value or threw: no promise made for it), and the caller
   * must finish() it; else its promise finishes it.
   */
  private start(job: Job): boolean {
    this.running++;
    const abort = new CallAbort(job.id, job.deadline);
    job.abort = abort;
    const ctx = new HandlerContext(job.id, job.deadline, abort);
    // Traced: the handler runs under the request's span (the HTTP bridge passes it on to the shard).
    const running = job.trace ? otelContext.with(job.trace.ctx, () => this.run(job, ctx)) : this.run(job, ctx);
    if (!running) return true;
    void running.then(() => this.finish(job));
    return false;
  }

  private run(job: Job, ctx: RequestContext): Promise<void> | undefined {
    return job.stream ? this.runStream(job, ctx, job.abort!) : this.runUnary(job, ctx, job.abort!);
  }

  /** Undefined when the handler ended synchronously (answered already); else the promise of its answer. */
  private runUnary(job: Job, ctx: RequestContext, abort: CallAbort): Promise<void> | undefined {
    let result: unknown;
    let later: boolean;
    try {
      result = this.handlers.unary!(job.payload, ctx);
      later = isThenable(result); // inside the try: a `then` getter may throw too
    } catch (e) {
      return this.answerUnary(job, abort, thrown(job, e));
    }
    // A plain value (a sync handler) is answered now; a promise (or any thenable) when it settles.
    if (!later) return this.answerUnary(job, abort, { v: 1, ok: true, result });
    return Promise.resolve(result).then(
      (value) => void this.answerUnary(job, abort, { v: 1, ok: true, result: value }),
      (e: unknown) => void this.answerUnary(job, abort, thrown(job, e)),
    );
  }

  /** A unary handler's answer, sent unless the call lapsed past its deadline. */
  private answerUnary(job: Job, abort: CallAbort, out: WireReply): undefined {
    // Aborted (cancelled, closing, past the deadline): that is the call's
    // recorded code, whatever the handler returned.
    if (abort.lapsed()) job.code = abortCode(abort);
    // Past its deadline the answer is not sent: it could reach the caller just
    // before the caller's own deadline timer fires and turn a timed-out call into
    // a success. (Answers to a cancel or a closing replica still go out.)
    if (job.code === ErrorCode.DEADLINE_EXCEEDED) return;
    if (!this.answers.answer(job, out) && job.code === OK) job.code = ErrorCode.RESOURCE_EXHAUSTED;
    return undefined;
  }

  private async runStream(job: Job, ctx: RequestContext, abort: CallAbort): Promise<void> {
    let seq = 0;
    try {
      for await (const data of this.handlers.stream!(job.payload, ctx)) {
        // Flow control: the handler is not pulled again until the caller has room for this chunk.
        if (job.window !== undefined && seq >= job.credit + job.window) await this.creditFor(job, seq, abort.signal);
        if (abort.lapsed()) return this.endAborted(job, seq, abort);
        // Not sent as it was (too large, not encodable): an error chunk ended the stream; leaving the loop stops the handler.
        if (!this.answers.publish(job.reply, { v: 1, seq: seq++, data } satisfies WireChunk, job.id, job.out)) return void (job.code = ErrorCode.RESOURCE_EXHAUSTED);
      }
      if (abort.lapsed()) return this.endAborted(job, seq, abort);
      this.answers.publish(job.reply, { v: 1, seq, end: true } satisfies WireChunk, job.id, job.out);
    } catch (e) {
      // Cancelled by its caller or past the deadline (the handler's fetch or I/O aborted with it):
      // nothing is sent, the caller has stopped listening (its own deadline says DEADLINE_EXCEEDED).
      // Aborted because the replica is closing, the caller still waits: it gets the error chunk.
      if (abort.lapsed() && callerGone(job, abort)) return void (job.code = abortCode(abort));
      job.code = ErrorCode.APPLICATION;
      this.answers.publish(job.reply, { v: 1, seq, error: wireError(ErrorCode.APPLICATION, messageOf(e)) } satisfies WireChunk, job.id, job.out);
    }
  }

  /**
   * A stream whose signal fired without its handler throwing. Cancelled by its
   * caller or past its deadline: nothing is sent, the caller has stopped
   * listening. Aborted because this replica is closing: the caller still
   * waits, so it is told at once (else it would wait for replica-lost).
   */
  private endAborted(job: Job, seq: number, abort: CallAbort): void {
    job.code = abortCode(abort);
    if (callerGone(job, abort)) return;
    job.code = ErrorCode.UNAVAILABLE;
    this.answers.publish(job.reply, { v: 1, seq, error: wireError(ErrorCode.UNAVAILABLE, `replica ${this.replicaId} is closing; stream call ${job.id} ended after ${seq} chunks`) } satisfies WireChunk, job.id, job.out);
  }

  /** A job's handler ended: counted, its slot freed and handed to the jobs waiting (in a loop: a handler that ends synchronously does not recurse). */
  private finish(job: Job): void {
    this.ended(job);
    while (this.running < this.cfg.maxConcurrent && this.waiting.length > 0) {
      const next = this.waiting.shift()!;
      const late = Date.now() - next.deadline;
      if (late < 0) {
        if (this.start(next)) this.ended(next);
        continue;
      }
      this.jobs.delete(next.id);
      this.fail(next, ErrorCode.DEADLINE_EXCEEDED, `call ${next.id} waited in replica ${this.replicaId}'s queue past its deadline; not started`);
    }
    this.checkIdle();
  }

  private ended(job: Job): void {
    recordReplicaRequest(this.group, this.revision, job.code, job.arrived);
    endSpan(job.trace?.span, job.code);
    job.abort?.dispose();
    this.jobs.delete(job.id);
    this.running--;
  }

  /** The caller took chunks seq < `credit` of stream `id`. */
  private credit(id: string, credit: number): void {
    const job = this.jobs.get(id);
    if (!job || !(credit > job.credit)) return;
    job.credit = credit;
    job.onCredit?.();
  }

  /** Waits until the caller's credit lets chunk `seq` go, or the call ends. */
  private async creditFor(job: Job, seq: number, signal: AbortSignal): Promise<void> {
    while (seq >= job.credit + job.window! && !signal.aborted) {
      await new Promise<void>((resolve) => {
        const done = () => {
          signal.removeEventListener('abort', done);
          resolve();
        };
        job.onCredit = done;
        signal.addEventListener('abort', done, { once: true });
      });
      job.onCredit = undefined;
    }
  }

  /** A batched call's one outcome (batch.ts), published unless its caller stopped listening. */
  private answerBatched(job: Job, out: BatchOutcome): void {
    const sent = (out.ok || out.send) && this.answers.answer(job, out.ok ? { v: 1, ok: true, result: out.result } : { v: 1, ok: false, error: wireError(out.code, out.message) });
    const code = !out.ok ? out.code : sent ? OK : ErrorCode.RESOURCE_EXHAUSTED;
    recordReplicaRequest(this.group, this.revision, code, job.arrived);
    endSpan(job.trace?.span, code);
  }

  /** Best effort: a queued request is dropped, a running one sees ctx.signal abort. */
  private cancel(id: string): void {
    if (this.batcher?.cancel(id)) return;
    const job = this.jobs.get(id);
    if (!job) return;
    if (job.abort) {
      job.cancelled = true;
      job.abort.abort(new MusterError(ErrorCode.CANCELLED, `call ${id} was cancelled by its caller`));
      return;
    }
    this.jobs.delete(id);
    this.waiting.splice(this.waiting.indexOf(job), 1);
    recordReplicaRequest(this.group, this.revision, ErrorCode.CANCELLED, job.arrived);
    endSpan(job.trace?.span, ErrorCode.CANCELLED);
    this.checkIdle();
  }

  /** Answers a request that never ran (counted with its code: it was a request all the same). */
  private fail(job: Job, code: ErrorCode, message: string): void {
    recordReplicaRequest(this.group, this.revision, code, job.arrived);
    endSpan(job.trace?.span, code, message);
    // A stream's caller reads chunks, a unary caller a reply; both read `error`.
    this.answers.answer(job, job.stream ? { v: 1, seq: 0, error: wireError(code, message) } : { v: 1, ok: false, error: wireError(code, message) });
  }

  private report(): void {
    const load: WireLoad = { v: 1, replicaId: this.replicaId, inFlight: this.inFlight, queued: this.queued, timeMs: Date.now(), draining: this.state !== 'serving', incarnation: this.incarnation, frames: FRAME_VERSION };
    const engine = this.cfg.engineLoad?.();
    if (engine) load.engine = engine;
    const custom = customOf(this.cfg.customMetrics);
    if (custom) load.custom = custom;
    this.answers.publish(loadSubject(this.cfg.prefix, this.group), load);
  }

  private checkIdle(): void {
    if (this.inFlight > 0 || this.queued > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  async drain(): Promise<void> {
    this.stopWarmups();
    if (this.state === 'serving') {
      this.state = 'draining';
      this.direct?.goAway(); // callers send new calls on NATS, where the drained subscription bounces them elsewhere
      await this.sub.drain().catch(() => undefined); // closed connection: nothing more can arrive anyway
      this.batcher?.flush(); // nothing more will join a batch: don't wait out the delay
    }
    if (this.inFlight > 0 || this.queued > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.report(); // routers see it idle at once
    this.answers.flush();
    // Answers published so far may still sit in the client's buffer (over TLS,
    // behind the socket's encryption): a process that exits right after drain()
    // would lose them, and their callers would wait for their deadline.
    await this.nc.flush().catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.stopWarmups();
    clearInterval(this.loadTimer);
    this.untrack();
    this.link.stop();
    if (!this.sub.isClosed()) this.sub.unsubscribe();
    for (const job of this.waiting.splice(0)) {
      this.jobs.delete(job.id);
      this.fail(job, ErrorCode.UNAVAILABLE, `replica ${this.replicaId} closed before starting call ${job.id}`);
    }
    for (const job of this.jobs.values()) job.abort?.abort(new MusterError(ErrorCode.CANCELLED, `replica ${this.replicaId} is closing`));
    this.batcher?.close();
    this.checkIdle();
    this.answers.flush(); // before the connection drains: it takes no publish after that
    await this.direct?.close(); // what was written to the links goes first
    if (this.ownsConnection) await this.nc.drain().catch(() => undefined);
    else await this.nc.flush().catch(() => undefined);
  }
}

/** Why a running handler's signal fired: DEADLINE_EXCEEDED, else CANCELLED (by its caller or a closing replica). */
function abortCode(signal: { reason: unknown }): string {
  return isMusterError(signal.reason) && signal.reason.code === ErrorCode.DEADLINE_EXCEEDED ? ErrorCode.DEADLINE_EXCEEDED : ErrorCode.CANCELLED;
}

/** Whether an aborted call's caller has stopped listening (it cancelled, or its deadline passed), as against a closing replica. */
function callerGone(job: Job, signal: { reason: unknown }): boolean {
  return job.cancelled === true || abortCode(signal) === ErrorCode.DEADLINE_EXCEEDED;
}

/** The gauges a report may carry (contracts' customMetricsOf); a callback that throws costs only them. */
function customOf(read: (() => Record<string, number> | undefined) | undefined): Record<string, number> | undefined {
  try {
    return read ? customMetricsOf(read()) : undefined;
  } catch {
    return undefined;
  }
}

/** The answer to a handler that threw or rejected: APPLICATION, with its message (and the job's code). */
function thrown(job: Job, e: unknown): WireReply {
  job.code = ErrorCode.APPLICATION;
  return { v: 1, ok: false, error: wireError(ErrorCode.APPLICATION, messageOf(e)) };
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return ((typeof v === 'object' && v !== null) || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function';
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
