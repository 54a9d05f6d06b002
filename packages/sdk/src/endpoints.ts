/**
 * The heads the SDK knows, and the one it talks to now.
 *
 * An HA cluster runs several heads on one etcd: one leads, the others refuse
 * every RPC with MUSTER_NOT_LEADER, naming the leader when they know it.
 * `Endpoints` holds the configured list, the address in use, and one grpc-js
 * client per (address, service), built on first use and kept, so going back
 * to a head reuses its connection. Where to go next is `HeadRotation`'s
 * decision (@muster/contracts leader.ts); when to go is rpc.ts's (after a
 * retryable failure).
 */
import { credentials, type ChannelCredentials, type Client, type ClientOptions } from '@grpc/grpc-js';
import { ErrorCode, type MusterError } from '@muster/common';
import { clientChannelOptions, HeadRotation } from '@muster/contracts';

/** What a control call that failed with a retryable error tells before it tries again (progress for CLIs). */
export interface RetryNotice {
  /** The head that failed. */
  address: string;
  error: MusterError;
  /** Until the next try, ms. */
  retryInMs: number;
  /** Until the call gives up, ms. */
  deadlineInMs: number;
}

/** A generated service client class (`ClusterServiceClient`, `GangServiceClient`, ...). */
export type ServiceClass<C extends Client> = new (address: string, creds: ChannelCredentials, options?: Partial<ClientOptions>) => C;

/** Keepalive, reconnect backoff and message sizes: the one table of @muster/contracts (grpc-options.ts). */
const clientOptions = clientChannelOptions();

export class Endpoints {
  private readonly clients = new Map<string, Map<ServiceClass<Client>, Client>>();
  /** Which head next (@muster/contracts leader.ts); `current` may be a leader hint outside the list. */
  private readonly rotation: HeadRotation;

  /** `addresses`: validated, non-empty, without duplicates. */
  constructor(
    readonly addresses: readonly string[],
    /** Called before every retry of a control call, whichever service. */
    readonly onRetry?: (notice: RetryNotice) => void,
  ) {
    if (addresses.length === 0) throw new Error('Endpoints: no address');
    this.rotation = new HeadRotation(addresses);
  }

  /** The head calls go to now: the leader once a call has found it. */
  get current(): string {
    return this.rotation.current;
  }

  /** The client of `service` at `address` (default: the current head). */
  client<C extends Client>(service: ServiceClass<C>, address: string = this.current): C {
    let byService = this.clients.get(address);
    if (!byService) this.clients.set(address, (byService = new Map()));
    let client = byService.get(service);
    if (!client) byService.set(service, (client = new service(address, credentials.createInsecure(), clientOptions)));
    return client as C;
  }

  /**
   * Moves off `from` after a retryable failure there: to the leader the
   * refusal named, else to the next address of the list — the rule of
   * @muster/contracts leader.ts, which the worker agent follows too.
   */
  failover(from: string, err: MusterError): void {
    const hint = err.details.leader;
    this.rotation.failed(from, { notLeader: err.code === ErrorCode.NOT_LEADER, leaderHint: typeof hint === 'string' ? hint : undefined, nowMs: Date.now() });
  }

  /** Closes every client built, at every address. */
  close(): void {
    for (const byService of this.clients.values()) for (const client of byService.values()) client.close();
    this.clients.clear();
  }
}
