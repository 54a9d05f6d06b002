/**
 * One reply subscription per router, shared by every call: `<inbox>.*`, one
 * token per attempt. Owning the mux (rather than `nats.request`) lets a call
 * stop listening to one copy (hedging, cancel) without ending the others,
 * serves streamed chunks through the same subscription, and still sees NATS'
 * "no responders" status, because requests are published with a reply subject.
 */
import { createInbox, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';

export interface Listener {
  onMessage(msg: Msg): void;
}

export class Inbox {
  private readonly prefix: string;
  private readonly listeners = new Map<string, Listener>();
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
        if (!err) this.listeners.get(msg.subject.slice(this.prefix.length))?.onMessage(msg);
      },
    });
  }

  /** A fresh reply subject that delivers to `l` until closed. */
  open(l: Listener): string {
    const token = (this.next++).toString(36);
    this.listeners.set(token, l);
    return this.prefix + token;
  }

  close(reply: string): void {
    this.listeners.delete(reply.slice(this.prefix.length));
  }

  stop(): void {
    this.listeners.clear();
    if (!this.sub.isClosed()) this.sub.unsubscribe();
  }
}

