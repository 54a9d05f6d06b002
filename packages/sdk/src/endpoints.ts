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
 *
 * Every client is built with the one set of channel credentials connect()
 * made: TLS (only a server whose certificate has role head and names the
 * dialled address is talked to, so a leader hint to anywhere else fails its
 * handshake before the token is sent), or plaintext, where the rotation
 * follows no hint outside the configured list and `failover` turns such a
 * hint into an error.
 */
import type { ChannelCredentials, Client, ClientOptions } from '@grpc/grpc-js';
import { ErrorCode, MusterError } from '@muster/common';
import { clientChannelOptions, HeadRotation } from '@muster/contracts';
import { traceInterceptor } from './tracing.js';

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

/** Keepalive, reconnect backoff and message sizes: the one table of @muster/contracts (grpc-options.ts); traced calls (tracing.ts). */
const clientOptions = clientChannelOptions();

export class Endpoints {
  private readonly clients = new Map<string, Map<ServiceClass<Client>, Client>>();
  /** Which head next (@muster/contracts leader.ts); `current` may be a leader hint outside the list. */
  private readonly rotation: HeadRotation;

  /** `addresses`: validated, non-empty, without duplicates. */
  constructor(
    readonly addresses: readonly string[],
    private readonly creds: { channel: ChannelCredentials; tls: boolean },
    /** Called before every retry of a control call, whichever service. */
    readonly onRetry?: (notice: RetryNotice) => void,
  ) {
    if (addresses.length === 0) throw new Error('Endpoints: no address');
    this.rotation = new HeadRotation(addresses, { hintsOutsideList: creds.tls });
  }

  /**
   * Said after an error for a head that could not be reached: a plaintext
   * client at a TLS head sees only "failed to connect", so name the likely
   * cause. Empty on TLS.
   */
  get unreachableHint(): string {
    return this.creds.tls ? '' : ' (this is a plaintext (insecure) connection: if the head serves TLS, connect with tls: { ca, cert, key } or --tls-ca/--tls-cert/--tls-key)';
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
    if (!client) byService.set(service, (client = new service(address, this.creds.channel, { ...clientOptions, interceptors: [traceInterceptor] })));
    return client as C;
  }

  /**
   * Moves off `from` after a retryable failure there: to the leader the
   * refusal named, else to the next address of the list — the rule of
   * @muster/contracts leader.ts, which the worker agent follows too.
   * Returns the error to fail the call with when the refusal named a leader
   * a plaintext client must not follow (outside the configured list).
   */
  failover(from: string, err: MusterError): MusterError | undefined {
    const hint = err.details.leader;
    this.rotation.failed(from, { notLeader: err.code === ErrorCode.NOT_LEADER, leaderHint: typeof hint === 'string' ? hint : undefined, nowMs: Date.now() });
    const refused = this.rotation.refusedHint;
    if (refused === undefined) return undefined;
    return new MusterError(
      ErrorCode.FAILED_PRECONDITION,
      `head ${from} names ${refused} as the leader, which is not among the configured heads (${this.addresses.join(',')}); ` +
        'a plaintext (insecure) connection follows no leader outside its list, as nothing proves who answers there and the token would go with the call: add it to the address list, or connect with TLS',
      { cause: err, details: { leader: refused, tried: [from] } },
    );
  }

  /** Closes every client built, at every address. */
  close(): void {
    for (const byService of this.clients.values()) for (const client of byService.values()) client.close();
    this.clients.clear();
  }
}
