/**
 * The replica's side of frames (frames.ts has the why and the wire): answers
 * to calls that came in a request frame are held until the end of the turn,
 * then sent as one answer frame per request frame, to its reply subject.
 * A handler that answers later (a promise) has its answer sent in a later
 * answer frame to the same subject; the router listens until every call of
 * the frame has its answer or stopped waiting.
 */
import type { NatsConnection } from '@muster/common';
import { encodeFrame, FRAME_OVERHEAD, frameBytesLimit, ITEM_OVERHEAD, MAX_FRAME_ITEMS, type FrameItem } from './frames.js';

/** The answers of one request frame not sent yet. */
export interface AnswerFrame {
  readonly subject: string;
  items: FrameItem[];
  bytes: number;
}

export class AnswerFrames {
  private readonly pending: AnswerFrame[] = [];
  private scheduled = false;
  private readonly flushAll = (): void => this.flush();

  constructor(private readonly nc: NatsConnection) {}

  /** The answers to the request frame whose reply subject is `subject`. */
  open(subject: string): AnswerFrame {
    return { subject, items: [], bytes: FRAME_OVERHEAD };
  }

  /** Holds one call's encoded answer until the end of the turn (a full frame goes at once). */
  add(frame: AnswerFrame, token: number, bytes: Uint8Array): void {
    if (frame.items.length === MAX_FRAME_ITEMS || (frame.items.length > 0 && frame.bytes + bytes.length + ITEM_OVERHEAD > frameBytesLimit(this.nc))) this.send(frame);
    if (frame.items.length === 0) this.pending.push(frame);
    frame.items.push([token, bytes]);
    frame.bytes += bytes.length + ITEM_OVERHEAD;
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.flushAll);
    }
  }

  /** Sends every answer held now (also before the connection is drained or closed). */
  flush(): void {
    this.scheduled = false;
    for (const frame of this.pending.splice(0)) if (frame.items.length > 0) this.send(frame);
  }

  private send(frame: AnswerFrame): void {
    const items = frame.items;
    frame.items = [];
    frame.bytes = FRAME_OVERHEAD;
    try {
      this.nc.publish(frame.subject, encodeFrame(items));
    } catch {
      // connection closed: the callers' routers see the replica as lost
    }
  }
}
