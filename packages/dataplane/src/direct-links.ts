/**
 * The caller's end of the direct path (direct-wire.ts has the wire and the
 * trust; direct-listener.ts the replica's end): one TLS link per replica of
 * the group, made on first use and used once it is up. Until then, and
 * whenever it is not up, messages go on NATS as before — the direct path
 * only ever takes a hop out, it never makes a call wait.
 *
 * A link's life, per replica:
 *
 *   (none) ──first message──▶ hello (on NATS) ──answer──▶ connecting ──TLS up──▶ up
 *   hello, connecting ──refused, no answer, TLS failed──▶ off (retried after a back-off)
 *   up ──GOAWAY──▶ (none): new messages on NATS, a new hello on the next one;
 *                  answers to what was sent still come, on it or on NATS
 *   up ──closed without GOAWAY──▶ off: the replica died or the link broke;
 *                  calls with a copy sent on it are told it was lost (retried when
 *                  idempotent, else REPLICA_LOST: it may have run), as the router's
 *                  sweep would tell them a little later
 *   up ──dead──▶ closed, as above: a link can die without a word (a firewall
 *                  dropping a flow, a cable), so one silent for PING_BUSY_MS with
 *                  a copy out on it (PING_IDLE_MS without) is sent a PING, which
 *                  the replica answers at once. The verdict needs proof that the
 *                  replica ran, not just that it was slow: its load reports (on
 *                  NATS, from the same event loop). Each report is published in a
 *                  turn of that loop, and a turn reads every socket that has data,
 *                  so once PROOF_REPORTS reports have come (each checked on its own
 *                  tick, the first PING_ARRIVE_MS after the ping) with no byte on
 *                  the link, the PONG would have come on a live link: it is dead,
 *                  not the replica, and it is closed. A replica whose loop is
 *                  blocked (a long synchronous handler) reports nothing either, so
 *                  its link is left alone, as NATS leaves a slow replica's calls.
 *
 * Bounds: one link per replica in the membership (links of replicas that left
 * it are closed), a frame (the NATS max_payload and FRAME_SLACK), bytes
 * waiting to be written (past MAX_WAITING, messages go on NATS until it
 * drains), a hello (HELLO_TIMEOUT_MS), a TLS connect (CONNECT_TIMEOUT_MS).
 */
import { randomBytes } from 'node:crypto';
import { connect, type TLSSocket } from 'node:tls';
import { decode, encode, type NatsConnection } from '@muster/common';
import type { Msg, MsgHdrs } from '@nats-io/transport-node';
import type { ReplicaState } from './balancer.js';
import { END_GRACE_MS } from './direct-listener.js';
import { encodeRequest, FrameReader, helloAnswerOf, ID_BYTES, KEY_BYTES, KIND, LINK_TLS, PING_FRAME, type HeaderPairs, type HelloRequest } from './direct-wire.js';
import type { Inbox, Listener } from './inbox.js';
import { isNoResponders } from './wire.js';

export const HELLO_TIMEOUT_MS = 2_000;
export const CONNECT_TIMEOUT_MS = 5_000;
/** Bytes waiting to be written to a replica past which messages go on NATS until they have gone. */
export const MAX_WAITING = 16 * 1024 * 1024;
/** Back-off after a failed set-up or a broken link: doubles from MIN to MAX. */
const RETRY_MIN_MS = 1_000;
const RETRY_MAX_MS = 60_000;
/** After a replica said it offers no direct path (an older one, or none configured). */
const NOT_OFFERED_MS = 60_000;
/** A link silent this long is pinged: with a copy of a call out on it, without. */
export const PING_BUSY_MS = 5_000;
export const PING_IDLE_MS = 30_000;
/** Load reports that came after a ping (received PING_ARRIVE_MS after it or later, one per check) with no byte on the link: it is dead. */
export const PROOF_REPORTS = 4;
export const PING_ARRIVE_MS = 500;
const CHECK_EVERY_MS = 1_000;

/** What happens to calls when a link breaks (router.ts). */
export interface LinkOwner {
  /** Link `link` to `r` closed without GOAWAY: copies sent on it may never be answered. */
  broken(r: ReplicaState, link: DirectLink): void;
  /** When (epoch ms, local clock) this replica's last load report came, if any (balancer.ts). */
  lastReportAt(replicaId: string): number | undefined;
}

export class DirectLinks {
  private readonly links = new Map<ReplicaState, DirectLink>();
  /** Links told GOAWAY, still bringing answers until the replica closes them (closed with the router, too). */
  private readonly leaving = new Set<DirectLink>();
  /** Messages sent on a link (observability, tests). */
  sent = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly nats: NatsConnection,
    private readonly inbox: Inbox,
    private readonly owner: LinkOwner,
  ) {
    this.timer = setInterval(() => {
      const now = Date.now();
      for (const [r, l] of this.links) l.check(now, owner.lastReportAt(r.info.replicaId));
    }, CHECK_EVERY_MS);
    this.timer.unref();
  }

  /** The link to send to `r` on now, if one is up; else undefined (send on NATS), and one is set up if none is. */
  for(r: ReplicaState): DirectLink | undefined {
    const l = this.links.get(r);
    if (l?.usable) return l;
    if (!l || (l.state === 'off' && Date.now() >= l.retryAt)) this.open(r, l);
    return undefined;
  }

  /** Links up now. */
  get up(): number {
    let n = 0;
    for (const l of this.links.values()) if (l.state === 'up') n++;
    return n;
  }

  /** Closes the links of replicas that left the membership. */
  retain(): void {
    for (const [r, l] of this.links) {
      if (r.live) continue;
      this.links.delete(r);
      l.close();
    }
  }

  close(): void {
    clearInterval(this.timer);
    for (const l of [...this.links.values(), ...this.leaving]) l.close();
    this.links.clear();
    this.leaving.clear();
  }

  private open(r: ReplicaState, previous: DirectLink | undefined): void {
    const l = new DirectLink(this.nats, this.inbox, r, previous?.failures ?? 0, {
      gone: () => {
        if (this.links.get(r) === l) this.links.delete(r);
        this.leaving.add(l);
      },
      closed: () => this.leaving.delete(l),
      broken: () => this.owner.broken(r, l),
    });
    this.links.set(r, l);
    l.hello();
  }
}

interface LinkEvents {
  /** GOAWAY: forget it (the next message says hello again). */
  gone(): void;
  /** Closed without GOAWAY while up. */
  broken(): void;
  /** Its socket closed, however. */
  closed(): void;
}

export class DirectLink implements Listener {
  state: 'hello' | 'connecting' | 'up' | 'leaving' | 'off' = 'hello';
  retryAt = 0;
  private socket: TLSSocket | undefined;
  private token = -1;
  private timer: NodeJS.Timeout | undefined;
  private readonly id = randomBytes(ID_BYTES).toString('hex');
  private readonly key = randomBytes(KEY_BYTES);
  private closing = false;
  /** When a byte last came from the replica (epoch ms), and when a PING went unanswered since. */
  private heardAt = 0;
  private pingAt: number | undefined;
  /** The replica's reports counted as proof since the ping, and the last one counted (its receipt time). */
  private proofs = 0;
  private proofReport: number | undefined;

  constructor(
    private readonly nats: NatsConnection,
    private readonly inbox: Inbox,
    private readonly replica: ReplicaState,
    /** Set-ups that failed in a row before this one (the back-off). */
    public failures: number,
    private readonly events: LinkEvents,
  ) {}

  get usable(): boolean {
    return this.state === 'up' && !this.socket!.destroyed && this.socket!.writableLength <= MAX_WAITING;
  }

  /** Asks the replica on NATS (its own subject: the broker checks this caller may call the group). */
  hello(): void {
    this.token = this.inbox.open(this);
    this.timer = setTimeout(() => this.failed(HELLO_TIMEOUT_MS), HELLO_TIMEOUT_MS);
    this.timer.unref();
    try {
      this.nats.publish(this.replica.info.subject, encode({ v: 1, direct: 'hello', id: this.id, key: this.key } satisfies HelloRequest), { reply: this.inbox.subject(this.token) });
    } catch {
      this.failed();
    }
  }

  /** The hello's answer (inbox.ts). */
  onMessage(msg: Msg): void {
    this.inbox.close(this.token);
    clearTimeout(this.timer);
    if (this.state !== 'hello') return;
    // Nobody took it (the replica not subscribed yet, or gone): the usual back-off.
    if (isNoResponders(msg)) return this.failed();
    let where: ReturnType<typeof helloAnswerOf>;
    try {
      where = helloAnswerOf(decode<unknown>(msg.data));
    } catch {
      where = undefined;
    }
    if (!where) return this.failed(NOT_OFFERED_MS);
    this.connect(where.host, where.port);
  }

  private connect(host: string, port: number): void {
    this.state = 'connecting';
    const socket = connect({ host, port, ...LINK_TLS, pskCallback: () => ({ psk: this.key, identity: this.id }), checkServerIdentity: () => undefined });
    this.socket = socket;
    this.timer = setTimeout(() => socket.destroy(), CONNECT_TIMEOUT_MS);
    this.timer.unref();
    socket.setNoDelay(true);
    socket.once('secureConnect', () => {
      clearTimeout(this.timer);
      if (this.closing) return void socket.destroy();
      this.state = 'up';
      this.failures = 0;
      this.heardAt = Date.now();
    });
    const reader = new FrameReader(this.nats);
    socket.on('data', (chunk: Buffer) => {
      this.heardAt = Date.now();
      this.pingAt = undefined;
      try {
        reader.push(chunk, (f) => {
          if (f.kind === KIND.MESSAGE) this.inbox.deliver(f.subject, { subject: f.subject, data: f.data, headers: undefined } as unknown as Msg);
          else if (f.kind === KIND.REFUSED) this.inbox.deliver(f.reply, noResponders(f.reply));
          else if (f.kind === KIND.GOAWAY) this.goAway();
          else if (f.kind !== KIND.PONG) throw new Error(`a frame of kind ${f.kind} from a replica`);
        });
      } catch {
        socket.destroy(); // a broken replica: what it still owes comes on NATS, or the calls are told it was lost
      }
    });
    socket.on('error', () => undefined); // 'close' follows
    socket.on('close', () => {
      clearTimeout(this.timer);
      this.events.closed();
      const was = this.state;
      if (was === 'leaving' || was === 'off' || this.closing) return;
      this.failed();
      if (was === 'up') this.events.broken();
    });
  }

  /** Pings it when silent; closes it when dead (see the header). `lastReport`: the replica's last load report (epoch ms). */
  check(now: number, lastReport: number | undefined): void {
    if (this.state !== 'up') return;
    if (this.pingAt === undefined) {
      if (now - this.heardAt < (this.busy() ? PING_BUSY_MS : PING_IDLE_MS)) return;
      this.pingAt = now;
      this.proofs = 0;
      this.proofReport = undefined;
      this.socket!.write(PING_FRAME);
      return;
    }
    if (lastReport === undefined || lastReport === this.proofReport || lastReport < this.pingAt + PING_ARRIVE_MS) return;
    this.proofReport = lastReport;
    if (++this.proofs >= PROOF_REPORTS) this.socket!.destroy();
  }

  /** A copy of a call is out on it. */
  private busy(): boolean {
    for (const a of this.replica.attempts) if (a.via === this) return true;
    return false;
  }

  /** The replica takes no more requests on it: new messages go on NATS; answers still come. */
  private goAway(): void {
    if (this.state !== 'up') return;
    this.state = 'leaving';
    this.events.gone();
  }

  private failed(backOffMs?: number): void {
    if (this.token >= 0) this.inbox.close(this.token);
    this.state = 'off';
    this.failures++;
    this.retryAt = Date.now() + (backOffMs ?? Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(this.failures - 1, 10)));
    this.socket?.destroy();
  }

  /** Writes one message for the replica's subject (a request when `reply` is given, else a cancel or a credit). */
  send(data: Uint8Array, reply = '', headers?: MsgHdrs): void {
    this.socket!.write(encodeRequest(reply, headers && headerPairs(headers), data));
  }

  /** Ends it (what was written goes first); destroyed END_GRACE_MS later if the replica keeps its end open. */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    clearTimeout(this.timer);
    if (this.state === 'hello') this.inbox.close(this.token);
    const socket = this.socket;
    if (!socket) return;
    socket.end();
    setTimeout(() => socket.destroy(), END_GRACE_MS).unref();
  }
}

function headerPairs(h: MsgHdrs): HeaderPairs {
  const out: HeaderPairs = [];
  for (const k of h.keys()) for (const v of h.values(k)) out.push([k, v]);
  return out;
}

/** What NATS says to a request nobody took: the router's calls already know what to do with it. */
function noResponders(subject: string): Msg {
  return { subject, data: new Uint8Array(0), headers: { code: 503 } } as unknown as Msg;
}
