/**
 * `connect()` and the Cluster handle: the SDK's entry point.
 *
 *   const cluster = await connect({ context: 'local' }); // ~/.muster/config.yaml, written by `muster up`
 *   const cluster = await connect({ address: 'h:7400', tls: { ca: 'pki/ca.crt', cert: 'pki/admin.crt', key: 'pki/admin.key' } });
 *   for (const n of await cluster.nodes()) console.log(n.id, n.state, n.gpus.length);
 *   for await (const e of cluster.events()) console.log(e.kind, e.message);
 *
 * Every link is TLS (docs/security.md, "TLS on every link"): the SDK trusts
 * only the cluster CA and only a head whose certificate has role head and
 * names the address dialled; its own certificate is its identity, so a TLS
 * client with a certificate needs no token. `insecure: true` talks plaintext
 * to a head started with --insecure; the token is then the only credential.
 * A context (`context: name`, or `true` for the file's current-context)
 * supplies what the options leave out. Errors are MusterError with a stable
 * `code` (MUSTER_UNAUTHENTICATED, MUSTER_UNAVAILABLE, ...).
 *
 * High availability: give every head of the cluster (`address:
 * 'h1:7400,h2:7400,h3:7400'` or `addresses: [...]`) and the SDK finds the
 * leader by itself. A standby head refuses with MUSTER_NOT_LEADER, usually
 * naming the leader; a dead head refuses the connection. Either way a control
 * call goes on at the named leader, else at the next address, with backoff
 * (50 ms … 500 ms), until its own deadline (`callTimeoutMs`, or the wait's
 * timeout); the final error names the heads it tried. A failover is thus
 * invisible to callers but for the delay. Retries are safe: creates carry one
 * request id for all their attempts and every other call is idempotent.
 * Watches (`events()`, replica group membership) reopen at the new leader
 * and resume where they stopped. Errors that retrying cannot fix (a wrong
 * token, an invalid spec) are thrown at once. Log streams are not resumed.
 * A standby that names a leader outside the list is followed on TLS (the
 * handshake proves it is a head at that address) and refused on plaintext.
 */
import { credentials, Metadata } from '@grpc/grpc-js';
import { ErrorCode, MusterError, readToken, tokenMetadata } from '@muster/common';
import { sharedChannelCredentials } from './channel-credentials.js';
import { ClusterServiceClient, GangServiceClient, NodeState, PlacementGroupServiceClient, ReplicaGroupServiceClient, type ClusterEvent, type ClusterInfo, type ClusterSummary, type NatsAccess, type Node } from '@muster/proto';
import { resolveConnectOptions, type ConnectOptions } from './connect-options.js';
import { Endpoints } from './endpoints.js';
import { collect, pages, type PageOptions } from './pages.js';
import { HeadService } from './rpc.js';
import { Gangs } from './gangs.js';
import { ReplicaGroups } from './replica-groups.js';
import type { RouterOptions } from '@muster/dataplane';
import { Actors } from './actors.js';
import { PlacementGroups } from './placement-groups.js';
import { drainStatusView, eventView, nodeView, type ClusterEventView, type DrainStatusView, type NodeStateName, type NodeView } from './types.js';

export interface EventsOptions {
  /** First replay the events the head retained (default false: only new ones). */
  replay?: boolean;
  /** Resume after this event id (implies replay of what came after it). */
  afterId?: string;
  /** Only kinds starting with one of these ("node." for all node events). */
  kinds?: string[];
  /** Ends the iteration when aborted. */
  signal?: AbortSignal;
  /**
   * Called once, when the head has sent every retained event this stream
   * asked for (at once without `replay`/`afterId`): what follows is live.
   * The stream's end-of-replay marker itself is never yielded.
   */
  onReplayed?: () => void;
  /**
   * End the iteration at the end of the replay: "every retained event so
   * far", for a caller that checks what happened rather than follows it.
   */
  untilReplayed?: boolean;
}

/**
 * Connects to the cluster and checks the token with one call (so a wrong
 * token or address fails here, not on first use). With several heads, that
 * call also finds the leader: see the module comment for how calls follow it
 * across a failover.
 */
export async function connect(options: ConnectOptions): Promise<Cluster> {
  const o = await resolveConnectOptions(options);
  const token = o.token ?? (o.tokenFile ? await readToken(o.tokenFile) : undefined);
  const channel = o.tls ? sharedChannelCredentials(o.tls) : credentials.createInsecure();
  const cluster = new Cluster(new Endpoints(o.heads, { channel, tls: o.tls !== undefined }, o.onRetry), token, o.callTimeoutMs, { direct: o.direct });
  try {
    await cluster.info(); // fail fast on a wrong token; find the leader
  } catch (e) {
    cluster.close();
    throw e;
  }
  return cluster;
}

/** Which nodes `nodes()` / `nodePages()` return; the head filters, so only those are sent. */
export interface NodeFilter extends PageOptions {
  state?: Exclude<NodeStateName, 'unknown'>;
  /** Only ids starting with this. */
  idPrefix?: string;
  /** Only nodes carrying every one of these labels with these values. */
  labels?: Record<string, string>;
  /** Only draining nodes (true) or only schedulable ones (false). */
  draining?: boolean;
}

export class Cluster {
  private readonly service: HeadService<ClusterServiceClient>;
  /** Create, inspect, wait for and remove placement groups. */
  readonly placementGroups: PlacementGroups;
  /** Launch, watch and stop gangs (the ranks of a TP×PP replica). */
  readonly gangs: Gangs;
  /** Declare replica groups, scale them, and call them (routed here, over NATS). */
  readonly replicaGroups: ReplicaGroups;
  /** TS class instances hosted on workers, called by method name. */
  readonly actors: Actors;

  /** `token`: sent with every call when given; a TLS client with a certificate may have none. `routerDefaults`: connect()'s data-plane options. */
  constructor(private readonly endpoints: Endpoints, token: string | undefined, callTimeoutMs: number, routerDefaults: RouterOptions = {}) {
    const metadata = token ? tokenMetadata(token) : new Metadata();
    this.service = new HeadService(endpoints, ClusterServiceClient, metadata, callTimeoutMs);
    this.placementGroups = new PlacementGroups(new HeadService(endpoints, PlacementGroupServiceClient, metadata, callTimeoutMs));
    this.gangs = new Gangs(new HeadService(endpoints, GangServiceClient, metadata, callTimeoutMs));
    this.replicaGroups = new ReplicaGroups(new HeadService(endpoints, ReplicaGroupServiceClient, metadata, callTimeoutMs), (inboxPrefix) => this.service.call<NatsAccess>((c, md, o, cb) => c.getDataPlaneAccess({ inboxPrefix }, md, o, cb)), routerDefaults);
    this.actors = new Actors(this.replicaGroups);
  }

  /**
   * The head calls go to now: after the first call, the leader (it changes
   * on a failover). With a single head, the address given to connect().
   */
  get address(): string {
    return this.endpoints.current;
  }

  /** Every head given to connect(), in order. */
  get addresses(): readonly string[] {
    return this.endpoints.addresses;
  }

  async info(): Promise<ClusterInfo> {
    return this.service.call((c, md, o, cb) => c.getClusterInfo({}, md, o, cb));
  }

  /**
   * Counts by state and GPUs total / used / free, computed by the head from
   * memory: cheap at any cluster size (the node list is not sent).
   */
  async summary(): Promise<ClusterSummary> {
    const info = await this.info();
    if (!info.summary) throw new MusterError(ErrorCode.UNAVAILABLE, 'this head sends no cluster summary (an older version)');
    return info.summary;
  }

  /** Every node the head knows, or only those the filter keeps, in id order (fetched page by page). */
  async nodes(filter: NodeFilter = {}): Promise<NodeView[]> {
    return collect(this.fetchNodes(filter));
  }

  /** The nodes the filter keeps, one page (head request) at a time. */
  nodePages(filter: NodeFilter = {}): AsyncGenerator<NodeView[]> {
    return pages(this.fetchNodes(filter));
  }

  private fetchNodes(filter: NodeFilter) {
    if (filter.state !== undefined && filter.state !== 'alive' && filter.state !== 'dead') {
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `unknown node state "${String(filter.state)}" (alive, dead)`, { details: { field: 'state' } });
    }
    const state =
      filter.state === 'alive' ? NodeState.NODE_STATE_ALIVE : filter.state === 'dead' ? NodeState.NODE_STATE_DEAD : NodeState.NODE_STATE_UNSPECIFIED;
    const req = { state, nodeIdPrefix: filter.idPrefix ?? '', labels: filter.labels ?? {}, draining: filter.draining, pageSize: filter.pageSize ?? 0 };
    return async (pageToken: string) => {
      const res = await this.service.call<{ nodes: Node[]; nextPageToken: string }>((c, md, o, cb) => c.listNodes({ ...req, pageToken }, md, o, cb));
      return { items: res.nodes.map(nodeView), nextPageToken: res.nextPageToken };
    };
  }

  async node(id: string): Promise<NodeView> {
    return nodeView(await this.service.call((c, md, o, cb) => c.getNode({ nodeId: id }, md, o, cb)));
  }

  /**
   * Drains a node: it takes no new placements, and the head moves what runs
   * there — replicas of replica groups (and actors) make-before-break, once a
   * replacement fits elsewhere; a gang or placement group of its own once the
   * whole group fits elsewhere (it is then restarted there). Nothing is
   * stopped for want of room. The node stays alive and serving meanwhile;
   * `drainStatus` says what is left and what it waits on. Idempotent.
   */
  async drainNode(id: string, opts: { reason?: string } = {}): Promise<NodeView> {
    return nodeView(await this.service.call((c, md, o, cb) => c.drainNode({ nodeId: id, reason: opts.reason ?? '' }, md, o, cb)));
  }

  /** Makes a draining node schedulable again (whoever drained it). Idempotent. */
  async uncordonNode(id: string): Promise<NodeView> {
    return nodeView(await this.service.call((c, md, o, cb) => c.uncordonNode({ nodeId: id }, md, o, cb)));
  }

  /**
   * Forgets a DEAD node now (the head also does so after its dead-node TTL):
   * returns its last record. A live node, or one a placement group still
   * holds bundles on, is refused with MUSTER_FAILED_PRECONDITION.
   */
  async removeNode(id: string): Promise<NodeView> {
    return nodeView(await this.service.call((c, md, o, cb) => c.removeNode({ nodeId: id }, md, o, cb)));
  }

  /** What is still placed or running on a node, what moving each thing waits on, and whether it is drained. */
  async drainStatus(id: string): Promise<DrainStatusView> {
    return drainStatusView(await this.service.call((c, md, o, cb) => c.getDrainStatus({ nodeId: id }, md, o, cb)));
  }

  /**
   * Cluster events as an async iterable. If the stream to the head breaks
   * (head restart, failover), it reconnects, to the leader, and resumes after
   * the last event it delivered, so none is lost or repeated (like a
   * Kubernetes informer, it keeps trying while no head answers). It ends when
   * `signal` aborts or the loop breaks (or, with `untilReplayed`, at the end
   * of the replay), and throws on a non-retryable error (a revoked token).
   * The head marks the end of the replay on the stream (docs/events.md):
   * `onReplayed` tells the caller when it has seen everything retained.
   */
  async *events(options: EventsOptions = {}): AsyncGenerator<ClusterEventView> {
    let afterId = options.afterId ?? '';
    const replay = options.replay ?? false;
    // Every reconnection resumes after the last delivered event (newer ones are replayed).
    const open = (c: ClusterServiceClient, md: Metadata) =>
      c.watchEvents({ replay: replay || afterId !== '', afterId, kinds: options.kinds ?? [], markReplayEnd: true }, md);
    let replayed = false;
    for await (const e of this.service.watch<ClusterEvent>(open, options.signal)) {
      if (e.replayEnd) {
        // A resumed stream replays again and marks its end again: only the first counts.
        if (replayed) continue;
        replayed = true;
        options.onReplayed?.();
        if (options.untilReplayed) return;
        continue;
      }
      afterId = e.id;
      yield eventView(e);
    }
  }

  /** Closes the connections to every head. */
  close(): void {
    this.placementGroups.close();
    this.endpoints.close();
    void this.replicaGroups.closeDataPlane();
  }
}
