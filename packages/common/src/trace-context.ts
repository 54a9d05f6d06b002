/**
 * Trace context through the bare OpenTelemetry API, for library code (the
 * data plane, the SDK's gRPC client, the head's handlers): no SDK, no
 * exporter. A process that owns a tracer provider (head, worker, gateway, or
 * a TS application that registers one) turns the spans on; everywhere else
 * every hook below is a cheap check that allocates nothing.
 *
 * Why `tracingOn()` and not simply the no-op tracer: the no-op tracer still
 * makes a (non-recording) span object per call, and the hot path of the data
 * plane makes several per call. `tracingOn()` asks whether a provider was
 * registered (the global proxy still delegates to the API's no-op provider),
 * so with tracing off the hooks return before touching the API again.
 *
 * Carriers: W3C `traceparent` / `tracestate` (TRACE_HEADERS in
 * @muster/contracts) in gRPC metadata here, in NATS headers in the data
 * plane (dataplane/src/tracing.ts). The propagator is whatever the owning
 * process registered (the W3C one, tracing.ts of this package).
 */
import type { Metadata } from '@grpc/grpc-js';
import { context, propagation, ProxyTracerProvider, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Link, type Span, type TextMapGetter, type TextMapSetter, type Tracer } from '@opentelemetry/api';
import { TRACE_HEADERS, TRACER_NAME } from '@muster/contracts';

export { ROOT_CONTEXT, SpanKind, SpanStatusCode, context as otelContext, trace as otelTrace, type Context, type Link, type Span } from '@opentelemetry/api';

/** The API's own no-op provider: what the global proxy delegates to until a provider registers. */
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate();

/**
 * The help line of the head's, worker's and gateway's `--otlp-endpoint`. The flag has no variable of
 * its own: tracesUrl() (tracing.ts) reads the standard ones, in the specification's order.
 */
export const OTLP_ENDPOINT_HELP =
  'send traces (OTLP/HTTP) to this collector base URL, e.g. http://127.0.0.1:4318 (default: tracing off); without the flag, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (full URL), else OTEL_EXPORTER_OTLP_ENDPOINT (base URL); sampling: OTEL_TRACES_SAMPLER/_ARG';

/** Has this process registered a tracer provider? (No: every hook is skipped and no span is made.) */
export function tracingOn(): boolean {
  const p = trace.getTracerProvider();
  return !(p instanceof ProxyTracerProvider) || p.getDelegate() !== NOOP_PROVIDER;
}

/** Muster's tracer (looked up on each use: a provider registered later still gets the spans). */
function musterTracer(): Tracer {
  return trace.getTracer(TRACER_NAME);
}

/** Starts a span under `parent` (default: the active context), linked to `links`; undefined when tracing is off. */
export function startSpan(name: string, kind: SpanKind, attributes: Attributes, parent?: Context, links?: Link[]): Span | undefined {
  if (!tracingOn()) return undefined;
  return musterTracer().startSpan(name, links ? { kind, attributes, links } : { kind, attributes }, parent ?? context.active());
}

/** Ends a span with its outcome: `OK`, or an error code (the span's status then says ERROR with it). */
export function endSpan(span: Span | undefined, code: string, message?: string): void {
  if (!span) return;
  span.setAttribute('muster.code', code);
  if (code !== 'OK') span.setStatus({ code: SpanStatusCode.ERROR, message: message ?? code });
  span.end();
}

/** Runs `fn` with `span` as the active span (as it is when there is none). */
export function withSpan<T>(span: Span | undefined, fn: () => T, parent?: Context): T {
  if (!span) return fn();
  return context.with(trace.setSpan(parent ?? context.active(), span), fn);
}

/** "GangService/LaunchGang" of a gRPC path "/muster.v1.GangService/LaunchGang": the span name of a control call. */
export function rpcName(path: string): string {
  const [service = '', method = ''] = path.replace(/^\//, '').split('/');
  return `${service.slice(service.lastIndexOf('.') + 1)}/${method}`;
}

/** The OTel semantic attributes of a gRPC call. */
export function rpcAttributes(path: string): Attributes {
  const [service = '', method = ''] = path.replace(/^\//, '').split('/');
  return { 'rpc.system': 'grpc', 'rpc.service': service, 'rpc.method': method };
}

const metadataGetter: TextMapGetter<Metadata> = {
  keys: (md) => Object.keys(md.getMap()),
  get: (md, key) => {
    const v = md.get(key);
    return v.length === 0 ? undefined : v.map(String);
  },
};
const metadataSetter: TextMapSetter<Metadata> = { set: (md, key, value) => md.set(key, value) };

/** Writes `ctx`'s trace context into gRPC metadata (a copy of `md`; the original is shared by every call). */
export function injectMetadata(md: Metadata, ctx: Context): Metadata {
  const copy = md.clone();
  propagation.inject(ctx, copy, metadataSetter);
  return copy;
}

/** The caller's trace context from gRPC metadata (the active context when it carries none). */
export function extractMetadata(md: Metadata): Context {
  return propagation.extract(context.active(), md, metadataGetter);
}

/** The client's trace context from HTTP request headers (Node's, lower-cased); the active context when none. */
export function extractHeaders(headers: Record<string, string | string[] | undefined>): Context {
  return propagation.extract(context.active(), headers);
}

/** Writes the active trace context into plain headers (an HTTP request), replacing any there. */
export function injectTraceHeaders(headers: Record<string, string>): void {
  for (const k of Object.keys(headers)) if (k.toLowerCase() === TRACE_HEADERS.PARENT || k.toLowerCase() === TRACE_HEADERS.STATE) delete headers[k];
  propagation.inject(context.active(), headers);
}

/** The trace context of `ctx` as plain W3C fields (a launch order's TraceContext), or undefined when none. */
export function traceFields(ctx: Context): { traceparent: string; tracestate: string } | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return carrier.traceparent ? { traceparent: carrier.traceparent, tracestate: carrier.tracestate ?? '' } : undefined;
}

/** A context from plain W3C fields (the active context when they are empty). */
export function contextOfFields(fields: { traceparent: string; tracestate: string } | undefined): Context {
  if (!fields?.traceparent) return context.active();
  return propagation.extract(context.active(), fields.tracestate ? { traceparent: fields.traceparent, tracestate: fields.tracestate } : { traceparent: fields.traceparent });
}
