/**
 * What the gateway tells about each request: Prometheus metrics and a JSON
 * request log. docs/observability.md is the user's page.
 *
 * Metrics (on the gateway's own `--metrics-listen`, served by
 * @muster/common's startMetrics, so the same bearer-token and HTTPS options
 * as the head's apply; without it nothing is recorded), per group and route:
 *   muster_gateway_requests_total{group,revision,route,status}
 *   muster_gateway_request_duration_seconds{group,route,status}  (to the last byte)
 *   muster_gateway_in_flight{route}
 * `status` is the HTTP status of the answer: 499 when the client went away
 * before it ended (nginx's convention); 502 (504 for a deadline) when the
 * call failed after a 200's headers went out, whether the connection was cut
 * or an NDJSON body ended with its error line. Statuses the gateway itself
 * sends (GATEWAY_STATUSES) are labelled as they are; any other (passed
 * through from a shard's HTTP server, which may send any 100–999) by its
 * class, "2xx", "4xx", "5xx". The histogram has no `revision` (its buckets
 * multiply every series; each rollout would add a set): the counter has it.
 * `group` is "" where no group was resolved (an unknown model, a 401 before
 * the route was read), `revision` the revision of the replica that answered
 * ("" when none did). The router inside the gateway adds its own
 * muster_router_* series (@muster/dataplane metrics.ts) to the same endpoint.
 *
 * Why a separate listen address and not a /metrics route on the gateway's
 * port: the gateway's port faces API-key holders, who should not read every
 * group's traffic; a scraper is another party with its own credential (the
 * metrics token file), and on loopback by default no one else reaches it.
 *
 * The request log: one JSON line per request, on the gateway's log stream
 * (stderr): `{"msg":"request","requestId","method","route","group",
 * "replica","status","latencyMs"}` (the exact status). Never a body, a
 * header or a key. 5xx and 499 are always logged; 4xx at most
 * MAX_4XX_LINES_PER_S a second (anyone who reaches the port, without a key,
 * can make 401s: they must not flood the log), the rest counted and told
 * in one `{"msg":"request log dropped","dropped":k}` line with the next
 * line logged after that second; others with probability
 * `--request-log-sample` (0 to 1).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LATENCY_BUCKETS_S, type Metrics } from '@muster/common/metrics';
import { failedStatusOf } from './gateway-http.js';
import { OPENAI_ROUTES } from './gateway-openai.js';

/** HTTP status of an answer the client did not wait for. */
export const CLIENT_CLOSED = 499;

/** The statuses the gateway sends of itself: labelled as they are; others by class. */
const GATEWAY_STATUSES = new Set([200, 400, 401, 403, 404, 405, 413, 429, CLIENT_CLOSED, 500, 502, 503, 504]);

/** The metrics label of `status`: bounded whatever a shard sends. */
export function statusLabel(status: number): string {
  return GATEWAY_STATUSES.has(status) ? String(status) : `${Math.floor(status / 100)}xx`;
}

/** 4xx log lines let through per second; the rest are counted. */
const MAX_4XX_LINES_PER_S = 20;

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

/** 4xx lines left out in the last second(s) over the cap. */
export type DroppedLogLine = { msg: 'request log dropped'; dropped: number };

/** One request as it goes: the route is known at once, the group and replica as they are resolved. */
export class RequestRecord {
  group = '';
  replica = '';
  revision = '';
  /** For CallOptions.onReplica: the replica whose answer came first, and its group (the overflow group's, when the call overflowed). */
  readonly onReplica = (r: { replicaId: string; revision: string; group?: string }): void => {
    this.replica = r.replicaId;
    this.revision = r.revision;
    if (r.group) this.group = r.group;
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
  log: (line: RequestLogLine | DroppedLogLine) => void;
  /** Share of answers under 400 that are logged, 0 to 1. */
  sample: number;
  /** For tests: the sampling draw (default Math.random). */
  random?: () => number;
  /** For tests: the clock of the 4xx cap, in ms (default performance.now). */
  now?: () => number;
}

export class GatewayObserver {
  private readonly requests;
  private readonly latency;
  private readonly inFlight;
  /** The 4xx cap's current second, lines logged in it, and lines dropped since the last dropped line. */
  private window = { startMs: -Infinity, logged: 0, dropped: 0 };

  constructor(private readonly opts: GatewayObserverOptions) {
    const m = opts.meter;
    this.requests = m?.createCounter('muster_gateway_requests_total', { description: 'requests answered by the gateway, by group, revision of the replica that answered, route and HTTP status (499: the client left first; 502/504: failed after the headers; other than the gateway\'s own: 2xx/4xx/5xx)' });
    this.latency = m?.createHistogram('muster_gateway_request_duration_seconds', {
      description: 'gateway request latency, from arrival to the last byte sent, by group, route and HTTP status',
      advice: { explicitBucketBoundaries: [...LATENCY_BUCKETS_S] },
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
      const status = failedStatusOf(res) ?? (res.writableFinished ? res.statusCode : CLIENT_CLOSED);
      const seconds = (performance.now() - started) / 1000;
      const label = statusLabel(status);
      this.inFlight?.add(-1, { route: record.route });
      this.requests?.add(1, { group: record.group, revision: record.revision, route: record.route, status: label });
      this.latency?.record(seconds, { group: record.group, route: record.route, status: label });
      if (this.logs(status)) {
        this.opts.log({ msg: 'request', requestId, method: req.method ?? '', route: record.route, group: record.group, replica: record.replica, revision: record.revision, status, latencyMs: Math.round(seconds * 10_000) / 10 });
      }
    });
    return record;
  }

  /** Whether the answer with `status` is logged: 5xx and 499 always, 4xx under the cap, others sampled. */
  private logs(status: number): boolean {
    if (status >= 500 || status === CLIENT_CLOSED) return true;
    if (status < 400) return this.opts.sample > 0 && (this.opts.random ?? Math.random)() < this.opts.sample;
    const now = this.opts.now?.() ?? performance.now();
    const w = this.window;
    if (now - w.startMs >= 1000) {
      if (w.dropped > 0) this.opts.log({ msg: 'request log dropped', dropped: w.dropped });
      this.window = { startMs: now, logged: 0, dropped: 0 };
    }
    if (this.window.logged < MAX_4XX_LINES_PER_S) {
      this.window.logged++;
      return true;
    }
    this.window.dropped++;
    return false;
  }
}
