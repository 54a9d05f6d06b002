/**
 * What the gateway knows about replica groups: a handle per group (its
 * router, made on the first call) and, from the head's list, what routes a
 * request — which group serves a model, whether a group's shards speak HTTP,
 * its deadlines, whether it has a ready replica now.
 *
 * The list is read again at most once a second, and at once (still at most
 * every 250 ms) when a request names a model or group not in it, so a group
 * applied a moment ago is found by its first request. A failed read (the head
 * down or failing over) is tried again no sooner than a read would be: until
 * then, and after it, requests are routed by the last list that was read (the
 * data plane does not need the head); only before any list was read does the
 * error reach the request. Model names are unique across groups (the head
 * refuses an apply that takes another group's name); should two groups still
 * claim one (applied concurrently), the first by name routes it, and
 * /v1/models lists it once, with that group. Bounds: one entry per group the
 * head holds (its own limits bound that), handles of groups gone from the
 * list are closed.
 */
import { ErrorCode, MusterError, type Cluster, type ReplicaGroup } from '@muster/sdk';
import { DEFAULT_STARTUP_DEADLINE_MS, REPLICA_GROUP_NAME_PATTERN } from '@muster/contracts';
import type { DeadlineDefaults } from './gateway-http.js';

/** One group as the gateway routes to it. */
export interface GroupInfo {
  name: string;
  /** Its shards speak HTTP (the worker bridges them): calls carry an HTTP request. */
  http: boolean;
  models: readonly string[];
  requestTimeoutMs: number;
  startupDeadlineMs: number;
  /** READY replicas when the list was read. */
  ready: number;
}

const FRESH_MS = 1_000;
const MISS_REFRESH_MS = 250;

/** A model the gateway routes, and the group that serves it. */
export interface ModelRoute {
  id: string;
  group: GroupInfo;
}

export class GroupDirectory {
  private byName = new Map<string, GroupInfo>();
  private byModel = new Map<string, GroupInfo>();
  /** When the last list was read (0: never), and when a read was last tried (read or failed). */
  private readAt = 0;
  private triedAt = 0;
  /** Why the last try failed (undefined: it read). */
  private failed: unknown;
  private reading: Promise<void> | undefined;
  private readonly handles = new Map<string, Promise<ReplicaGroup>>();

  constructor(private readonly cluster: Cluster) {}

  /** The group serving `model`, or undefined (after reading the list again if it may be stale). */
  async forModel(model: string): Promise<GroupInfo | undefined> {
    await this.fresh(FRESH_MS);
    if (!this.byModel.has(model)) await this.fresh(MISS_REFRESH_MS);
    return this.byModel.get(model);
  }

  /**
   * The group named `name` as listed: `known` is false when no list could be
   * read (the head did not answer), so its absence proves nothing.
   */
  async info(name: string): Promise<{ group: GroupInfo | undefined; known: boolean }> {
    const known = await this.fresh(FRESH_MS).then(() => true, () => false);
    if (!this.byName.has(name)) await this.fresh(MISS_REFRESH_MS).catch(() => undefined);
    return { group: this.byName.get(name), known: known || this.readAt > 0 };
  }

  /** The group named `name` in the last list read, without reading it again (undefined: not listed). */
  listed(name: string): GroupInfo | undefined {
    return this.byName.get(name);
  }

  /** Every served model and the group that routes it, by model name. */
  async models(): Promise<ModelRoute[]> {
    await this.fresh(FRESH_MS);
    return [...this.byModel.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([id, group]) => ({ id, group }));
  }

  /** The handle of `name` (its router is kept between calls). */
  handle(name: string): Promise<ReplicaGroup> {
    let g = this.handles.get(name);
    if (!g) {
      g = this.cluster.replicaGroups.get(name);
      this.handles.set(name, g);
      g.catch(() => this.handles.delete(name)); // unknown now may exist later
    }
    return g;
  }

  close(): void {
    for (const name of [...this.handles.keys()]) this.forget(name);
  }

  /** Drops `name`'s handle and closes its router. */
  private forget(name: string): void {
    const g = this.handles.get(name);
    this.handles.delete(name);
    void g?.then((h) => h.close(), () => undefined);
  }

  /**
   * Reads the list when the last try is older than `maxAgeMs`. A failed read
   * rejects only while no list was ever read; after that the stale list serves.
   */
  private async fresh(maxAgeMs: number): Promise<void> {
    if (Date.now() - this.triedAt >= maxAgeMs) {
      this.reading ??= this.read().then(
        () => (this.failed = undefined),
        (e: unknown) => void (this.failed = e),
      ).finally(() => {
        this.triedAt = Date.now();
        this.reading = undefined;
      });
      await this.reading;
    }
    if (this.readAt === 0 && this.failed !== undefined) throw this.failed;
  }

  private async read(): Promise<void> {
    const list = await this.cluster.replicaGroups.list();
    const byName = new Map<string, GroupInfo>();
    const byModel = new Map<string, GroupInfo>();
    for (const g of list) {
      const v = g.toJSON();
      if (v.deleting) continue;
      const spec = v.spec;
      const info: GroupInfo = {
        name: v.name,
        http: Boolean(spec?.httpPort),
        models: spec?.models ?? [],
        requestTimeoutMs: spec?.requestTimeoutMs ?? 0,
        startupDeadlineMs: spec?.startup?.deadlineMs || DEFAULT_STARTUP_DEADLINE_MS,
        ready: v.replicasByState.ready ?? 0,
      };
      byName.set(info.name, info);
      for (const m of info.models) if (!byModel.has(m)) byModel.set(m, info); // list is by name: the first claim wins
    }
    this.byName = byName;
    this.byModel = byModel;
    this.readAt = Date.now();
    for (const name of [...this.handles.keys()]) if (!byName.has(name)) this.forget(name);
  }
}

/** The deadline defaults of a call to `g` (none known: the gateway's). */
export function deadlinesOf(g: GroupInfo | undefined): DeadlineDefaults {
  if (!g) return { requestTimeoutMs: 0, coldStartMs: 0 };
  return { requestTimeoutMs: g.requestTimeoutMs, coldStartMs: g.ready === 0 ? g.startupDeadlineMs : 0 };
}

/** A group name as the path gives it, checked against the head's naming rule before any lookup. */
export function checkGroupName(name: string): string {
  if (REPLICA_GROUP_NAME_PATTERN.test(name)) return name;
  const lower = name.toLowerCase();
  const hint = REPLICA_GROUP_NAME_PATTERN.test(lower) ? `; did you mean "${lower}"?` : '';
  throw new MusterError(ErrorCode.NOT_FOUND, `no replica group "${name}": group names are lower-case letters, digits and "-" (at most 42), matched as the head stores them${hint}`, { details: { field: 'group' } });
}
