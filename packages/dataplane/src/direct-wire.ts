/**
 * The direct path's wire (docs/dataplane.md, "The direct path"): what a
 * caller's router and a replica say to each other on the TLS link beside
 * NATS, and on NATS to set it up.
 *
 * Set-up (hello), on NATS: the caller publishes `{ v: 1, direct: 'hello', id,
 * key }` to the replica's own subject, with a reply subject. Only a caller
 * whose NATS user may publish to the group's replica subjects can, so the
 * broker has checked its right to call the group, and NATS' TLS keeps the key
 * between the two (and the group's own replicas). The replica keeps the key
 * for one TLS handshake within HELLO_TTL_MS and answers `{ v: 1, direct: {
 * host, port } }`, or an error when it has no listener.
 *
 * The link: TLS 1.2 with that key as a pre-shared key (ECDHE-PSK, forward
 * secret), identity = the hello's id. A completed handshake proves each side
 * to the other: only the caller that sent the hello and the replica that took
 * it know the key. No certificate is made or trusted for it.
 *
 * Frames, both ways: u32 length (of what follows) | u8 kind | body.
 *   REQUEST  caller → replica   u16 reply length | reply | u16 headers length |
 *                               headers (msgpack [name, value][]) | data —
 *                               what NATS would have carried to the replica's
 *                               subject (a request, a request frame, a cancel,
 *                               a credit: reply length 0)
 *   MESSAGE  replica → caller   u16 subject length | subject | data — what
 *                               NATS would have carried to the caller's inbox
 *   REFUSED  replica → caller   the reply subject of a request it did not
 *                               take (the link is leaving): the caller treats
 *                               it as NATS' "no responders" and sends elsewhere
 *   GOAWAY   replica → caller   no request is taken on this link any more
 *                               (the replica drains, or the link is old); what
 *                               was taken is answered, on it or on NATS
 *   PING     caller → replica   is the link alive? (direct-links.ts: when it
 *                               has been silent a while)
 *   PONG     replica → caller   it is
 */
import { decode, encode, type NatsConnection } from '@muster/common';
import { maxPayloadOf } from './wire.js';

/** nats-server's default max_payload: the bound before the connection has heard the server's. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

export const KIND = { REQUEST: 1, MESSAGE: 2, REFUSED: 3, GOAWAY: 4, PING: 5, PONG: 6 } as const;

/** The link's TLS: 1.2 only (Node's PSK), ECDHE-PSK ciphers (forward secrecy). */
export const LINK_TLS = { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: 'ECDHE-PSK-CHACHA20-POLY1305:ECDHE-PSK-AES256-CBC-SHA384' } as const;

/** A hello's key is good for one handshake within this long. */
export const HELLO_TTL_MS = 10_000;
/** Bytes of a hello's key, and of its id. */
export const KEY_BYTES = 32;
export const ID_BYTES = 16;
/** A frame's bytes around its data, at most: what the length prefix may add to the NATS max_payload. */
export const FRAME_SLACK = 64 * 1024;

export interface HelloRequest {
  v: 1;
  direct: 'hello';
  id: string;
  key: Uint8Array;
}

export interface HelloAnswer {
  v: 1;
  direct: { host: string; port: number };
}

/** A hello on the replica's subject, or undefined. */
export function helloOf(body: unknown): HelloRequest | undefined {
  const b = body as Partial<HelloRequest> | null;
  if (typeof b !== 'object' || b === null || b.direct !== 'hello') return undefined;
  if (typeof b.id !== 'string' || !/^[0-9a-f]{32}$/.test(b.id) || !(b.key instanceof Uint8Array) || b.key.length !== KEY_BYTES) return undefined;
  return b as HelloRequest;
}

/** The replica's answer to a hello, or undefined when it has no direct path (an error, an older replica). */
export function helloAnswerOf(body: unknown): HelloAnswer['direct'] | undefined {
  const d = (body as Partial<HelloAnswer> | null)?.direct;
  if (typeof d !== 'object' || d === null || typeof d.host !== 'string' || d.host.length === 0 || !Number.isInteger(d.port) || d.port <= 0 || d.port > 65_535) return undefined;
  return d;
}

/** NATS headers as the link carries them: name and value pairs. */
export type HeaderPairs = [string, string][];

export function encodeRequest(reply: string, headers: HeaderPairs | undefined, data: Uint8Array): Buffer {
  const r = Buffer.from(reply);
  const h = headers && headers.length > 0 ? encode(headers) : undefined;
  const hl = h?.length ?? 0;
  const out = Buffer.allocUnsafe(4 + 1 + 2 + r.length + 2 + hl + data.length);
  out.writeUInt32BE(out.length - 4, 0);
  out[4] = KIND.REQUEST;
  out.writeUInt16BE(r.length, 5);
  r.copy(out, 7);
  out.writeUInt16BE(hl, 7 + r.length);
  if (h) out.set(h, 9 + r.length);
  out.set(data, 9 + r.length + hl);
  return out;
}

export function encodeMessage(subject: string, data: Uint8Array): Buffer {
  const s = Buffer.from(subject);
  const out = Buffer.allocUnsafe(4 + 1 + 2 + s.length + data.length);
  out.writeUInt32BE(out.length - 4, 0);
  out[4] = KIND.MESSAGE;
  out.writeUInt16BE(s.length, 5);
  s.copy(out, 7);
  out.set(data, 7 + s.length);
  return out;
}

export function encodeRefused(reply: string): Buffer {
  const s = Buffer.from(reply);
  const out = Buffer.allocUnsafe(5 + s.length);
  out.writeUInt32BE(out.length - 4, 0);
  out[4] = KIND.REFUSED;
  s.copy(out, 5);
  return out;
}

export const GOAWAY_FRAME = Buffer.from([0, 0, 0, 1, KIND.GOAWAY]);
export const PING_FRAME = Buffer.from([0, 0, 0, 1, KIND.PING]);
export const PONG_FRAME = Buffer.from([0, 0, 0, 1, KIND.PONG]);

export type Frame =
  | { kind: typeof KIND.REQUEST; reply: string; headers: HeaderPairs | undefined; data: Uint8Array }
  | { kind: typeof KIND.MESSAGE; subject: string; data: Uint8Array }
  | { kind: typeof KIND.REFUSED; reply: string }
  | { kind: typeof KIND.GOAWAY }
  | { kind: typeof KIND.PING }
  | { kind: typeof KIND.PONG };

/**
 * Cuts a byte stream into frames. A frame over `maxBytes` (default: the NATS
 * max_payload of `nc`, as a message on NATS would be bounded, plus
 * FRAME_SLACK), a kind it does not know or a body that does not parse is a
 * broken peer: `push` throws, and the link is closed.
 */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  private readonly maxBytes: () => number;

  constructor(limit: NatsConnection | (() => number)) {
    this.maxBytes = typeof limit === 'function' ? limit : () => (maxPayloadOf(limit) ?? DEFAULT_MAX_PAYLOAD) + FRAME_SLACK;
  }

  push(chunk: Buffer, each: (f: Frame) => void): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    let at = 0;
    while (this.buf.length - at >= 4) {
      const n = this.buf.readUInt32BE(at);
      if (n < 1 || n > this.maxBytes()) throw new Error(`a frame of ${n} bytes (at most ${this.maxBytes()})`);
      if (this.buf.length - at - 4 < n) break;
      const body = this.buf.subarray(at + 5, at + 4 + n);
      const kind = this.buf[at + 4]!;
      at += 4 + n;
      each(parse(kind, body));
    }
    this.buf = at === this.buf.length ? Buffer.alloc(0) : this.buf.subarray(at);
  }
}

function parse(kind: number, b: Buffer): Frame {
  switch (kind) {
    case KIND.REQUEST: {
      const rl = b.readUInt16BE(0);
      const hl = b.readUInt16BE(2 + rl);
      const headers = hl > 0 ? headerPairs(decode<unknown>(b.subarray(4 + rl, 4 + rl + hl))) : undefined;
      return { kind, reply: b.toString('utf8', 2, 2 + rl), headers, data: b.subarray(4 + rl + hl) };
    }
    case KIND.MESSAGE: {
      const sl = b.readUInt16BE(0);
      return { kind, subject: b.toString('utf8', 2, 2 + sl), data: b.subarray(2 + sl) };
    }
    case KIND.REFUSED:
      return { kind, reply: b.toString('utf8') };
    case KIND.GOAWAY:
    case KIND.PING:
    case KIND.PONG:
      return { kind };
    default:
      throw new Error(`a frame of unknown kind ${kind}`);
  }
}

function headerPairs(v: unknown): HeaderPairs {
  if (!Array.isArray(v) || v.length > 64 || !v.every((p) => Array.isArray(p) && p.length === 2 && typeof p[0] === 'string' && typeof p[1] === 'string')) throw new Error('malformed headers');
  return v as HeaderPairs;
}
