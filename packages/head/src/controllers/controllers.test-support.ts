/**
 * Test support for the controller tests that run on a real registry: a GPU
 * node's registration, and its agent as an in-process stub that acknowledges
 * reservations as the real one does and records everything else it is told.
 */
import type { HeadMessage, Register } from '@muster/proto';
import type { AgentConnection } from '../cluster/registry.js';
import type { PlacementGroupController } from './placement-groups.js';

/** A node with 4 GPUs in one NVLink island (64 cores, 512 GiB). */
export function gpuNodeRegistration(nodeId: string): Register {
  return {
    nodeId, incarnation: 'inc-1', agentVersion: 'test', address: '127.0.0.1', labels: {}, taints: [],
    inventory: {
      hostname: nodeId, cpuCores: 64, memoryBytes: 512 * 2 ** 30, nvlinkDomain: '', source: 'test', customResources: {},
      gpus: Array.from({ length: 4 }, (_, i) => ({ index: i, uuid: `GPU-${nodeId}-${i}`, name: 'Test GPU', memoryMib: 81_559, numaNode: 0, mig: [], pciBusId: '', migEnabled: false })),
      topology: { links: [], nvlinkIslands: [{ gpuIndices: [0, 1, 2, 3] }], nics: [] },
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
