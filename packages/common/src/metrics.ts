/**
 * Prometheus metrics through OpenTelemetry. Each process makes one
 * `Metrics` at start: it owns the MeterProvider and serves `/metrics` on the
 * address it is given ("127.0.0.1:0" picks a free port; the bound address is
 * returned so it can be logged).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Meter } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { parseHostPort } from './net.js';

export interface Metrics {
  readonly meter: Meter;
  /** "host:port" the endpoint listens on, or undefined when disabled. */
  readonly address: string | undefined;
  close(): Promise<void>;
}

/** Starts metrics for `role`; `listen` undefined or "" disables the endpoint. */
export async function startMetrics(role: string, listen: string | undefined): Promise<Metrics> {
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
    server = createServer((req, res) => {
      if (req.url === '/metrics' || req.url?.startsWith('/metrics?')) {
        exporter.getMetricsRequestHandler(req, res);
      } else {
        res.statusCode = 404;
        res.end('not found: metrics are served at /metrics\n');
      }
    });
    await new Promise<void>((resolve, reject) => {
      server!.once('error', reject);
      server!.listen(port, host, () => resolve());
    });
    const bound = server.address() as AddressInfo;
    address = `${host}:${bound.port}`;
  }
  return {
    meter,
    address,
    async close() {
      if (server) await new Promise<void>((resolve) => server!.close(() => resolve()));
      await provider.shutdown();
    },
  };
}
