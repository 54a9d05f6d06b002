/**
 * The router's side of frames (frames.ts has the why and the wire): unary
 * attempts to a replica that reads frames are held until the end of the
 * turn, then sent — alone as a plain request when alone, else as one request
 * frame — and the answer frames are handed to each call's attempt.
 */
import { decode, type NatsConnection } from '@muster/common';
import type { Msg } from '@nats-io/transport-node';
import type { ReplicaState } from './balancer.js';
import { encodeFrame, FRAME_OVERHEAD, frameBytesLimit, frameItems, ITEM_OVERHEAD, MAX_FRAME_ITEMS, type FrameItem } from './frames.js';
import type { DirectLink } from './direct-links.js';
import type { Inbox, Listener } from './inbox.js';
import { isNoResponders } from './wire.js';

/** What the framer needs of a call's attempt (call.ts's Attempt): its token, and the call's ways to send and to hear. */
export interface FramedAttempt extends Listener {
  readonly token: number;
  readonly ended: boolean;
  frame: FrameListener | undefined;
  /** The direct link it went on, if it did. */
  via: DirectLink | undefined;
  /** Sends it as a request of its own. */
  publish(): void;
  publishFailed(e: unknown): void;
  onData(data: Uint8Array): void;
  onAnswer(body: unknown): void;
  undecodable(e: unknown): void;
}

interface Outbox {
  attempts: FramedAttempt[];
  requests: Uint8Array[];
  bytes: number;
}

export class Framer {
  /** Attempts held in this turn, per replica: insertion order, so frames go out in the order calls were made. */
  private readonly boxes = new Map<ReplicaState, Outbox>();
  private scheduled = false;
  private readonly flushAll = (): void => {
    this.scheduled = false;
    for (const [r, box] of this.boxes) {
      this.boxes.delete(r);
      this.send(r, box);
    }
  };

  constructor(
    private readonly nats: NatsConnection,
    private readonly inbox: Inbox,
    /** Sends to a replica: on its direct link or on NATS (call.ts, CallHost.send). */
    private readonly sendTo: (r: ReplicaState, data: Uint8Array, reply: string) => DirectLink | undefined,
    /** Told of each frame sent (two calls or more). */
    private readonly onFrame: () => void,
  ) {}

  /** Holds `a` (its token open in the inbox) until the end of this turn. */
  add(r: ReplicaState, a: FramedAttempt, request: Uint8Array): void {
    let box = this.boxes.get(r);
    if (box && (box.attempts.length === MAX_FRAME_ITEMS || box.bytes + request.length + ITEM_OVERHEAD > frameBytesLimit(this.nats))) {
      this.boxes.delete(r);
      this.send(r, box);
      box = undefined;
    }
    if (!box) {
      box = { attempts: [], requests: [], bytes: FRAME_OVERHEAD };
      this.boxes.set(r, box);
    }
    box.attempts.push(a);
    box.requests.push(request);
    box.bytes += request.length + ITEM_OVERHEAD;
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.flushAll);
    }
  }

  private send(r: ReplicaState, box: Outbox): void {
    const { attempts, requests } = box;
    const live: FramedAttempt[] = [];
    const items: FrameItem[] = [];
    for (let i = 0; i < attempts.length; i++) {
      const a = attempts[i]!;
      if (a.ended) continue; // settled in this turn (cancelled, failed): nothing to send
      live.push(a);
      items.push([a.token, requests[i]!]);
    }
    if (live.length === 0) return;
    if (live.length === 1) return live[0]!.publish();
    const listener = new FrameListener(this.inbox, live);
    for (const a of live) a.frame = listener;
    try {
      const via = this.sendTo(r, encodeFrame(items), this.inbox.subject(listener.token));
      for (const a of live) a.via = via;
      this.onFrame();
    } catch (e) {
      for (const a of live) a.publishFailed(e);
    }
  }
}

/** Listens on one request frame's reply subject until each of its calls' attempts has ended. */
export class FrameListener implements Listener {
  readonly token: number;
  private open: number;

  constructor(
    private readonly inbox: Inbox,
    private readonly attempts: readonly FramedAttempt[],
  ) {
    this.open = attempts.length;
    this.token = inbox.open(this);
  }

  onMessage(msg: Msg): void {
    // None reached the replica: each call is bounced (and retried) as its own request would be.
    if (isNoResponders(msg)) return this.each((a) => a.onMessage(msg));
    let body: unknown;
    try {
      body = decode(msg.data);
    } catch (e) {
      return this.each((a) => a.undecodable(e));
    }
    const got = frameItems(body);
    // Not a frame: the replica's answer to the frame as a whole (it refused it), so every call's.
    if (got === undefined) return this.each((a) => a.onAnswer(body));
    if (typeof got === 'string') return this.each((a) => a.undecodable(new Error(`an answer frame came back malformed: ${got}`)));
    for (const [token, bytes] of got.items) {
      const a = this.inbox.listener(token) as FramedAttempt | undefined;
      if (a?.frame === this) a.onData(bytes); // only this frame's calls: a token of another is not this replica's to answer
    }
  }

  /** One of its attempts ended (answered, or no longer waited for): the last one closes the reply subject. */
  ended(): void {
    if (--this.open === 0) this.inbox.close(this.token);
  }

  private each(f: (a: FramedAttempt) => void): void {
    for (const a of this.attempts) if (!a.ended) f(a);
  }
}
