/**
 * Placement group waits multiplexed over one WaitPlacementGroups stream to
 * the head, so `ready()` on many groups costs a message each instead of a
 * call each (a unary call costs both sides several times a stream message).
 * Waits are asked with `batchedAnswers`: the head answers the waits that
 * settle together in one reply (`more`), and a head that does not know the
 * field answers each in a reply of its own; both read the same here.
 *
 * The stream is opened by the first wait and half-closed once no wait has
 * been pending for IDLE_CLOSE_MS: an open stream keeps the process alive.
 * Whatever breaks it (a failover, a restarted head, a head too old to know
 * the method, a head that takes a wait and never answers) settles its
 * pending waits with `undefined`, and the caller waits by unary call instead:
 * that path finds the leader and retries. The next wait opens a new stream
 * at the head calls go to then.
 */
import { status, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { errorFromReply } from '@muster/common';
import type { PlacementGroupServiceClient, WaitPlacementGroupsReply, WaitPlacementGroupsRequest } from '@muster/proto';
import type * as wire from '@muster/proto';
import type { HeadService } from './rpc.js';

/** How long an unused stream stays open for the next wait. */
const IDLE_CLOSE_MS = 500;
/** How long past a wait's own time its answer may take before the stream is given up on. */
const ANSWER_SLACK_MS = 10_000;

interface Pending {
  resolve(pg: wire.PlacementGroup | undefined): void;
  reject(e: unknown): void;
  timer: NodeJS.Timeout;
}

export class PlacementGroupWaits {
  private stream: ClientDuplexStream<WaitPlacementGroupsRequest, WaitPlacementGroupsReply> | undefined;
  private readonly pending = new Map<number, Pending>();
  private lastTag = 0;
  private idle: NodeJS.Timeout | undefined;
  /** The head does not serve the stream (an older version): unary waits only. */
  private unsupported = false;
  private closed = false;

  constructor(private readonly head: HeadService<PlacementGroupServiceClient>) {}

  /**
   * The group's record once it settles or `timeoutMs` passes (as the unary
   * wait answers); `undefined` when the stream could not answer. Rejects
   * with the head's refusal (an unknown group).
   */
  wait(id: string, timeoutMs: number): Promise<wire.PlacementGroup | undefined> {
    if (this.unsupported || this.closed) return Promise.resolve(undefined);
    const stream = this.stream ?? this.open();
    clearTimeout(this.idle);
    this.lastTag = (this.lastTag + 1) >>> 0;
    const tag = this.lastTag;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.giveUp(), timeoutMs + ANSWER_SLACK_MS);
      this.pending.set(tag, { resolve, reject, timer });
      stream.write({ tag, id, timeoutMs, batchedAnswers: true });
    });
  }

  /** Ends the stream; pending waits go on by unary call (which fail once the client is closed). */
  close(): void {
    this.closed = true;
    this.stream?.cancel();
    this.broken();
  }

  private open(): ClientDuplexStream<WaitPlacementGroupsRequest, WaitPlacementGroupsReply> {
    const stream = this.head.current().waitPlacementGroups(this.head.metadata);
    this.stream = stream;
    stream.on('data', (reply: WaitPlacementGroupsReply) => this.answer(reply));
    stream.on('error', (e: ServiceError) => {
      if (e.code === status.UNIMPLEMENTED) this.unsupported = true;
      if (this.stream === stream) this.broken();
    });
    stream.on('end', () => {
      if (this.stream === stream) this.broken();
    });
    return stream;
  }

  /** A reply: its own answer, and those of the waits it carries in `more` (asked with batchedAnswers). */
  private answer(reply: WaitPlacementGroupsReply): void {
    this.settle(reply);
    for (const m of reply.more) this.settle(m);
    if (this.pending.size === 0 && this.stream) {
      clearTimeout(this.idle);
      this.idle = setTimeout(() => this.endIdle(), IDLE_CLOSE_MS);
      this.idle.unref();
    }
  }

  private settle(reply: WaitPlacementGroupsReply): void {
    const p = this.pending.get(reply.tag);
    if (!p) return;
    this.pending.delete(reply.tag);
    clearTimeout(p.timer);
    if (reply.errorCode === '') p.resolve(reply.group);
    else {
      const err = errorFromReply(reply.errorCode, reply.errorMessage);
      // A retryable refusal is the unary path's to retry.
      if (err.retryable) p.resolve(undefined);
      else p.reject(err);
    }
  }

  private endIdle(): void {
    if (this.pending.size > 0 || !this.stream) return;
    const stream = this.stream;
    this.stream = undefined;
    stream.end();
  }

  /** A head that took a wait but did not answer in time: drop the stream, its waits go on by call. */
  private giveUp(): void {
    const stream = this.stream;
    this.broken();
    stream?.cancel();
  }

  /** The stream is gone: its pending waits settle with `undefined`. */
  private broken(): void {
    this.stream = undefined;
    clearTimeout(this.idle);
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) {
      clearTimeout(p.timer);
      p.resolve(undefined);
    }
  }
}
