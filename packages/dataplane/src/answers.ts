/**
 * How a replica's messages leave it (serve.ts): an answer alone on its call's
 * reply subject, or, for a call that came in a request frame, in an answer
 * frame (frames.ts has the why and the wire); load reports alone.
 *
 * An answer that cannot be encoded, or is over the connection's max_payload
 * (NATS would refuse it, and the caller would wait for its deadline), is
 * replaced by a small error in its place — the reply, or the chunk's seq —
 * naming why, so the caller fails at once with the reason.
 *
 * Answer frames: answers to calls of one request frame made in one turn go
 * as one message to that frame's reply subject, cut at the end of the turn (a
 * microtask) or when full. A handler that answers later (a promise) has its
 * answer sent in a later answer frame to the same subject; the router listens
 * until every call of the frame has its answer or stopped waiting.
 */
import { encode, ErrorCode, type NatsConnection } from '@muster/common';
import type { Outlet } from './direct-listener.js';
import type { HelloAnswer } from './direct-wire.js';
import { encodeFrame, FRAME_OVERHEAD, frameBytesLimit, ITEM_OVERHEAD, MAX_FRAME_ITEMS, type FrameItem } from './frames.js';
import type { WireChunk, WireError, WireLoad, WireReply } from './types.js';
import { maxPayloadOf, tooLargeMessage, wireError } from './wire.js';

/** The answers of one request frame not sent yet. */
export interface AnswerFrame {
  readonly subject: string;
  /** Where it goes: NATS, or the direct link its request frame came on. */
  readonly out: Outlet;
  items: FrameItem[];
  bytes: number;
}

/** Where a call's answer goes: its reply subject, or its frame under its token. */
export interface AnswerTo {
  readonly id: string;
  readonly reply: string;
  readonly out: Outlet;
  readonly frame: AnswerFrame | undefined;
  readonly token: number;
}

export class Answers {
  private readonly pending: AnswerFrame[] = [];
  private scheduled = false;
  private readonly flushAll = (): void => this.flush();

  constructor(
    private readonly nc: NatsConnection,
    private readonly replicaId: string,
  ) {}

  /** A call's answer (or a stream's chunk); false when it did not go out as given. */
  answer(to: AnswerTo, value: WireReply | WireChunk): boolean {
    if (!to.frame) return this.publish(to.reply, value, to.id, to.out);
    const { bytes, asGiven } = this.encoded(value, to.id, FRAME_OVERHEAD + ITEM_OVERHEAD);
    this.add(to.frame, to.token, bytes);
    return asGiven;
  }

  /** Publishes one message alone (an answer when `callId` is given, else a load report, a hello's answer or a frame's refusal) to NATS or `out`; false when it did not go out as given. */
  publish(subject: string, value: WireReply | WireChunk | WireLoad | HelloAnswer, callId?: string, out: Outlet = this.nc): boolean {
    const { bytes, asGiven } = this.encoded(value, callId);
    try {
      out.publish(subject, bytes);
    } catch {
      return false; // connection closed: the caller's router sees the replica as lost
    }
    return asGiven;
  }

  /** The answers to the request frame whose reply subject is `subject`. */
  openFrame(subject: string, out: Outlet): AnswerFrame {
    return { subject, out, items: [], bytes: FRAME_OVERHEAD };
  }

  /** Holds one call's encoded answer until the end of the turn (a full frame goes at once). */
  add(frame: AnswerFrame, token: number, bytes: Uint8Array): void {
    const full = frame.items.length === MAX_FRAME_ITEMS || (frame.items.length > 0 && frame.bytes + bytes.length + ITEM_OVERHEAD > frameBytesLimit(this.nc));
    if (full) this.send(frame); // it stays pending: the flush sends what it holds by then
    else if (frame.items.length === 0) this.pending.push(frame);
    frame.items.push([token, bytes]);
    frame.bytes += bytes.length + ITEM_OVERHEAD;
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.flushAll);
    }
  }

  /** Sends every answer frame held now (also before the connection is drained or closed). */
  flush(): void {
    this.scheduled = false;
    for (const frame of this.pending.splice(0)) if (frame.items.length > 0) this.send(frame);
  }

  private send(frame: AnswerFrame): void {
    const items = frame.items;
    frame.items = [];
    frame.bytes = FRAME_OVERHEAD;
    try {
      frame.out.publish(frame.subject, encodeFrame(items));
    } catch {
      // connection closed: the callers' routers see the replica as lost
    }
  }

  /** An answer's bytes, or an error in its place; `reserve`: bytes that go around it in a frame. */
  private encoded(value: WireReply | WireChunk | WireLoad | HelloAnswer, callId?: string, reserve = 0): { bytes: Uint8Array; asGiven: boolean } {
    const instead = (error: WireError) => encode('seq' in value ? { v: 1, seq: value.seq, error } : { v: 1, ok: false, error });
    let bytes: Uint8Array;
    let asGiven = true;
    try {
      bytes = encode(value);
    } catch (e) {
      bytes = instead(wireError(ErrorCode.APPLICATION, `replica ${this.replicaId}: the handler's answer cannot be encoded with msgpack: ${e instanceof Error ? e.message : String(e)}`));
      asGiven = false;
    }
    const limit = maxPayloadOf(this.nc);
    if (limit !== undefined && bytes.length + reserve > limit && callId !== undefined) {
      const what = `the answer to call ${callId}${'seq' in value ? ` (stream chunk ${value.seq})` : ''}`;
      bytes = instead(wireError(ErrorCode.RESOURCE_EXHAUSTED, `replica ${this.replicaId}: ${tooLargeMessage(what, bytes.length, limit)}; it was not sent. Return less (or store large results elsewhere and return a reference)`));
      asGiven = false;
    }
    return { bytes, asGiven };
  }
}
