/**
 * Traces end to end (docs/observability.md, "Traces"): a real cluster whose
 * head and worker trace (the standard OTEL_EXPORTER_OTLP_ENDPOINT in their
 * environment), a `muster gateway --otlp-endpoint`, a traced serve() replica
 * and an HTTP shard, all exporting OTLP/HTTP JSON to a small collector in
 * this test (an HTTP server; the JSON is the OTLP protocol's own encoding,
 * read with JSON.parse).
 *
 * Shown: by default the gateway does not continue a client's traceparent (the
 * client would choose the trace id and the sampling): its span is the root
 * of a new trace, linked to the client's span. With --trust-traceparent a
 * request that comes with a traceparent is one trace
 * — the gateway's server span under the client's span, the router's attempt
 * span under it, the replica's span under that — for a serve() shard (whose
 * handler runs under its span) and for an HTTP shard (the worker's bridge
 * span, and the shard receives a traceparent naming that span as parent);
 * and a gang launched by the SDK inside an application span is one trace
 * from the SDK's client span through the head's server span and its launch
 * order to the agent's launch span.
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { otelContext, otelTrace, SpanKind, startSpan } from '@muster/common';
import { startTracing, type Tracing } from '@muster/common/tracing';
import type { Cluster } from '@muster/sdk';
import { waitFor, type LocalCluster, type ManagedProcess } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';
import { KIND, startCollector, type SeenSpan } from './otlp-collector.js';
import { startTestGateway } from './gateway.test-support.js';

const tracedReplica = fileURLToPath(new URL('../fixtures/traced-replica.mjs', import.meta.url));
const echoShard = fileURLToPath(new URL('../fixtures/trace-echo-shard.mjs', import.meta.url));

describe('traces across gateway, router, replica and the launch path', () => {
  let collector: Awaited<ReturnType<typeof startCollector>>;
  const saved: Record<string, string | undefined> = {};
  const setEnv = (k: string, v: string) => {
    saved[k] = process.env[k];
    process.env[k] = v;
  };
  // Before the cluster starts (hooks run in order): its head and worker inherit these variables.
  beforeAll(async () => {
    collector = await startCollector();
    setEnv('OTEL_EXPORTER_OTLP_ENDPOINT', collector.url);
    setEnv('OTEL_TRACES_SAMPLER', 'parentbased_always_on');
    setEnv('OTEL_BSP_SCHEDULE_DELAY', '100');
  });
  afterAll(async () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await new Promise((r) => collector?.server.close(r));
  });

  let cluster: LocalCluster;
  let sdk: Cluster;
  let gw: ManagedProcess;
  let base: string;
  let gwDefault: ManagedProcess;
  let defaultBase: string;
  let app: Tracing;
  useCluster({ workers: 1 }, (fx) => ({ cluster, sdk } = fx));

  beforeAll(async () => {
    // This test process is the application: it traces too (its SDK calls are the launch trace's root).
    app = startTracing({ service: 'test-app' });
    await sdk.replicaGroups.apply({
      name: 'traced',
      template: { command: process.execPath, args: [tracedReplica], env: { OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_BSP_SCHEDULE_DELAY: '100' }, readiness: { kind: 'sdk' } },
      replicas: { initial: 1, max: 1 },
    });
    await sdk.replicaGroups.apply({
      name: 'web',
      httpPort: 'http',
      template: { command: process.execPath, args: [echoShard], ports: [{ name: 'http' }], readiness: { kind: 'http', port: 'http', path: '/health', periodMs: 50 } },
      replicas: { initial: 1, max: 1 },
    });
    // The gateways take the flag (the head and worker took the variable); their env has no OTEL_* of the test's.
    // `gw` trusts its clients' traceparent; `gwDefault` (the default) starts a trace of its own per request.
    const startGateway = async (name: string, extra: string[]) => {
      const { gw: p, base, ready } = await startTestGateway(cluster, ['--no-auth', '--otlp-endpoint', collector.url, ...extra], { name, env: { OTEL_EXPORTER_OTLP_ENDPOINT: undefined, OTEL_BSP_SCHEDULE_DELAY: '100' } });
      expect(ready.traces).toBe(`${collector.url}/v1/traces`);
      return { p, base };
    };
    ({ p: gw, base } = await startGateway('gateway', ['--trust-traceparent']));
    ({ p: gwDefault, base: defaultBase } = await startGateway('gateway-default', []));
    const readyCount = async (name: string) => (await sdk.replicaGroups.get(name)).replicas.filter((r) => r.state === 'ready').length;
    await waitFor('both groups ready', async () => ((await readyCount('traced')) === 1 && (await readyCount('web')) === 1) || undefined, { timeoutMs: 30_000 });
  }, 60_000);
  afterAll(async () => {
    await gw?.stop();
    await gwDefault?.stop();
    await app?.shutdown();
  });

  /** A client's own traceparent: a fresh trace id and span id, sampled. */
  const clientParent = () => {
    const traceId = randomBytes(16).toString('hex');
    const spanId = randomBytes(8).toString('hex');
    return { traceId, spanId, header: `00-${traceId}-${spanId}-01` };
  };
  const spansOf = (traceId: string) => collector.spans.filter((s) => s.traceId === traceId);
  /** Waits until `pick` finds its span in the trace (spans arrive in batches, from several processes). */
  const span = (traceId: string, what: string, pick: (s: SeenSpan) => boolean) =>
    waitFor(what, () => {
      const found = spansOf(traceId).find(pick);
      if (found) return found;
      throw new Error(`spans of the trace so far: ${JSON.stringify(spansOf(traceId).map((s) => [s.service, s.name, s.kind, s.spanId, s.parentSpanId]))}`);
    }, { timeoutMs: 15_000 });

  it('starts a new trace at a gateway that does not trust traceparent, linked to the client\'s span', async () => {
    const client = clientParent();
    // Sampled out by the client: the client does not decide (the gateway's own sampler keeps every root here).
    const res = await fetch(`${defaultBase}/v1/groups/traced/call`, { method: 'POST', headers: { 'content-type': 'application/json', traceparent: `00-${client.traceId}-${client.spanId}-00` }, body: JSON.stringify({ hello: 2 }) });
    expect(res.status).toBe(200);

    const gateway = await waitFor('the gateway span linked to the client\'s', () => collector.spans.find((s) => s.service === 'muster-gateway' && s.kind === KIND.SERVER && s.links.some((l) => l.spanId === client.spanId)), { timeoutMs: 15_000 });
    expect(gateway).toMatchObject({ parentSpanId: '', name: 'POST call', links: [{ traceId: client.traceId, spanId: client.spanId }] });
    expect(gateway.traceId).not.toBe(client.traceId);
    const router = await span(gateway.traceId, 'the router span', (s) => s.service === 'muster-gateway' && s.kind === KIND.CLIENT && s.name.startsWith('muster.call '));
    expect(router.parentSpanId).toBe(gateway.spanId);
    const replica = await span(gateway.traceId, 'the replica span', (s) => s.service === 'traced-replica' && s.kind === KIND.SERVER);
    expect(replica.parentSpanId).toBe(router.spanId);
    expect(spansOf(client.traceId)).toEqual([]);
  });

  it('follows a call from the gateway through the router to a serve() replica, with parent links', async () => {
    const client = clientParent();
    const res = await fetch(`${base}/v1/groups/traced/call`, { method: 'POST', headers: { 'content-type': 'application/json', traceparent: client.header }, body: JSON.stringify({ hello: 1 }) });
    expect(res.status).toBe(200);
    const answer = (await res.json()) as { echo: unknown; spanId: string };
    expect(answer.echo).toEqual({ hello: 1 });

    const gateway = await span(client.traceId, 'the gateway span', (s) => s.service === 'muster-gateway' && s.kind === KIND.SERVER);
    expect(gateway).toMatchObject({ parentSpanId: client.spanId, name: 'POST call', attributes: { 'http.response.status_code': 200, 'muster.group': 'traced' } });
    const router = await span(client.traceId, 'the router span', (s) => s.service === 'muster-gateway' && s.kind === KIND.CLIENT && s.name.startsWith('muster.call '));
    expect(router).toMatchObject({ parentSpanId: gateway.spanId, name: 'muster.call traced', attributes: { 'muster.group': 'traced', 'muster.code': 'OK', 'muster.attempt': 1 } });
    const replica = await span(client.traceId, 'the replica span', (s) => s.service === 'traced-replica' && s.kind === KIND.SERVER);
    expect(replica).toMatchObject({ parentSpanId: router.spanId, name: 'muster.serve traced', attributes: { 'muster.code': 'OK', 'muster.replica': router.attributes['muster.replica'] } });
    // The handler ran under the replica's span.
    expect(answer.spanId).toBe(replica.spanId);
  });

  it('follows a request to an HTTP shard through the worker\'s bridge, and the shard sees the traceparent', async () => {
    const client = clientParent();
    // A client's W3C baggage goes no further than the gateway: only the trace context is propagated.
    const res = await fetch(`${base}/v1/groups/web/http/echo`, { headers: { traceparent: client.header, baggage: 'user=alice,secret=1' } });
    expect(res.status).toBe(200);
    const seen = (await res.json()) as { traceparent: string | null; baggage: string | null };
    expect(seen.baggage).toBeNull();

    const gateway = await span(client.traceId, 'the gateway span', (s) => s.service === 'muster-gateway' && s.kind === KIND.SERVER);
    expect(gateway).toMatchObject({ parentSpanId: client.spanId, name: 'GET http' });
    const router = await span(client.traceId, 'the router span', (s) => s.service === 'muster-gateway' && s.kind === KIND.CLIENT && s.name.startsWith('muster.call '));
    expect(router.parentSpanId).toBe(gateway.spanId);
    const bridge = await span(client.traceId, 'the bridge span', (s) => s.service === 'muster-worker' && s.kind === KIND.SERVER);
    expect(bridge).toMatchObject({ parentSpanId: router.spanId, name: 'muster.serve web' });
    // The shard got the bridge's span as its parent (not the client's header, which the gateway also forwarded).
    expect(seen.traceparent).toBe(`00-${client.traceId}-${bridge.spanId}-01`);
  });

  it('follows a gang launch from the SDK through the head to the agent', async () => {
    const pg = await sdk.placementGroups.create({ name: 'traced-pg', strategy: 'PACK', bundles: [{ gpus: 1 }] });
    await pg.ready({ timeout: 10_000 });
    const root = startSpan('launch-test', SpanKind.INTERNAL, {});
    expect(root).toBeDefined();
    const traceId = root!.spanContext().traceId;
    await otelContext.with(otelTrace.setSpan(otelContext.active(), root!), () =>
      sdk.gangs.launch({
        name: 'traced-gang',
        placementGroup: pg.name,
        tp: 1,
        pp: 1,
        template: { command: process.execPath, args: [echoShard], ports: [{ name: 'http' }], readiness: { kind: 'http', port: 'http', path: '/health', periodMs: 50 } },
      }),
    );
    root!.end();

    const client = await span(traceId, 'the SDK client span', (s) => s.service === 'test-app' && s.kind === KIND.CLIENT && s.name === 'muster.rpc GangService/LaunchGang');
    expect(client.parentSpanId).toBe(root!.spanContext().spanId);
    const server = await span(traceId, 'the head server span', (s) => s.service === 'muster-head' && s.kind === KIND.SERVER);
    expect(server).toMatchObject({ parentSpanId: client.spanId, name: 'muster.rpc GangService/LaunchGang', attributes: { 'muster.code': 'OK' } });
    const order = await span(traceId, 'the launch order span', (s) => s.service === 'muster-head' && s.kind === KIND.PRODUCER);
    expect(order).toMatchObject({ parentSpanId: server.spanId, name: 'muster.launch traced-gang' });
    const agent = await span(traceId, 'the agent launch span', (s) => s.service === 'muster-worker' && s.kind === KIND.CONSUMER);
    expect(agent).toMatchObject({ parentSpanId: order.spanId, attributes: { 'muster.code': 'OK' } });
  });
});
