/**
 * Data-plane metrics and the gateway's request log, end to end: a real
 * `muster gateway` (its /metrics on a separate loopback address, every
 * request logged) in front of the vLLM-like fixture as an HTTP group. The
 * calls made here are counted, and the Prometheus text of the gateway (its
 * own series and its router's) and of the worker (whose HTTP bridge is the
 * group's serve() replica) is parsed and must show exactly those counts.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cluster } from '@muster/sdk';
import { waitFor, type LocalCluster, type ManagedProcess } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';
import { sample } from './prometheus-text.js';
import { startTestGateway, type TestGateway } from './gateway.test-support.js';

const vllmLike = fileURLToPath(new URL('../fixtures/vllm-like.mjs', import.meta.url));

describe('data-plane metrics and request logs', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;
  let gw: ManagedProcess;
  let base: string;
  let metricsUrl: string;
  useCluster({ workers: 1 }, (fx) => ({ cluster, sdk } = fx));

  beforeAll(async () => {
    await sdk.replicaGroups.apply({
      name: 'llm',
      httpPort: 'http',
      models: ['fake-model'],
      template: {
        command: process.execPath,
        args: [vllmLike, '--models', 'fake-model', '--token-delay-ms', '1'],
        env: { VLLM_LIKE_QUIET: '1' },
        ports: [{ name: 'http' }],
        readiness: { kind: 'http', port: 'http', path: '/health', periodMs: 50 },
      },
      replicas: { initial: 1, max: 1 },
    });
    let ready: TestGateway['ready'];
    ({ gw, base, ready } = await startTestGateway(cluster, ['--no-auth', '--metrics-listen', '127.0.0.1:0', '--request-log-sample', '1']));
    metricsUrl = `http://${ready.metrics}/metrics`;
    await waitFor('llm ready', async () => (await sdk.replicaGroups.get('llm')).replicas.some((r) => r.state === 'ready') || undefined, { timeoutMs: 30_000 });
  }, 60_000);
  afterAll(async () => {
    await gw?.stop();
  });

  const chat = (body: Record<string, unknown>, requestId: string) =>
    fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': requestId }, body: JSON.stringify({ model: 'fake-model', messages: [{ content: 'hi' }], max_tokens: 2, ...body }) });

  it('counts per group what was called, at the gateway, its router and the replica, and logs each request with its id', async () => {
    const ok = 5;
    const failed = 3;
    for (let i = 0; i < ok; i++) expect((await chat({}, `ok-${i}`)).status).toBe(200);
    // The engine's own 503 passes through: an error at the gateway, a delivered answer for the data plane.
    for (let i = 0; i < failed; i++) expect((await chat({ fail: 503 }, `bad-${i}`)).status).toBe(503);

    // Answers are counted when their response closes: wait until all are.
    const text = await waitFor('every request counted', async () => {
      const t = await (await fetch(metricsUrl)).text();
      return sample(t, 'muster_gateway_requests_total', { group: 'llm' }) === ok + failed ? t : undefined;
    }, { timeoutMs: 10_000 });
    const revision = (await sdk.replicaGroups.get('llm')).toJSON().revision;
    expect(sample(text, 'muster_gateway_requests_total', { group: 'llm', revision, route: 'chat/completions', status: '200' })).toBe(ok);
    expect(sample(text, 'muster_gateway_requests_total', { group: 'llm', route: 'chat/completions', status: '503' })).toBe(failed);
    expect(sample(text, 'muster_gateway_request_duration_seconds_count', { group: 'llm', status: '200' })).toBe(ok);
    expect(sample(text, 'muster_gateway_in_flight', { route: 'chat/completions' })).toBe(0);
    // The gateway's router, through the OpenTelemetry API (registered globally by the gateway).
    expect(sample(text, 'muster_router_requests_total', { group: 'llm', revision, code: 'OK' })).toBe(ok + failed);
    expect(sample(text, 'muster_router_request_duration_seconds_count', { group: 'llm' })).toBe(ok + failed);
    expect(sample(text, 'muster_router_in_flight', { group: 'llm' })).toBe(0);

    // The replica side: the worker's HTTP bridge is the group's serve() replica, labelled with its revision.
    const worker = [...cluster.workers.values()][0]!;
    const replicaText = await (await fetch(`http://${worker.metricsAddress}/metrics`)).text();
    expect(sample(replicaText, 'muster_replica_requests_total', { group: 'llm', revision, code: 'OK' })).toBe(ok + failed);
    expect(sample(replicaText, 'muster_replica_request_duration_seconds_count', { group: 'llm', revision })).toBe(ok + failed);

    // The request log: one JSON line per request with its id, group, replica, status and latency; no body.
    const lines = gw.output().split('\n').filter((l) => l.includes('"msg":"request"')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const replicaId = (await sdk.replicaGroups.get('llm')).replicas[0]!.id;
    expect(lines.find((l) => l.requestId === 'ok-0')).toMatchObject({ level: 'info', group: 'llm', replica: replicaId, revision, status: 200, route: 'chat/completions' });
    expect(lines.find((l) => l.requestId === 'bad-2')).toMatchObject({ level: 'error', group: 'llm', status: 503 });
    expect(typeof lines.find((l) => l.requestId === 'ok-0')?.latencyMs).toBe('number');
    expect(gw.output()).not.toContain('"messages"');
  });

  it('the gateway calls the worker\'s HTTP bridge on a direct link; with --nats-only, on NATS only', async () => {
    const text = await waitFor('the gateway\'s direct link up', async () => {
      expect((await chat({}, 'direct')).status).toBe(200);
      const t = await (await fetch(metricsUrl)).text();
      return sample(t, 'muster_router_direct_links', { group: 'llm' }) === 1 ? t : undefined;
    }, { timeoutMs: 15_000 });
    expect(sample(text, 'muster_router_direct_messages_total', { group: 'llm' })).toBeGreaterThan(0);
    const worker = [...cluster.workers.values()][0]!;
    expect(sample(await (await fetch(`http://${worker.metricsAddress}/metrics`)).text(), 'muster_replica_direct_links', { group: 'llm' })).toBe(1);

    const natsOnly = await startTestGateway(cluster, ['--no-auth', '--metrics-listen', '127.0.0.1:0', '--nats-only'], { name: 'gateway-nats-only' });
    try {
      for (let i = 0; i < 20; i++) {
        const res = await fetch(`${natsOnly.base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'fake-model', messages: [{ content: 'hi' }], max_tokens: 2 }) });
        expect(res.status).toBe(200);
        await res.text();
      }
      const t = await (await fetch(`http://${natsOnly.ready.metrics}/metrics`)).text();
      expect(sample(t, 'muster_router_requests_total', { group: 'llm', code: 'OK' })).toBe(20);
      expect(t).not.toMatch(/^muster_router_direct_(links|messages_total)\{group="llm"/m);
    } finally {
      await natsOnly.gw.stop();
    }
  });

  it('errors of the gateway itself are counted and logged too (an unknown model: 404, no group)', async () => {
    const res = await fetch(`${base}/v1/completions`, { method: 'POST', headers: { 'x-request-id': 'nomodel-1' }, body: JSON.stringify({ model: 'nope', prompt: 'x' }) });
    expect(res.status).toBe(404);
    await waitFor('404 counted', async () => sample(await (await fetch(metricsUrl)).text(), 'muster_gateway_requests_total', { group: '', route: 'completions', status: '404' }) === 1 || undefined, { timeoutMs: 10_000 });
    await waitFor('404 logged', () => gw.output().includes('"requestId":"nomodel-1"') || undefined, { timeoutMs: 5_000 });
  });
});
