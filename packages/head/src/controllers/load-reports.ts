/**
 * What the head hears on the data plane: replicas' load reports
 * (`<prefix>.load.<group>`, every second, from `serve()` and HTTP bridges)
 * and routers' demand reports (`<prefix>.demand.<group>`, calls waiting for
 * a replica). The replica group controller uses them to finish drains and
 * to autoscale. Without NATS there is nothing to hear. Subjects and report
 * shapes are @muster/contracts' (subjects.ts); a report its decoder refuses
 * (no id, a negative or absurd count) is dropped and counted
 * (`muster_load_reports_dropped_total`).
 *
 * What each replica's ranks use comes from the workers running them, not
 * from the bus: each agent sends its node's usage on its authenticated
 * stream (AgentMessage.usage, checked by node-usage.ts: an agent speaks for
 * ranks on its own node only). `nodeUsage` keeps each entry per replica and
 * node (resource-shares.ts), summed into the replica's sample (`resources`)
 * over the nodes heard in the last RESOURCE_REPORT_FRESH_MS (a gang
 * restarted on other nodes stops being counted on its old ones within that
 * time). A `{ kind: "resources" }` report on the load subject (what workers
 * sent before, with the group's NATS credential that every shard of the
 * group holds) is no load report: it is dropped and counted like any other.
 *
 * Who may publish: only the head's NATS users for a group's replicas may
 * publish `<prefix>.load.<group>` (docs/security.md, "NATS: users per
 * role"), so a replica's report is keyed by the group its subject names: a
 * replica of one group cannot report for another group's replica ids.
 *
 * Bounded: anyone on the bus can publish reports for ids the head never
 * made, and replicas and routers come and go. A report not refreshed for
 * STALE_MS (longer than any autoscaler lookback) is dropped; at most
 * MAX_REPLICAS replica reports, MAX_GROUPS groups' demand and
 * MAX_ROUTERS_PER_GROUP routers per group are kept (the least recently
 * heard go first); resource reports are kept only while they count
 * (RESOURCE_REPORT_FRESH_MS), at most MAX_NODES_PER_REPLICA a replica and
 * MAX_RESOURCE_SHARES in all. A replica that leaves its group's record
 * (`forget`) and a deleted group (`forgetGroup`) are dropped at once.
 */
import { decode, type Logger, type NatsConnection, type Subscription } from '@muster/common';
import { allDemandSubjects, allLoadSubjects, groupOfSubject, toDemandReport, toLoadReport } from '@muster/contracts';
import type { NodeUsage } from '@muster/proto';
import type { DemandSample, LoadSample } from '../autoscaler/index.js';
import { checkNodeUsage } from './node-usage.js';
import { ResourceShares } from './resource-shares.js';

/** What the dropped-reports count is labelled by: the subject a report came on, or `resources` for usage entries of an agent. */
export type DroppedKind = 'load' | 'demand' | 'resources';

/** Longer than the longest autoscaler lookback (policy.ts: 600 s). */
export const STALE_MS = 15 * 60_000;
export const MAX_REPLICAS = 100_000;
export const MAX_GROUPS = 10_000;
export const MAX_ROUTERS_PER_GROUP = 1_000;

/**
 * A map that keeps what was heard most recently: at most `max` entries, none
 * heard longer than STALE_MS ago. Insertion order is arrival order (a set
 * moves the key to the end), so the oldest are always first.
 */
export class RecentMap<K, V> {
  private readonly m = new Map<K, { v: V; at: number }>();
  constructor(private readonly max: number) {}

  set(k: K, v: V, at: number): void {
    this.m.delete(k);
    this.m.set(k, { v, at });
    this.prune(at);
    while (this.m.size > this.max) this.m.delete(this.m.keys().next().value as K);
  }

  get(k: K): V | undefined {
    return this.m.get(k)?.v;
  }

  delete(k: K): void {
    this.m.delete(k);
  }

  get size(): number {
    return this.m.size;
  }

  *entries(): IterableIterator<[K, V]> {
    for (const [k, { v }] of this.m) yield [k, v];
  }

  /** Drops what was last heard STALE_MS or more before `now`. */
  prune(now: number): void {
    for (const [k, { at }] of this.m) {
      if (now - at < STALE_MS) break;
      this.m.delete(k);
    }
  }
}

export class LoadReports {
  private readonly load = new RecentMap<string, Omit<LoadSample, 'replicaId' | 'resources'>>(MAX_REPLICAS);
  /** replica key → node → its last resource report (and when the head heard it). */
  private readonly resources = new ResourceShares();
  /** group → router id → its last report */
  private readonly demand = new RecentMap<string, RecentMap<string, Omit<DemandSample, 'routerId'>>>(MAX_GROUPS);
  readonly listening: boolean;
  private readonly subs: Subscription[] = [];

  constructor(
    nats: { conn: NatsConnection; prefix: string } | undefined,
    private readonly log: Logger,
    /** The head's monotonic clock, for staleness (reports carry the sender's wall clock). */
    private readonly now: () => number = () => performance.now(),
    /** Told of every report (or usage entry) refused, `n` at a time (the head counts them). */
    private readonly onDropped: (kind: DroppedKind, n?: number) => void = () => undefined,
    /**
     * Whether `replicaId` is a replica of `group` in its record whose gang has
     * a rank on `node`; a usage entry for which it is not is dropped. The
     * default knows no replica: without it no usage is kept.
     */
    private readonly runsOn: (group: string, replicaId: string, node: string) => boolean = () => false,
  ) {
    this.listening = nats !== undefined;
    if (!nats) return;
    this.follow(nats.conn, allLoadSubjects(nats.prefix), (subject, data) => this.heard(subject, data, 'load'));
    this.follow(nats.conn, allDemandSubjects(nats.prefix), (subject, data) => this.heard(subject, data, 'demand'));
  }

  /** One report off the bus (public for tests: the bounds without a NATS server). */
  heard(subject: string, data: unknown, kind: 'load' | 'demand'): void {
    const at = this.now();
    const group = groupOfSubject(subject);
    if (kind === 'load') {
      const r = toLoadReport(data);
      if (r) this.load.set(replicaKey(group, r.replicaId), { inFlight: r.inFlight, queued: r.queued, timeMs: r.timeMs, ...(r.engine ? { engine: r.engine } : {}), ...(r.custom ? { custom: r.custom } : {}) }, at);
      else this.onDropped(kind); // an older worker's resource report among them
      return;
    }
    const r = toDemandReport(data);
    if (!r) {
      this.onDropped(kind);
      return;
    }
    const routers = this.demand.get(group) ?? new RecentMap(MAX_ROUTERS_PER_GROUP);
    routers.set(r.routerId, { waiting: r.waiting, timeMs: r.timeMs }, at);
    this.demand.set(group, routers, at);
  }

  /**
   * A node's usage report off its agent's stream: `node` is the node that
   * stream registered (bound to the agent's certificate), never a field of
   * the report. Entries node-usage.ts refuses are counted.
   */
  nodeUsage(node: string, report: NodeUsage): void {
    const at = this.now();
    const { kept, dropped } = checkNodeUsage(report, (group, replicaId) => this.runsOn(group, replicaId, node));
    for (const e of kept) this.resources.set(replicaKey(e.group, e.replicaId), node, e.usage, at);
    if (dropped > 0) this.onDropped('resources', dropped);
  }

  /** The last report of a replica of `group` (heard on that group's subject), with what its ranks use. */
  of(group: string, replicaId: string): Omit<LoadSample, 'replicaId'> | undefined {
    const key = replicaKey(group, replicaId);
    const r = this.load.get(key);
    if (!r) return undefined;
    const usage = this.resources.usageOf(key, this.now());
    return usage ? { ...r, resources: usage } : r;
  }

  /** Reports of these replicas, and of the group's routers, no older than `lookbackMs`. */
  window(group: string, replicaIds: Iterable<string>, lookbackMs: number, nowMs: number): { samples: LoadSample[]; demand: DemandSample[] } {
    const samples: LoadSample[] = [];
    this.load.prune(this.now());
    this.resources.prune(this.now());
    for (const id of replicaIds) {
      const r = this.of(group, id);
      if (r && nowMs - r.timeMs <= lookbackMs) samples.push({ replicaId: id, ...r });
    }
    const routers = this.demand.get(group);
    routers?.prune(this.now());
    const demand = [...(routers?.entries() ?? [])].filter(([, d]) => nowMs - d.timeMs <= lookbackMs).map(([routerId, d]) => ({ routerId, ...d }));
    return { samples, demand };
  }

  forget(group: string, replicaId: string): void {
    this.load.delete(replicaKey(group, replicaId));
    this.resources.drop(replicaKey(group, replicaId));
  }

  /** A deleted group: its routers' demand goes. */
  forgetGroup(group: string): void {
    this.demand.delete(group);
  }

  /** How many reports are held (for tests and metrics). */
  get sizes(): { replicas: number; groups: number; routers: number; resourceShares: number } {
    let routers = 0;
    for (const [, r] of this.demand.entries()) routers += r.size;
    return { replicas: this.load.size, groups: this.demand.size, routers, resourceShares: this.resources.size };
  }

  close(): void {
    for (const sub of this.subs) sub.unsubscribe();
  }

  private follow(conn: NatsConnection, subject: string, onReport: (subject: string, r: unknown) => void): void {
    const sub = conn.subscribe(subject);
    this.subs.push(sub);
    (async () => {
      for await (const m of sub) {
        try {
          onReport(m.subject, decode<unknown>(m.data));
        } catch {
          // not a report: ignore
        }
      }
    })().catch((e: unknown) => {
      // The subscription broke (NATS closed it): reports on this subject stop until the next term subscribes again.
      this.log.warn({ subject, err: (e as Error).message }, 'load report subscription ended with an error; reports stop until the next leader term');
    });
  }
}

/** A replica's report key: its group (from the subject) and its id. */
function replicaKey(group: string, replicaId: string): string {
  return `${group}\0${replicaId}`;
}
