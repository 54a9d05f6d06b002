/**
 * Issue 16, points 4 and 5 at the head: the engine-metrics and in-flight
 * fields of a replica group spec are validated at apply (by field name), the
 * launch order carries the scrape configuration, the membership carries the
 * router limit, and only what runs makes a new revision.
 */
import { describe, expect, it } from 'vitest';
import type { ReplicaGroup, ReplicaGroupSpec } from '@muster/proto';
import { decodeEngineScrapeConfig, ENGINE_METRICS_DEFAULTS, SHARD_ENV } from '@muster/contracts';
import { MembershipFeed } from './rg-membership.js';
import { appliedRecord } from './rg-records.js';
import { gangSpecOf, maxInFlightOf, parseRgSpec, revisionOf } from './rg-spec.js';
import { rgSpecRefusal, wireRgSpec } from './rg-spec.test-support.js';

const autoscaling = (metric: string, target = 5) => ({ metric, target, upscaleDelayMs: 0, downscaleDelayMs: 0, maxStep: 0, tolerance: 0, scaleToZeroAfterMs: 60_000, lookbackMs: 0, floors: [], metrics: [] });
const scrape = (over: object = {}) => ({ path: '', intervalMs: 0, waitingMetric: '', runningMetric: '', kvCacheMetric: '', metrics: [], ...over });

describe('engine metrics and in-flight fields', () => {
  it('accepts the seed recipe: engine-waiting, target 5, min 0, to zero after idle', () => {
    const s = parseRgSpec(wireRgSpec({ autoscaling: autoscaling('engine-waiting') }));
    expect(s.autoscaling?.metric).toBe('engine-waiting');
  });

  it.each<[string, ReplicaGroupSpec, string]>([
    ['an engine metric on a NATS group', wireRgSpec({ httpPort: '', autoscaling: autoscaling('engine-waiting') }), 'autoscaling.metric: "engine-waiting" reads the engine\'s Prometheus metrics, which only HTTP shards have'],
    ['a named metric that is not scraped', wireRgSpec({ autoscaling: autoscaling('engine:vllm:num_preemptions_total') }), 'autoscaling.metric: "vllm:num_preemptions_total" is not scraped; add it to engineMetrics.metrics'],
    ['an unknown metric', wireRgSpec({ autoscaling: autoscaling('engine-queue') }), 'metric: "engine-queue" is not a metric'],
    ['a named metric that is no Prometheus name', wireRgSpec({ autoscaling: autoscaling('engine:9bad name') }), 'is not a Prometheus metric name'],
    ['engineMetrics on a NATS group', wireRgSpec({ httpPort: '', engineMetrics: scrape() }), 'engineMetrics: only an HTTP group (httpPort) has an engine to scrape'],
    ['a scrape interval under 250 ms', wireRgSpec({ engineMetrics: scrape({ intervalMs: 100 }) }), 'engineMetrics.intervalMs: 100 is outside 250 … 60000 ms'],
    ['a relative path', wireRgSpec({ engineMetrics: scrape({ path: 'metrics' }) }), 'engineMetrics.path: "metrics" must be an absolute URL path'],
    ['a bad metric name', wireRgSpec({ engineMetrics: scrape({ waitingMetric: 'num waiting' }) }), 'engineMetrics.waitingMetric: "num waiting" is not a Prometheus metric name'],
    ['too many named metrics', wireRgSpec({ engineMetrics: scrape({ metrics: Array.from({ length: 9 }, (_, i) => `m${i}`) }) }), 'engineMetrics.metrics: 9 names; the limit is 8'],
    ['a negative in-flight limit', wireRgSpec({ maxInFlightPerReplica: -1 }), 'maxInFlightPerReplica'],
  ])('refuses %s, naming the field', (_name, w, message) => {
    const e = rgSpecRefusal(w);
    expect(e.code).toBe('MUSTER_INVALID_ARGUMENT');
    expect(e.message).toContain(message);
  });

  it('a named metric listed in engineMetrics.metrics is accepted', () => {
    expect(() => parseRgSpec(wireRgSpec({ engineMetrics: scrape({ metrics: ['vllm:num_preemptions_total'] }), autoscaling: autoscaling('engine:vllm:num_preemptions_total') }))).not.toThrow();
  });

  it('rank 0 learns the scrape configuration (defaults filled) from its launch order; a NATS group gets none', () => {
    const env = gangSpecOf(parseRgSpec(wireRgSpec({ engineMetrics: scrape({ intervalMs: 500 }) })), 'rev', 'r1', 'pg', 'muster').template!.env;
    expect(decodeEngineScrapeConfig(env[SHARD_ENV.ENGINE_METRICS])).toEqual({ ...ENGINE_METRICS_DEFAULTS, intervalMs: 500, metrics: [] });
    const nats = gangSpecOf(parseRgSpec(wireRgSpec({ httpPort: '' })), 'rev', 'r1', 'pg', 'muster').template!.env;
    expect(nats[SHARD_ENV.ENGINE_METRICS]).toBeUndefined();
  });

  it('the router limit: 32 for NATS shards, 1024 for HTTP shards (the engine queues), else as given', () => {
    expect(maxInFlightOf(parseRgSpec(wireRgSpec({ httpPort: '' })))).toBe(32);
    expect(maxInFlightOf(parseRgSpec(wireRgSpec()))).toBe(1024);
    expect(maxInFlightOf(parseRgSpec(wireRgSpec({ maxInFlightPerReplica: 7 })))).toBe(7);
  });

  it('the membership carries the limit, and a change of it alone is a new membership', () => {
    const rg = (spec: ReplicaGroupSpec): ReplicaGroup => ({
      name: 'llm', spec, desired: 1, revision: 'r', stableRevision: '', membershipVersion: 0, message: '', createdAtMs: 0, deleting: false, stableSpec: undefined, autoscaler: undefined,
      replicas: [{ id: 'a', revision: 'r', state: 'ready', placementGroupId: '', gangId: '', subject: 's.a', message: '', createdAtMs: 0, replaces: '' }],
    });
    const feed = new MembershipFeed('llm', 0);
    const first = feed.propose(rg(parseRgSpec(wireRgSpec())), 0)!;
    expect(first.maxInFlightPerReplica).toBe(1024);
    feed.commit(first);
    expect(feed.propose(rg(parseRgSpec(wireRgSpec())), 0)).toBeUndefined();
    expect(feed.propose(rg(parseRgSpec(wireRgSpec({ maxInFlightPerReplica: 4 }))), 0)).toMatchObject({ version: 2, maxInFlightPerReplica: 4 });
  });
});

describe('revisionOf: only what runs', () => {
  const V1 = parseRgSpec(wireRgSpec({ autoscaling: autoscaling('engine-waiting') }));
  const R1 = revisionOf(V1);

  it.each<[string, Partial<ReplicaGroupSpec>]>([
    ['replica counts', { replicas: { min: 1, max: 9, initial: 2 } }],
    ['the rollout', { rollout: { strategy: 'rolling', canaryWeight: 0, maxSurge: 3 } }],
    ['the autoscaling policy', { autoscaling: autoscaling('engine-kv-cache', 0.8) }],
    ['no autoscaling at all', { autoscaling: undefined }],
    ['the drain deadline', { drainDeadlineMs: 90_000 }],
    ['the replacement budget', { maxReplacements: 0 }],
    ['the router in-flight limit', { maxInFlightPerReplica: 8 }],
    ['the scrape configuration spelt out as its defaults', { engineMetrics: scrape({ path: '/metrics', intervalMs: 1000 }) }],
  ])('%s: same revision, no rollout', (_name, over) => {
    const next = parseRgSpec(wireRgSpec({ autoscaling: autoscaling('engine-waiting'), ...over }));
    expect(revisionOf(next)).toBe(R1);
    const applied = appliedRecord({ rg: appliedRecord(undefined, V1, 1).rg, spec: V1, stableSpec: undefined }, next, 2);
    expect(applied.event.kind).toBe('rg.updated');
  });

  it.each<[string, Partial<ReplicaGroupSpec>]>([
    ['the template', { template: { ...wireRgSpec().template!, args: ['--model', 'b'] } }],
    ['tp', { tp: 2 }],
    ['resources', { resources: { gpus: 0, cpuMillis: 500, memoryBytes: 0, gpuMemoryMib: 0, migProfile: '', custom: {} } }],
    ['the startup policy', { startup: { deadlineMs: 600_000, maxRestarts: 0, backoffInitialMs: 0, backoffMaxMs: 0, gracePeriodMs: 0 } }],
    ['the scrape configuration (it reaches the worker at launch)', { engineMetrics: scrape({ intervalMs: 500 }) }],
  ])('%s: a new revision', (_name, over) => {
    expect(revisionOf(parseRgSpec(wireRgSpec({ autoscaling: autoscaling('engine-waiting'), ...over })))).not.toBe(R1);
  });
});
