/**
 * Who may call what on the head: the one access table (docs/security.md,
 * "Roles and node identity").
 *
 * Every method of every gRPC service the head serves has an entry: the least
 * role allowed. Client roles are ordered caller < viewer < deployer < admin,
 * and a role may call everything a lesser one may. `node` is apart from that
 * order: a node's agent may open the agent stream and nothing else, and the
 * agent stream is open to nodes and admins only (the cluster token is an
 * admin: the bench's agent simulator registers any node with it). `head` and
 * `service` certificates (other servers of the cluster) may call nothing.
 *
 * A caller reads only what its router needs, and only for the groups its
 * certificate lets it call: `group` names the field of the request that holds
 * the group, checked with `mayCall`.
 *
 * The table is typed by the generated service definitions, so a method added
 * to a .proto without an entry here does not compile; access.test.ts walks
 * the definitions as well.
 */
import {
  AgentServiceService,
  ClusterServiceService,
  GangServiceService,
  PlacementGroupServiceService,
  ReplicaGroupServiceService,
} from '@muster/proto';
import { mayCall, type Identity, type Role } from '@muster/contracts';
import { ErrorCode, MusterError } from '@muster/common';

/** The least role a method needs. */
export type Need = 'caller' | 'viewer' | 'deployer' | 'admin' | 'node';

export interface Rule {
  need: Need;
  /** For role caller: the request field naming the group it must have the right to call. */
  group?: string;
}

type Table<S> = { readonly [M in keyof S]: Rule };

const VIEWER: Rule = { need: 'viewer' };
const DEPLOYER: Rule = { need: 'deployer' };
const ADMIN: Rule = { need: 'admin' };

const CLUSTER: Table<typeof ClusterServiceService> = {
  // Every client needs the cluster's data-plane access to call a group.
  getClusterInfo: { need: 'caller' },
  // A NATS user minted for the asker's own call rights (none for a viewer).
  getDataPlaneAccess: { need: 'caller' },
  listNodes: VIEWER,
  getNode: VIEWER,
  watchEvents: VIEWER,
  getDrainStatus: VIEWER,
  drainNode: ADMIN,
  uncordonNode: ADMIN,
  removeNode: ADMIN,
};

const PLACEMENT: Table<typeof PlacementGroupServiceService> = {
  getPlacementGroup: VIEWER,
  listPlacementGroups: VIEWER,
  waitPlacementGroup: VIEWER,
  waitPlacementGroups: VIEWER,
  createPlacementGroup: DEPLOYER,
  removePlacementGroup: DEPLOYER,
  // The batched forms need what the single calls need. Placement groups carry
  // no per-group call rights, so the method's rule is every item's.
  createPlacementGroups: DEPLOYER,
  removePlacementGroups: DEPLOYER,
};

const GANG: Table<typeof GangServiceService> = {
  getGang: VIEWER,
  listGangs: VIEWER,
  waitGang: VIEWER,
  streamLogs: VIEWER,
  launchGang: DEPLOYER,
  stopGang: DEPLOYER,
};

const REPLICA: Table<typeof ReplicaGroupServiceService> = {
  // A caller's handle and router: the group it calls, and its live membership.
  getReplicaGroup: { need: 'caller', group: 'name' },
  watchMembership: { need: 'caller', group: 'group' },
  // A caller (the gateway routing by model) lists only the groups it may call (replica-service.ts).
  listReplicaGroups: { need: 'caller' },
  applyReplicaGroup: DEPLOYER,
  scaleReplicaGroup: DEPLOYER,
  deleteReplicaGroup: DEPLOYER,
};

const AGENT: Table<typeof AgentServiceService> = {
  connect: { need: 'node' },
};

interface MethodDefinition {
  path: string;
}

function byPath<S extends { [M in keyof S]: MethodDefinition }>(service: S, table: Table<S>): Array<[string, Rule]> {
  return (Object.keys(service) as Array<keyof S>).map((m) => [service[m].path, table[m]]);
}

/** Full gRPC method path (`/muster.v1.ClusterService/ListNodes`) → its rule. */
export const ACCESS: ReadonlyMap<string, Rule> = new Map([
  ...byPath(ClusterServiceService, CLUSTER),
  ...byPath(PlacementGroupServiceService, PLACEMENT),
  ...byPath(GangServiceService, GANG),
  ...byPath(ReplicaGroupServiceService, REPLICA),
  ...byPath(AgentServiceService, AGENT),
]);

/** Client roles, least to most; a role may call what any role before it may. */
const RANK: Partial<Record<Role, number>> = { caller: 0, viewer: 1, deployer: 2, admin: 3 };

/** Why `who` may not call `path` with `request`; undefined when it may. */
export function refusal(who: Identity, path: string, request?: unknown): string | undefined {
  // Every call comes through here: the words of a refusal are put together only for a refusal.
  const refused = (why: string) => `${who.role} "${who.name}" may not call ${path.replace(/^\/muster\.v1\./, '')}${why}`;
  const rule = ACCESS.get(path);
  if (!rule) return refused(': the head has no access rule for it');
  if (rule.need === 'node') {
    return who.role === 'node' || who.role === 'admin' ? undefined : refused(': it needs role node (a node certificate) or admin');
  }
  const rank = RANK[who.role];
  if (rank === undefined || rank < RANK[rule.need]!) {
    const kind = who.role === 'node' ? ' (a node certificate opens the agent stream only)' : '';
    return refused(`: it needs role ${rule.need} or above${kind}`);
  }
  if (who.role === 'caller' && rule.group) {
    const group = (request as Record<string, unknown> | undefined)?.[rule.group];
    if (typeof group !== 'string' || !mayCall(who, group)) {
      return refused(` for group "${String(group)}": its certificate grants calls to ${rightsOf(who)} only`);
    }
  }
  return undefined;
}

function rightsOf(who: Identity): string {
  if (who.callGroups === 'all') return 'every group';
  return who.callGroups.length ? who.callGroups.map((g) => `"${g}"`).join(', ') : 'no group';
}

/** Throws PERMISSION_DENIED unless `who` may call `path` with `request`. */
export function authorize(who: Identity, path: string, request?: unknown): void {
  const why = refusal(who, path, request);
  if (why) throw new MusterError(ErrorCode.PERMISSION_DENIED, why, { details: { role: who.role, name: who.name, method: path } });
}
