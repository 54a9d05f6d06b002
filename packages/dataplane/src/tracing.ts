/**
 * Spans of the data plane, and the trace context they carry in NATS message
 * headers (W3C `traceparent` / `tracestate`):
 *
 *   caller (gateway server span, or the application's own)
 *     └─ router:  one CLIENT span per attempt  "muster.call <group>"   (call.ts)
 *          │        traceparent → the request's NATS headers
 *          ▼
 *        replica: one SERVER span per request  "muster.serve <group>"  (serve.ts)
 *                   the handler runs with it active: the worker's HTTP
 *                   bridge passes `traceparent` on to the HTTP shard
 *
 * Every hook is off unless the process registered a tracer provider
 * (`tracingOn()`, @muster/common): then no span is made, no header is
 * written and the request is published as before. The parent of an attempt
 * is the context active where the call was made, captured when the call is
 * created (a queued call is sent later from another call's callback).
 *
 * Attributes (docs/observability.md, "Traces"): muster.group, muster.replica,
 * muster.revision, muster.call_id, muster.stream, muster.attempt, and at the
 * end muster.code (OK or the MUSTER_* code; the span's status is ERROR for
 * any other code); messaging.system = nats, messaging.destination.name = the
 * replica's subject.
 */
import { otelContext, SpanKind, startSpan, tracingOn, type Context, type Span } from '@muster/common';
import { TRACE_HEADERS } from '@muster/contracts';
import { headers as natsHeaders, type Msg, type MsgHdrs } from '@nats-io/transport-node';
import { propagation, trace, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';

const setter: TextMapSetter<MsgHdrs> = { set: (h, k, v) => h.set(k, v) };
const getter: TextMapGetter<MsgHdrs> = {
  keys: (h) => h.keys(),
  get: (h, k) => (h.has(k) ? h.get(k) : undefined),
};

/** The context a call's attempts hang under: the caller's active one, when tracing is on. */
export function callerContext(): Context | undefined {
  return tracingOn() ? otelContext.active() : undefined;
}

export interface AttemptTrace {
  span: Span;
  headers: MsgHdrs;
}

/** The router's span for one attempt and the NATS headers that carry it; undefined when the call is not traced. */
export function startAttemptSpan(parent: Context | undefined, a: { group: string; replicaId: string; revision: string; subject: string; callId: string; stream: boolean; attempt: number }): AttemptTrace | undefined {
  if (!parent) return undefined;
  const span = startSpan(`muster.call ${a.group}`, SpanKind.CLIENT, {
    'muster.group': a.group,
    'muster.replica': a.replicaId,
    'muster.revision': a.revision,
    'muster.call_id': a.callId,
    'muster.stream': a.stream,
    'muster.attempt': a.attempt,
    'messaging.system': 'nats',
    'messaging.destination.name': a.subject,
  }, parent);
  if (!span) return undefined;
  const headers = natsHeaders();
  propagation.inject(trace.setSpan(parent, span), headers, setter);
  return { span, headers };
}

/**
 * The replica's span for one request, continuing the caller's trace from the message headers.
 * Its caller checks tracingOn() first (serve.ts: off, a request makes not even the attributes' object).
 */
export function startServeSpan(msg: Msg, a: { group: string; replicaId: string; revision: string; subject: string; callId: string; stream: boolean }): { span: Span; ctx: Context } | undefined {
  const h = msg.headers;
  const parent = h && h.has(TRACE_HEADERS.PARENT) ? propagation.extract(otelContext.active(), h, getter) : otelContext.active();
  const span = startSpan(`muster.serve ${a.group}`, SpanKind.SERVER, {
    'muster.group': a.group,
    'muster.replica': a.replicaId,
    'muster.revision': a.revision,
    'muster.call_id': a.callId,
    'muster.stream': a.stream,
    'messaging.system': 'nats',
    'messaging.destination.name': a.subject,
  }, parent);
  return span ? { span, ctx: trace.setSpan(parent, span) } : undefined;
}
