/**
 * What the gateway knows about replica groups: a handle per group (its
 * router, made on the first call) and, from the head's list, what routes a
 * request — which group serves a model, whether a group's shards speak HTTP,
 * its deadlines, whether it has a ready replica now.
 *
 * The list is read again at most once a second, and at once (still at most
 * every 250 ms) when a request names a model or group not in it, so a group
 * applied a moment ago is found by its first request. Model names are unique
 * across groups (the head refuses an apply that takes another group's name);
 * should two groups still claim one (applied concurrently), the first by name
 * wins and /v1/models lists the model once. Bounds: one entry per group the
 * head holds (its own limits bound that), handles of groups gone from the
 * list are closed.
 */
import { ErrorCode, MusterError, type Cluster, type ReplicaGroup } from '@muster/sdk';
import { DEFAULT_STARTUP_DEADLINE_MS, type DeadlineDefaults } from './gateway-http.js';

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

export class GroupDirectory {
  private byName = new Map<string, GroupInfo>();
  private byModel = new Map<string, GroupInfo>();
  private readAt = 0;
  private reading: Promise<void> | undefined;
  private readonly handles = new Map<string, Promise<ReplicaGroup>>();

  constructor(private readonly cluster: Cluster) {}

  /** The group serving `model`, or undefined (after reading the list again if it may be stale). */
  async forModel(model: string): Promise<GroupInfo | undefined> {
    await this.fresh(FRESH_MS);
    if (!this.byModel.has(model)) await this.fresh(MISS_REFRESH_MS);
    return this.byModel.get(model);
  }

  /** The group named `name` as listed (undefined: not in the list, or the head did not answer). */
  async info(name: string): Promise<GroupInfo | undefined> {
    await this.fresh(FRESH_MS).catch(() => undefined);
    if (!this.byName.has(name)) await this.fresh(MISS_REFRESH_MS).catch(() => undefined);
    return this.byName.get(name);
  }

  /** Every served model and its group, by model name. */
  async models(): Promise<GroupInfo[]> {
    await this.fresh(FRESH_MS);
    return [...this.byModel.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, g]) => g);
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

  /** Drops `name`'s handle (a group with no replica may have been deleted: look it up again next time). */
  forget(name: string): void {
    const g = this.handles.get(name);
    this.handles.delete(name);
    void g?.then((h) => h.close(), () => undefined);
  }

  close(): void {
    for (const name of [...this.handles.keys()]) this.forget(name);
  }

  private fresh(maxAgeMs: number): Promise<void> {
    if (Date.now() - this.readAt < maxAgeMs) return Promise.resolve();
    this.reading ??= this.read().finally(() => (this.reading = undefined));
    return this.reading;
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
        ready: v.replicas.filter((r) => r.state === 'ready').length,
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
  if (/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(name)) return name;
  const lower = name.toLowerCase();
  const hint = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(lower) ? `; did you mean "${lower}"?` : '';
  throw new MusterError(ErrorCode.NOT_FOUND, `no replica group "${name}": group names are lower-case letters, digits and "-", matched as the head stores them${hint}`, { details: { field: 'group' } });
}
