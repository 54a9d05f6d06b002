import { Metadata } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode } from './errors.js';
import { extractMetadata, injectMetadata, otelContext, otelTrace, rpcAttributes, rpcName, SpanKind, startSpan, tracingOn } from './trace-context.js';
import { samplerOf, startTracing, tracesUrl, type Tracing } from './tracing.js';

describe('tracing settings', () => {
  it('is off unless an endpoint is given, and the flag wins over the variables', () => {
    expect(tracesUrl(undefined, {})).toBeUndefined();
    expect(tracesUrl(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318/' })).toBe('http://c:4318/v1/traces');
    expect(tracesUrl(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://t/x' })).toBe('https://t/x');
    expect(tracesUrl('http://flag:1', { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://t/x' })).toBe('http://flag:1/v1/traces');
    expect(tracesUrl('http://flag:1', { OTEL_SDK_DISABLED: 'true' })).toBeUndefined();
    expect(tracesUrl('http://flag:1', { OTEL_TRACES_EXPORTER: 'none' })).toBeUndefined();
  });

  it('refuses a malformed endpoint or sampler, naming the variable', () => {
    expect(() => tracesUrl(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toThrow(/OTEL_EXPORTER_OTLP_ENDPOINT/);
    expect(() => samplerOf({ OTEL_TRACES_SAMPLER: 'parentbased_trace_id_ratio' })).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT, message: expect.stringMatching(/OTEL_TRACES_SAMPLER: .* expected one of/) }));
    expect(() => samplerOf({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' })).toThrow(/OTEL_TRACES_SAMPLER_ARG/);
  });

  it('samples parent-based with ratio 1 by default, and takes the ratio given', () => {
    expect(samplerOf({}).words).toBe('parentbased_traceidratio 1');
    expect(samplerOf({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' }).words).toBe('parentbased_traceidratio 0.25');
    expect(samplerOf({ OTEL_TRACES_SAMPLER: 'always_off' }).words).toBe('always_off');
  });
});

describe('trace context', () => {
  let tracing: Tracing | undefined;
  afterEach(async () => {
    await tracing?.shutdown();
    tracing = undefined;
  });

  it('makes no span and writes no header while no provider is registered', () => {
    expect(tracingOn()).toBe(false);
    expect(startSpan('x', SpanKind.CLIENT, {})).toBeUndefined();
    const md = injectMetadata(new Metadata(), otelContext.active());
    expect(md.get('traceparent')).toEqual([]);
    expect(startTracing({ service: 't', env: {} }).url).toBeUndefined();
    expect(tracingOn()).toBe(false);
  });

  it('carries a span through gRPC metadata once a provider is registered, and is off again after shutdown', async () => {
    // Sampled out: the context still travels (flags 00), and nothing is exported to this endpoint nobody listens on.
    tracing = startTracing({ service: 't', env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9', OTEL_TRACES_SAMPLER: 'always_off' } });
    expect(tracing.url).toBe('http://127.0.0.1:9/v1/traces');
    expect(tracingOn()).toBe(true);
    const span = startSpan('x', SpanKind.CLIENT, rpcAttributes('/muster.v1.GangService/LaunchGang'))!;
    const shared = new Metadata();
    const md = injectMetadata(shared, otelTrace.setSpan(otelContext.active(), span));
    expect(shared.get('traceparent')).toEqual([]); // the shared metadata is left alone
    const { traceId, spanId } = span.spanContext();
    expect(md.get('traceparent')).toEqual([`00-${traceId}-${spanId}-00`]);
    expect(otelTrace.getSpanContext(extractMetadata(md))).toMatchObject({ traceId, spanId, isRemote: true });
    span.end();
    expect(rpcName('/muster.v1.GangService/LaunchGang')).toBe('GangService/LaunchGang');
    await tracing.shutdown();
    tracing = undefined;
    expect(tracingOn()).toBe(false);
  });
});
