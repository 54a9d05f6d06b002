/**
 * The heads the SDK knows, and the one it talks to now.
 *
 * An HA cluster runs several heads on one etcd: one leads, the others refuse
 * every RPC with MUSTER_NOT_LEADER, naming the leader when they know it.
 * `Endpoints` holds the configured list, the address in use, and one grpc-js
 * client per (address, service), built on first use and kept, so going back
 * to a head reuses its connection. It decides where to go next; when to go is
 * rpc.ts's decision (after a retryable failure).
 */
import { credentials, type ChannelCredentials, type Client, type ClientOptions } from '@grpc/grpc-js';
import { ErrorCode, type MusterError } from '@muster/common';

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

const hostPort = /^(\[[^\]]+\]|[^:,\s]+):(\d{1,5})$/;

/** "host:port" or "[v6]:port", with a port in 1…65535. */
export function isHostPort(address: string): boolean {
  const port = hostPort.exec(address)?.[2];
  return port !== undefined && Number(port) >= 1 && Number(port) <= 65_535;
}

/**
 * Reconnect quickly to a head that comes back. Keepalive pings find a frozen
 * or partitioned head (its TCP stays open) in ~15 s, so a watch stream on it
 * breaks and reopens at the new leader (the head accepts pings every 5 s).
 * Every service client of one address is built with these same options, so
 * grpc-js gives them one channel (one connection) to that head. Channelz
 * (grpc's introspection, which nothing here reads) is off: it costs on
 * every call.
 */
const clientOptions = {
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 2_000,
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.enable_channelz': 0,
};

export class Endpoints {
  private readonly clients = new Map<string, Map<ServiceClass<Client>, Client>>();
  /** Where rotation stands in `addresses`; `current` may be a leader hint outside the list. */
  private cursor = 0;
  private at: string;
  /** When each head last failed other than by refusing (down, silent): hints naming it are passed over for a second. */
  private readonly unreachable = new Map<string, number>();

  /** `addresses`: validated, non-empty, without duplicates. */
  constructor(
    readonly addresses: readonly string[],
    /** Called before every retry of a control call, whichever service. */
    readonly onRetry?: (notice: RetryNotice) => void,
  ) {
    if (addresses.length === 0) throw new Error('Endpoints: no address');
    this.at = addresses[0]!;
  }

  /** The head calls go to now: the leader once a call has found it. */
  get current(): string {
    return this.at;
  }

  /** The client of `service` at `address` (default: the current head). */
  client<C extends Client>(service: ServiceClass<C>, address: string = this.at): C {
    let byService = this.clients.get(address);
    if (!byService) this.clients.set(address, (byService = new Map()));
    let client = byService.get(service);
    if (!client) byService.set(service, (client = new service(address, credentials.createInsecure(), clientOptions)));
    return client as C;
  }

  /**
   * Moves off `from` after a retryable failure there: to the leader the
   * refusal named (it may be an address outside the list: a head advertises
   * itself as it sees fit), else to the next address of the list. Does
   * nothing when `from` is no longer current: a concurrent call that failed
   * on the same head has already moved, and moving again would skip a head.
   *
   * A hint naming a head that did not answer in the last second is passed
   * over: right after a leader dies, standbys still name it until its lease
   * runs out, and following them would bounce between dead leader and
   * standby instead of finding the new leader as soon as it is elected.
   */
  failover(from: string, err: MusterError): void {
    if (err.code !== ErrorCode.NOT_LEADER) this.unreachable.set(from, Date.now());
    if (from !== this.at) return;
    const hint = err.details.leader;
    const hintDown = typeof hint === 'string' && Date.now() - (this.unreachable.get(hint) ?? 0) < 1_000;
    if (typeof hint === 'string' && hint !== from && isHostPort(hint) && !hintDown) {
      this.at = hint;
      const i = this.addresses.indexOf(hint);
      if (i >= 0) this.cursor = i;
      return;
    }
    this.cursor = (this.cursor + 1) % this.addresses.length;
    this.at = this.addresses[this.cursor]!;
  }

  /** Closes every client built, at every address. */
  close(): void {
    for (const byService of this.clients.values()) for (const client of byService.values()) client.close();
    this.clients.clear();
  }
}
