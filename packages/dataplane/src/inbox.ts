/**
 * One reply subscription per router, shared by every call: `<inbox>.*`, one
 * token per attempt. Owning the mux (rather than `nats.request`) lets a call
 * stop listening to one copy (hedging, cancel) without ending the others,
 * serves streamed chunks through the same subscription, and still sees NATS'
 * "no responders" status, because requests are published with a reply subject.
 *
 * Tokens are a counter in decimal, kept as numbers: making one and finding
 * its listener again is a number-to-string and back, with no base-36 string
 * to build and hash per attempt (both ran once per call).
 */
import { createInbox, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';

export interface Listener {
  onMessage(msg: Msg): void;
}

export class Inbox {
  private readonly prefix: string;
  private readonly listeners = new Map<number, Listener>();
  private readonly sub: Subscription;
  private next = 0;

  /**
   * `inboxPrefix`: the one the connection's NATS user may subscribe under (a
   * caller's own; see callerInboxPrefix); default nats.js' `_INBOX`.
   */
  constructor(nc: NatsConnection, inboxPrefix?: string) {
    this.prefix = `${createInbox(inboxPrefix)}.`;
    this.sub = nc.subscribe(`${this.prefix}*`, {
      callback: (err, msg) => {
        if (!err) this.deliver(msg.subject, msg);
      },
    });
  }

  /**
   * A message for `subject` — from the subscription, or from a direct link
   * (direct-links.ts) — to its listener, if it is one of ours (a token that
   * is not a number, someone else's subject under the prefix: NaN, none).
   */
  deliver(subject: string, msg: Msg): void {
    if (subject.startsWith(this.prefix)) this.listeners.get(Number(subject.slice(this.prefix.length)))?.onMessage(msg);
  }

  /** A fresh token whose reply subject (`subject(token)`) delivers to `l` until closed. */
  open(l: Listener): number {
    const token = this.next++;
    this.listeners.set(token, l);
    return token;
  }

  /** Reply subjects listened on now. */
  get size(): number {
    return this.listeners.size;
  }

  /** Who listens on `token` now, if anyone. */
  listener(token: number): Listener | undefined {
    return this.listeners.get(token);
  }

  subject(token: number): string {
    return this.prefix + token;
  }

  close(token: number): void {
    this.listeners.delete(token);
  }

  stop(): void {
    this.listeners.clear();
    if (!this.sub.isClosed()) this.sub.unsubscribe();
  }
}

