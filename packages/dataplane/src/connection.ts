/**
 * Is the NATS connection up? Both ends of the data plane need to know at
 * once, because nats.js hides outages: it reconnects by itself and restores
 * every subscription, but what was published while it was down is dropped
 * (its outbound buffer is reset at each dial), and so is whatever the server
 * had for us. A call in flight when the link drops therefore never gets its
 * answer; without this it would wait for its deadline.
 *
 * nats.js reports the link on `nc.status()`, asynchronously:
 *
 *   up ──"disconnect"──▶ down ──"reconnect"──▶ up      ("reconnecting": ignored)
 *   up, down ──"close"──▶ closed (final)
 *
 * `reconnect` comes after nats.js has re-sent every SUB on the new socket,
 * so a request published from then on has its reply subscription in place.
 */
import type { NatsConnection, Status } from '@nats-io/transport-node';

export interface LinkListener {
  /** The connection dropped (`closed`: for good, it will not come back). */
  down?(closed: boolean): void;
  up?(): void;
}

export class Link {
  private state: 'up' | 'down' | 'closed';
  private readonly events: AsyncIterable<Status> & { stop?: () => void };

  constructor(
    private readonly nc: NatsConnection,
    private readonly listener: LinkListener,
  ) {
    // `info` is unset between a drop and the next server INFO: a connection handed over mid-outage starts down.
    this.state = nc.isClosed() ? 'closed' : nc.info ? 'up' : 'down';
    this.events = nc.status();
    void this.follow();
  }

  get up(): boolean {
    return this.state === 'up';
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  /** Why nothing can be sent now, for error messages (undefined when up). */
  get why(): string | undefined {
    if (this.state === 'up') return undefined;
    return this.state === 'closed' ? 'the NATS connection is closed' : `not connected to NATS (reconnecting to ${this.nc.getServer() || 'the servers it knows'})`;
  }

  /** Stops listening (the connection's status iterator is released). */
  stop(): void {
    this.events.stop?.();
  }

  private async follow(): Promise<void> {
    try {
      for await (const s of this.events) {
        if (this.state === 'closed') return;
        if (s.type === 'disconnect' && this.state === 'up') {
          this.state = 'down';
          this.listener.down?.(false);
        } else if (s.type === 'reconnect' && this.state === 'down') {
          this.state = 'up';
          this.listener.up?.();
        } else if (s.type === 'close') {
          this.state = 'closed';
          this.listener.down?.(true);
          return;
        }
      }
    } catch {
      // the status iterator failed: nothing more will come
    }
  }
}
