import { describe, expect, it } from 'vitest';
import { decodeEngineScrapeConfig, ENGINE_METRICS_DEFAULTS, encodeEngineScrapeConfig, engineScrapeConfig, toEngineLoad } from './engine-metrics.js';
import { toLoadReport } from './subjects.js';

describe('engine metrics in load reports', () => {
  const load = { v: 1, replicaId: 'r-1', inFlight: 2, queued: 0, timeMs: 1_700_000_000_000 };

  it('a load report carries the engine values; null (msgpack of undefined) is no engine', () => {
    const engine = { waiting: 3, running: 8, kvCache: 0.42, named: { 'vllm:num_preemptions_total': 2 } };
    expect(toLoadReport({ ...load, engine })).toEqual({ ...load, engine });
    expect(toLoadReport({ ...load, engine: null })).toEqual(load);
    expect(toEngineLoad({})).toEqual({});
  });

  it.each([
    ['a negative waiting count', { waiting: -1 }],
    ['an absurd running count', { running: 1e9 }],
    ['NaN', { waiting: Number.NaN }],
    ['a KV-cache fraction over 1 (a percentage)', { kvCache: 87 }],
    ['a negative KV-cache fraction', { kvCache: -0.1 }],
    ['a named value out of range', { named: { m: 1e13 } }],
    ['a named metric with a bad name', { named: { 'a b': 1 } }],
    ['too many named metrics', { named: Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`m${i}`, 1])) }],
    ['not an object', 5],
  ])('refuses %s, and with it the whole report', (_name, engine) => {
    expect(toEngineLoad(engine)).toBeUndefined();
    expect(toLoadReport({ ...load, engine })).toBeUndefined();
  });
});

describe('MUSTER_ENGINE_METRICS', () => {
  it('absent → vLLM defaults; round-trips; zeros and empty strings take the defaults', () => {
    expect(decodeEngineScrapeConfig(undefined)).toEqual({ ...ENGINE_METRICS_DEFAULTS, metrics: [] });
    const c = engineScrapeConfig({ path: '/stats', intervalMs: 0, waitingMetric: '', metrics: ['tgi_queue_size'] });
    expect(c).toEqual({ ...ENGINE_METRICS_DEFAULTS, path: '/stats', metrics: ['tgi_queue_size'] });
    expect(decodeEngineScrapeConfig(encodeEngineScrapeConfig(c))).toEqual(c);
  });

  it.each([
    ['not JSON', '{', /not JSON/],
    ['an array', '[]', /not an object/],
    ['an interval too short', JSON.stringify({ intervalMs: 10 }), /intervalMs: 10 is outside 250/],
    ['a bad name', JSON.stringify({ metrics: ['x y'] }), /metrics\[0\]: "x y" is not a Prometheus metric name/],
  ])('refuses %s', (_name, value, why) => {
    expect(() => decodeEngineScrapeConfig(value)).toThrow(why);
  });
});
