/**
 * `connect()` and the Cluster handle: the SDK's entry point.
 *
 *   const cluster = await connect({ address: '127.0.0.1:7400', tokenFile: '.muster/head/token' });
 *   for (const n of await cluster.nodes()) console.log(n.id, n.state, n.gpus.length);
 *   for await (const e of cluster.events()) console.log(e.kind, e.message);
 *
 * Every call carries the cluster token; errors are MusterError with a stable
 * `code` (MUSTER_UNAUTHENTICATED, MUSTER_UNAVAILABLE, ...).
 */
import { credentials, type Metadata } from '@grpc/grpc-js';
import { z } from 'zod';
import { ErrorCode, MusterError, fromGrpcError, readToken, tokenMetadata } from '@muster/common';
import { resumingStream } from './rpc.js';
import { ClusterServiceClient, GangServiceClient, NodeState, PlacementGroupServiceClient, ReplicaGroupServiceClient, type ClusterEvent, type ClusterInfo } from '@muster/proto';
import { Gangs } from './gangs.js';
import { ReplicaGroups } from './replica-groups.js';
import { Actors } from './actors.js';
import { PlacementGroups } from './placement-groups.js';
import { eventView, nodeView, type ClusterEventView, type NodeStateName, type NodeView } from './types.js';

const connectOptionsSchema = z
  .object({
    /** Head address "host:port". */
    address: z.string().regex(/^(\[[^\]]+\]|[^:]+):\d{1,5}$/, 'expected host:port'),
    /** The cluster token, or… */
    token: z.string().min(1).optional(),
    /** …a file holding it (the head writes <data dir>/token). */
    tokenFile: z.string().min(1).optional(),
    /** Deadline of each control call, ms. */
    callTimeoutMs: z.number().int().positive().default(10_000),
  })
  .refine((o) => o.token || o.tokenFile, { message: 'give token or tokenFile', path: ['token'] });

export type ConnectOptions = z.input<typeof connectOptionsSchema>;

export interface EventsOptions {
  /** First replay the events the head retained (default false: only new ones). */
  replay?: boolean;
  /** Resume after this event id (implies replay of what came after it). */
  afterId?: string;
  /** Only kinds starting with one of these ("node." for all node events). */
  kinds?: string[];
  /** Ends the iteration when aborted. */
  signal?: AbortSignal;
}

export async function connect(options: ConnectOptions): Promise<Cluster> {
  const parsed = connectOptionsSchema.safeParse(options);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `connect(): ${i.path.join('.')}: ${i.message}`, { details: { field: i.path.join('.') } });
  }
  const o = parsed.data;
  const token = o.token ?? (await readToken(o.tokenFile!));
  const cluster = new Cluster(o.address, token, o.callTimeoutMs);
  try {
    await cluster.info(); // fail fast on a wrong token or an unreachable head
  } catch (e) {
    cluster.close();
    throw e;
  }
  return cluster;
}

export class Cluster {
  private readonly client: ClusterServiceClient;
  private readonly pgClient: PlacementGroupServiceClient;
  private readonly gangClient: GangServiceClient;
  /** Launch, watch and stop gangs (the ranks of a TP×PP replica). */
  readonly gangs: Gangs;
  private readonly rgClient: ReplicaGroupServiceClient;
  /** Declare replica groups, scale them, and call them (routed here, over NATS). */
  readonly replicaGroups: ReplicaGroups;
  /** TS class instances hosted on workers, called by method name. */
  readonly actors: Actors;
  private readonly metadata: Metadata;
  /** Create, inspect, wait for and remove placement groups. */
  readonly placementGroups: PlacementGroups;

  constructor(readonly address: string, token: string, private readonly callTimeoutMs: number) {
    const options = { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 2_000 };
    this.client = new ClusterServiceClient(address, credentials.createInsecure(), options);
    // Same target and options: grpc-js shares one channel (one connection) between the two.
    this.pgClient = new PlacementGroupServiceClient(address, credentials.createInsecure(), options);
    this.metadata = tokenMetadata(token);
    const call = <T>(fn: (md: Metadata, o: { deadline: number }, cb: (err: unknown, res?: T) => void) => void, timeoutMs?: number) =>
      this.unary<T>((cb) => fn(this.metadata, { deadline: Date.now() + (timeoutMs ?? this.callTimeoutMs) }, cb));
    this.placementGroups = new PlacementGroups(this.pgClient, call);
    this.gangClient = new GangServiceClient(address, credentials.createInsecure(), options);
    this.gangs = new Gangs(this.gangClient, call, this.metadata);
    this.rgClient = new ReplicaGroupServiceClient(address, credentials.createInsecure(), options);
    this.replicaGroups = new ReplicaGroups(this.rgClient, call, this.metadata, async () => (await this.info()).nats);
    this.actors = new Actors(this.replicaGroups);
  }

  async info(): Promise<ClusterInfo> {
    return this.unary((cb) => this.client.getClusterInfo({}, this.metadata, this.opts(), cb));
  }

  /** Every node the head knows, or only those in `state`. */
  async nodes(filter: { state?: Exclude<NodeStateName, 'unknown'> } = {}): Promise<NodeView[]> {
    const state =
      filter.state === 'alive' ? NodeState.NODE_STATE_ALIVE : filter.state === 'dead' ? NodeState.NODE_STATE_DEAD : NodeState.NODE_STATE_UNSPECIFIED;
    const res = await this.unary<{ nodes: Parameters<typeof nodeView>[0][] }>((cb) => this.client.listNodes({ state }, this.metadata, this.opts(), cb));
    return res.nodes.map(nodeView);
  }

  async node(id: string): Promise<NodeView> {
    return nodeView(await this.unary((cb) => this.client.getNode({ nodeId: id }, this.metadata, this.opts(), cb)));
  }

  /**
   * Cluster events as an async iterable. If the stream to the head breaks
   * (head restart), it reconnects and resumes after the last event it
   * delivered, so none is lost or repeated (like a Kubernetes informer, it
   * keeps trying while the head is away). It ends when `signal` aborts or the
   * loop breaks, and throws on a non-retryable error (a revoked token).
   */
  async *events(options: EventsOptions = {}): AsyncGenerator<ClusterEventView> {
    let afterId = options.afterId ?? '';
    const replay = options.replay ?? false;
    // Every reconnection resumes after the last delivered event (newer ones are replayed).
    const open = () => this.client.watchEvents({ replay: replay || afterId !== '', afterId, kinds: options.kinds ?? [] }, this.metadata);
    for await (const e of resumingStream<ClusterEvent>(open, options.signal)) {
      afterId = e.id;
      yield eventView(e);
    }
  }

  close(): void {
    this.client.close();
    this.pgClient.close();
    this.gangClient.close();
    this.rgClient.close();
    void this.replicaGroups.closeDataPlane();
  }

  private opts() {
    return { deadline: Date.now() + this.callTimeoutMs };
  }

  private unary<T>(fn: (cb: (err: unknown, res?: T) => void) => void): Promise<T> {
    return new Promise<T>((resolve, reject) =>
      fn((err, res) => (err ? reject(fromGrpcError(err)) : resolve(res as T))),
    );
  }
}
