/** The access table (access.ts): complete over the generated services, and who may call what. */
import { describe, expect, it } from 'vitest';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { TOKEN_IDENTITY, type Identity } from '@muster/contracts';
import { isMusterError } from '@muster/common';
import * as proto from '@muster/proto';
import { ACCESS, authorize, refusal } from './access.js';
import { checkNodeBinding } from './agent-service.js';

/** Every generated gRPC service definition (`…ServiceService`) the proto package exports. */
function serviceDefinitions(): Array<[string, ServiceDefinition]> {
  return Object.entries(proto).filter(([name]) => name.endsWith('ServiceService')) as Array<[string, ServiceDefinition]>;
}

const who = (role: Identity['role'], name: string = role, callGroups: Identity['callGroups'] = []): Identity => ({ role, name, callGroups });
const viewer = who('viewer', 'vera');
const deployer = who('deployer', 'dora', ['llm']);
const caller = who('caller', 'app', ['llm']);
const node = who('node', 'n1');

const path = (service: string, method: string) => `/muster.v1.${service}/${method}`;

describe('the access table', () => {
  it('has a rule for every method of every generated service', () => {
    const services = serviceDefinitions();
    expect(services.map(([n]) => n).sort()).toEqual([
      'AgentServiceService',
      'ClusterServiceService',
      'GangServiceService',
      'PlacementGroupServiceService',
      'ReplicaGroupServiceService',
    ]);
    const missing = services.flatMap(([, def]) => Object.values(def).map((m) => m.path)).filter((p) => !ACCESS.has(p));
    expect(missing).toEqual([]);
    expect(ACCESS.size).toBe(services.reduce((n, [, def]) => n + Object.keys(def).length, 0));
  });

  it.each([
    // [identity, service, method, allowed]
    [viewer, 'ClusterService', 'ListNodes', true],
    [viewer, 'ClusterService', 'WatchEvents', true],
    [viewer, 'GangService', 'StreamLogs', true],
    [viewer, 'PlacementGroupService', 'WaitPlacementGroups', true],
    [viewer, 'PlacementGroupService', 'CreatePlacementGroup', false],
    [viewer, 'ReplicaGroupService', 'ScaleReplicaGroup', false],
    [viewer, 'ClusterService', 'DrainNode', false],
    [viewer, 'AgentService', 'Connect', false],
    [deployer, 'PlacementGroupService', 'CreatePlacementGroup', true],
    [deployer, 'PlacementGroupService', 'CreatePlacementGroups', true],
    [deployer, 'PlacementGroupService', 'RemovePlacementGroups', true],
    [viewer, 'PlacementGroupService', 'CreatePlacementGroups', false],
    [viewer, 'PlacementGroupService', 'RemovePlacementGroups', false],
    [caller, 'PlacementGroupService', 'CreatePlacementGroups', false],
    [deployer, 'GangService', 'LaunchGang', true],
    [deployer, 'ReplicaGroupService', 'ApplyReplicaGroup', true],
    [deployer, 'ReplicaGroupService', 'DeleteReplicaGroup', true],
    [deployer, 'ClusterService', 'ListNodes', true],
    [deployer, 'ClusterService', 'DrainNode', false],
    [deployer, 'ClusterService', 'RemoveNode', false],
    [TOKEN_IDENTITY, 'ClusterService', 'RemoveNode', true],
    [TOKEN_IDENTITY, 'AgentService', 'Connect', true],
    [who('admin', 'ops'), 'ClusterService', 'UncordonNode', true],
    [node, 'AgentService', 'Connect', true],
    [node, 'ClusterService', 'ListNodes', false],
    [node, 'ClusterService', 'GetClusterInfo', false],
    [who('head'), 'ClusterService', 'GetClusterInfo', false],
    [who('head'), 'AgentService', 'Connect', false],
    [who('service', 'gateway'), 'ReplicaGroupService', 'ListReplicaGroups', false],
    [caller, 'ClusterService', 'GetClusterInfo', true],
    [caller, 'ClusterService', 'ListNodes', false],
    [caller, 'ReplicaGroupService', 'ListReplicaGroups', true], // filtered to its groups (replica-service.ts)
  ] as const)('%o calls %s/%s: allowed %s', (id, service, method, allowed) => {
    expect(refusal(id, path(service, method), {}) === undefined).toBe(allowed);
  });

  it('asks of a batched placement group call what the single call asks of each of its items', () => {
    for (const [batch, single] of [['CreatePlacementGroups', 'CreatePlacementGroup'], ['RemovePlacementGroups', 'RemovePlacementGroup']] as const) {
      expect(ACCESS.get(path('PlacementGroupService', batch))).toEqual(ACCESS.get(path('PlacementGroupService', single)));
    }
  });

  it('lets a caller read only the groups it may call', () => {
    expect(refusal(caller, path('ReplicaGroupService', 'WatchMembership'), { group: 'llm' })).toBeUndefined();
    expect(refusal(caller, path('ReplicaGroupService', 'GetReplicaGroup'), { name: 'llm' })).toBeUndefined();
    expect(refusal(caller, path('ReplicaGroupService', 'WatchMembership'), { group: 'payroll' })).toBe(
      'caller "app" may not call ReplicaGroupService/WatchMembership for group "payroll": its certificate grants calls to "llm" only',
    );
    expect(refusal(who('caller', 'any', 'all'), path('ReplicaGroupService', 'GetReplicaGroup'), { name: 'payroll' })).toBeUndefined();
    // Reading is a viewer's right: a viewer or deployer reads every group, whatever it may call.
    expect(refusal(viewer, path('ReplicaGroupService', 'WatchMembership'), { group: 'payroll' })).toBeUndefined();
    expect(refusal(deployer, path('ReplicaGroupService', 'GetReplicaGroup'), { name: 'payroll' })).toBeUndefined();
  });

  it('refuses with PERMISSION_DENIED naming the identity, its role, the method and the role it needs', () => {
    let err: unknown;
    try {
      authorize(viewer, path('PlacementGroupService', 'CreatePlacementGroup'));
    } catch (e) {
      err = e;
    }
    expect(isMusterError(err) && err.code).toBe('MUSTER_PERMISSION_DENIED');
    expect((err as Error).message).toBe('viewer "vera" may not call PlacementGroupService/CreatePlacementGroup: it needs role deployer or above');
    expect(refusal(node, path('ClusterService', 'ListNodes'))).toBe(
      'node "n1" may not call ClusterService/ListNodes: it needs role viewer or above (a node certificate opens the agent stream only)',
    );
    expect(refusal(viewer, '/muster.v1.Nope/Nothing')).toMatch(/no access rule/);
  });
});

describe('node identity on the agent stream', () => {
  it('binds a node certificate to the node id it names; an admin registers any', () => {
    expect(() => checkNodeBinding(node, 'n1')).not.toThrow();
    expect(() => checkNodeBinding(TOKEN_IDENTITY, 'n7')).not.toThrow();
    expect(() => checkNodeBinding(node, 'n2')).toThrow('node "n1" may not register as node "n2": a node certificate registers only the node id it names (CN)');
    expect(() => checkNodeBinding(deployer, 'n1')).toThrow(/deployer "dora" may not register a node/);
  });
});
