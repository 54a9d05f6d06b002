/**
 * Data-plane metrics, recorded through the OpenTelemetry API only.
 *
 * A library must not choose where metrics go: `@muster/sdk` (and so this
 * package) loads no exporter (test/integration/sdk-imports.test.ts). The
 * instruments below come from the global MeterProvider: until a process
 * registers one they record nothing and cost next to nothing (the per-call
 * records return before making their attributes); once it does
 * (the gateway and the worker do, through `startMetrics(..., { global: true })`
 * in @muster/common; an application may register its own) they appear on
 * that provider's exporter. docs/observability.md lists the names.
 *
 * Router side (the caller), per group: requests by the revision of the
 * replica that answered ("" when none did) and result code, latency by code,
 * and — read when scraped — calls in flight, calls queued, retries and
 * hedges (per group: they are not one replica's), calls sent to an
 * overflow group or refused because it was saturated too (by group and
 * overflow group), and calls placed under the `prefix` routing policy by
 * outcome (hit, fallback, unkeyed), and on the direct path the links up and
 * the messages sent on them. Replica side (`serve()`), per group and
 * revision: requests and latency by result code, handlers in flight, requests
 * queued, callers' direct links open; with a batch handler (batch.ts), the size of each batch and each
 * call's wait for its batch.
 *
 * Cardinality is bounded by what the labels can hold: group and revision
 * names (the cluster's own), and the fixed set of error codes plus "OK"
 * (the router's histogram has no revision: buckets times rollouts);
 * and by the SDK's per-instrument cardinality limit (2000 series by default)
 * in a process that runs for many rollouts.
 */
import { LATENCY_BUCKETS_S } from '@muster/common';
import { createNoopMeter, metrics, type Attributes, type Counter, type Histogram, type ObservableResult } from '@opentelemetry/api';


/** The result code of a call that succeeded. */
export const OK = 'OK';

/** What a live router shows when scraped. */
export interface RouterGauges {
  group: string;
  inFlight(): number;
  queued(): number;
  counters: { retries: number; hedges: number };
  /** The direct path (direct-links.ts), when the router takes it: links up, messages sent on them. */
  direct?: () => { up: number; sent: number };
}

/** What a live replica shows when scraped. */
export interface ReplicaGauges {
  group: string;
  revision: string;
  inFlight(): number;
  queued(): number;
  /** Callers' direct links open now (0 without a listener). */
  directLinks(): number;
}

const routers = new Set<RouterGauges>();
const replicas = new Set<ReplicaGauges>();

/**
 * Sums `value` over `sources` by a key of their labels (two routers of one
 * group are one series); `base` (retired routers' totals) is added first. A
 * source whose value is undefined (a router without the direct path, for its
 * series) is left out.
 */
function observeSum<T>(sources: Set<T>, key: (s: T) => string, attrs: (s: T) => Attributes, value: (s: T) => number | undefined, base?: Map<string, number>) {
  return (result: ObservableResult) => {
    const sums = new Map<string, { attrs: Attributes; v: number }>();
    if (base) for (const [k, v] of base) sums.set(k, { attrs: { group: k }, v });
    for (const s of sources) {
      const v = value(s);
      if (v === undefined) continue;
      const k = key(s);
      const e = sums.get(k) ?? { attrs: attrs(s), v: 0 };
      e.v += v;
      sums.set(k, e);
    }
    for (const { attrs: a, v } of sums.values()) result.observe(v, a);
  };
}

/** The API's no-op meter's class: what `getMeter` answers while no provider is registered. */
const NoopMeter = createNoopMeter().constructor;

/**
 * The instruments, made on the global MeterProvider of the moment. The API
 * hands out a no-op meter until a provider is registered (it has no proxy for
 * metrics), and a process may register one after this module loaded: so they
 * are looked up at each record and made again when the provider changed.
 */
let made: { provider: unknown; noop: boolean; routerRequests: Counter; routerLatency: Histogram; replicaRequests: Counter; replicaLatency: Histogram; batchSize: Histogram; batchDelay: Histogram; overflowCalls: Counter; overflowRefused: Counter; prefixRoutes: Counter } | undefined;
function instruments(): NonNullable<typeof made> {
  const provider = metrics.getMeterProvider();
  if (made?.provider === provider) return made;
  const m = provider.getMeter('@muster/dataplane');
  const group = (r: RouterGauges) => r.group;
  const byGroup = (r: RouterGauges) => ({ group: r.group });
  const revisionKey = (r: ReplicaGauges) => `${r.group}\u0000${r.revision}`;
  const byRevision = (r: ReplicaGauges) => ({ group: r.group, revision: r.revision });
  m.createObservableGauge('muster_router_in_flight', { description: 'calls of routers in this process waiting for an answer, by group' })
    .addCallback(observeSum(routers, group, byGroup, (r) => r.inFlight()));
  m.createObservableGauge('muster_router_queued', { description: 'calls waiting in routers of this process for a replica with room, by group' })
    .addCallback(observeSum(routers, group, byGroup, (r) => r.queued()));
  m.createObservableCounter('muster_router_retries_total', { description: 'attempts sent again to another replica (no responders, replica lost), by group' })
    .addCallback(observeSum(routers, group, byGroup, (r) => r.counters.retries, retiredRetries));
  m.createObservableCounter('muster_router_hedges_total', { description: 'hedged copies sent (hedgeAfterMs), by group' })
    .addCallback(observeSum(routers, group, byGroup, (r) => r.counters.hedges, retiredHedges));
  m.createObservableGauge('muster_router_direct_links', { description: 'direct-path links up from routers of this process to replicas, by group' })
    .addCallback(observeSum(routers, group, byGroup, (r) => r.direct?.().up));
  m.createObservableCounter('muster_router_direct_messages_total', { description: 'messages (requests, request frames, cancels, credits) routers of this process sent on direct-path links instead of NATS, by group' })
    .addCallback(observeSum(routers, group, byGroup, (r) => r.direct?.().sent, retiredDirect));
  m.createObservableGauge('muster_replica_direct_links', { description: 'callers\' direct-path links open to serve() replicas of this process, by group and revision' })
    .addCallback(observeSum(replicas, revisionKey, byRevision, (r) => r.directLinks()));
  m.createObservableGauge('muster_replica_in_flight', { description: 'handlers running in serve() replicas of this process, by group and revision' })
    .addCallback(observeSum(replicas, revisionKey, byRevision, (r) => r.inFlight()));
  m.createObservableGauge('muster_replica_queued', { description: 'requests waiting for a handler slot in serve() replicas of this process, by group and revision' })
    .addCallback(observeSum(replicas, revisionKey, byRevision, (r) => r.queued()));
  made = {
    provider,
    noop: m instanceof NoopMeter,
    routerRequests: m.createCounter('muster_router_requests_total', { description: 'calls made by routers in this process, by group, revision of the replica that answered ("": none) and result code (OK or a MUSTER_* code)' }),
    routerLatency: m.createHistogram('muster_router_request_duration_seconds', {
      description: 'router call latency, from call() to its answer (streams: to their end), by group and result code',
      advice: { explicitBucketBoundaries: [...LATENCY_BUCKETS_S] },
    }),
    prefixRoutes: m.createCounter('muster_router_prefix_routes_total', { description: 'calls placed by routers of this process under the prefix routing policy, by group and outcome: hit (the key\'s preferred replica), fallback (another: load, retry, full), unkeyed (no key: p2c)' }),
    replicaRequests: m.createCounter('muster_replica_requests_total', { description: 'requests answered by serve() replicas in this process, by group, revision and result code' }),
    replicaLatency: m.createHistogram('muster_replica_request_duration_seconds', {
      description: 'replica-side latency, from arrival (queue wait included) to the answer, by group, revision and result code',
      advice: { explicitBucketBoundaries: [...LATENCY_BUCKETS_S] },
    }),
    batchSize: m.createHistogram('muster_replica_batch_size', {
      description: 'calls per batch sent to serve() batch handlers in this process, by group and revision',
      advice: { explicitBucketBoundaries: BATCH_SIZE_BUCKETS },
    }),
    batchDelay: m.createHistogram('muster_replica_batch_queue_delay_seconds', {
      description: 'time a call waited in a serve() replica for its batch to be sent, by group and revision',
      advice: { explicitBucketBoundaries: BATCH_DELAY_BUCKETS_S },
    }),
    overflowCalls: m.createCounter('muster_overflow_calls_total', { description: 'calls a saturated group sent to its overflow group (overflow.ts), by group and overflow group (to)' }),
    overflowRefused: m.createCounter('muster_overflow_refused_total', { description: 'calls refused with MUSTER_BACKPRESSURE because a group and its overflow group were both saturated, by group and overflow group (to)' }),
  };
  return made;
}

/**
 * Routers come and go (one per group handle): a closed router leaves the
 * live set (so the in-flight and queued gauges show only live groups), and
 * its retry and hedge totals stay counted here, fed only to the two counter
 * callbacks, so the counters never go down — for the MAX_RETIRED_GROUPS
 * groups retired last (delete-then-set keeps the map in order of last
 * retirement; a process that has called more groups than that, since
 * deleted, lets the oldest totals go). The cap sits at the SDK's default
 * per-instrument cardinality limit (2000 series).
 */
const MAX_RETIRED_GROUPS = 2_000;
const retiredRetries = new Map<string, number>();
const retiredHedges = new Map<string, number>();
const retiredDirect = new Map<string, number>();

function retire(totals: Map<string, number>, group: string, add: number): void {
  const sum = (totals.get(group) ?? 0) + add;
  totals.delete(group);
  totals.set(group, sum);
  if (totals.size > MAX_RETIRED_GROUPS) totals.delete(totals.keys().next().value!);
}

export function trackRouter(r: RouterGauges): () => void {
  instruments();
  routers.add(r);
  return () => {
    if (!routers.delete(r)) return;
    retire(retiredRetries, r.group, r.counters.retries);
    retire(retiredHedges, r.group, r.counters.hedges);
    if (r.direct) retire(retiredDirect, r.group, r.direct().sent);
  };
}

export function trackReplica(r: ReplicaGauges): () => void {
  instruments();
  replicas.add(r);
  return () => void replicas.delete(r);
}

/** One router call ended with `code` after `startedMs` (performance.now()); `revision`: of the replica that answered, "" if none. */
export function recordRouterCall(group: string, revision: string, code: string, startedMs: number): void {
  const i = instruments();
  if (i.noop) return; // no provider registered: the per-call attributes and clock read would go nowhere
  i.routerRequests.add(1, { group, revision, code });
  // No revision on the histogram: its buckets multiply every series, and each rollout would add a set.
  i.routerLatency.record((performance.now() - startedMs) / 1000, { group, code });
}

/** Batch sizes up to MAX_BATCH_SIZE (batch-plan.ts), by powers of two. */
const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1_024];
/** A batch delay is usually a few ms (maxQueueDelayMs ≤ 60 s), so the buckets start below the latency ones. */
const BATCH_DELAY_BUCKETS_S = [0.0001, 0.0005, ...LATENCY_BUCKETS_S];

/** A serve() replica sent a batch of `size` calls, which had waited `waitedMs` each. */
export function recordReplicaBatch(group: string, revision: string, size: number, waitedMs: readonly number[]): void {
  const attrs = { group, revision };
  const i = instruments();
  i.batchSize.record(size, attrs);
  for (const w of waitedMs) i.batchDelay.record(w / 1000, attrs);
}

/** One call placed under the `prefix` routing policy (prefix-policy.ts). */
export function recordPrefixRoute(group: string, outcome: 'hit' | 'fallback' | 'unkeyed'): void {
  instruments().prefixRoutes.add(1, { group, outcome });
}

/** One request answered (or refused) by a replica with `code` after `arrivedMs` (performance.now()). */
export function recordReplicaRequest(group: string, revision: string, code: string, arrivedMs: number): void {
  const i = instruments();
  if (i.noop) return;
  const attrs = { group, revision, code };
  i.replicaRequests.add(1, attrs);
  i.replicaLatency.record((performance.now() - arrivedMs) / 1000, attrs);
}

/** A call of `group` went to its overflow group `to` (sent: true), or was refused because both were saturated. */
export function recordOverflow(group: string, to: string, sent: boolean): void {
  const i = instruments();
  (sent ? i.overflowCalls : i.overflowRefused).add(1, { group, to });
}
