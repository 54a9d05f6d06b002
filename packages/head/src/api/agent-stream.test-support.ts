/**
 * Test support for the agent service's stream tests: a node's registration
 * and an agent's stream as the gRPC server hands it over (a fake call that
 * records what the head writes and shows a node certificate).
 */
import { EventEmitter } from 'node:events';
import { Metadata } from '@grpc/grpc-js';
import type { HeadMessage, Register } from '@muster/proto';
import { NodeRegistry } from '../cluster/registry.js';
import { leaderOnFaultyStore } from '../state/leader-store.test-support.js';
import { agentService, type AgentServiceDeps } from './agent-service.js';
import type { RpcContext } from './rpc.js';

export function registration(nodeId: string): Register {
  return {
    nodeId,
    incarnation: 'inc-1',
    agentVersion: 'test',
    address: '127.0.0.1',
    labels: {},
    taints: [],
    inventory: { hostname: nodeId, cpuCores: 8, memoryBytes: 2 ** 34, gpus: [], topology: { links: [], nvlinkIslands: [], nics: [] }, nvlinkDomain: '', source: 'test', customResources: {} },
  };
}

/** An agent's stream as the gRPC server hands it over, showing the node certificate of `node`. */
export function agentStream(node: string) {
  const call = Object.assign(new EventEmitter(), {
    metadata: new Metadata(),
    getAuthContext: () => ({ sslPeerCertificate: { subject: { CN: node, O: 'muster:node' }, subjectaltname: '' } }),
    getPath: () => '/muster.v1.AgentService/Connect',
    written: [] as HeadMessage[],
    write(msg: HeadMessage) {
      call.written.push(msg);
      return true;
    },
    end() {},
  });
  const failed = new Promise<Error>((resolve) => call.once('error', resolve));
  return { call, failed };
}

/**
 * An agent service on a real registry (a leader on a faulty store), with
 * no-op dependencies that `deps` replaces; `open` connects an agent's stream
 * showing the node certificate of `node` (not registered yet). `cleanups`
 * gets the store's close.
 */
export async function agentServiceForTest(name: string, deps: Partial<AgentServiceDeps>, cleanups: Array<() => Promise<void>>) {
  const { log, writer, events, close } = await leaderOnFaultyStore(name);
  cleanups.push(close);
  const registry = new NodeRegistry(writer, events, log, 10_000);
  const ctx = { token: 't0ken', rpcCount: { add: () => undefined }, rpcLatency: { record: () => undefined } } as unknown as RpcContext;
  const noop = () => undefined;
  const service = agentService(ctx, {
    registry,
    log,
    headId: 'test',
    heartbeatIntervalMs: 100,
    deadAfterMs: 10_000,
    nats: undefined,
    heartbeatLag: { record: noop } as never,
    shards: { shardStatus: async () => undefined, shardInventory: async () => undefined },
    logs: { chunk: noop },
    reservations: { snapshotFor: () => ({ groups: [], more: false }), acked: noop },
    ...deps,
  });
  const open = (node: string) => {
    const stream = agentStream(node);
    service.connect(stream.call as never);
    return stream;
  };
  return { service, open };
}
