/**
 * bench/peers' pure parts: reading wrk's output (a misread number would put a
 * wrong figure in docs/benchmarks.md) and the verdict of its table (a ratio
 * on the wrong side of its target must fail the run, exit 1).
 */
import { describe, expect, it } from 'vitest';
import { median, meets, mergeRounds, ratioOf, renderTable, type Row } from '../../bench/peers/report.js';
import { parseDuration, parseWrk } from '../../bench/peers/wrk.js';

const WRK = `Running 10s test @ http://127.0.0.1:8000/noop
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   118.05ms   40.12ms 391.20ms   70.00%
    Req/Sec   138.20     30.00   200.00     70.00%
  Latency Distribution
     50%  117.05ms
     75%  140.00ms
     90%  180.00ms
     99%    1.02s
  2764 requests in 10.01s, 400.00KB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 4
Requests/sec:    276.13
Transfer/sec:     40.00KB
`;

describe('bench/peers: wrk output', () => {
  it('reads rate, percentiles in any unit, and counts socket errors and non-2xx answers as errors', () => {
    expect(parseWrk(WRK)).toEqual({ requestsPerSec: 276, p50Ms: 117.05, p99Ms: 1020, requests: 2764, errors: 9 });
    expect(parseWrk(WRK.replace(/\s+Socket errors.*\n\s+Non-2xx.*\n/, '\n')).errors).toBe(0);
    expect([parseDuration('812.00us'), parseDuration('2.31ms'), parseDuration('1.00m')]).toEqual([0.812, 2.31, 60_000]);
    expect(() => parseDuration('3 weeks')).toThrow(/cannot read the duration/);
    expect(() => parseWrk('unable to connect to 127.0.0.1:1')).toThrow(/no Requests\/sec/);
  });
});

describe('bench/peers: ratios and targets', () => {
  const rate: Row = { shape: 'pg', peer: 'Ray', theirs: 400, ours: 1_300, unit: '/s', kind: 'rate', target: { op: '>=', ratio: 3 } };
  const latency: Row = { shape: 'p50', peer: 'Ray', theirs: 0.6, ours: 0.3, unit: 'ms', kind: 'latency', target: { op: '>=', ratio: 3 } };
  const floorP50: Row = { shape: 'floor', peer: 'NATS floor', theirs: 0.2, ours: 0.25, unit: 'ms', kind: 'latency', target: { op: '<=', ratio: 1.3 } };

  it('rates compare ours/theirs, latencies theirs/ours, the floor ceiling ours/theirs', () => {
    expect(ratioOf(rate)).toBeCloseTo(3.25);
    expect(meets(rate)).toBe(true);
    expect(meets({ ...rate, ours: 1_100 })).toBe(false);
    expect(ratioOf(latency)).toBeCloseTo(2);
    expect(meets(latency)).toBe(false);
    expect(meets({ ...latency, ours: 0.15 })).toBe(true);
    expect(ratioOf(floorP50)).toBeCloseTo(1.25);
    expect(meets(floorP50)).toBe(true);
    expect(meets({ ...floorP50, ours: 0.3 })).toBe(false);
    expect(meets({ ...rate, ours: NaN })).toBe(false); // a side that failed to measure never passes
  });

  it('the table fails when one row misses and marks that row', () => {
    const ok = renderTable([rate, floorP50]);
    expect(ok.ok).toBe(true);
    const bad = renderTable([rate, latency]);
    expect(bad.ok).toBe(false);
    expect(bad.text.split('\n')[3]).toMatch(/\| NO +\|/);
    expect(bad.text.split('\n')[2]).toMatch(/3\.25×/);
  });

  it('median of an odd and an even count', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });
});

describe('bench/peers: passes pooled', () => {
  it('concatenates every round array, however deep, and keeps the rest', () => {
    const a = { pg: [1, 2], floor: { sdk: { p50: [0.1], rate: [10] } } };
    const b = { pg: [3], floor: { sdk: { p50: [0.2], rate: [20] } }, http: [{ requestsPerSec: 5 }] };
    expect(mergeRounds<Record<string, unknown>>(a, b)).toEqual({ pg: [1, 2, 3], floor: { sdk: { p50: [0.1, 0.2], rate: [10, 20] } }, http: [{ requestsPerSec: 5 }] });
    expect(mergeRounds(undefined, b)).toBe(b);
  });
});
