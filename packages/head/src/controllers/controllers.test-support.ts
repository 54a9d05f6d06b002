/**
 * Test support for the controller tests that run on a real registry: a GPU
 * node's registration, and its agent as an in-process stub that acknowledges
 * reservations as the real one does and records everything else it is told.
 */
import type { HeadMessage, Register } from '@muster/proto';
import type { AgentConnection } from '../cluster/registry.js';
import type { PlacementGroupController } from './placement-groups.js';

/**
 * A node of `gpus` GPUs (default 4) in NVLink islands of 4, each island its own NUMA node (64 cores, 512 GiB).
 * It carries no link matrix, so the agent service's validation takes it only with `gpus: 0`.
 */
export function gpuNodeRegistration(nodeId: string, { gpus = 4, address = '127.0.0.1', incarnation = 'inc-1' }: { gpus?: number; address?: string; incarnation?: string } = {}): Register {
  const indices = Array.from({ length: gpus }, (_, i) => i);
  return {
    nodeId, incarnation, agentVersion: 'test', address, labels: {}, taints: [],
    inventory: {
      hostname: nodeId, cpuCores: 64, memoryBytes: 512 * 2 ** 30, nvlinkDomain: '', source: 'test', customResources: {},
      gpus: indices.map((i) => ({ index: i, uuid: `GPU-${nodeId}-${i}`, name: 'Test GPU', memoryMib: 81_559, numaNode: Math.floor(i / 4), mig: [], pciBusId: '', migEnabled: false })),
      topology: { links: [], nvlinkIslands: Array.from({ length: Math.ceil(gpus / 4) }, (_, k) => ({ gpuIndices: indices.slice(4 * k, 4 * k + 4) })), nics: [] },
    },
  };
}

/** The agent of `nodeId`: acknowledges each reservation (in a microtask) and records, in order, what else it was told. */
export function ackingAgent(pgs: PlacementGroupController, nodeId: string): { conn: AgentConnection; told: HeadMessage[] } {
  const told: HeadMessage[] = [];
  const conn: AgentConnection = {
    id: 1,
    send: (msg) => {
      if (msg.msg?.$case === 'reserveBundles') {
        const groupId = msg.msg.value.groupId;
        queueMicrotask(() => pgs.acked(nodeId, groupId));
      } else told.push(msg);
    },
    close: () => undefined,
  };
  return { conn, told };
}
