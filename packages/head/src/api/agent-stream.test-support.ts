/**
 * Test support for the agent service's stream tests: a node's registration,
 * an agent's stream as the gRPC server hands it over (a fake call that
 * records what the head writes and shows a node certificate or the token),
 * and the service itself with no-op dependencies.
 */
import { EventEmitter } from 'node:events';
import { Metadata } from '@grpc/grpc-js';
import type { AgentServiceServer, HeadMessage, Register } from '@muster/proto';
import { NodeRegistry } from '../cluster/registry.js';
import { gpuNodeRegistration } from '../controllers/controllers.test-support.js';
import { leaderOnFaultyStore } from '../state/leader-store.test-support.js';
import { agentService, type AgentServiceDeps } from './agent-service.js';
import type { RpcContext } from './rpc.js';

/** A node's registration as the agent service takes it (no GPUs: the shared GPU node has no link matrix, which validation wants). */
export const registration = (nodeId: string, incarnation = 'inc-1'): Register => gpuNodeRegistration(nodeId, { gpus: 0, incarnation });

/**
 * An agent's stream as the gRPC server hands it over: messages in, writes and
 * an error out. It sends the cluster token; `node`: the node certificate it
 * shows too (which wins over the token), none for an admin.
 */
export function agentStream(node?: string) {
  const peer = node === undefined ? undefined : { subject: { CN: node, O: 'muster:node' }, subjectaltname: '' };
  const call = Object.assign(new EventEmitter(), {
    metadata: new Metadata(),
    getAuthContext: () => ({ sslPeerCertificate: peer }),
    getPath: () => '/muster.v1.AgentService/Connect',
    written: [] as HeadMessage[],
    write(msg: HeadMessage) {
      call.written.push(msg);
      return true;
    },
    end() {},
  });
  call.metadata.set('authorization', 'Bearer t0ken');
  const failed = new Promise<Error>((resolve) => call.once('error', resolve));
  return { call, failed };
}

/** An agent service whose token is `t0ken`, on `deps`' registry and log, with no-op dependencies for the rest unless `deps` names them. */
export function agentServiceOn(deps: Pick<AgentServiceDeps, 'registry' | 'log' | 'deadAfterMs'> & Partial<AgentServiceDeps>): AgentServiceServer {
  const ctx = { token: 't0ken', rpcCount: { add: () => undefined }, rpcLatency: { record: () => undefined } } as unknown as RpcContext;
  const noop = () => undefined;
  return agentService(ctx, {
    headId: 'test',
    heartbeatIntervalMs: 100,
    nats: undefined,
    heartbeatLag: { record: noop } as never,
    shards: { shardStatus: async () => undefined, shardInventory: async () => undefined },
    logs: { chunk: noop },
    reservations: { snapshotFor: () => ({ groups: [], more: false }), acked: noop },
    ...deps,
  });
}

/** Connects an agent's stream (see agentStream) to `service`. */
export function openAgentStream(service: AgentServiceServer, node?: string) {
  const stream = agentStream(node);
  service.connect(stream.call as never);
  return stream;
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
  const service = agentServiceOn({ registry, log, deadAfterMs: 10_000, ...deps });
  return { service, open: (node: string) => openAgentStream(service, node) };
}
