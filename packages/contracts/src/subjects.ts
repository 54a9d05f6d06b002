/**
 * The NATS subjects of the data plane and the reports that travel on them —
 * the one place a subject is spelled. `serve()` and the worker's HTTP bridge
 * subscribe to replica subjects and publish load reports, routers publish
 * demand reports, the head builds the replica subject it hands a replica and
 * listens to both kinds of report, and the event log publishes events.
 *
 *   <prefix>.rg.<group>.<replicaId>   requests to one replica (queue group QUEUE_GROUP)
 *   <prefix>.load.<group>             a replica's load, every second (LoadReport)
 *   <prefix>.demand.<group>           a router's calls waiting for a replica (DemandReport)
 *   <prefix>.events.<kind>            cluster events (the head's event log)
 *
 * Who may use which subject (NATS user permissions, minted by the head; see
 * docs/security.md "NATS: users per role") is written here too, next to the
 * subjects: `headPermissions`, `replicaPermissions`, `callerPermissions`.
 *
 * A report comes from another process, so it is decoded, not trusted: the
 * decoders below refuse a report with a missing id or a negative, fractional
 * or absurd count (a broken or hostile publisher must not steer the
 * autoscaler), and the head ignores what they refuse. A report's `engine`
 * part is checked value by value (engine-metrics.ts): a bad one is dropped,
 * never the report, whose liveness routers need.
 */

import { engineLoadOf, MAX_REPORTED_COUNT, type EngineLoad } from './engine-metrics.js';
import { customMetricsOf } from './resource-usage.js';

/** The prefix of every subject unless the head is configured otherwise (`--nats-subject-prefix`). */
export const DEFAULT_SUBJECT_PREFIX = 'muster';
/**
 * The longest prefix the head takes (characters): a replica's subject is in
 * every membership snapshot, so its length bounds a snapshot's size
 * (@muster/common membership-parts.ts).
 */
export const MAX_SUBJECT_PREFIX_LENGTH = 64;

/** Queue group of every replica subscription: a replica restarted under the same subject never doubles up. */
export const QUEUE_GROUP = 'muster';

/** Requests to one replica of a replica group. */
export function replicaSubject(prefix: string, group: string, replicaId: string): string {
  return `${prefix}.rg.${group}.${replicaId}`;
}

/** A replica's load reports (its group's; the report names the replica). */
export function loadSubject(prefix: string, group: string): string {
  return `${prefix}.load.${group}`;
}

/** Routers report calls waiting for a replica here (the autoscaler's demand signal, scale from zero). */
export function demandSubject(prefix: string, group: string): string {
  return `${prefix}.demand.${group}`;
}

/** Every group's load reports (what the head subscribes to). */
export function allLoadSubjects(prefix: string): string {
  return `${prefix}.load.>`;
}

/** Every group's demand reports (what the head subscribes to). */
export function allDemandSubjects(prefix: string): string {
  return `${prefix}.demand.>`;
}

/** The group a load or demand subject belongs to (its last token). */
export function groupOfSubject(subject: string): string {
  return subject.slice(subject.lastIndexOf('.') + 1);
}

/** Every subject of a replica group's replicas (their queue subscription). */
export function groupReplicaSubjects(prefix: string, group: string): string {
  return `${prefix}.rg.${group}.>`;
}

/** Every subject under the prefix (only the head's user may use it). */
export function allSubjects(prefix: string): string {
  return `${prefix}.>`;
}

/** Every reply subject: replicas publish their answers under it (see replicaPermissions). */
export const ALL_INBOXES = '_INBOX.>';

/**
 * The inbox prefix of one caller's connection: `_INBOX.<token>`. Replies to
 * its calls come to `<inboxPrefix>.…`, which only its own user may
 * subscribe to. nats.js builds inboxes as `<inboxPrefix>.<nuid>`.
 */
export function callerInboxPrefix(token: string): string {
  return `_INBOX.${token}`;
}

/** NATS subject permissions of one user (nats-server's `permissions`, JWT `nats.pub/sub`). */
export interface SubjectPermissions {
  pub: string[];
  sub: string[];
}

/** The head: everything under the prefix, and its own inbox. */
export function headPermissions(prefix: string, inboxPrefix: string): SubjectPermissions {
  return { pub: [allSubjects(prefix), `${inboxPrefix}.>`], sub: [allSubjects(prefix), `${inboxPrefix}.>`] };
}

/**
 * A replica of `group` (and the worker's HTTP bridge of that group): its
 * group's requests (queue), its group's load reports, and answers under
 * `_INBOX.>`. Not `allow_responses`: nats-server (2.9) keeps one entry per
 * reply subject until it was used `max` times or its TTL passed, and a
 * stream needs unlimited replies, so entries pile up and every prune scans
 * them — calls/s fell 25× in bench/dataplane.ts. A reply subject is
 * unguessable (a caller's sealed prefix, the router's nuid, a token), and a
 * replica learns only those of routers that call its own group
 * (docs/security.md, "NATS: users per role").
 */
export function replicaPermissions(prefix: string, group: string): SubjectPermissions {
  return { pub: [loadSubject(prefix, group), ALL_INBOXES], sub: [groupReplicaSubjects(prefix, group)] };
}

/**
 * A caller allowed to call `groups`: requests and cancels to their replicas,
 * demand reports for them, their load reports (the router's balancing
 * input), and only its own inbox.
 */
export function callerPermissions(prefix: string, groups: readonly string[], inboxPrefix: string): SubjectPermissions {
  return {
    pub: groups.flatMap((g) => [groupReplicaSubjects(prefix, g), demandSubject(prefix, g)]),
    sub: [...groups.map((g) => loadSubject(prefix, g)), `${inboxPrefix}.>`],
  };
}

/** Cluster events of one kind, as the head's event log publishes them. */
export function eventSubject(prefix: string, kind: string): string {
  return `${prefix}.events.${kind}`;
}

/** A replica's load report, every second on `<prefix>.load.<group>` (and at once after a NATS reconnect). */
export interface LoadReport {
  v: 1;
  replicaId: string;
  inFlight: number;
  queued: number;
  timeMs: number;
  /** Unsubscribed, finishing what it has: it takes no new request (absent: false). */
  draining?: boolean;
  /**
   * The serving process's incarnation (random per `serve()` start). A replica
   * restarted under the same id reports a new one: the calls its predecessor
   * held died with it, however fresh the replica's reports are.
   */
  incarnation?: string;
  /** An HTTP shard's engine metrics, as the worker last scraped them (engine-metrics.ts); absent when none were read. */
  engine?: EngineLoad;
  /** Gauges the shard set (serve()'s `customMetrics`), for `custom:<name>` policies (resource-usage.ts); absent when none. */
  custom?: Record<string, number>;
  /** The newest version of request frames it reads (the data plane's frames.ts); absent: none, send it single requests. */
  frames?: number;
}

/** A router's demand report on `<prefix>.demand.<group>`: calls it holds that wait for a replica. */
export interface DemandReport {
  v: 1;
  routerId: string;
  waiting: number;
  timeMs: number;
}

function count(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_REPORTED_COUNT;
}

function time(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0;
}

function id(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= 256;
}

/** A load report as decoded from msgpack; undefined when it is not a valid one. */
export function toLoadReport(r: unknown): LoadReport | undefined {
  if (typeof r !== 'object' || r === null) return undefined;
  const o = r as Record<string, unknown>;
  if (!id(o.replicaId) || !count(o.inFlight) || !count(o.queued) || !time(o.timeMs)) return undefined;
  if (o.draining !== undefined && typeof o.draining !== 'boolean') return undefined;
  if (o.incarnation !== undefined && !id(o.incarnation)) return undefined;
  // A bad `frames` costs only itself (read as none): single requests always work.
  const frames = typeof o.frames === 'number' && Number.isInteger(o.frames) && o.frames > 0 && o.frames <= 1_000 ? o.frames : undefined;
  // null is what msgpack makes of an undefined field: absent, as undefined is. A bad
  // `engine` part costs only itself: the report's liveness and counts still count.
  const engine = o.engine == null ? undefined : engineLoadOf(o.engine);
  const custom = o.custom == null ? undefined : customMetricsOf(o.custom);
  return {
    v: 1, replicaId: o.replicaId, inFlight: o.inFlight, queued: o.queued, timeMs: o.timeMs,
    ...(o.draining === undefined ? {} : { draining: o.draining }),
    ...(o.incarnation === undefined ? {} : { incarnation: o.incarnation }),
    ...(engine === undefined ? {} : { engine }),
    ...(custom === undefined ? {} : { custom }),
    ...(frames === undefined ? {} : { frames }),
  };
}

/** A demand report as decoded from msgpack; undefined when it is not a valid one. */
export function toDemandReport(r: unknown): DemandReport | undefined {
  if (typeof r !== 'object' || r === null) return undefined;
  const o = r as Record<string, unknown>;
  if (!id(o.routerId) || !count(o.waiting) || !time(o.timeMs)) return undefined;
  return { v: 1, routerId: o.routerId, waiting: o.waiting, timeMs: o.timeMs };
}
