/**
 * Who is on the other end of a link, as a certificate of the cluster CA says
 * it: the one place the encoding is spelled (docs/security.md, "Identities").
 *
 *   Subject CN   the name: a node id for a node, a person or program otherwise
 *   Subject O    the role, `muster:<role>` (one of ROLES)
 *   URI SANs     call rights on the data plane: `urn:muster:call:<group>`, or
 *                `urn:muster:call:*` for every group
 *   DNS/IP SANs  a head's (or NATS', the gateway's) dial addresses
 *
 * Roles, least to most:
 *   caller    calls the groups its rights name; reads nothing else
 *   viewer    reads cluster state (lists, gets, events, logs); calls nothing
 *   deployer  viewer + creates/updates/removes placement groups, gangs and
 *             replica groups; calls the groups its rights name
 *   admin     everything, nodes included (cordon, drain, remove), every group
 *   node      one worker agent: registers as its own node id only
 *   head      serves the API; the only role a client accepts from a server
 *             that claims to be a head (leader hints included)
 *   service   another server of the cluster (NATS, the gateway, etcd): its
 *             certificate names its addresses but it is no head
 * The cluster token (the break-glass bearer credential) is an admin.
 */

export const ROLES = ['caller', 'viewer', 'deployer', 'admin', 'node', 'head', 'service'] as const;
export type Role = (typeof ROLES)[number];

/** Roles a person or program (not a node, not a head) may hold. */
export const CLIENT_ROLES = ['caller', 'viewer', 'deployer', 'admin'] as const satisfies readonly Role[];
export type ClientRole = (typeof CLIENT_ROLES)[number];

const ORG_PREFIX = 'muster:';
const CALL_URI_PREFIX = 'urn:muster:call:';

/** Every group (a call right). */
export const ALL_GROUPS = '*';

/** The subject O that carries `role`. */
export function roleOrganization(role: Role): string {
  return ORG_PREFIX + role;
}

/** The role a subject O names; undefined when it names none. */
export function roleOfOrganization(o: string | undefined): Role | undefined {
  if (!o?.startsWith(ORG_PREFIX)) return undefined;
  const r = o.slice(ORG_PREFIX.length);
  return (ROLES as readonly string[]).includes(r) ? (r as Role) : undefined;
}

/** The URI SAN that grants calls to `group` (ALL_GROUPS: every group). */
export function callRightUri(group: string): string {
  return CALL_URI_PREFIX + group;
}

/** The group a URI SAN grants calls to; undefined when it is not a call right. */
export function groupOfCallRightUri(uri: string): string | undefined {
  return uri.startsWith(CALL_URI_PREFIX) && uri.length > CALL_URI_PREFIX.length ? uri.slice(CALL_URI_PREFIX.length) : undefined;
}

/** A verified peer: its role, its name (the node id for a node) and the groups it may call. */
export interface Identity {
  role: Role;
  name: string;
  /** Groups this identity may call on the data plane; 'all' for every group. */
  callGroups: readonly string[] | 'all';
}

/** What the cluster token (bearer) authenticates as. */
export const TOKEN_IDENTITY: Identity = Object.freeze({ role: 'admin', name: 'cluster-token', callGroups: 'all' });

/** Whether `who` may call `group` on the data plane. */
export function mayCall(who: Identity, group: string): boolean {
  if (who.role === 'admin') return true;
  if (who.role !== 'caller' && who.role !== 'deployer') return false;
  return who.callGroups === 'all' || who.callGroups.includes(group);
}
