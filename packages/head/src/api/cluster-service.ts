/** ClusterService: the SDK's and CLI's view of the cluster, and node drains. */
import type { ServerWritableStream } from '@grpc/grpc-js';
import { ErrorCode, MusterError } from '@muster/common';
import {
  NodeState,
  type ClusterEvent,
  type ClusterInfo,
  type ClusterServiceServer,
  type DrainNodeRequest,
  type DrainStatus,
  type ListNodesRequest,
  type ListNodesResponse,
  Node,
  type NatsAccess,
  type WatchEventsRequest,
} from '@muster/proto';
import type { NodeRegistry } from '../cluster/registry.js';
import type { EventLog } from '../events/event-log.js';
import { paginate } from './pages.js';
import { unary, serverStream, type RpcContext } from './rpc.js';
import { clusterSummary, type SummarySources } from './summary.js';

export interface ClusterServiceDeps {
  registry: NodeRegistry;
  events: EventLog;
  drains: { status(nodeId: string): DrainStatus };
  /** What the summary counts besides nodes. */
  groups: Omit<SummarySources, 'nodes'>;
  info: { headId: string; version: string; store: string; nats: NatsAccess | undefined; heartbeatIntervalMs: number; deadAfterMs: number };
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
    watchEvents: serverStream(ctx, 'WatchEvents', (call) => watchEvents(events, call)),
    drainNode: unary(ctx, 'DrainNode', async (req: DrainNodeRequest) => registry.drain(nodeId(req.nodeId), req.reason.trim(), 'operator')),
    uncordonNode: unary(ctx, 'UncordonNode', async (req: { nodeId: string }) => registry.uncordon(nodeId(req.nodeId), 'operator')),
    getDrainStatus: unary(ctx, 'GetDrainStatus', async (req: { nodeId: string }) => deps.drains.status(nodeId(req.nodeId))),
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
 */
async function watchEvents(events: EventLog, call: ServerWritableStream<WatchEventsRequest, ClusterEvent>): Promise<void> {
  const { replay, afterId, kinds, markReplayEnd } = call.request;
  const wanted = (e: ClusterEvent) => kinds.length === 0 || kinds.some((k) => e.kind.startsWith(k));
  let lastId = afterId;
  let replaying = replay || afterId !== '';
  const queued: ClusterEvent[] = [];
  const send = (e: ClusterEvent) => {
    if (e.id <= lastId) return;
    lastId = e.id;
    if (wanted(e)) call.write(e);
  };
  const unsubscribe = events.subscribe((e) => (replaying ? queued.push(e) : send(e)));
  try {
    if (replaying) {
      for (const e of await events.history(afterId)) send(e);
      for (const e of queued) send(e);
      replaying = false;
    }
    if (markReplayEnd) call.write({ id: '', timeMs: 0, kind: '', nodeId: '', message: '', attributes: {}, replayEnd: true });
    await new Promise<void>((resolve) => {
      call.once('cancelled', resolve);
      call.once('close', resolve);
      call.once('error', resolve);
    });
  } finally {
    unsubscribe();
  }
}
