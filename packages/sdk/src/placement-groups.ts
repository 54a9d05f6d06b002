/**
 * Placement groups from the SDK:
 *
 *   const pg = await cluster.placementGroups.create({
 *     name: 'llama-70b-r0', strategy: 'STRICT_PACK',
 *     bundles: [{ gpus: 8, cpuMillis: 16_000 }], topology: [{ level: 'gpu-island' }],
 *   });
 *   await pg.ready({ timeout: 30_000 });     // rejects with the pending reason
 *   pg.placements                            // bundle → node → GPUs
 *   await pg.explain()                       // why it is (still) pending
 *   await pg.remove();
 *
 * The head validates specs and names the bad field (MUSTER_INVALID_ARGUMENT);
 * a group that fits no node shape rejects `ready()` with MUSTER_PG_INFEASIBLE.
 */
import { randomUUID } from 'node:crypto';
import type { HeadService } from './rpc.js';
import { PlacementGroupWaits } from './pg-waits.js';
import { Coalescer } from './pg-batch.js';
import { collect, pages, type PageOptions } from './pages.js';
import { checkEncodedSize, checkPlacementGroupSpec } from './spec-schemas.js';
import type { PlacementGroupSpec } from './specs.js';
import { ErrorCode, MusterError } from '@muster/common';
import { CreatePlacementGroupRequest, PlacementGroupSpec as PgSpecCodec, PlacementGroupState as S, type PendingReason, type PlacementGroupServiceClient } from '@muster/proto';
import type * as wire from '@muster/proto';


export type PlacementGroupStateName = 'pending' | 'reserved' | 'created' | 'rescheduling' | 'removed' | 'infeasible' | 'unknown';

/** Which groups `list()` / `pages()` return; the head filters. */
export interface PlacementGroupFilter extends PageOptions {
  state?: Exclude<PlacementGroupStateName, 'unknown'>;
  /** Only names starting with this. */
  namePrefix?: string;
}

export interface BundleAssignment {
  bundleIndex: number;
  nodeId: string;
  gpuIndices: number[];
  gpuUuids: string[];
  migUuids: string[];
  cpuMillis: number;
  memoryBytes: number;
}

export interface PendingReasonView {
  code: string;
  /** "needs 8 GPUs in one NVLink island; largest free island is 4 (node-3); ..." */
  message: string;
  bundleIndex: number | undefined;
  bundlesPlaced: number;
  nodesTotal: number;
  rejections: Array<{ code: string; detail: string; count: number }>;
  largestFreeIsland: { size: number; nodeId: string } | undefined;
  mostFreeGpus: { count: number; nodeId: string } | undefined;
}

export interface PlacementGroupView {
  id: string;
  name: string;
  state: PlacementGroupStateName;
  spec: wire.PlacementGroupSpec;
  placements: BundleAssignment[];
  /** Why it is not (yet) placed; undefined once reserved. */
  reason: PendingReasonView | undefined;
  createdAt: Date;
  stateChangedAt: Date;
  reschedules: number;
}

const stateNames: Record<number, PlacementGroupStateName> = {
  [S.PLACEMENT_GROUP_STATE_PENDING]: 'pending',
  [S.PLACEMENT_GROUP_STATE_RESERVED]: 'reserved',
  [S.PLACEMENT_GROUP_STATE_CREATED]: 'created',
  [S.PLACEMENT_GROUP_STATE_RESCHEDULING]: 'rescheduling',
  [S.PLACEMENT_GROUP_STATE_REMOVED]: 'removed',
  [S.PLACEMENT_GROUP_STATE_INFEASIBLE]: 'infeasible',
};
const stateOfName = new Map(Object.entries(stateNames).map(([k, v]) => [v, Number(k) as S]));

function reasonView(r: PendingReason | undefined): PendingReasonView | undefined {
  if (!r) return undefined;
  return {
    code: r.code,
    message: r.message,
    bundleIndex: r.bundleIndex,
    bundlesPlaced: r.bundlesPlaced,
    nodesTotal: r.nodesTotal,
    rejections: r.rejections,
    largestFreeIsland: r.largestFreeIsland ? { size: r.largestFreeIsland.amount, nodeId: r.largestFreeIsland.nodeId } : undefined,
    mostFreeGpus: r.mostFreeGpus ? { count: r.mostFreeGpus.amount, nodeId: r.mostFreeGpus.nodeId } : undefined,
  };
}

export function placementGroupView(pg: wire.PlacementGroup): PlacementGroupView {
  return {
    id: pg.id,
    name: pg.spec?.name ?? '',
    state: stateNames[pg.state] ?? 'unknown',
    spec: pg.spec!,
    placements: pg.placements.map((p) => ({
      bundleIndex: p.bundleIndex,
      nodeId: p.nodeId,
      gpuIndices: p.gpuIndices,
      gpuUuids: p.gpuUuids,
      migUuids: p.migUuids,
      cpuMillis: p.cpuMillis,
      memoryBytes: p.memoryBytes,
    })),
    reason: reasonView(pg.reason),
    createdAt: new Date(pg.createdAtMs),
    stateChangedAt: new Date(pg.stateChangedAtMs),
    reschedules: pg.reschedules,
  };
}

function int(value: number | undefined, field: string): number {
  if (value === undefined) return 0;
  if (!Number.isSafeInteger(value)) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid placement group spec: ${field}: expected an integer, got ${value}`, { details: { field } });
  return value;
}

/** The wire has no room for unknown keys: a misspelt one is refused here, by path (spec-schemas.ts). */
function toWire(input: PlacementGroupSpec): wire.PlacementGroupSpec {
  const spec = checkPlacementGroupSpec(input);
  const w: wire.PlacementGroupSpec = {
    name: spec.name ?? '',
    strategy: spec.strategy ?? '',
    bundles: (spec.bundles ?? []).map((b, i) => ({
      cpuMillis: int(b.cpuMillis, `bundles[${i}].cpuMillis`),
      memoryBytes: int(b.memoryBytes, `bundles[${i}].memoryBytes`),
      gpus: int(b.gpus, `bundles[${i}].gpus`),
      gpuMemoryMib: int(b.gpuMemoryMiB, `bundles[${i}].gpuMemoryMiB`),
      migProfile: b.migProfile ?? '',
      custom: b.custom ?? {},
    })),
    topology: (spec.topology ?? []).map((t) => ({ level: t.level, mode: t.mode ?? '' })),
    matchLabels: spec.selector?.matchLabels ?? {},
    tolerations: (spec.tolerations ?? []).map((t) => ({ key: t.key ?? '', operator: t.operator ?? '', value: t.value ?? '', effect: t.effect ?? '' })),
    priority: int(spec.priority, 'priority'),
  };
  checkEncodedSize('placement group spec', PgSpecCodec.encode({ ...w, name: '' }).finish().length, 'pgSpecBytes');
  return w;
}


/** A handle on one placement group; `refresh()` re-reads it. */
export class PlacementGroup {
  constructor(private view: PlacementGroupView, private readonly api: PlacementGroups) {}

  get id(): string { return this.view.id; }
  get name(): string { return this.view.name; }
  get state(): PlacementGroupStateName { return this.view.state; }
  /** Bundle → node → GPU assignment (empty until reserved). */
  get placements(): BundleAssignment[] { return this.view.placements; }
  get reason(): PendingReasonView | undefined { return this.view.reason; }
  toJSON(): PlacementGroupView { return this.view; }

  async refresh(): Promise<this> {
    this.view = (await this.api.get(this.id)).view;
    return this;
  }

  /**
   * Resolves once every bundle is reserved and acknowledged by its node
   * (CREATED). Rejects with MUSTER_DEADLINE_EXCEEDED carrying the pending
   * reason after `timeout` ms, with MUSTER_PG_INFEASIBLE if the group fits no
   * node shape, and with MUSTER_NOT_FOUND if it was removed.
   */
  async ready(opts: { timeout?: number } = {}): Promise<this> {
    const timeout = opts.timeout ?? 60_000;
    const deadline = Date.now() + timeout;
    for (;;) {
      const left = Math.max(0, deadline - Date.now());
      this.view = placementGroupView(await this.api.waitRaw(this.id, Math.min(left, 60_000)));
      if (this.view.state === 'created') return this;
      const why = this.view.reason?.message ?? this.view.state;
      if (this.view.state === 'infeasible') {
        throw new MusterError(ErrorCode.PG_INFEASIBLE, `placement group ${this.name} is infeasible: ${why}`, { details: { reason: this.view.reason } });
      }
      if (this.view.state === 'removed') throw new MusterError(ErrorCode.NOT_FOUND, `placement group ${this.name} was removed`);
      if (Date.now() >= deadline) {
        throw new MusterError(ErrorCode.DEADLINE_EXCEEDED, `placement group ${this.name} not ready after ${timeout} ms (${this.view.state}): ${why}`, { details: { reason: this.view.reason } });
      }
    }
  }

  /** Why the group is not (yet) placed, from the scheduler's data; undefined once placed. */
  async explain(): Promise<PendingReasonView | undefined> {
    await this.refresh();
    return this.view.reason;
  }

  async remove(): Promise<void> {
    this.view = (await this.api.remove(this.id)).view;
  }
}

export class PlacementGroups {
  private readonly waits: PlacementGroupWaits;
  /** Creates and removes issued together travel as one batched call each (pg-batch.ts). */
  private readonly creates: Coalescer<wire.CreatePlacementGroupRequest>;
  private readonly removes: Coalescer<wire.RemovePlacementGroupRequest>;

  constructor(private readonly head: HeadService<PlacementGroupServiceClient>) {
    this.waits = new PlacementGroupWaits(head);
    const read = (id: string) => this.getRaw(id);
    this.creates = new Coalescer({
      many: async (items) => (await head.call<wire.PlacementGroupsReply>((c, md, o, cb) => c.createPlacementGroups({ items }, md, o, cb))).results,
      one: (item) => head.call<wire.PlacementGroup>((c, md, o, cb) => c.createPlacementGroup(item, md, o, cb)),
      read,
      size: (item) => CreatePlacementGroupRequest.encode(item).finish().length,
    });
    this.removes = new Coalescer({
      many: async (items) => (await head.call<wire.PlacementGroupsReply>((c, md, o, cb) => c.removePlacementGroups({ items }, md, o, cb))).results,
      one: (item) => head.call<wire.PlacementGroup>((c, md, o, cb) => c.removePlacementGroup(item, md, o, cb)),
      read,
      size: (item) => item.id.length + 4,
    });
  }

  /** Creates issued together (in one tick, or while earlier ones are on their way) go to the head as one call. */
  async create(spec: PlacementGroupSpec): Promise<PlacementGroup> {
    const sent = toWire(spec);
    // One id for every attempt of this create: a retry after a failover returns the group it made.
    const requestId = randomUUID();
    return this.handle(await this.creates.submit({ spec: sent, requestId }));
  }

  /** By id or name. */
  async get(idOrName: string): Promise<PlacementGroup> {
    return this.handle(await this.getRaw(idOrName));
  }

  private getRaw(idOrName: string): Promise<wire.PlacementGroup> {
    return this.head.call<wire.PlacementGroup>((c, md, o, cb) => c.getPlacementGroup({ id: idOrName }, md, o, cb));
  }

  /** All groups but removed ones, or those in `state` / with a name prefix, oldest first (fetched page by page). */
  async list(filter: PlacementGroupFilter = {}): Promise<PlacementGroup[]> {
    return collect(this.fetchPage(filter));
  }

  /** Like list(), one page (head request) at a time. */
  pages(filter: PlacementGroupFilter = {}): AsyncGenerator<PlacementGroup[]> {
    return pages(this.fetchPage(filter));
  }

  private fetchPage(filter: PlacementGroupFilter) {
    const state = filter.state ? stateOfName.get(filter.state) : S.PLACEMENT_GROUP_STATE_UNSPECIFIED;
    if (state === undefined || state === S.UNRECOGNIZED) {
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `unknown placement group state "${String(filter.state)}" (pending, reserved, created, rescheduling, removed, infeasible)`, { details: { field: 'state' } });
    }
    const req = { state, namePrefix: filter.namePrefix ?? '', pageSize: filter.pageSize ?? 0 };
    return async (pageToken: string) => {
      const res = await this.head.call<wire.ListPlacementGroupsResponse>((c, md, o, cb) => c.listPlacementGroups({ ...req, pageToken }, md, o, cb));
      return { items: res.groups.map((g) => this.handle(g)), nextPageToken: res.nextPageToken };
    };
  }

  /** Idempotent: removing a removed group returns it again. Removes issued together go as one call, as creates do. */
  async remove(idOrName: string): Promise<PlacementGroup> {
    return this.handle(await this.removes.submit({ id: idOrName }));
  }

  /**
   * @internal Waits up to `timeoutMs` on the head: over the shared wait
   * stream (pg-waits.ts) when it answers, else by call. A wait cut by a
   * failover is sent again to the new leader for the time that is left.
   */
  async waitRaw(id: string, timeoutMs: number): Promise<wire.PlacementGroup> {
    const until = Date.now() + timeoutMs;
    const left = () => Math.max(0, until - Date.now());
    const streamed = await this.waits.wait(id, timeoutMs);
    if (streamed) return streamed;
    return this.head.call<wire.PlacementGroup>((c, md, o, cb) => c.waitPlacementGroup({ id, timeoutMs: left() }, md, o, cb), left() + 10_000);
  }

  /** @internal Ends the wait stream (the cluster is closing). */
  close(): void {
    this.waits.close();
  }

  private handle(pg: wire.PlacementGroup): PlacementGroup {
    return new PlacementGroup(placementGroupView(pg), this);
  }
}
