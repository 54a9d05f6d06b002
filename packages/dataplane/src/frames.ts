/**
 * Frames: a router's unary requests to one replica, made in the same turn of
 * the event loop, go to it as one NATS message; the replica's answers to them
 * come back the same way.
 *
 * Why: with many calls in flight, most of a call's cost is per NATS message,
 * not per byte — the client's protocol line and parse, a TLS record, and at
 * nats-server a parse, a permission check and a route per message, twice per
 * call. A router at 64 calls in flight gets its answers in bursts and sends
 * the next calls in the same burst, so one message can carry many calls, and
 * nothing waits for it: a frame is cut where nats.js cuts its own writes, at
 * the end of the turn (a microtask), so a call alone in its turn goes out as a
 * plain request exactly as before, at the same moment.
 *
 * On the wire (msgpack; types.ts has the single messages):
 *   RequestFrame { v: 1, frame: [[token, request], …] }   router → replica subject,
 *                 with the reply subject <inbox>.<frame token>; `token` is
 *                 each call's own inbox token, `request` its WireRequest's
 *                 bytes (unary only: streams, cancels and credits go alone)
 *   AnswerFrame  { v: 1, frame: [[token, reply], …] }     replica → that reply subject,
 *                 `reply` a WireReply's bytes; one or more of them per
 *                 request frame (answers made in one turn share one)
 * A router sends frames only to a replica whose load reports say it reads
 * them (LoadReport.frames ≥ 1, serve() sets it), so routers and replicas of
 * older versions keep speaking single requests. A router sends none while it
 * traces a call (the trace context travels in the NATS headers of each
 * request), and none at all with `frames: false` (RouterOptions).
 *
 * Every guarantee of a single request holds per call: its own id, deadline,
 * cancel and retries; "no responders" to a frame bounces every call in it
 * (none reached the replica), each retried on its own. A frame that is not
 * one (not a list, too long, an item that is not [token, bytes]) is refused
 * by name; an item whose request is broken gets its own error answer.
 */
import { decode, encode, type NatsConnection } from '@muster/common';
import { maxPayloadOf } from './wire.js';

/** The most calls in one frame: an answer frame holds as many answers, so both stay small. */
export const MAX_FRAME_ITEMS = 64;
/** Frames are cut at this many bytes of requests (or answers), or at the connection's max_payload if a cluster set it lower. */
export const MAX_FRAME_BYTES = 64 * 1024;
/** What a frame adds around its items, at most: the map, its keys and array header, and per item a token and bin header. */
export const FRAME_OVERHEAD = 32;
export const ITEM_OVERHEAD = 16;
/** The frame version this code reads and writes (LoadReport.frames). */
export const FRAME_VERSION = 1;

export type FrameItem = [token: number, bytes: Uint8Array];

/** Where frames on this connection are cut: MAX_FRAME_BYTES, or less under a lower max_payload. */
export function frameBytesLimit(nc: NatsConnection): number {
  return Math.min(MAX_FRAME_BYTES, maxPayloadOf(nc) ?? MAX_FRAME_BYTES);
}

export function encodeFrame(items: readonly FrameItem[]): Uint8Array {
  return encode({ v: 1, frame: items });
}

/**
 * The items of a decoded frame; a string saying what is wrong when it is not
 * one; undefined when the message is not a frame at all (no `frame` key).
 * Items that are not [token, bytes] are left out and counted in `bad`.
 */
export function frameItems(body: unknown): { items: FrameItem[]; bad: number } | string | undefined {
  if (typeof body !== 'object' || body === null || !('frame' in body)) return undefined;
  const frame = (body as { frame: unknown }).frame;
  if (!Array.isArray(frame)) return 'its `frame` is not a list';
  if (frame.length === 0) return 'its `frame` is empty';
  if (frame.length > MAX_FRAME_ITEMS) return `its \`frame\` has ${frame.length} items, more than ${MAX_FRAME_ITEMS}`;
  const items: FrameItem[] = [];
  let bad = 0;
  for (const it of frame) {
    if (Array.isArray(it) && it.length === 2 && isToken(it[0]) && it[1] instanceof Uint8Array) items.push(it as FrameItem);
    else bad++;
  }
  return { items, bad };
}

export function isToken(t: unknown): t is number {
  return typeof t === 'number' && Number.isSafeInteger(t) && t >= 0;
}

/** Decodes one item's bytes; undefined when they are not msgpack. */
export function decodeItem(bytes: Uint8Array): unknown {
  try {
    return decode(bytes);
  } catch {
    return undefined;
  }
}
