/** The SDK's view of cluster objects: plain, documented, stable. */
import type * as wire from '@muster/proto';
import { NodeState } from '@muster/proto';
import { squareMatrix } from '@muster/common';

export type NodeStateName = 'alive' | 'dead' | 'unknown';

export interface GpuView {
  index: number;
  uuid: string;
  name: string;
  memoryMiB: number;
  numaNode: number | null;
  mig: Array<{ profile: string; uuid: string }>;
}

export interface NodeView {
  id: string;
  state: NodeStateName;
  /** Why the node is in its state ("no heartbeat for 3012 ms"). */
  stateReason: string;
  address: string;
  labels: Record<string, string>;
  taints: Array<{ key: string; value: string; effect: string }>;
  cpuCores: number;
  memoryBytes: number;
  gpus: GpuView[];
  /** GPU indices grouped by NVLink island. */
  nvlinkIslands: number[][];
  /** N×N link matrix as nvidia-smi prints it ("X", "NV18", "SYS", ...). */
  links: string[][];
  nvlinkDomain: string;
  inventorySource: string;
  incarnation: string;
  agentVersion: string;
  registeredAt: Date;
  lastHeartbeatAt: Date;
  stateChangedAt: Date;
  /**
   * Draining (cordoned): takes no new placements, and what runs there is being
   * moved elsewhere. The node stays alive meanwhile. See `Cluster.drainNode`.
   */
  draining: boolean;
  /** Why, as given to drainNode (or "Kubernetes node … cordoned"); "" when not draining. */
  drainReason: string;
  /** Since when (undefined when not draining). */
  drainingSince: Date | undefined;
  /** Who drained it: "operator", "agent" (its worker, e.g. a Kubernetes cordon) or "". */
  drainedBy: string;
}

/** What is still on a node and what moving it waits on (`Cluster.drainStatus`). */
export interface DrainStatusView {
  node: NodeView;
  /** Draining and nothing placed or running there any more. */
  drained: boolean;
  remaining: Array<{
    placementGroupId: string;
    placementGroup: string;
    /** "replica group echo, replica r-1a2b", "gang train", or "" for a bare placement group. */
    owner: string;
    /** What moving it waits on, as a sentence. */
    waitingOn: string;
  }>;
}

/** Kinds of events the head emits today; see docs/events.md. */
export type ClusterEventKind =
  | 'node.registered'
  | 'node.alive'
  | 'node.reconnected'
  | 'node.restarted'
  | 'node.dead'
  | 'node.draining'
  | 'node.uncordoned'
  | 'node.drained'
  | 'pg.reserved'
  | 'pg.created'
  | 'pg.infeasible'
  | 'pg.rescheduling'
  | 'pg.removed'
  | 'pg.quarantined'
  | (string & {});

export interface ClusterEventView {
  id: string;
  time: Date;
  kind: ClusterEventKind;
  /** The node the event is about, or undefined. */
  nodeId: string | undefined;
  message: string;
  attributes: Record<string, string>;
}

const stateNames: Record<number, NodeStateName> = {
  [NodeState.NODE_STATE_ALIVE]: 'alive',
  [NodeState.NODE_STATE_DEAD]: 'dead',
};

export function nodeView(n: wire.Node): NodeView {
  const inv = n.inventory;
  const gpus = inv?.gpus ?? [];
  return {
    id: n.nodeId,
    state: stateNames[n.state] ?? 'unknown',
    stateReason: n.stateReason,
    address: n.address,
    labels: n.labels,
    taints: n.taints,
    cpuCores: inv?.cpuCores ?? 0,
    memoryBytes: inv?.memoryBytes ?? 0,
    gpus: gpus.map((g) => ({
      index: g.index,
      uuid: g.uuid,
      name: g.name,
      memoryMiB: g.memoryMib,
      numaNode: g.numaNode ?? null,
      mig: g.mig.map((m) => ({ profile: m.profile, uuid: m.uuid })),
    })),
    nvlinkIslands: inv?.topology?.nvlinkIslands.map((i) => i.gpuIndices) ?? [],
    links: squareMatrix(inv?.topology?.links ?? [], gpus.length),
    nvlinkDomain: inv?.nvlinkDomain ?? '',
    inventorySource: inv?.source ?? '',
    incarnation: n.incarnation,
    agentVersion: n.agentVersion,
    registeredAt: new Date(n.registeredAtMs),
    lastHeartbeatAt: new Date(n.lastHeartbeatMs),
    stateChangedAt: new Date(n.stateChangedAtMs),
    draining: n.draining,
    drainReason: n.drainReason,
    drainingSince: n.draining ? new Date(n.drainSinceMs) : undefined,
    drainedBy: n.drainedBy,
  };
}

export function drainStatusView(s: wire.DrainStatus): DrainStatusView {
  return { node: nodeView(s.node!), drained: s.drained, remaining: s.remaining.map((r) => ({ ...r })) };
}

export function eventView(e: wire.ClusterEvent): ClusterEventView {
  return {
    id: e.id,
    time: new Date(e.timeMs),
    kind: e.kind,
    nodeId: e.nodeId || undefined,
    message: e.message,
    attributes: e.attributes,
  };
}
