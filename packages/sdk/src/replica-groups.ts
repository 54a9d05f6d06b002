/**
 * Replica groups from the SDK: declare N replicas of a TP×PP shard template;
 * the head keeps them running (each one placement group + one gang), and
 * calls are routed in the caller, over NATS, to the live membership.
 *
 *   await cluster.replicaGroups.apply({ name: 'echo', tp: 2, resources: { gpus: 1 },
 *     template: { command: 'node', args: ['replica.js'] }, replicas: { initial: 3, max: 8 } });
 *   const echo = await cluster.replicaGroups.get('echo');
 *   const answer = await echo.call({ text: 'hi' }, { timeoutMs: 5_000 });
 */
import type { HeadService } from './rpc.js';
import type { NatsAccess, ReplicaGroupServiceClient } from '@muster/proto';
import { DataPlaneAccess, type DataPlane } from './data-plane-access.js';
import { assembleMembership, ErrorCode, MusterError, type MembershipDiscard } from '@muster/common';
import { ALL_GROUPS, REPLICA_GROUP_NAME_PATTERN } from '@muster/contracts';
import type * as wire from '@muster/proto';
import { Router, type CallOptions, type Membership, type OverflowRule, type RouterOptions } from '@muster/dataplane';
import { startupToWire, templateToWire } from './gangs.js';
import { collect, pages, type PageOptions } from './pages.js';
import { SharedRouters } from './shared-routers.js';
import { checkReplicaGroupSpec } from './spec-schemas.js';
import type { ReplicaGroupSpec } from './specs.js';


export interface ReplicaView {
  id: string;
  revision: string;
  state: string;
  placementGroupId: string;
  gangId: string;
  subject: string;
  message: string;
  /** The replica this one replaces, moving it off a draining node (make-before-break); "" if none. */
  replaces: string;
  /** `get()` only: its last load report as the head heard it (absent when none was heard). */
  load?: ReplicaLoadView;
}

/** A replica's last load report: handlers running, requests queued, and an HTTP replica's engine metrics. */
export interface ReplicaLoadView {
  time: Date;
  inFlight: number;
  queued: number;
  engineWaiting?: number;
  engineRunning?: number;
  engineKvCache?: number;
  /** What its ranks use (cpu cores, bytes, GPU utilisation 0…1), as their workers measured it. */
  resources?: { cpu?: number; memoryBytes?: number; gpuUtilization?: number; gpuMemoryBytes?: number };
  /** Gauges the shard set (serve()'s customMetrics). */
  custom?: Record<string, number>;
}

/** `get()` of an autoscaled group: what its autoscaler sees now (computed for the answer; nothing is decided by it). */
export interface AutoscalerView {
  metric: string;
  /** The metric over the group, and per replica counted. */
  value: number;
  perReplica: number;
  target: number;
  /** The replica count the autoscaler would choose now, and why. */
  desired: number;
  reason: string;
  samples: number;
}

/** Which replicas `get()` and `replicaPages()` read. */
export interface ReplicaFilter extends PageOptions {
  /** Replicas per request: 0 or unset = the head's default (1,000); the head caps it at 1,000. */
  pageSize?: number;
  /** Only replicas in one of these states (starting, ready, draining, stopping, failed). */
  states?: string[];
  /** Only replicas of this revision. */
  revision?: string;
}

export interface ReplicaGroupView {
  name: string;
  desired: number;
  revision: string;
  stableRevision: string;
  /**
   * The replicas read: from `get()`/`refresh()`, `apply()`, `scale()` and
   * `delete()` every one (the SDK follows the head's replica pages); from
   * `list()` none (read `replicaCount` and `replicasByState`, or `refresh()`).
   */
  replicas: ReplicaView[];
  /** Every replica of the group, in all and by state (whatever was read into `replicas`). */
  replicaCount: number;
  replicasByState: Record<string, number>;
  membershipVersion: number;
  message: string;
  deleting: boolean;
  spec: wire.ReplicaGroupSpec | undefined;
  /** `get()` of an autoscaled group only. */
  autoscaler?: AutoscalerView;
}

const n = (v: number | undefined) => v ?? 0;

/** The wire has no room for unknown keys: a misspelt one is refused here, by path (spec-schemas.ts). */
function toWire(input: ReplicaGroupSpec): wire.ReplicaGroupSpec {
  const s = checkReplicaGroupSpec(input);
  const r = s.resources ?? {};
  const p = s.placement;
  return {
    name: s.name ?? '',
    template: s.template && templateToWire(s.template),
    tp: n(s.tp),
    pp: n(s.pp),
    resources: { gpus: n(r.gpus), cpuMillis: n(r.cpuMillis), memoryBytes: n(r.memoryBytes), gpuMemoryMib: n(r.gpuMemoryMiB), migProfile: r.migProfile ?? '', custom: r.custom ?? {} },
    placement: p && {
      strategy: p.strategy ?? '',
      topology: (p.topology ?? []).map((t) => ({ level: t.level, mode: t.mode ?? '' })),
      matchLabels: p.selector?.matchLabels ?? {},
      tolerations: (p.tolerations ?? []).map((t) => ({ key: t.key ?? '', operator: t.operator ?? '', value: t.value ?? '', effect: t.effect ?? '' })),
      priority: n(p.priority),
    },
    replicas: s.replicas && { min: n(s.replicas.min), max: n(s.replicas.max), initial: n(s.replicas.initial) },
    startup: startupToWire(s.startup),
    rollout: s.rollout && { strategy: s.rollout.strategy ?? '', canaryWeight: n(s.rollout.canaryWeight), maxSurge: n(s.rollout.maxSurge) },
    drainDeadlineMs: n(s.drainDeadlineMs),
    httpPort: s.httpPort ?? '',
    roles: (s.roles ?? []).map((x) => {
      const xr = x.resources ?? {};
      return { name: x.name, count: n(x.count), tp: n(x.tp), pp: n(x.pp), entry: x.entry ?? false, template: templateToWire(x.template), resources: { gpus: n(xr.gpus), cpuMillis: n(xr.cpuMillis), memoryBytes: n(xr.memoryBytes), gpuMemoryMib: n(xr.gpuMemoryMiB), migProfile: xr.migProfile ?? '', custom: xr.custom ?? {} } };
    }),
    maxReplacements: s.maxReplacements,
    models: s.models ?? [],
    requestTimeoutMs: n(s.requestTimeoutMs),
    engineMetrics: s.engineMetrics && {
      path: s.engineMetrics.path ?? '',
      intervalMs: n(s.engineMetrics.intervalMs),
      waitingMetric: s.engineMetrics.waitingMetric ?? '',
      runningMetric: s.engineMetrics.runningMetric ?? '',
      kvCacheMetric: s.engineMetrics.kvCacheMetric ?? '',
      metrics: s.engineMetrics.metrics ?? [],
    },
    maxInFlightPerReplica: n(s.maxInFlightPerReplica),
    overflow: s.overflow && { group: s.overflow.group ?? '', queuePerReplicaAbove: s.overflow.queuePerReplicaAbove, onBackPressure: s.overflow.onBackPressure === true },
    routing: s.routing && { policy: s.routing.policy ?? '', prefixChars: n(s.routing.prefixChars), loadFactor: n(s.routing.loadFactor) },
    autoscaling: s.autoscaling && {
      metric: s.autoscaling.metric ?? '',
      target: n(s.autoscaling.target),
      upscaleDelayMs: n(s.autoscaling.upscaleDelayMs),
      downscaleDelayMs: n(s.autoscaling.downscaleDelayMs),
      maxStep: n(s.autoscaling.maxStep),
      tolerance: n(s.autoscaling.tolerance),
      scaleToZeroAfterMs: n(s.autoscaling.scaleToZeroAfterMs),
      lookbackMs: n(s.autoscaling.lookbackMs),
      floors: (s.autoscaling.floors ?? []).map((f) => ({ cron: f.cron, durationMs: f.durationMs, timezone: f.timezone ?? '', min: f.min })),
      metrics: (s.autoscaling.metrics ?? []).map((m) => ({ metric: m.metric, target: m.target })),
    },
  };
}

function loadView(l: wire.ReplicaLoad): ReplicaLoadView {
  return {
    time: new Date(l.timeMs),
    inFlight: l.inFlight,
    queued: l.queued,
    ...(l.engineWaiting !== undefined ? { engineWaiting: l.engineWaiting } : {}),
    ...(l.engineRunning !== undefined ? { engineRunning: l.engineRunning } : {}),
    ...(l.engineKvCache !== undefined ? { engineKvCache: l.engineKvCache } : {}),
    ...(l.resources ? { resources: { cpu: l.resources.cpu, memoryBytes: l.resources.memoryBytes, gpuUtilization: l.resources.gpuUtilization, gpuMemoryBytes: l.resources.gpuMemoryBytes } } : {}),
    ...(Object.keys(l.custom).length ? { custom: { ...l.custom } } : {}),
  };
}

function replicaView(r: wire.Replica): ReplicaView {
  return { id: r.id, revision: r.revision, state: r.state, placementGroupId: r.placementGroupId, gangId: r.gangId, subject: r.subject, message: r.message, replaces: r.replaces, ...(r.load ? { load: loadView(r.load) } : {}) };
}

/** Counts by state; a head before replica paging sent every replica and no counts, so count those. */
function countsOf(g: wire.ReplicaGroup): Pick<ReplicaGroupView, 'replicaCount' | 'replicasByState'> {
  if (g.replicaPage) return { replicaCount: g.replicaPage.total, replicasByState: { ...g.replicaPage.byState } };
  const replicasByState: Record<string, number> = {};
  for (const r of g.replicas) replicasByState[r.state] = (replicasByState[r.state] ?? 0) + 1;
  return { replicaCount: g.replicas.length, replicasByState };
}

export function replicaGroupView(g: wire.ReplicaGroup): ReplicaGroupView {
  return {
    name: g.name,
    desired: g.desired,
    revision: g.revision,
    stableRevision: g.stableRevision,
    replicas: g.replicas.map(replicaView),
    ...countsOf(g),
    membershipVersion: g.membershipVersion,
    message: g.message,
    deleting: g.deleting,
    spec: g.spec,
    ...(g.autoscalerView ? { autoscaler: { ...g.autoscalerView } } : {}),
  };
}


/** A replica group handle: its last known state, its membership, and calls to it. */
export class ReplicaGroup {
  /** The router of this handle, made by the first call (concurrent first calls share it). */
  private router: Promise<Router> | undefined;
  /** Lets go of `router` (closes it, or releases this handle's count on the shared one). */
  private release: (() => void) | undefined;
  /** The router once `router` resolved (call's fast path). */
  private ready: Router | undefined;
  /** The options `router` was made with; undefined: it is the shared router. */
  private routerOptions: RouterOptions | undefined;

  constructor(private view: ReplicaGroupView, private readonly api: ReplicaGroups) {}

  get name(): string { return this.view.name; }
  get replicas(): ReplicaView[] { return this.view.replicas; }
  get desired(): number { return this.view.desired; }
  toJSON(): ReplicaGroupView { return this.view; }

  async refresh(): Promise<this> {
    this.view = (await this.api.get(this.name)).view;
    return this;
  }

  async scale(replicas: number): Promise<this> {
    this.view = (await this.api.scale(this.name, replicas)).view;
    return this;
  }

  /** The live membership: now, then every change (until `signal` aborts). */
  membership(signal?: AbortSignal): AsyncIterable<Membership> {
    return this.api.membership(this.name, signal);
  }

  /** Sends one request to a replica (power of two choices, limits, retries, hedging: see docs/dataplane.md). */
  call(payload: unknown, opts?: CallOptions): Promise<unknown> {
    // Once the router is up, straight to it: no promise or microtask of this handle's own per call.
    const r = this.ready;
    return r ? r.call(payload, opts) : this.routerOf().then((router) => router.call(payload, opts));
  }

  /** A streaming request: yields the replica's chunks. */
  async *stream(payload: unknown, opts?: CallOptions): AsyncGenerator<unknown> {
    yield* (await this.routerOf()).stream(payload, opts);
  }

  /**
   * The router this handle uses (created on first call; a failed creation is
   * tried again by the next). Without `opts` it is the process's shared router
   * of the group (ReplicaGroups.shared): every handle of the group calls
   * through it, and so do other groups' overflowed calls. Its `close()` is
   * refused (MUSTER_FAILED_PRECONDITION) — it would fail their calls too;
   * this handle's `close()` lets go of it, and the last user's closes it.
   * With `opts` the router is this handle's own, and its `close()` closes it.
   * Options are for a handle's first router: asked again with the same
   * options (key by key), the handle's router is given; with other options,
   * or with any when the handle already calls through the shared router,
   * MUSTER_FAILED_PRECONDITION (silently handing out a router made otherwise
   * would leave the caller believing its options apply).
   */
  routerOf(opts?: RouterOptions): Promise<Router> {
    if (this.router) {
      if (!opts || sameOptions(opts, this.routerOptions)) return this.router;
      const has = this.routerOptions ? 'a router of its own, made with other options' : "the process's shared router of the group";
      return Promise.reject(new MusterError(ErrorCode.FAILED_PRECONDITION, `replica group "${this.name}": this handle already calls through ${has}, so routerOf(options) cannot apply these; take another handle (replicaGroups.get("${this.name}")) for a router with them, or close() this one first`, { details: { group: this.name } }));
    }
    this.routerOptions = opts;
    let router: Promise<Router>;
    let release: () => void;
    if (opts) {
      const own = this.api.router(this.name, opts);
      router = own;
      release = () => void own.then((r) => r.close(), () => undefined);
    } else {
      ({ router, release } = this.api.shared(this.name));
    }
    this.router = router;
    this.release = release;
    router.then(
      (r) => {
        if (this.router === router) this.ready = r;
      },
      () => {
        if (this.router !== router) return;
        this.router = undefined;
        this.routerOptions = undefined;
        this.release = undefined;
        release();
      },
    );
    return router;
  }

  close(): void {
    this.release?.();
    this.router = undefined;
    this.routerOptions = undefined;
    this.release = undefined;
    this.ready = undefined;
  }
}

/** Whether two routerOf() options say the same, key by key (undefined: the shared router's). */
function sameOptions(a: RouterOptions, b: RouterOptions | undefined): boolean {
  if (!b) return false;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]) as Set<keyof RouterOptions>;
  return [...keys].every((k) => a[k] === b[k]);
}

export class ReplicaGroups {
  private nats: Promise<DataPlane> | undefined;
  private access: DataPlaneAccess | undefined;
  /** The routers `shared` hands out, one per group. */
  private readonly sharedRouters = new SharedRouters((name) => this.router(name));
  /** Partial membership snapshots dropped, by reason (@muster/common membership-parts.ts). */
  readonly membershipDiscards: Record<MembershipDiscard, number> = { broken: 0, interleaved: 0, oversized: 0 };

  constructor(
    private readonly head: HeadService<ReplicaGroupServiceClient>,
    /** GetDataPlaneAccess: this client's own NATS user. */
    private readonly natsAccess: (renewInboxPrefix: string) => Promise<NatsAccess>,
    /** What every router of this client is made with unless its own options say otherwise (connect()'s `direct`). */
    private readonly routerDefaults: RouterOptions = {},
  ) {}

  /** Create or update; idempotent. Changing only `replicas` never rolls out. */
  async apply(spec: ReplicaGroupSpec): Promise<ReplicaGroup> {
    const sent = toWire(spec);
    return this.handle(await this.rest(await this.head.call<wire.ReplicaGroup>((c, md, o, cb) => c.applyReplicaGroup({ spec: sent }, md, o, cb))));
  }

  /**
   * The group with every replica `filter` keeps (all by default), read page
   * by page: the head sends at most 1,000 replicas an answer.
   */
  async get(name: string, filter: ReplicaFilter = {}): Promise<ReplicaGroup> {
    // A name outside the head's rule can never exist: no round trip to learn it.
    if (!REPLICA_GROUP_NAME_PATTERN.test(name)) throw new MusterError(ErrorCode.NOT_FOUND, `no replica group "${name}": group names are 1-42 lower-case letters, digits and "-"`, { details: { field: 'name' } });
    const first = await this.replicaPage(name, filter, '');
    return this.handle(await this.rest(first, filter));
  }

  /** The replicas of `name` that `filter` keeps, one page (one head answer) at a time, oldest first. */
  async *replicaPages(name: string, filter: ReplicaFilter = {}): AsyncGenerator<ReplicaView[]> {
    for await (const page of pages(async (token) => {
      const g = await this.replicaPage(name, filter, token);
      return { items: g.replicas.map(replicaView), nextPageToken: g.replicaPage?.nextPageToken ?? '' };
    })) yield page;
  }

  /** Every replica group, or those whose name starts with `namePrefix`, by name (fetched page by page). */
  async list(filter: { namePrefix?: string } & PageOptions = {}): Promise<ReplicaGroup[]> {
    const req = { namePrefix: filter.namePrefix ?? '', pageSize: filter.pageSize ?? 0 };
    return collect(async (pageToken) => {
      const res = await this.head.call<wire.ListReplicaGroupsResponse>((c, md, o, cb) => c.listReplicaGroups({ ...req, pageToken }, md, o, cb));
      return { items: res.groups.map((g) => this.handle(g)), nextPageToken: res.nextPageToken };
    });
  }

  async scale(name: string, replicas: number): Promise<ReplicaGroup> {
    return this.handle(await this.rest(await this.head.call<wire.ReplicaGroup>((c, md, o, cb) => c.scaleReplicaGroup({ name, replicas }, md, o, cb))));
  }

  async delete(name: string): Promise<ReplicaGroup> {
    const g = await this.head.call<wire.ReplicaGroup>((c, md, o, cb) => c.deleteReplicaGroup({ name }, md, o, cb));
    // The group may be gone before its other pages are read: what was read is the answer.
    return this.handle(await this.rest(g).catch((e: unknown) => {
      if ((e as { code?: string }).code === ErrorCode.NOT_FOUND) return g;
      throw e;
    }));
  }

  /**
   * Membership snapshots from the leading head, whole (a large one comes in
   * parts: assembleMembership joins them, and drops a partial one, counted in
   * `membershipDiscards`); reconnects (to the leader) when the stream breaks.
   */
  async *membership(name: string, signal?: AbortSignal): AsyncGenerator<Membership> {
    const each = (parts: AsyncIterable<wire.Membership>) => assembleMembership(parts, (why) => this.membershipDiscards[why]++);
    for await (const m of this.head.watch((c, md) => c.watchMembership({ group: name }, md), signal, each)) {
      yield { group: m.group, version: m.version, replicas: m.replicas, revisionWeights: Object.keys(m.revisionWeights).length ? m.revisionWeights : undefined, ...(m.maxInFlightPerReplica > 0 ? { maxInFlightPerReplica: m.maxInFlightPerReplica } : {}), ...(m.overflow?.group ? { overflow: overflowRule(m.overflow) } : {}), ...(m.routing ? { routing: m.routing } : {}) };
    }
  }

  /**
   * A router for `name`, fed by the head's membership, on the cluster's NATS.
   * When the group names an overflow group, its calls beyond the rule go
   * through this process's shared router of that group (`shared`), so a
   * group's replicas see one router's limits from this process however many
   * groups overflow to it. A call sent there never overflows again (one hop:
   * the router marks it).
   */
  async router(name: string, opts: RouterOptions = {}): Promise<Router> {
    const { conn, prefix, inboxPrefix, groups } = await this.dataPlane();
    // NATS refuses the publish anyway (the user's permissions); refusing here
    // names the reason at once instead of letting the call time out.
    if (!groups.includes(ALL_GROUPS) && !groups.includes(name)) {
      throw new MusterError(ErrorCode.PERMISSION_DENIED, `this client may not call replica group "${name}": its identity's call rights are ${groups.length ? groups.join(', ') : 'none'} (a certificate's urn:muster:call:<group> names, docs/security.md)`, { details: { group: name } });
    }
    const abort = new AbortController();
    const openOverflow = async (group: string) => {
      const { router, release } = this.shared(group);
      try {
        return { target: await router, release };
      } catch (e) {
        release();
        throw e;
      }
    };
    const router = new Router(conn, this.membership(name, abort.signal), { ...this.routerDefaults, ...opts, group: name, subjectPrefix: prefix, ...(inboxPrefix ? { inboxPrefix } : {}), openOverflow });
    const close = router.close.bind(router);
    router.close = () => {
      abort.abort();
      close();
    };
    return router;
  }

  /**
   * This process's one router of `name` (default options), counted: made by
   * the first user — a handle's calls, another group's overflow — and closed
   * when the last `release`s it; its own `close()` is refused (shared-routers.ts).
   */
  shared(name: string): { router: Promise<Router>; release(): void } {
    return this.sharedRouters.take(name);
  }

  /** @internal */
  async closeDataPlane(): Promise<void> {
    this.sharedRouters.closeAll();
    const n = await this.nats?.catch(() => undefined);
    this.nats = undefined;
    this.access?.close();
    this.access = undefined;
    await n?.conn.close();
  }

  private dataPlane(): Promise<DataPlane> {
    if (!this.nats) {
      // Stale (its user can no longer be renewed): the next router opens a new connection.
      const access = (this.access = new DataPlaneAccess(this.natsAccess, () => {
        if (this.nats === nats) this.nats = undefined;
      }));
      const nats: Promise<DataPlane> = (this.nats = access.connect('muster-sdk'));
      // A failed connect is not kept: the next call asks the head again.
      nats.catch(() => {
        if (this.nats === nats) this.nats = undefined;
      });
    }
    return this.nats;
  }

  private replicaPage(name: string, filter: ReplicaFilter, replicaPageToken: string): Promise<wire.ReplicaGroup> {
    const req = { name, replicaPageSize: filter.pageSize ?? 0, replicaPageToken, replicaStates: filter.states ?? [], replicaRevision: filter.revision ?? '' };
    return this.head.call<wire.ReplicaGroup>((c, md, o, cb) => c.getReplicaGroup(req, md, o, cb));
  }

  /** `first` with the replicas of the pages after it (same filters), the group's other fields from the last answer. */
  private async rest(first: wire.ReplicaGroup, filter: ReplicaFilter = {}): Promise<wire.ReplicaGroup> {
    let g = first;
    const replicas = [...first.replicas];
    while (g.replicaPage?.nextPageToken) {
      g = await this.replicaPage(first.name, filter, g.replicaPage.nextPageToken);
      replicas.push(...g.replicas);
    }
    return { ...g, replicas, ...(g.replicaPage ? { replicaPage: { ...g.replicaPage, nextPageToken: '' } } : {}) };
  }

  private handle(g: wire.ReplicaGroup): ReplicaGroup {
    return new ReplicaGroup(replicaGroupView(g), this);
  }
}

/** A membership's overflow as routers read it (an unset rule stays absent). */
function overflowRule(o: wire.Overflow): OverflowRule {
  return { group: o.group, ...(o.queuePerReplicaAbove !== undefined ? { queuePerReplicaAbove: o.queuePerReplicaAbove } : {}), ...(o.onBackPressure ? { onBackPressure: true } : {}) };
}
