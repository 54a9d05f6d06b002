/**
 * Test support for the agent service's stream tests: a node's registration
 * and an agent's stream as the gRPC server hands it over (a fake call that
 * records what the head writes and shows a node certificate).
 */
import { EventEmitter } from 'node:events';
import { Metadata } from '@grpc/grpc-js';
import type { HeadMessage, Register } from '@muster/proto';

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
