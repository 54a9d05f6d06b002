import { describe, expect, it } from 'vitest';
import { decodeEngineScrapeConfig, ENGINE_METRICS_DEFAULTS, encodeEngineScrapeConfig, engineLoadOf, engineScrapeConfig, isEngineMetricName, MAX_REPORTED_COUNT } from './engine-metrics.js';
import { toLoadReport } from './subjects.js';

describe('engine metrics in load reports', () => {
  const load = { v: 1, replicaId: 'r-1', inFlight: 2, queued: 0, timeMs: 1_700_000_000_000 };

  it('a load report carries the engine values; null (msgpack of undefined) is no engine', () => {
    const engine = { waiting: 3, running: 8, kvCache: 0.42, named: { 'vllm:num_preemptions_total': 2 } };
    expect(toLoadReport({ ...load, engine })).toEqual({ ...load, engine });
    expect(toLoadReport({ ...load, engine: null })).toEqual(load);
    expect(engineLoadOf({})).toEqual({});
  });

  it.each([
    ['a negative waiting count', { waiting: -1, running: 2 }, { running: 2 }],
    ['an absurd running count', { running: MAX_REPORTED_COUNT + 1, waiting: 1 }, { waiting: 1 }],
    ['NaN', { waiting: Number.NaN, kvCache: 0.5 }, { kvCache: 0.5 }],
    ['a KV-cache fraction over 1 (a percentage)', { kvCache: 87, waiting: 0 }, { waiting: 0 }],
    ['a negative KV-cache fraction', { kvCache: -0.1 }, {}],
    ['a named value out of range', { named: { m: 1e13, n: 2 } }, { named: { n: 2 } }],
    ['a named metric with a bad name', { named: { 'a b': 1 } }, {}],
    ['named not an object', { named: [1], waiting: 3 }, { waiting: 3 }],
  ])('drops %s and keeps the rest of the part and the report', (_name, engine, kept) => {
    expect(engineLoadOf(engine)).toEqual(kept);
    expect(toLoadReport({ ...load, engine })).toEqual({ ...load, engine: kept });
  });

  it('keeps at most the bound of named metrics, and a fractional count (a sum of gauges)', () => {
    const named = Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`m${i}`, 1]));
    expect(Object.keys(engineLoadOf({ named })!.named!)).toHaveLength(8);
    expect(engineLoadOf({ waiting: 2.5 })).toEqual({ waiting: 2.5 });
  });

  it('an engine part that is not an object is dropped, the report kept', () => {
    expect(engineLoadOf(5)).toBeUndefined();
    expect(toLoadReport({ ...load, engine: 5 })).toEqual(load);
  });

  it('isEngineMetricName takes Prometheus names (colons too) and refuses the rest', () => {
    expect(['vllm:num_requests_waiting', '_x', 'a1'].every(isEngineMetricName)).toBe(true);
    expect(['', '1a', 'a b', 'a-b', 'x'.repeat(201), 3].some(isEngineMetricName)).toBe(false);
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
