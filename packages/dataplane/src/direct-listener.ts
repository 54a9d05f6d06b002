/**
 * The replica's end of the direct path (direct-wire.ts has the wire and why
 * it can be trusted): a TLS-PSK listener whose links carry what NATS would
 * have carried between one caller's router and this replica — requests in,
 * answers out — one broker hop less each way.
 *
 * What a link is allowed: only what NATS allowed the caller when it sent the
 * hello. A link is good for MAX_LINK_AGE_MS; then it is told GOAWAY and the
 * caller says hello again through NATS, so a caller whose NATS rights were
 * taken away (its account's signing key rotated) is refused within that time.
 *
 * Answers always reach the caller: one to a request that came on a link goes
 * back on it while it is open and keeping up, and on NATS (to the same reply
 * subject, which the caller's router also listens on) when it is not — closed,
 * or so far behind that writing more would pass the bounds below. A stream's
 * chunks may then arrive by both ways; the router puts them in seq order.
 *
 * Bounds: pending hellos (MAX_PENDING, each HELLO_TTL_MS), links
 * (MAX_LINKS), a TLS handshake (HANDSHAKE_MS), a frame (the NATS max_payload
 * and FRAME_SLACK), bytes waiting to be written: MAX_BEHIND_LINK on one link,
 * MAX_BEHIND_TOTAL over all (a link holding less than SMALL_BEHIND may always
 * take a frame that keeps it under SMALL_BEHIND, so the total stays under
 * MAX_BEHIND_TOTAL + MAX_LINKS × SMALL_BEHIND = 128 MiB).
 */
import { createServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { encode, ErrorCode, MusterError, type NatsConnection } from '@muster/common';
import { SHARD_ENV } from '@muster/contracts';
import { headers as natsHeaders, type Msg } from '@nats-io/transport-node';
import { encodeMessage, encodeRefused, FrameReader, GOAWAY_FRAME, HELLO_TTL_MS, KIND, LINK_TLS, PONG_FRAME, type HeaderPairs, type HelloAnswer, type HelloRequest } from './direct-wire.js';
import { wireError } from './wire.js';

/** Where a message for a caller goes: NATS, or the link its request came on. */
export interface Outlet {
  publish(subject: string, data: Uint8Array): void;
}

/** What the listener needs of the replica (serve.ts). */
export interface DirectHost {
  /** A message from a link, as if NATS had delivered it on the replica's subject; `out` takes what answers it. */
  onMessage(msg: Msg, out: Outlet): void;
  /** Whether the replica takes new requests now (not draining or closed). */
  readonly serving: boolean;
}

export const MAX_PENDING = 1_024;
export const MAX_LINKS = 1_024;
export const HANDSHAKE_MS = 5_000;
export const MAX_LINK_AGE_MS = 10 * 60_000;
/** A link told GOAWAY is closed this long after, if its caller has not closed it. */
export const GOAWAY_GRACE_MS = 60_000;
/** A link ended by this side is destroyed this long after, if its caller has not closed its end. */
export const END_GRACE_MS = 2_000;
export const MAX_BEHIND_LINK = 16 * 1024 * 1024;
export const MAX_BEHIND_TOTAL = 64 * 1024 * 1024;
export const SMALL_BEHIND = 64 * 1024;
/** The sum of bytes waiting over all links is recounted at most this often (only while some link is behind). */
const RECOUNT_MS = 5;

export interface DirectListenerOptions {
  /** The address callers reach this replica at; it is also where the listener binds. */
  host: string;
  /** Default 0: any free port. */
  port?: number;
  /** Link age before GOAWAY (default MAX_LINK_AGE_MS; tests shorten it). */
  maxLinkAgeMs?: number;
}

/**
 * serve()'s listener, where its config says (serve-options.ts). One that
 * cannot start fails serve() with UNAVAILABLE when serve() was given the
 * address, and is left out with a process warning when it came from
 * MUSTER_DATA_ADDR (the replica then serves on NATS only).
 */
export async function listenForLinks(nc: NatsConnection, replica: DirectHost, d: DirectListenerOptions & { given: boolean }, replicaId: string): Promise<DirectListener | undefined> {
  try {
    return await DirectListener.start(nc, replica, d);
  } catch (e) {
    const why = `replica ${replicaId}: cannot listen for direct links at ${d.host}:${d.port ?? 0}: ${(e as Error).message}`;
    if (d.given) throw new MusterError(ErrorCode.UNAVAILABLE, `serve(): ${why}`, { cause: e });
    process.emitWarning(`${why}; serving on NATS only (set ${SHARD_ENV.DATA_ADDR} to an address of this host, or pass serve()'s direct: false)`, 'MusterWarning');
    return undefined;
  }
}

export class DirectListener {
  private readonly pending = new Map<string, { key: Buffer; expires: number }>();
  private readonly open = new Set<ServedLink>();
  private readonly server: TlsServer;
  private readonly timer: NodeJS.Timeout;
  private readonly maxAgeMs: number;
  private going = false;
  private behind = { bytes: 0, at: 0 };
  readonly host: string;
  /** The port it listens on (set once listening). */
  port = 0;

  private constructor(nc: NatsConnection, replica: DirectHost, o: DirectListenerOptions) {
    this.host = o.host;
    this.maxAgeMs = o.maxLinkAgeMs ?? MAX_LINK_AGE_MS;
    this.server = createServer({ ...LINK_TLS, handshakeTimeout: HANDSHAKE_MS, pskCallback: (_socket, identity) => this.take(identity) }, (socket) => this.accept(socket, nc, replica));
    this.server.maxConnections = MAX_LINKS;
    // A connection that never completes its handshake (a port scan, a wrong key): dropped, nothing to report.
    this.server.on('tlsClientError', () => undefined);
    this.timer = setInterval(() => this.age(), Math.min(30_000, Math.max(50, Math.floor(this.maxAgeMs / 4))));
    this.timer.unref();
  }

  static async start(nc: NatsConnection, replica: DirectHost, o: DirectListenerOptions): Promise<DirectListener> {
    const l = new DirectListener(nc, replica, o);
    try {
      await new Promise<void>((resolve, reject) => {
        l.server.once('error', reject);
        l.server.listen(o.port ?? 0, o.host, () => {
          l.server.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      clearInterval(l.timer);
      throw e;
    }
    l.port = (l.server.address() as AddressInfo).port;
    return l;
  }

  /** Links open now. */
  get links(): number {
    return this.open.size;
  }

  /** A caller's hello (on NATS): its key is kept for one handshake; the answer says where to connect, or why not. */
  hello(h: HelloRequest): HelloAnswer | string {
    if (this.going) return 'it is draining';
    const now = Date.now();
    if (this.pending.size >= MAX_PENDING) for (const [id, p] of this.pending) if (p.expires <= now) this.pending.delete(id);
    if (this.pending.size >= MAX_PENDING) return `${MAX_PENDING} hellos are waiting for their handshake`;
    this.pending.set(h.id, { key: Buffer.from(h.key), expires: now + HELLO_TTL_MS });
    return { v: 1, direct: { host: this.host, port: this.port } };
  }

  /** The key of a pending hello, once: a second handshake with the same id is refused. */
  private take(identity: string): Buffer | null {
    const p = this.pending.get(identity);
    this.pending.delete(identity);
    return p && p.expires > Date.now() ? p.key : null;
  }

  private accept(socket: TLSSocket, nc: NatsConnection, host: DirectHost): void {
    if (this.going) return void socket.destroy();
    const link = new ServedLink(socket, nc, host, this, () => this.open.delete(link));
    this.open.add(link);
  }

  /** Whether `bytes` more may wait to be written, over all links (recounted at most every RECOUNT_MS). */
  roomFor(bytes: number): boolean {
    const now = performance.now();
    if (now - this.behind.at >= RECOUNT_MS) {
      let sum = 0;
      for (const l of this.open) sum += l.waiting;
      this.behind = { bytes: sum, at: now };
    }
    if (this.behind.bytes + bytes > MAX_BEHIND_TOTAL) return false;
    this.behind.bytes += bytes;
    return true;
  }

  /** Links past their age are told GOAWAY; those told long enough ago are closed. */
  private age(): void {
    const now = Date.now();
    for (const l of this.open) {
      if (l.goneAwayAt === undefined && now - l.openedAt >= this.maxAgeMs) l.goAway();
      else if (l.goneAwayAt !== undefined && now - l.goneAwayAt >= GOAWAY_GRACE_MS) l.end();
    }
  }

  /** Draining: no new hello, link or request; every link is told GOAWAY (requests on it are refused from now on). */
  goAway(): void {
    this.going = true;
    this.pending.clear();
    for (const l of this.open) l.goAway();
  }

  /** Closes every link (what was written to it goes first; a caller that keeps its end open is cut off after END_GRACE_MS) and the listener. */
  async close(): Promise<void> {
    this.goAway();
    clearInterval(this.timer);
    for (const l of this.open) l.end();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** One caller's link, as the replica holds it. */
class ServedLink implements Outlet {
  readonly openedAt = Date.now();
  goneAwayAt: number | undefined;
  private ended = false;
  private readonly reader: FrameReader;

  constructor(
    private readonly socket: TLSSocket,
    private readonly nc: NatsConnection,
    private readonly host: DirectHost,
    private readonly listener: DirectListener,
    onClose: () => void,
  ) {
    socket.setNoDelay(true);
    this.reader = new FrameReader(nc);
    socket.on('data', (chunk: Buffer) => {
      try {
        this.reader.push(chunk, (f) => {
          // Past the bounds on what waits to be written, too: the caller would take the link for dead.
          if (f.kind === KIND.PING) return void (socket.writable && socket.write(PONG_FRAME));
          if (f.kind !== KIND.REQUEST) throw new Error(`a frame of kind ${f.kind} from a caller`);
          this.onRequest(f.reply, f.headers, f.data);
        });
      } catch {
        socket.destroy(); // a broken or hostile caller: its answers go on NATS
      }
    });
    socket.on('error', () => undefined); // 'close' follows
    socket.on('close', onClose);
  }

  /** Bytes waiting to be written to the caller. */
  get waiting(): number {
    return this.socket.writableLength;
  }

  private onRequest(reply: string, headers: HeaderPairs | undefined, data: Uint8Array): void {
    // A cancel or a credit (no reply) is taken even when leaving: it is about a call already taken.
    if (reply !== '' && (this.goneAwayAt !== undefined || !this.host.serving)) {
      // Refused on the link; when it cannot take that, the same on NATS: never started, send it elsewhere.
      if (!this.write(encodeRefused(reply))) this.nc.publish(reply, encode({ v: 1, ok: false, error: wireError(ErrorCode.UNAVAILABLE, 'the replica is draining; the call never started') }));
      return;
    }
    const msg = { subject: '', reply, data, headers: headers ? headersOf(headers) : undefined } as unknown as Msg;
    this.host.onMessage(msg, this);
  }

  publish(subject: string, data: Uint8Array): void {
    if (!this.write(encodeMessage(subject, data))) this.nc.publish(subject, data);
  }

  goAway(): void {
    if (this.goneAwayAt !== undefined) return;
    this.goneAwayAt = Date.now();
    this.write(GOAWAY_FRAME);
  }

  /** Ends the link once what was written has gone; destroys it END_GRACE_MS later if the caller keeps its end open. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.socket.end();
    setTimeout(() => this.socket.destroy(), END_GRACE_MS).unref();
  }

  /** False when the link cannot take it: closed, or too far behind (this link, or all of them together). */
  private write(frame: Buffer): boolean {
    const s = this.socket;
    if (s.destroyed || !s.writable) return false;
    const after = s.writableLength + frame.length;
    if (after > SMALL_BEHIND && (after > MAX_BEHIND_LINK || !this.listener.roomFor(frame.length))) return false;
    s.write(frame);
    return true;
  }
}

function headersOf(pairs: HeaderPairs): Msg['headers'] {
  const h = natsHeaders();
  for (const [k, v] of pairs) h.append(k, v);
  return h;
}
