/** ClusterService: the SDK's and CLI's view of the cluster, and node drains. */
import type { ServerWritableStream } from '@grpc/grpc-js';
import { checkLength, ErrorCode, MusterError } from '@muster/common';
import {
  NodeState,
  type ClusterEvent,
  type ClusterInfo,
  type ClusterServiceServer,
  type DrainNodeRequest,
  type DrainStatus,
  type GetDataPlaneAccessRequest,
  type ListNodesRequest,
  type ListNodesResponse,
  Node,
  type NatsAccess,
  type WatchEventsRequest,
} from '@muster/proto';
import type { NodeRegistry } from '../cluster/registry.js';
import type { DataPlaneUsers } from '../dataplane/index.js';
import type { EventLog } from '../events/event-log.js';
import { BoundedStream, DEFAULT_MAX_QUEUED } from './bounded-stream.js';
import { paginate } from './pages.js';
import { unary, serverStream, type RpcContext } from './rpc.js';
import { clusterSummary, type SummarySources } from './summary.js';

export interface ClusterServiceDeps {
  registry: NodeRegistry;
  events: EventLog;
  drains: { settledStatus(nodeId: string): Promise<DrainStatus> };
  /** Events a WatchEvents consumer may fall behind before it is cut. */
  streamBufferMessages?: number;
  /** What the summary counts besides nodes; the controllers themselves, whose isQuarantined() marks the records this head cannot read. */
  groups: Omit<SummarySources, 'nodes'>;
  info: { headId: string; version: string; store: string; nats: NatsAccess | undefined; heartbeatIntervalMs: number; deadAfterMs: number };
  /** The NATS users the head mints (undefined: no NATS, GetDataPlaneAccess is refused). */
  dataPlane?: DataPlaneUsers | undefined;
}

export function clusterService(ctx: RpcContext, deps: ClusterServiceDeps): ClusterServiceServer {
  const { registry, events, info } = deps;
  const nodeId = (id: string) => {
    if (!id) throw new MusterError(ErrorCode.INVALID_ARGUMENT, 'node_id is required', { details: { field: 'nodeId' } });
    return id;
  };
  return {
    getClusterInfo: unary(ctx, 'GetClusterInfo', async (): Promise<ClusterInfo> => ({
      headId: info.headId,
      version: info.version,
      store: info.store,
      nodesAlive: registry.count(NodeState.NODE_STATE_ALIVE),
      nodesDead: registry.count(NodeState.NODE_STATE_DEAD),
      nats: info.nats,
      heartbeatIntervalMs: info.heartbeatIntervalMs,
      deadAfterMs: info.deadAfterMs,
      summary: clusterSummary({ nodes: registry.all(), ...deps.groups }),
    })),
    listNodes: unary(ctx, 'ListNodes', async (req: ListNodesRequest): Promise<ListNodesResponse> => listNodes(ctx, registry, req)),
    getNode: unary(ctx, 'GetNode', async (req: { nodeId: string }) => {
      const node = registry.get(req.nodeId);
      if (!node) throw new MusterError(ErrorCode.NOT_FOUND, `no node "${req.nodeId}"`, { details: { nodeId: req.nodeId } });
      return node;
    }),
    // Minted for the caller's own identity: its NATS permissions follow
    // mayCall(identity, group), so a viewer's user may publish to no group.
    getDataPlaneAccess: unary(ctx, 'GetDataPlaneAccess', async (req: GetDataPlaneAccessRequest, _md, who): Promise<NatsAccess> => {
      if (!deps.dataPlane) throw new MusterError(ErrorCode.FAILED_PRECONDITION, 'the head runs without NATS (--nats-url): there is no data plane');
      return deps.dataPlane.caller(who, req.inboxPrefix.slice(0, 64));
    }),
    watchEvents: serverStream(ctx, 'WatchEvents', (call) => watchEvents(events, call, deps.streamBufferMessages)),
    drainNode: unary(ctx, 'DrainNode', async (req: DrainNodeRequest) => registry.drain(nodeId(req.nodeId), checkLength('reason', req.reason.trim(), 'reasonLength'), 'operator')),
    uncordonNode: unary(ctx, 'UncordonNode', async (req: { nodeId: string }) => registry.uncordon(nodeId(req.nodeId), 'operator')),
    getDrainStatus: unary(ctx, 'GetDrainStatus', (req: { nodeId: string }) => deps.drains.settledStatus(nodeId(req.nodeId))),
    removeNode: unary(ctx, 'RemoveNode', async (req: { nodeId: string }, _md, who) => registry.remove(nodeId(req.nodeId), `removed by ${who.role} "${who.name}"`)),
  };
}

/** One page of nodes in id order, filtered by state, id prefix, labels and draining. */
function listNodes(ctx: RpcContext, registry: NodeRegistry, req: ListNodesRequest): ListNodesResponse {
  const { state, nodeIdPrefix, labels, draining } = req;
  const wanted = Object.entries(labels);
  const matches = (n: Node) =>
    (state === NodeState.NODE_STATE_UNSPECIFIED || n.state === state) &&
    n.nodeId.startsWith(nodeIdPrefix) && (draining === undefined || n.draining === draining) && wanted.every(([k, v]) => n.labels[k] === v);
  const filters = { state, nodeIdPrefix, labels, draining };
  const page = paginate(ctx.pageKey, {
    list: 'nodes',
    filters,
    req,
    items: [...registry.all()].filter(matches),
    sortKey: (n) => n.nodeId,
    sizeOf: (n) => Node.encode(n).finish().length,
  });
  return { nodes: page.items, nextPageToken: page.nextPageToken };
}

/**
 * Replays retained events (if asked), then streams live ones until the
 * client goes away. Live events that arrive during the replay are queued
 * and de-duplicated by id, so none is lost or sent twice. With
 * `markReplayEnd`, one marker (`replayEnd: true`, nothing else) follows the
 * replay (at once without one): what comes after it is live.
 *
 * Back-pressure: the replay reads a page at a time and waits for the client
 * between pages; live events go through a BoundedStream, and a consumer
 * that falls `maxQueued` events behind (live, or queued during its replay)
 * is cut with MUSTER_CONSUMER_TOO_SLOW naming the id to resume from.
 */
export async function watchEvents(
  events: Pick<EventLog, 'pages' | 'subscribe'>,
  call: ServerWritableStream<WatchEventsRequest, ClusterEvent>,
  maxQueued = DEFAULT_MAX_QUEUED,
): Promise<void> {
  const { replay, afterId, kinds, markReplayEnd } = call.request;
  const wanted = (e: ClusterEvent) => kinds.length === 0 || kinds.some((k) => e.kind.startsWith(k));
  let lastId = afterId;
  let replaying = replay || afterId !== '';
  const queued: ClusterEvent[] = [];
  const out = new BoundedStream<ClusterEvent>(call, { what: 'the event stream', maxQueued, idOf: (e) => e.id });
  const gone = new AbortController(); // the client went away: stop waiting for it
  const leave = () => gone.abort();
  call.once('cancelled', leave);
  call.once('close', leave);
  call.once('error', leave);
  const send = (e: ClusterEvent) => {
    if (e.id <= lastId) return;
    lastId = e.id;
    if (wanted(e)) out.send(e);
  };
  let overflow: (() => void) | undefined;
  const unsubscribe = events.subscribe((e) => {
    if (!replaying) send(e);
    else if (queued.length < maxQueued) queued.push(e);
    else overflow?.();
  });
  try {
    const served = (async () => {
      if (replaying) {
        for await (const page of events.pages(afterId)) {
          if (gone.signal.aborted) return;
          for (const e of page) send(e);
          await out.ready(gone.signal);
        }
        for (const e of queued.splice(0)) send(e);
        replaying = false;
      }
      if (markReplayEnd) out.send({ id: '', timeMs: 0, kind: '', nodeId: '', message: '', attributes: {}, replayEnd: true });
      if (!gone.signal.aborted) await new Promise<void>((resolve) => gone.signal.addEventListener('abort', () => resolve(), { once: true }));
    })();
    // Live events overflowing the replay's queue cut the consumer like a full buffer does.
    const cutDuringReplay = new Promise<never>((_, reject) => {
      overflow = () => reject(new MusterError(ErrorCode.CONSUMER_TOO_SLOW, `consumer too slow: more than ${maxQueued} live events arrived during its replay; resume from the last id received`));
    });
    cutDuringReplay.catch(() => {}); // settled or not, the race below decides
    served.catch(() => {}); // a replay read failing after a cut has no one left to tell
    await Promise.race([served, out.cut, cutDuringReplay]);
  } finally {
    unsubscribe();
  }
}
