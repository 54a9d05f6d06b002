/**
 * The role part of the shard environment: what a rank of a gang with roles
 * (a replica group's prefill and decode, docs/gangs.md "Roles") learns about
 * its own role and where the other roles listen.
 *
 * Decisions:
 *  - Each role instance is its own TP × PP world: RANK, WORLD_SIZE,
 *    MASTER_ADDR/PORT and the MUSTER_TP_/PP_ variables are the instance's, so
 *    an engine started in a role needs nothing role-specific to rendezvous.
 *  - Addresses are given per role and port name, as "host:port" of each
 *    instance's first rank, comma-separated in instance order:
 *    MUSTER_ROLE_ADDR_PREFILL_HTTP=10.0.0.5:30001. Every role is listed, the
 *    rank's own included (a decode instance may want its siblings).
 *  - Role names are [a-z][a-z0-9]* (no "_"), so the first "_" after the
 *    prefix separates the role from the port name without ambiguity.
 */
import { SHARD_ENV, type EnvMap } from './shard-env.js';

/** What a role name may be (it becomes part of a variable name). */
export const ROLE_NAME_PATTERN = /^[a-z][a-z0-9]{0,30}$/;

/** MUSTER_ROLE_ADDR_<ROLE>_<PORT>. */
export function roleAddrVar(role: string, port: string): string {
  return `${SHARD_ENV.ROLE_ADDR_PREFIX}${role.toUpperCase()}_${port.toUpperCase()}`;
}

/** One role instance's first rank, as the head placed it. */
export interface RoleEndpoint {
  role: string;
  index: number;
  host: string;
  /** Allocated port by template port name. */
  ports: Readonly<Record<string, number>>;
}

export interface RoleEnvInput {
  role: string;
  index: number;
  count: number;
  /** Every role of the gang, in gang order. */
  roles: readonly string[];
  /** The first rank of every role instance of the gang. */
  endpoints: readonly RoleEndpoint[];
}

/**
 * The role variables every rank of a gang shares: MUSTER_ROLES and every
 * MUSTER_ROLE_ADDR_*. The head builds them once per layout (they cost
 * instances × ports) and hands the same object to each rank's rankRoleEnv.
 */
export function sharedRoleEnv(roles: readonly string[], endpoints: readonly RoleEndpoint[]): Readonly<Record<string, string>> {
  const env: Record<string, string> = { [SHARD_ENV.ROLES]: roles.join(',') };
  const sorted = [...endpoints].sort((a, b) => a.index - b.index);
  for (const e of sorted) {
    for (const [port, n] of Object.entries(e.ports)) {
      const name = roleAddrVar(e.role, port);
      env[name] = env[name] ? `${env[name]},${e.host}:${n}` : `${e.host}:${n}`;
    }
  }
  return env;
}

/** One rank's role variables: its own role and instance over the gang's shared ones (sharedRoleEnv). */
export function rankRoleEnv(r: Pick<RoleEnvInput, 'role' | 'index' | 'count'>, shared: Readonly<Record<string, string>>): Record<string, string> {
  return { ...shared, [SHARD_ENV.ROLE]: r.role, [SHARD_ENV.ROLE_INDEX]: String(r.index), [SHARD_ENV.ROLE_COUNT]: String(r.count) };
}

/** The role variables of one rank (the head writes them next to rankEnv's). */
export function roleEnv(r: RoleEnvInput): Record<string, string> {
  return rankRoleEnv(r, sharedRoleEnv(r.roles, r.endpoints));
}

/** A rank's view of its role (undefined: the rank's gang has no roles). */
export interface RoleView {
  role: string;
  index: number;
  count: number;
  roles: string[];
  /** "host:port" of each instance's first rank, by role, then lower-case port name. */
  addrs: Record<string, Record<string, string[]>>;
}

/** Reads the role variables; undefined when MUSTER_ROLE is not set. */
export function readRoleEnv(env: EnvMap): RoleView | undefined {
  const role = env[SHARD_ENV.ROLE];
  if (!role) return undefined;
  const roles = (env[SHARD_ENV.ROLES] ?? '').split(',').filter((x) => x.length > 0);
  const addrs: Record<string, Record<string, string[]>> = {};
  for (const [k, v] of Object.entries(env)) {
    if (!k.startsWith(SHARD_ENV.ROLE_ADDR_PREFIX) || !v) continue;
    const rest = k.slice(SHARD_ENV.ROLE_ADDR_PREFIX.length);
    const cut = rest.indexOf('_');
    if (cut <= 0) continue;
    const name = rest.slice(0, cut).toLowerCase();
    (addrs[name] ??= {})[rest.slice(cut + 1).toLowerCase()] = v.split(',');
  }
  return { role, index: Number(env[SHARD_ENV.ROLE_INDEX] ?? 0), count: Number(env[SHARD_ENV.ROLE_COUNT] ?? 1), roles, addrs };
}
