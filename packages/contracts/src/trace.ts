/**
 * Names of distributed tracing that cross process boundaries: the W3C trace
 * context headers (in NATS message headers on the data plane, gRPC metadata
 * on control calls, HTTP headers to HTTP shards), the instrumentation scope
 * every Muster span is made under, and the standard OpenTelemetry variables
 * the head, the worker and the gateway read to turn tracing on
 * (docs/observability.md, "Traces").
 */

/** W3C Trace Context header names (https://www.w3.org/TR/trace-context/). */
export const TRACE_HEADERS = Object.freeze({
  PARENT: 'traceparent',
  STATE: 'tracestate',
});

/** The instrumentation scope of Muster's spans. */
export const TRACER_NAME = 'muster';

/** The OpenTelemetry SDK variables Muster's processes honour (the OTel specification's names). */
export const OTEL_ENV = Object.freeze({
  /** Base URL of an OTLP/HTTP collector; traces go to <it>/v1/traces. Set: tracing on. */
  ENDPOINT: 'OTEL_EXPORTER_OTLP_ENDPOINT',
  /** Full URL for traces alone (wins over ENDPOINT). */
  TRACES_ENDPOINT: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
  /** always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio. */
  SAMPLER: 'OTEL_TRACES_SAMPLER',
  /** The ratio of the traceidratio samplers, 0…1. */
  SAMPLER_ARG: 'OTEL_TRACES_SAMPLER_ARG',
  /** `true`: no tracing whatever else is set. */
  SDK_DISABLED: 'OTEL_SDK_DISABLED',
  /** `none`: no trace exporter (tracing off). */
  TRACES_EXPORTER: 'OTEL_TRACES_EXPORTER',
  /** The service.name resource attribute (default: the process's role, muster-head …). */
  SERVICE_NAME: 'OTEL_SERVICE_NAME',
});
