/**
 * The head's span per control call: a SERVER span "muster.rpc <Service>/<Method>"
 * (attributes rpc.system, rpc.service, rpc.method, muster.code)
 * continuing the caller's W3C trace context from the gRPC metadata (the SDK's
 * client interceptor puts it there: sdk/src/tracing.ts). The handler runs with
 * it active, so what the handler starts in the same request is under it — a
 * gang launch keeps that context in memory (controllers/gangs.ts) and its
 * launch orders to agents carry it (gang-executor.ts, LaunchShards.trace).
 *
 * The span starts once the caller is authenticated and authorized (rpc.ts):
 * a refused call is counted in muster_rpc_total, not traced, so anyone who
 * reaches the port cannot make the head export spans.
 *
 * Off unless the head runs with tracing on (--otlp-endpoint): then no span is
 * made and the metadata is not read. Unary calls only: a stream (WatchEvents,
 * an agent's Connect) lives for hours and would make one span of a session.
 */
import type { Metadata } from '@grpc/grpc-js';
import { endSpan, extractMetadata, rpcAttributes, rpcName, SpanKind, startSpan, tracingOn, withSpan } from '@muster/common';

/** Runs `fn` under the call's span; `code` of its outcome ends the span. */
export function tracedCall<T>(path: string, md: Metadata, fn: () => Promise<T>, codeOf: (e: unknown) => string): Promise<T> {
  if (!tracingOn()) return fn();
  const parent = extractMetadata(md);
  const span = startSpan(`muster.rpc ${rpcName(path)}`, SpanKind.SERVER, rpcAttributes(path), parent);
  return withSpan(span, fn, parent).then(
    (v) => {
      endSpan(span, 'OK');
      return v;
    },
    (e: unknown) => {
      endSpan(span, codeOf(e), e instanceof Error ? e.message.slice(0, 500) : undefined);
      throw e;
    },
  );
}
