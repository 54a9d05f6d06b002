/**
 * The data plane's trace hooks over a real nats-server (docs/observability.md,
 * "Traces"): with no tracer provider registered, a call is published without
 * NATS headers and serve() runs its handler with no active span; with one,
 * the request carries a W3C traceparent naming the router's attempt span
 * under the caller's span, and the handler runs under a replica span of the
 * same trace. Sampled out (always_off), so nothing is exported: the context
 * travels all the same, and this test needs no collector. An attempt's span
 * says how the attempt ended (muster.code), also when the call failed with
 * it open or it was never sent: those spans go to a small collector.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCode, otelContext, otelTrace, SpanKind, startSpan, tracingOn, type NatsConnection } from '@muster/common';
import { startTracing } from '@muster/common/tracing';
import { replicaSubject } from '@muster/contracts';
import { Router, serve, type Server } from '@muster/dataplane';
import { useNats } from '@muster/testing/vitest';
import { startCollector } from '../otlp-collector.js';

let client: NatsConnection;
const servers: Server[] = [];
const routers: Router[] = [];
useNats({ clientName: 'tracing-test' }, (fx) => ({ client } = fx));
afterAll(async () => {
  for (const r of routers) r.close();
  for (const s of servers) await s.close();
});

/** A replica that answers with the trace id and span id it ran under; a router for it; and every request's traceparent header as seen on the wire. */
async function setup(group: string) {
  const subject = replicaSubject('muster', group, 'r0');
  const seen: (string | undefined)[] = [];
  const tap = client.subscribe(subject, { callback: (_e, msg) => void seen.push(msg.headers?.get('traceparent')) });
  const server = await serve({ unary: () => otelTrace.getActiveSpan()?.spanContext() ?? null }, { nats: client, subject, group, replicaId: 'r0' });
  servers.push(server);
  const router = new Router(client, undefined, { group });
  routers.push(router);
  router.update({ group, version: 1, replicas: [{ replicaId: 'r0', revision: 'v1', subject }] });
  await client.flush();
  return { router, seen, tap };
}

describe('data-plane trace context', () => {
  it('sends no headers and makes no span while tracing is off', async () => {
    expect(tracingOn()).toBe(false);
    const { router, seen, tap } = await setup('off');
    expect(await router.call(1)).toBeNull();
    tap.unsubscribe();
    expect(seen).toEqual([undefined]);
  });

  it('carries the caller\'s trace to the replica in a traceparent header once a provider is registered', async () => {
    const tracing = startTracing({ service: 'tracing-test', env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9', OTEL_TRACES_SAMPLER: 'always_off' } });
    try {
      const { router, seen, tap } = await setup('on');
      const root = startSpan('caller', SpanKind.INTERNAL, {})!;
      const { traceId } = root.spanContext();
      const ran = (await otelContext.with(otelTrace.setSpan(otelContext.active(), root), () => router.call(1))) as { traceId: string; spanId: string };
      root.end();
      tap.unsubscribe();
      expect(seen).toHaveLength(1);
      const [, headerTrace, attemptSpan] = seen[0]!.split('-');
      expect(headerTrace).toBe(traceId);
      expect(attemptSpan).not.toBe(root.spanContext().spanId); // the router's own attempt span, not the caller's
      // The handler ran under the replica's span: same trace, a span of its own.
      expect(ran.traceId).toBe(traceId);
      expect([root.spanContext().spanId, attemptSpan]).not.toContain(ran.spanId);
    } finally {
      await tracing.shutdown();
    }
    expect(tracingOn()).toBe(false);
  });

  it('ends an attempt\'s span with the call\'s error when the call failed with it open, or it was never sent', async () => {
    const collector = await startCollector();
    const tracing = startTracing({ service: 'tracing-test', env: { OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_TRACES_SAMPLER: 'always_on' } });
    try {
      // A replica that answers after the caller's deadline: the attempt is open when the call fails.
      const group = 'slow';
      const subject = replicaSubject('muster', group, 'r0');
      servers.push(await serve({ unary: () => new Promise((r) => setTimeout(() => r(1), 2_000)) }, { nats: client, subject, group, replicaId: 'r0' }));
      const slow = new Router(client, undefined, { group });
      routers.push(slow);
      slow.update({ group, version: 1, replicas: [{ replicaId: 'r0', revision: 'v1', subject }] });
      await client.flush();
      await expect(slow.call(1, { timeoutMs: 200 })).rejects.toMatchObject({ code: ErrorCode.DEADLINE_EXCEEDED });
      // A replica whose subject NATS refuses to publish to: the attempt is never sent.
      const bad = new Router(client, undefined, { group: 'bad' });
      routers.push(bad);
      bad.update({ group: 'bad', version: 1, replicas: [{ replicaId: 'r0', revision: 'v1', subject: 'muster.bad subject' }] });
      await expect(bad.call(1)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
    } finally {
      await tracing.shutdown(); // sends the spans still buffered
      await new Promise((r) => collector.server.close(r));
    }
    const codeOf = (name: string) => collector.spans.filter((s) => s.name === name).map((s) => s.attributes['muster.code']);
    expect(codeOf('muster.call slow')).toEqual([ErrorCode.DEADLINE_EXCEEDED]);
    expect(codeOf('muster.call bad')).toEqual([ErrorCode.UNAVAILABLE]);
  });
});
