/**
 * Replica groups with roles (docs/replica-groups.md, "Roles"): a replica made
 * of several roles — say `prefill` ×1 and `decode` ×2, each with its own
 * template, TP × PP and resources — that is still ONE replica: one placement
 * group holding every role's bundles (all or nothing; the group's
 * `placement.topology` is the rule between the roles: same node, NVLink
 * domain or rack, required or preferred) and ONE gang (one barrier, one
 * restart unit; gang-roles.ts lays its ranks out). Scaling, draining,
 * replacement and rollout act on replicas, so they act on all roles at once
 * with no code of their own. Pure.
 *
 * Decisions:
 *  - The entry role (marked `entry`, else the first) is put first in the
 *    gang, so its first instance's first rank is gang rank 0: the rank the
 *    worker bridges HTTP calls to, scrapes engine metrics from, and that a
 *    NATS shard serves from. The entry role does the rest of the protocol
 *    itself (a prefill-then-decode proxy: examples/disaggregated), with the
 *    other roles' addresses from its environment.
 *  - With roles, the group-level `template`, `tp`, `pp` and `resources` stay
 *    unset (refused otherwise): two places for one thing would let them
 *    disagree. `httpPort` names a port of the entry role's template.
 *  - Every role's template gets the replica's revision and subject prefix, so
 *    each role's ranks know the replica they are in; only the entry role's get
 *    what makes a rank the replica's server (MUSTER_SUBJECT, MUSTER_HTTP_BRIDGE,
 *    MUSTER_ENGINE_METRICS): a decode instance calling serve() must not join
 *    the replica's queue group. The worker gives the group's NATS credential
 *    only to a rank that serves on NATS itself (shard-agent.ts).
 */
import { limitMessage } from '@muster/common';
import { SHARD_ENV, SPEC_LIMITS, templateBytes } from '@muster/contracts';
import type { Bundle, GangRole, ReplicaGroupSpec, ReplicaRole, ShardResources } from '@muster/proto';

const DEFAULT_RESOURCES: ShardResources = { gpus: 0, cpuMillis: 0, memoryBytes: 0, gpuMemoryMib: 0, migProfile: '', custom: {} };

/** The roles with proto3 zeros read as defaults (count, tp, pp 1; resources none). */
export function rolesWithDefaults(roles: readonly ReplicaRole[] | undefined): ReplicaRole[] {
  return (roles ?? []).map((r) => ({
    name: r.name,
    count: r.count || 1,
    tp: r.tp || 1,
    pp: r.pp || 1,
    resources: { ...DEFAULT_RESOURCES, ...r.resources },
    template: r.template,
    entry: r.entry,
  }));
}

/**
 * What is wrong with a spec's roles as a replica group's, one message per
 * problem naming the field ("roles[1].template: …"); [] when the spec has
 * none. `w` is the spec as sent (to tell a group-level field that was set
 * from its default). The rules of a gang's roles (names, counts, Σ count,
 * ranks, each template) are not repeated here: the replica's gang is parsed
 * with them (gang-roles.ts parseRoles), its errors named by the spec's order.
 */
export function roleIssues(w: ReplicaGroupSpec | undefined, roles: readonly ReplicaRole[], httpPort: string): string[] {
  if (roles.length === 0) return [];
  const issues: string[] = [];
  if (w?.template) issues.push('template: a group with roles has no group-level template (each role has its own)');
  // 1 is what a parsed spec holds (the stored one is parsed again on load): only more is a conflict.
  if ((w?.tp ?? 0) > 1 || (w?.pp ?? 0) > 1) issues.push(`${(w?.tp ?? 0) > 1 ? 'tp' : 'pp'}: a group with roles sets tp and pp per role`);
  const r = w?.resources;
  if (r && (r.gpus || r.cpuMillis || r.memoryBytes || r.gpuMemoryMib || r.migProfile || Object.keys(r.custom).length)) issues.push('resources: a group with roles sets resources per role');
  roles.forEach((role, i) => {
    if (!role.template) issues.push(`roles[${i}].template: each role needs a template (command, ports, probes)`);
  });
  // The roles' templates together are what one template may be: the stored spec and each launch order stay the size they were.
  const bytes = roles.reduce((n, x) => n + (x.template ? templateBytes(x.template) : 0), 0);
  if (bytes > SPEC_LIMITS.templateBytes) issues.push(`roles: the roles' commands, args and env together take ${limitMessage('templateBytes', bytes, 'bytes')}`);
  const entries = roles.filter((x) => x.entry);
  if (entries.length > 1) issues.push(`roles: at most one role is the entry (${entries.map((x) => x.name).join(', ')} are)`);
  const entry = entryRole(roles);
  if (httpPort && entry && !entry.template?.ports.some((p) => p.name === httpPort)) {
    issues.push(`httpPort: "${httpPort}" is not a port name of the entry role ${entry.name}'s template (${entry.template?.ports.map((p) => p.name).join(', ') || 'none'})`);
  }
  return issues;
}

/** The role that receives the replica's calls: the one marked `entry`, else the first. */
export function entryRole<R extends Pick<ReplicaRole, 'entry'>>(roles: readonly R[]): R | undefined {
  return roles.find((r) => r.entry) ?? roles[0];
}

/** The roles in gang order: the entry role first, then the others as declared. */
export function gangOrder<R extends Pick<ReplicaRole, 'entry'>>(roles: readonly R[]): R[] {
  const entry = entryRole(roles);
  return entry ? [entry, ...roles.filter((r) => r !== entry)] : [];
}

/** A field path of the replica's gang ("roles[0].template.ports") as the spec's ("roles[1].template.ports"): the gang puts the entry role first. */
export function specRoleField(roles: readonly ReplicaRole[], path: string): string {
  const m = /^roles\[(\d+)\]/.exec(path);
  const role = m ? gangOrder(roles)[Number(m[1])] : undefined;
  return role ? `roles[${roles.indexOf(role)}]${path.slice(m![0].length)}` : path;
}

/** One replica's bundles: for each role (gang order), each instance, each PP stage, tp ranks' resources. */
export function roleBundles(roles: readonly ReplicaRole[]): Bundle[] {
  const out: Bundle[] = [];
  for (const role of gangOrder(roles)) {
    const r = role.resources ?? DEFAULT_RESOURCES;
    const tp = role.tp;
    for (let n = 0; n < role.count * role.pp; n++) out.push(stageBundle(r, tp));
  }
  return out;
}

/** One pipeline stage's bundle: the resources of its `tp` ranks (per-rank resources × tp; GPU memory and MIG are per GPU). */
export function stageBundle(r: ShardResources, tp: number): Bundle {
  return {
    cpuMillis: r.cpuMillis * tp,
    memoryBytes: r.memoryBytes * tp,
    gpus: r.gpus * tp,
    gpuMemoryMib: r.gpuMemoryMib,
    migProfile: r.migProfile,
    custom: Object.fromEntries(Object.entries(r.custom).map(([k, v]) => [k, v * tp])),
  };
}

/** A placement group issue's path on a bundle ("bundles[3].gpus") as the role field it comes from ("roles[1].resources.gpus"). */
export function roleBundleField(roles: readonly ReplicaRole[], path: string): string | undefined {
  const m = /^bundles[.[](\d+)\]?(.*)$/.exec(path);
  if (!m) return undefined;
  let i = Number(m[1]);
  for (const role of gangOrder(roles)) {
    if (i < role.count * role.pp) return `roles[${roles.indexOf(role)}].resources${m[2]}`;
    i -= role.count * role.pp;
  }
  return undefined;
}

/** Whether a role's TP group spans GPUs (the default topology then keeps each bundle in one NVLink island). */
export function rolesSpanGpus(roles: readonly ReplicaRole[]): boolean {
  return roles.some((r) => r.tp > 1 && (r.resources?.gpus ?? 0) > 0);
}

/** The replica variables that make a rank the replica's server: the entry role's alone. */
const ENTRY_ONLY_VARS: readonly string[] = [SHARD_ENV.SUBJECT, SHARD_ENV.HTTP_BRIDGE, SHARD_ENV.ENGINE_METRICS];

/** The gang's roles (gang order), each template with the replica's variables added to its env (the serving ones to the entry's only). */
export function gangRoles(roles: readonly ReplicaRole[], replicaVars: Record<string, string>): GangRole[] {
  const others = Object.fromEntries(Object.entries(replicaVars).filter(([k]) => !ENTRY_ONLY_VARS.includes(k)));
  return gangOrder(roles).map((r, i) => ({
    name: r.name,
    count: r.count,
    tp: r.tp,
    pp: r.pp,
    template: r.template ? { ...r.template, env: { ...r.template.env, ...(i === 0 ? replicaVars : others) } } : undefined,
  }));
}
