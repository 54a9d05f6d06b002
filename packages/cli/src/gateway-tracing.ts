/**
 * The gateway's span: one SERVER span per HTTP request, "<METHOD> <route>"
 * (the route label of the metrics, a fixed set). The handler runs with it
 * active, so the router's attempt spans (@muster/dataplane tracing.ts) are
 * its children and the trace goes on in NATS headers to the replica.
 *
 * A client's W3C `traceparent` is not trusted by default: its trace id (and
 * so a trace-id-ratio sampling decision) and its sampled flag are the
 * client's choice. The span is then the root of a new trace, sampled by the
 * gateway's own sampler, with the client's span as a link. With
 * `--trust-traceparent` (clients are the operator's own services) the span
 * continues the client's trace instead.
 *
 * Off (no tracer provider: the gateway was started without an OTLP
 * endpoint) it costs one check per request and makes nothing. The span ends
 * when the answer ends or the client leaves, with the status the metrics
 * count (499: the client left first; 502/504: failed after the headers);
 * 5xx is an error. Attributes: http.request.method, http.route, url.path,
 * http.response.status_code, muster.request_id, muster.group and
 * muster.replica once known (from the request's metrics record). Never a
 * header, a body or a key.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extractHeaders, otelTrace, ROOT_CONTEXT, SpanKind, SpanStatusCode, startSpan, tracingOn, withSpan } from '@muster/common';
import { failedStatusOf } from './gateway-http.js';
import { CLIENT_CLOSED, routeOf, type RequestRecord } from './gateway-metrics.js';

/** Runs `handle` under the request's span (as it is, when tracing is off); `trustTraceparent`: continue the client's trace. */
export function tracedRequest<T>(req: IncomingMessage, res: ServerResponse, requestId: string, record: RequestRecord | undefined, trustTraceparent: boolean, handle: () => Promise<T>): Promise<T> {
  if (!tracingOn()) return handle();
  const pathname = (req.url ?? '/').split('?', 1)[0]!;
  const route = record?.route ?? routeOf(pathname);
  const method = req.method ?? 'GET';
  const client = extractHeaders(req.headers);
  const clientSpan = otelTrace.getSpanContext(client);
  const parent = trustTraceparent ? client : ROOT_CONTEXT;
  const links = !trustTraceparent && clientSpan && otelTrace.isSpanContextValid(clientSpan) ? [{ context: clientSpan }] : undefined;
  const span = startSpan(`${method} ${route}`, SpanKind.SERVER, { 'http.request.method': method, 'http.route': route, 'url.path': pathname.slice(0, 256), 'muster.request_id': requestId }, parent, links);
  if (!span) return handle();
  res.once('close', () => {
    const status = failedStatusOf(res) ?? (res.writableFinished ? res.statusCode : CLIENT_CLOSED);
    span.setAttribute('http.response.status_code', status);
    if (record?.group) span.setAttribute('muster.group', record.group);
    if (record?.replica) span.setAttribute('muster.replica', record.replica);
    if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: `HTTP ${status}` });
    span.end();
  });
  return withSpan(span, handle, parent);
}
