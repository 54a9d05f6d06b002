/**
 * What the gateway tells about each request: Prometheus metrics and a JSON
 * request log. docs/observability.md is the user's page.
 *
 * Metrics (on the gateway's own `--metrics-listen`, served by
 * @muster/common's startMetrics, so the same bearer-token and HTTPS options
 * as the head's apply), per group and route:
 *   muster_gateway_requests_total{group,revision,route,status}
 *   muster_gateway_request_duration_seconds{group,revision,route,status}  (to the last byte)
 *   muster_gateway_in_flight{route}
 * `status` is the HTTP status sent; 499 when the client went away before
 * the answer ended (nginx's convention). `group` is "" where no group was
 * resolved (an unknown model, a 401 before the route was read), `revision`
 * the revision of the replica that answered ("" when none did). The router
 * inside the gateway adds its own muster_router_* series (@muster/dataplane
 * metrics.ts) to the same endpoint.
 *
 * Why a separate listen address and not a /metrics route on the gateway's
 * port: the gateway's port faces API-key holders, who should not read every
 * group's traffic; a scraper is another party with its own credential (the
 * metrics token file), and on loopback by default no one else reaches it.
 *
 * The request log: one JSON line per request, on the gateway's log stream
 * (stderr): `{"msg":"request","requestId","method","route","group",
 * "replica","status","latencyMs"}`. Never a body, a header or a key. Answers
 * of 400 and above are always logged; others with probability
 * `--request-log-sample` (0 to 1).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Metrics } from '@muster/common/metrics';
import { OPENAI_ROUTES } from './gateway-openai.js';

/** Latency buckets in seconds (the data plane's, from 1 ms to 2 min). */
const BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** HTTP status of an answer the client did not wait for. */
export const CLIENT_CLOSED = 499;

export type RequestLogLine = {
  msg: 'request';
  requestId: string;
  method: string;
  route: string;
  group: string;
  replica: string;
  revision: string;
  status: number;
  latencyMs: number;
};

/** One request as it goes: the route is known at once, the group and replica as they are resolved. */
export class RequestRecord {
  group = '';
  replica = '';
  revision = '';
  /** For CallOptions.onReplica: the replica whose answer came first. */
  readonly onReplica = (r: { replicaId: string; revision: string }): void => {
    this.replica = r.replicaId;
    this.revision = r.revision;
  };

  constructor(readonly route: string) {}
}

/** The route label of a path: a small fixed set, whatever the client sends. */
export function routeOf(pathname: string): string {
  if (OPENAI_ROUTES.has(pathname)) return pathname.slice('/v1/'.length);
  if (pathname === '/v1/models') return 'models';
  if (pathname === '/healthz') return 'healthz';
  const m = /^\/v1\/groups\/[^/]+\/(call|stream|http)(\/|$)/.exec(pathname);
  return m ? m[1]! : 'other';
}

export interface GatewayObserverOptions {
  /** The metrics' meter (the gateway's startMetrics); none: no metrics. */
  meter?: Metrics['meter'] | undefined;
  /** Where request log lines go. */
  log: (line: RequestLogLine) => void;
  /** Share of answers under 400 that are logged, 0 to 1. */
  sample: number;
  /** For tests: the sampling draw (default Math.random). */
  random?: () => number;
}

export class GatewayObserver {
  private readonly requests;
  private readonly latency;
  private readonly inFlight;

  constructor(private readonly opts: GatewayObserverOptions) {
    const m = opts.meter;
    this.requests = m?.createCounter('muster_gateway_requests_total', { description: 'requests answered by the gateway, by group, revision of the replica that answered, route and HTTP status (499: the client left first)' });
    this.latency = m?.createHistogram('muster_gateway_request_duration_seconds', {
      description: 'gateway request latency, from arrival to the last byte sent, by group, revision, route and HTTP status',
      advice: { explicitBucketBoundaries: BUCKETS_S },
    });
    this.inFlight = m?.createUpDownCounter('muster_gateway_in_flight', { description: 'requests the gateway is answering now, by route' });
  }

  /** Starts observing a request; it is counted and logged once its answer ends or its client leaves. */
  begin(req: IncomingMessage, res: ServerResponse, requestId: string): RequestRecord {
    const started = performance.now();
    const pathname = (req.url ?? '/').split('?', 1)[0]!;
    const record = new RequestRecord(routeOf(pathname));
    this.inFlight?.add(1, { route: record.route });
    res.once('close', () => {
      const status = res.writableFinished ? res.statusCode : CLIENT_CLOSED;
      const seconds = (performance.now() - started) / 1000;
      const attrs = { group: record.group, revision: record.revision, route: record.route, status: String(status) };
      this.inFlight?.add(-1, { route: record.route });
      this.requests?.add(1, attrs);
      this.latency?.record(seconds, attrs);
      if (status >= 400 || (this.opts.sample > 0 && (this.opts.random ?? Math.random)() < this.opts.sample)) {
        this.opts.log({ msg: 'request', requestId, method: req.method ?? '', route: record.route, group: record.group, replica: record.replica, revision: record.revision, status, latencyMs: Math.round(seconds * 10_000) / 10 });
      }
    });
    return record;
  }
}
