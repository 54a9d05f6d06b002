/**
 * The OpenTelemetry trace SDK for the processes that own one: the head, the
 * worker and the gateway (and any TS application that wants Muster's spans
 * from its router or `serve()`). Libraries never load this: they speak the
 * bare API (trace-context.ts), and `@muster/sdk` users load neither this
 * module nor its exporter (`test/integration/sdk-imports.test.ts`).
 *
 * Off by default. On when an OTLP endpoint is given: the process's
 * `--otlp-endpoint` flag, else the standard OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
 * (the full URL) or OTEL_EXPORTER_OTLP_ENDPOINT (a base URL: spans go to
 * <it>/v1/traces); OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none keep it
 * off. Spans leave in batches (BatchSpanProcessor: the standard OTEL_BSP_*
 * variables tune it) as OTLP/HTTP JSON.
 *
 * Sampling: the standard OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG,
 * validated here (a typo is an error naming the variable, not a silent
 * fallback); the default is parentbased_traceidratio with ratio 1: a request
 * that arrives with a sampled (or unsampled) traceparent keeps its caller's
 * decision, a new root is kept with the ratio's probability. A busy gateway
 * lowers the ratio (OTEL_TRACES_SAMPLER_ARG=0.01).
 */
import { context, propagation, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AlwaysOffSampler, AlwaysOnSampler, BatchSpanProcessor, NodeTracerProvider, ParentBasedSampler, TraceIdRatioBasedSampler, type Sampler } from '@opentelemetry/sdk-trace-node';
import { OTEL_ENV } from '@muster/contracts';
import { z } from 'zod';
import { ErrorCode, MusterError } from './errors.js';
import { tracingOn } from './trace-context.js';

export interface TracingOptions {
  /** The service.name of the spans (OTEL_SERVICE_NAME wins). */
  service: string;
  /** The process's `--otlp-endpoint` (a base URL, as OTEL_EXPORTER_OTLP_ENDPOINT); wins over the variables. */
  endpoint?: string | undefined;
  /** Where the OTEL_* variables come from (default process.env). */
  env?: NodeJS.ProcessEnv;
  warn?: (msg: string) => void;
}

export interface Tracing {
  /** Where spans go (the traces URL), undefined when tracing is off. */
  readonly url: string | undefined;
  /** The sampler in words ("parentbased_traceidratio 0.1"), for the process's ready line. */
  readonly sampler: string | undefined;
  /** Sends the spans still buffered and stops (a no-op when off). */
  shutdown(): Promise<void>;
}

const SAMPLERS = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'] as const;
type SamplerName = (typeof SAMPLERS)[number];

const url = z.url({ protocol: /^https?$/ });
const ratio = z.coerce.number().min(0).max(1);

function parse<T>(schema: z.ZodType<T>, value: string, name: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw new MusterError(ErrorCode.INVALID_ARGUMENT, `${name}: ${r.error.issues[0]?.message ?? 'invalid'} (got "${value.slice(0, 200)}")`, { details: { field: name } });
}

/** The traces URL the settings name, or undefined: tracing off. */
export function tracesUrl(endpoint: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  if (env[OTEL_ENV.SDK_DISABLED]?.trim().toLowerCase() === 'true') return undefined;
  if (env[OTEL_ENV.TRACES_EXPORTER]?.trim().toLowerCase() === 'none') return undefined;
  if (endpoint) return `${parse(url, endpoint, '--otlp-endpoint').replace(/\/+$/, '')}/v1/traces`;
  const full = env[OTEL_ENV.TRACES_ENDPOINT];
  if (full) return parse(url, full, OTEL_ENV.TRACES_ENDPOINT);
  const base = env[OTEL_ENV.ENDPOINT];
  if (base) return `${parse(url, base, OTEL_ENV.ENDPOINT).replace(/\/+$/, '')}/v1/traces`;
  return undefined;
}

/** The sampler the variables name (default parentbased_traceidratio, ratio 1). */
export function samplerOf(env: NodeJS.ProcessEnv): { sampler: Sampler; words: string } {
  const name = (env[OTEL_ENV.SAMPLER]?.trim() || 'parentbased_traceidratio') as SamplerName;
  if (!SAMPLERS.includes(name)) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `${OTEL_ENV.SAMPLER}: "${name.slice(0, 100)}" is not a sampler; expected one of ${SAMPLERS.join(', ')}`, { details: { field: OTEL_ENV.SAMPLER } });
  }
  const arg = env[OTEL_ENV.SAMPLER_ARG]?.trim();
  const p = name.endsWith('traceidratio') && arg ? parse(ratio, arg, OTEL_ENV.SAMPLER_ARG) : 1;
  const root: Sampler = name.endsWith('always_on') ? new AlwaysOnSampler() : name.endsWith('always_off') ? new AlwaysOffSampler() : new TraceIdRatioBasedSampler(p);
  const sampler = name.startsWith('parentbased_') ? new ParentBasedSampler({ root }) : root;
  return { sampler, words: name.endsWith('traceidratio') ? `${name} ${p}` : name };
}

/**
 * Registers the process's tracer provider (the global one, with the W3C
 * trace-context propagator — no baggage — and the AsyncLocalStorage context manager) when tracing is on;
 * throws INVALID_ARGUMENT on a malformed setting, before anything starts.
 */
export function startTracing(opts: TracingOptions): Tracing {
  const env = opts.env ?? process.env;
  const traces = tracesUrl(opts.endpoint, env);
  if (!traces) return { url: undefined, sampler: undefined, shutdown: async () => undefined };
  const { sampler, words } = samplerOf(env);
  if (tracingOn()) {
    opts.warn?.('a tracer provider is registered already in this process: Muster\'s spans go to it, not to the OTLP endpoint');
    return { url: undefined, sampler: undefined, shutdown: async () => undefined };
  }
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': env[OTEL_ENV.SERVICE_NAME] || opts.service }),
    sampler,
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: traces }))],
  });
  // Only traceparent/tracestate travel on: the default propagator adds W3C baggage, which would carry a
  // gateway client's `baggage` header (up to 8 KB, past the gateway's header whitelist) into every
  // attempt's NATS headers, the replica and the HTTP shard.
  provider.register({ propagator: new W3CTraceContextPropagator() });
  return {
    url: traces,
    sampler: words,
    shutdown: async () => {
      await provider.shutdown().catch(() => undefined);
      // The globals go back to the API's no-ops: a process that starts another head (tests) starts clean.
      trace.disable();
      propagation.disable();
      context.disable();
    },
  };
}
