/**
 * Prometheus metrics through OpenTelemetry. Each process makes one
 * `Metrics` at start: it owns the MeterProvider and serves `/metrics` on the
 * address it is given ("127.0.0.1:0" picks a free port; the bound address is
 * returned so it can be logged).
 *
 * Protection (docs/security.md, "The gateway" — metrics endpoints): by
 * default the endpoint listens on loopback only and asks for nothing, since
 * it holds counts and names but no secret. Exposed beyond the host it can
 * ask scrapers for a bearer token (`tokenFile`, what Prometheus sends with
 * `authorization.credentials_file`) and serve HTTPS (`tlsCert`/`tlsKey`).
 * The token file is read again on each scrape whose file changed, so it
 * rotates without a restart; a file that cannot be read keeps the last token.
 *
 * `global: true` also makes the provider OpenTelemetry's global one, so what
 * libraries record through the bare API (the data plane's router and serve()
 * metrics, @muster/dataplane metrics.ts) is served here too. The gateway and
 * the worker (whose HTTP bridge is a serve() replica) ask for it; one process
 * has one global provider, so only a process's own Metrics should.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { metrics as otelMetrics, type Meter } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { bearerToken, MIN_TOKEN_BYTES } from './auth.js';
import { checkSecretFile, readKeyFile, readPemFile } from './secret-file.js';
import { ErrorCode, MusterError } from './errors.js';
import { parseHostPort } from './net.js';

export { LATENCY_BUCKETS_S } from './latency-buckets.js';

export interface Metrics {
  readonly meter: Meter;
  /** "host:port" the endpoint listens on, or undefined when disabled. */
  readonly address: string | undefined;
  close(): Promise<void>;
}

/** Optional protection of the endpoint (`--metrics-token-file`, `--metrics-tls-cert`, `--metrics-tls-key`). */
export interface MetricsProtection {
  /** A file holding the bearer token every scrape must send (at least MIN_TOKEN_BYTES). */
  tokenFile?: string | undefined;
  /** PEM certificate (chain) and key: serve HTTPS instead of HTTP. */
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();

/** The scrape token of `path`, checked; its hash is what requests are compared against. */
async function readScrapeToken(path: string): Promise<{ hash: Buffer; mtimeMs: number }> {
  checkSecretFile(path, 'metrics token file');
  let text: string;
  let mtimeMs: number;
  try {
    [text, mtimeMs] = await Promise.all([readFile(path, 'utf8'), stat(path).then((s) => s.mtimeMs)]);
  } catch (e) {
    throw new MusterError(ErrorCode.FAILED_PRECONDITION, `cannot read metrics token file ${path}: ${(e as Error).message}`, { cause: e });
  }
  const token = text.trim();
  if (Buffer.byteLength(token) < MIN_TOKEN_BYTES) {
    throw new MusterError(ErrorCode.FAILED_PRECONDITION, `metrics token file ${path} holds ${token ? 'a token shorter than' : 'no token; need'} ${MIN_TOKEN_BYTES} bytes (e.g. \`openssl rand -base64 32\`)`);
  }
  return { hash: sha256(token), mtimeMs };
}

/** A request check against the token in `path`: the file's token, re-read when its mtime moves. */
async function scrapeTokenCheck(path: string): Promise<(req: IncomingMessage) => Promise<boolean>> {
  let current = await readScrapeToken(path);
  return async (req) => {
    const mtimeMs = await stat(path).then((s) => s.mtimeMs, () => current.mtimeMs);
    if (mtimeMs !== current.mtimeMs) current = await readScrapeToken(path).catch(() => current);
    const given = bearerToken(req.headers.authorization);
    return given !== undefined && timingSafeEqual(sha256(given), current.hash);
  };
}

function tlsOptions(p: MetricsProtection): { cert: Buffer; key: Buffer } | undefined {
  if (!p.tlsCert && !p.tlsKey) return undefined;
  if (!p.tlsCert || !p.tlsKey) throw new MusterError(ErrorCode.INVALID_ARGUMENT, 'metrics over HTTPS needs both --metrics-tls-cert and --metrics-tls-key');
  return { cert: readPemFile(p.tlsCert, 'metrics TLS certificate'), key: readKeyFile(p.tlsKey, 'metrics TLS key') };
}

/** Starts metrics for `role`; `listen` undefined or "" disables the endpoint. */
export async function startMetrics(role: string, listen: string | undefined, protection: MetricsProtection = {}, opts: { global?: boolean; warn?: (message: string) => void } = {}): Promise<Metrics> {
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'service.name': `muster-${role}` }),
    readers: [exporter],
  });
  const meter = provider.getMeter('muster');
  let server: Server | undefined;
  let address: string | undefined;
  if (listen) {
    const { host, port } = parseHostPort(listen, 'metrics listen address');
    const tls = tlsOptions(protection);
    const authorized = protection.tokenFile ? await scrapeTokenCheck(protection.tokenFile) : undefined;
    const serve = (req: IncomingMessage, res: ServerResponse) => {
      if (req.url !== '/metrics' && !req.url?.startsWith('/metrics?')) {
        res.statusCode = 404;
        return void res.end('not found: metrics are served at /metrics\n');
      }
      if (!authorized) return exporter.getMetricsRequestHandler(req, res);
      void authorized(req).then((ok) => {
        if (ok) return exporter.getMetricsRequestHandler(req, res);
        res.writeHead(401, { 'www-authenticate': 'Bearer realm="muster-metrics"', 'content-type': 'text/plain' });
        res.end('unauthorized: send "Authorization: Bearer <token>" with the token of --metrics-token-file\n');
      });
    };
    server = tls ? createHttpsServer(tls, serve) : createServer(serve);
    await new Promise<void>((resolve, reject) => {
      server!.once('error', reject);
      server!.listen(port, host, () => resolve());
    });
    const bound = server.address() as AddressInfo;
    address = `${host}:${bound.port}`;
  }
  // Registered only now that nothing above can throw: a failed start must not
  // leave a provider nobody serves (or shuts down) as the process's global one.
  const global = opts.global === true && otelMetrics.setGlobalMeterProvider(provider);
  if (opts.global === true && !global) {
    (opts.warn ?? ((m: string) => process.emitWarning(m)))(`metrics of ${role}: another global MeterProvider is already registered; the data plane's muster_router_*/muster_replica_* metrics are recorded there, not on this endpoint`);
  }
  return {
    meter,
    address,
    async close() {
      if (server) await new Promise<void>((resolve) => server!.close(() => resolve()));
      if (global) otelMetrics.disable();
      await provider.shutdown();
    },
  };
}
