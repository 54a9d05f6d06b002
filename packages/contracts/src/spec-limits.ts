/**
 * Upper bounds on what a spec may ask for, in one table: the head refuses a
 * placement group, gang or replica group spec that passes one (naming the
 * field and the limit), and the SDK checks the same numbers before a spec
 * goes on the wire. docs/limits.md lists them with the reason for each.
 *
 * Why bounds at all: a spec is stored (etcd refuses requests over 1.5 MiB),
 * copied into every rank's launch order, expanded into TP × PP processes and
 * REPLICAS placement groups, and read back by every list. An unbounded count
 * or string lets one request cost the head memory, the store a key it cannot
 * write, or a worker an execve() that fails with E2BIG. The numbers are far
 * above any real model server (the largest TP × PP in use is a few hundred
 * ranks) and far below what breaks something.
 *
 * Pure numbers: the head (zod schemas) and the SDK import them from here, so
 * the two never disagree.
 */
export const SPEC_LIMITS = {
  /** TP × PP: processes of one replica (one gang). */
  ranksPerReplica: 1024,
  /** Roles of one replica (prefill, decode, …). */
  roles: 16,
  /** Role instances of one replica (Σ count over its roles): each one's address is in every rank's environment. */
  roleInstances: 256,
  /** replicas.max (and min, initial) of a replica group. */
  replicas: 10_000,
  /** Bundles of one placement group. */
  bundles: 1024,
  /** Placement group names (DNS subdomain length); gang and replica group names are shorter by their own rule. */
  nameLength: 253,
  /** The command of a template or an exec probe (a path or a program name). */
  commandLength: 4096,
  /** Arguments of a template, or of an exec probe's command. */
  args: 1024,
  /** One argument. Linux refuses a single argv or envp string of 128 KiB (MAX_ARG_STRLEN). */
  argLength: 65_536,
  /** Variables of a template's env. */
  envEntries: 1024,
  /** One variable name. */
  envKeyLength: 256,
  /** One variable's value (KEY=value stays under MAX_ARG_STRLEN). */
  envValueLength: 65_536,
  /** command + args + env keys and values of one template together (execve's whole argv + envp, and the stored record). */
  templateBytes: 512 * 1024,
  /** The working directory of a template. */
  cwdLength: 4096,
  /** Path of an HTTP probe. */
  probePathLength: 2048,
  /** Named ports of a template. */
  ports: 64,
  /** Label selectors (matchLabels) of a placement. */
  labels: 64,
  /** A label key (prefix/name) or value, a toleration's key or value, a custom resource name. */
  labelLength: 253,
  /** Tolerations of a placement. */
  tolerations: 64,
  /** Custom resources of a bundle. */
  customResources: 64,
  /** References to other objects (a gang's placement group, replica group and replica id; a probe's port name). */
  refLength: 253,
  /** A free-text reason (a drain's reason from an operator or an agent). */
  reasonLength: 1024,
  /** Scheduled floors of an autoscaling policy. */
  floors: 64,
  /** A floor's cron expression or time zone. */
  floorFieldLength: 128,
  /**
   * A placement group spec's protobuf encoding (what is stored and answered). With
   * `gpusPerGroup` it keeps a group's record under 1 MiB (docs/limits.md#records).
   */
  pgSpecBytes: 128 * 1024,
  /** GPUs (or MIG slices) of all bundles of one placement group together: each is named in the group's placements. */
  gpusPerGroup: 2048,
  /**
   * A gang spec's protobuf encoding without its four references (name,
   * placementGroup, replicaGroup, replicaId, each bounded by its own limit):
   * template(s), probes, warm-up, startup. Keeps a gang's record under 1 MiB.
   */
  gangSpecBytes: 256 * 1024,
  /** Named ports of all ranks of a gang together (ranks × ports of the template, summed over roles): each is in the gang's record. */
  rankPorts: 2048,
  /** UTF-8 bytes of a rank's reason as its gang's record keeps it (the first and last failure keep `reasonLength` characters). */
  rankReasonBytes: 128,
  /** Model names one replica group serves on the gateway's OpenAI routes. */
  models: 64,
  /** One model name ("meta-llama/Llama-3.1-8B-Instruct"; Hugging Face ids stay under 100). */
  modelNameLength: 256,
} as const;

/** What a model name may be: printable, no whitespace (it travels in JSON bodies and URLs). */
export const MODEL_NAME_PATTERN = /^[^\s\p{Cc}]+$/u;
/** The longest per-group request deadline a spec may set (ms): the gateway's own ceiling. */
export const MAX_REQUEST_TIMEOUT_MS = 3_600_000;

export type SpecLimit = keyof typeof SPEC_LIMITS;

/** Bytes of a string as UTF-8 (what execve and the store count). */
export function utf8Bytes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      n += 4; // a surrogate pair is one 4-byte code point
      i++;
    } else n += 3;
  }
  return n;
}

/** The longest start of `s` that takes at most `maxBytes` bytes as UTF-8 (whole code points only). */
export function cutUtf8(s: string, maxBytes: number): string {
  if (s.length * 3 <= maxBytes) return s;
  let n = 0;
  let i = 0;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    const w = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    if (n + w > maxBytes) break;
    n += w;
    i += ch.length;
  }
  return s.slice(0, i);
}

/** The bytes a template costs in argv + envp: each string plus its NUL, "KEY=value" for env. */
export function templateBytes(t: { command?: string; args?: readonly string[]; env?: Readonly<Record<string, string>> }): number {
  let n = utf8Bytes(t.command ?? '') + 1;
  for (const a of t.args ?? []) n += utf8Bytes(a) + 1;
  for (const [k, v] of Object.entries(t.env ?? {})) n += utf8Bytes(k) + utf8Bytes(v) + 2;
  return n;
}

/**
 * Calls in flight per replica from one router: the bound on a group's
 * `maxInFlightPerReplica` (the head's spec check) and on what a router takes
 * from a membership or its own `maxOngoingPerReplica` option.
 */
export const MAX_IN_FLIGHT_PER_REPLICA = 1_000_000;

/**
 * The bound on a group's `overflow.queuePerReplicaAbove` (calls waiting per
 * ready replica before calls go to its overflow group): a router queues at
 * most this many calls (its own `maxQueued` bound) anyway.
 */
export const MAX_OVERFLOW_QUEUE_PER_REPLICA = 10_000_000;

/**
 * The per-replica limit when a group's spec says 0 (membership then carries
 * it filled): NATS shards queue in the replica (serve()), HTTP shards in
 * their engine. A router given no limit at all (an older head) uses `nats`.
 */
export const DEFAULT_MAX_IN_FLIGHT = { nats: 32, http: 1024 } as const;

/**
 * What a replica group's name may be: 1-42 lower-case letters, digits and
 * "-", starting and ending with a letter or digit (it becomes part of NATS
 * subjects, gang and placement group names). The head's spec schema, the SDK
 * and the gateway's paths check this one rule.
 */
export const REPLICA_GROUP_NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$/;
/** A data-plane call's deadline when neither the call nor its group names one (ms). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** A gang's startup deadline when its spec's `startup.deadlineMs` is unset (0) (ms). */
export const DEFAULT_STARTUP_DEADLINE_MS = 60_000;
