/**
 * A template's warm-up at the head: the strict schema (unknown keys with a
 * "did you mean", bounds naming the field and the limit, rules that need the
 * rest of the spec), rank 0's resolved copy in its launch order, and the
 * `gang.warmed-up` event of rank 0's ready report.
 */
import { describe, expect, it } from 'vitest';
import { WARMUP_LIMITS } from '@muster/contracts';
import type { GangSpec, ReplicaGroupSpec, WarmupRequest } from '@muster/proto';
import { launchShards, parseGangSpec, type LayoutPlan } from './gang-spec.js';
import { stageWarmedUp, startupBudgetMs } from './gang-warmup.js';
import { parseRgSpec } from './rg-spec.js';

type Template = NonNullable<GangSpec['template']>;
const req = (over: Partial<WarmupRequest>): WarmupRequest => ({ kind: 'call', json: '', payload: Buffer.alloc(0), stream: false, port: '', method: '', path: '', headers: {}, body: '', expectStatus: 0, command: [], ...over });
const template = (requests: WarmupRequest[], timeoutMs = 0): Template => ({
  command: 'node', args: [], env: {}, cwd: '', ports: [{ name: 'http', port: 0 }], readiness: undefined, liveness: undefined, warmup: { requests, timeoutMs },
});
const gang = (t: Template, replicaGroup = 'echo'): GangSpec => ({ name: 'g', placementGroup: 'pg', tp: 2, pp: 1, template: t, startup: undefined, logMaxBytes: 0, replicaGroup, replicaId: replicaGroup ? 'r-1' : '', roles: [] });
const rg = (t: Template, over: Partial<ReplicaGroupSpec> = {}): ReplicaGroupSpec => ({
  name: 'echo', template: t, tp: 1, pp: 1, resources: undefined, placement: undefined, replicas: { min: 0, max: 2, initial: 1 },
  startup: undefined, rollout: undefined, drainDeadlineMs: 0, httpPort: '', maxReplacements: undefined, autoscaling: undefined, models: [], requestTimeoutMs: 0, engineMetrics: undefined, maxInFlightPerReplica: 0, overflow: undefined, routing: undefined, roles: [], ...over,
});

const refusal = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    expect((e as { code?: string }).code).toBe('MUSTER_INVALID_ARGUMENT');
    return (e as Error).message;
  }
  throw new Error('expected a refusal');
};

describe('warm-up validation at the head', () => {
  it('takes call, http and exec requests, and fills the default timeout', () => {
    const s = parseGangSpec(gang(template([req({ json: '{"prompt":"hi"}' }), req({ kind: 'http', port: 'http', path: '/v1/completions', body: '{}', method: 'POST' }), req({ kind: 'exec', command: ['sh', '-c', 'true'] })])));
    expect(s.template.warmup?.requests.map((r) => r.kind)).toEqual(['call', 'http', 'exec']);
    expect(s.template.warmup?.timeoutMs).toBe(60_000);
  });

  it('reads no requests as no warm-up (proto3 cannot tell an empty message from none)', () => {
    expect(parseGangSpec(gang(template([]))).template.warmup).toBeUndefined();
  });

  it.each([
    ['an unknown kind', [req({ kind: 'grpc' })], 'template.warmup.requests[0].kind: Invalid option'],
    ['invalid JSON', [req({ json: '{nope' })], 'template.warmup.requests[0].json: not valid JSON'],
    ['json and bytes both', [req({ json: '1', payload: Buffer.from('x') })], 'template.warmup.requests[0].json: give json or payload, not both'],
    ['a field of another kind', [req({ kind: 'exec', command: ['true'], path: '/x' })], 'template.warmup.requests[0].path: only for http requests, not exec'],
    ['an http request without a port', [req({ kind: 'http' })], 'template.warmup.requests[0].port: an http request needs a port'],
    ['a port the template does not have', [req({ kind: 'http', port: 'grpc' })], 'template.warmup.requests[0].port: "grpc" is neither a port name of the template (http) nor a number'],
    ['a path without "/"', [req({ kind: 'http', port: 'http', path: 'health' })], 'template.warmup.requests[0].path: must start with "/"'],
    ['an unknown method', [req({ kind: 'http', port: 'http', method: 'FETCH' })], 'template.warmup.requests[0].method: "FETCH" is not one of GET'],
    ['a GET with a body', [req({ kind: 'http', port: 'http', method: 'GET', body: 'x' })], 'template.warmup.requests[0].body: a GET request has no body'],
    ['an exec without a command', [req({ kind: 'exec' })], 'template.warmup.requests[0].command: an exec request needs a command'],
    ['a body over 64 KiB', [req({ kind: 'http', port: 'http', body: 'x'.repeat(WARMUP_LIMITS.bodyBytes + 1) })], `template.warmup.requests[0].body: ${WARMUP_LIMITS.bodyBytes + 1} bytes; the limit is ${WARMUP_LIMITS.bodyBytes} (warm-up bodyBytes)`],
    ['a payload over 64 KiB', [req({ payload: Buffer.alloc(WARMUP_LIMITS.bodyBytes + 1) })], 'template.warmup.requests[0].payload: 65537 bytes; the limit is 65536'],
    ['more than 128 KiB in all', [1, 2, 3].map(() => req({ kind: 'http', port: 'http', body: 'x'.repeat(50_000) })), 'template.warmup.requests: payloads, bodies, headers and commands take 150000 bytes; the limit is 131072 (warm-up totalBytes)'],
    ['17 requests', Array.from({ length: 17 }, () => req({ json: '1' })), 'template.warmup.requests: 17 items; the limit is 16 (warm-up requests)'],
  ])('refuses %s, naming the field', (_, requests, message) => {
    expect(refusal(() => parseGangSpec(gang(template(requests))))).toContain(message);
  });

  it('refuses a timeout over 10 minutes, and takes one at the limit', () => {
    expect(refusal(() => parseGangSpec(gang(template([req({ json: '1' })], 600_001))))).toContain('template.warmup.timeoutMs: Too big');
    expect(parseGangSpec(gang(template([req({ json: '1' })], 600_000))).template.warmup?.timeoutMs).toBe(600_000);
  });

  it('refuses a call where no serve() answers it: a plain gang, an HTTP replica group', () => {
    expect(refusal(() => parseGangSpec(gang(template([req({ json: '1' })]), '')))).toContain('template.warmup.requests[0].kind: a call goes to serve(), which only a replica group\'s shards run');
    expect(refusal(() => parseRgSpec(rg(template([req({ json: '1' })]), { httpPort: 'http' })))).toContain('invalid replica group spec: template.warmup.requests[0].kind: an HTTP shard (httpPort) runs no serve() of its own');
    expect(parseRgSpec(rg(template([req({ kind: 'http', port: 'http', path: '/v1/completions', body: '{}' })]), { httpPort: 'http' })).template?.warmup?.requests).toHaveLength(1);
  });
});

describe('warm-up in the launch order', () => {
  const plan: LayoutPlan = {
    masterAddr: '127.0.0.1',
    masterPort: 30_999,
    ranks: [0, 1].map((rank) => ({ rank, nodeId: 'n1', tpRank: rank, ppRank: 0, localRank: rank, localWorldSize: 2, cudaVisibleDevices: String(rank), ports: { http: 31_000 + rank } })),
  };

  it('goes to rank 0 only, its port names resolved to rank 0 ports', () => {
    const s = parseGangSpec(gang(template([req({ kind: 'http', port: 'http', path: '/warm' }), req({ kind: 'http', port: '8080', path: '/x' })])));
    const [r0, r1] = launchShards(s, 'g1', 1, plan, 'n1');
    expect(r0?.warmup?.requests.map((r) => r.port)).toEqual(['31000', '8080']);
    expect(r0?.warmup?.timeoutMs).toBe(60_000);
    expect(r1?.warmup).toBeUndefined();
  });
});

describe('gang.warmed-up', () => {
  const staged: { kind: string; attributes: Record<string, string> }[] = [];
  const sink = { stage: (kind: string, e: { attributes: Record<string, string> }) => void staged.push({ kind, attributes: e.attributes }) };
  const g = (phase0: string) => ({ id: 'g1', attempt: 2, ranks: [{ rank: 0, phase: phase0 }, { rank: 1, phase: 'ready' }] });
  const report = { attempt: 2, rank: 0, phase: 'ready', warmupMs: 1234 };

  it('is staged once when rank 0 of the current attempt turns ready after a warm-up, with its duration', () => {
    staged.length = 0;
    stageWarmedUp(sink, g('started'), 'echo-r-1', report);
    expect(staged).toEqual([{ kind: 'gang.warmed-up', attributes: { gang: 'g1', name: 'echo-r-1', attempt: '2', durationMs: '1234' } }]);
    stageWarmedUp(sink, g('ready'), 'echo-r-1', report); // the same report again (an inventory after a reconnect)
    stageWarmedUp(sink, g('started'), 'echo-r-1', { ...report, attempt: 1 }); // an old attempt
    stageWarmedUp(sink, g('started'), 'echo-r-1', { ...report, warmupMs: 0 }); // no warm-up
    stageWarmedUp(sink, g('started'), 'echo-r-1', { ...report, rank: 1 });
    expect(staged).toHaveLength(1);
  });
});

describe("the head's startup backstop", () => {
  it('gives an attempt its startup deadline and then the warm-up timeout', () => {
    const withWarmup = parseGangSpec({ ...gang(template([req({ json: '1' })], 30_000)), startup: { deadlineMs: 10_000, maxRestarts: 0, backoffInitialMs: 0, backoffMaxMs: 0, gracePeriodMs: 0 } });
    const without = parseGangSpec({ ...gang({ ...template([]), warmup: undefined }), startup: { deadlineMs: 10_000, maxRestarts: 0, backoffInitialMs: 0, backoffMaxMs: 0, gracePeriodMs: 0 } });
    expect(startupBudgetMs(withWarmup)).toBe(40_000);
    expect(startupBudgetMs(without)).toBe(10_000);
  });
});
