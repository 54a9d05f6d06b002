/**
 * `muster gateway` configuration: defaults < --config file < MUSTER_GATEWAY_*
 * env < flags, validated once (the same layering as the head and worker).
 * The gateway's own HTTPS certificate has variables of its own
 * (MUSTER_GATEWAY_TLS_CERT/KEY): MUSTER_TLS_* name the certificate a CLI
 * presents to the head, which is another thing.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { loadConfig, OTLP_ENDPOINT_HELP, parseBool, parseNumber, type ConfigSources, type OptionSpec } from '@muster/common';
import { isHostPort } from '@muster/contracts';
import { DEFAULT_MAX_BODY_BYTES } from './gateway.js';

export const gatewayConfigSchema = z
  .object({
    listen: z.string().refine((v) => isHostPort(v, 'listen'), 'expected host:port').default('127.0.0.1:8080'),
    keysFile: z.string().min(1).optional(),
    noAuth: z.boolean().default(false),
    /** Bodies over this are refused with 413 (at most 1 GiB: the gateway buffers a body whole). */
    maxBodyBytes: z.number().int().min(1024).max(1024 ** 3).default(DEFAULT_MAX_BODY_BYTES),
    tlsCert: z.string().min(1).optional(),
    tlsKey: z.string().min(1).optional(),
    /** Prometheus /metrics on its own address (gateway-metrics.ts); "" (the default): not served. */
    metricsListen: z.union([z.literal(''), z.string().refine((v) => isHostPort(v, 'listen'), 'expected host:port')]).default(''),
    metricsTokenFile: z.string().min(1).optional(),
    metricsTlsCert: z.string().min(1).optional(),
    metricsTlsKey: z.string().min(1).optional(),
    /** Share of successful requests logged (errors always are), 0 to 1. */
    requestLogSample: z.number().min(0).max(1).default(0.01),
    /** OTLP/HTTP collector base URL: traces on; '' (the default): the OTEL_* variables decide. Checked in one place: tracesUrl (common/tracing.ts). */
    otlpEndpoint: z.string().default(''),
    /** Continue clients' W3C traceparent (default false: each request starts a new trace, linked to the client's span). */
    trustTraceparent: z.boolean().default(false),
    /** Call replicas on NATS only, not on direct-path links (docs/dataplane.md, "The direct path"). */
    natsOnly: z.boolean().default(false),
  })
  .refine((c) => !c.keysFile || !c.noAuth, { message: '--no-auth and --keys-file contradict each other: give one', path: ['noAuth'] })
  .refine((c) => c.keysFile !== undefined || c.noAuth, {
    message: 'the gateway needs API keys: --keys-file FILE (create keys with `muster gateway key create`), or --no-auth to let every caller call every group',
    path: ['keysFile'],
  })
  .refine((c) => (c.tlsCert === undefined) === (c.tlsKey === undefined), { message: 'HTTPS needs both --tls-cert and --tls-key', path: ['tlsCert'] })
  .refine((c) => !c.metricsListen || isLoopbackListen(c.metricsListen) || c.metricsTokenFile !== undefined, {
    message: 'metrics beyond loopback need --metrics-token-file (every scrape then sends its bearer token); or listen on 127.0.0.1',
    path: ['metricsTokenFile'],
  });

/**
 * A listen address only this host reaches: "localhost", or an IP address in
 * 127.0.0.0/8 or ::1. A host name is never taken on its looks
 * ("127.example.com" resolves anywhere).
 */
export function isLoopbackListen(hostPort: string): boolean {
  const host = hostPort.slice(0, hostPort.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  if (host === 'localhost') return true;
  const family = isIP(host);
  if (family === 4) return host.startsWith('127.');
  return family === 6 && isIPv6Loopback(host);
}

/** ::1 in any of its spellings (0:0:0:0:0:0:0:1, ::0:1). */
function isIPv6Loopback(host: string): boolean {
  const [head = '', tail = ''] = host.split('::');
  const groups = [...head.split(':'), ...tail.split(':')].filter((g) => g !== '');
  return groups.length > 0 && groups.slice(0, -1).every((g) => Number.parseInt(g, 16) === 0) && Number.parseInt(groups.at(-1)!, 16) === 1;
}

export type GatewayConfig = z.infer<typeof gatewayConfigSchema>;

export const gatewayOptions: OptionSpec[] = [
  { key: 'listen', flag: 'listen', env: 'MUSTER_GATEWAY_LISTEN', description: 'where to listen, host:port (default 127.0.0.1:8080)' },
  { key: 'keysFile', flag: 'keys-file', env: 'MUSTER_GATEWAY_KEYS_FILE', description: 'API keys file (hashes and rights; `muster gateway key create`); re-read on change and on SIGHUP' },
  { key: 'noAuth', flag: 'no-auth', env: 'MUSTER_GATEWAY_NO_AUTH', parse: parseBool, description: 'serve without API keys: anyone who reaches the gateway calls every group (logs a warning)' },
  { key: 'maxBodyBytes', flag: 'max-body-bytes', env: 'MUSTER_GATEWAY_MAX_BODY_BYTES', parse: parseNumber, description: `largest request body; larger ones get 413 (default ${DEFAULT_MAX_BODY_BYTES}, the data plane's message limit)` },
  { key: 'tlsCert', flag: 'tls-cert', env: 'MUSTER_GATEWAY_TLS_CERT', description: 'serve HTTPS with this certificate (PEM, chain); re-read on SIGHUP' },
  { key: 'tlsKey', flag: 'tls-key', env: 'MUSTER_GATEWAY_TLS_KEY', description: 'the HTTPS certificate\'s private key (PEM)' },
  { key: 'metricsListen', flag: 'metrics-listen', env: 'MUSTER_GATEWAY_METRICS_LISTEN', description: 'serve Prometheus /metrics on this host:port (default: not served); beyond loopback it needs --metrics-token-file' },
  { key: 'metricsTokenFile', flag: 'metrics-token-file', env: 'MUSTER_GATEWAY_METRICS_TOKEN_FILE', description: 'scrapes of /metrics must send "Authorization: Bearer <this file\'s token>" (≥ 32 bytes; re-read when it changes)' },
  { key: 'metricsTlsCert', flag: 'metrics-tls-cert', env: 'MUSTER_GATEWAY_METRICS_TLS_CERT', description: 'serve /metrics over HTTPS with this certificate (PEM)' },
  { key: 'metricsTlsKey', flag: 'metrics-tls-key', env: 'MUSTER_GATEWAY_METRICS_TLS_KEY', description: 'the metrics HTTPS certificate\'s key (PEM)' },
  { key: 'requestLogSample', flag: 'request-log-sample', env: 'MUSTER_GATEWAY_REQUEST_LOG_SAMPLE', parse: parseNumber, description: 'share of successful requests written to the JSON request log, 0 to 1 (default 0.01); 5xx and 499 are always logged, 4xx up to 20 a second' },
  { key: 'otlpEndpoint', flag: 'otlp-endpoint', description: OTLP_ENDPOINT_HELP },
  { key: 'natsOnly', flag: 'nats-only', env: 'MUSTER_GATEWAY_NATS_ONLY', parse: parseBool, boolean: true, description: 'call replicas on NATS only (default: on a direct TLS link to each replica once set up, docs/dataplane.md "The direct path"); for networks where the gateway cannot reach the workers\' addresses' },
  { key: 'trustTraceparent', flag: 'trust-traceparent', env: 'MUSTER_GATEWAY_TRUST_TRACEPARENT', parse: parseBool, boolean: true, description: 'continue the trace a client\'s traceparent names, with its sampling decision (default: each request starts a new trace, linked to the client\'s span: clients choose neither the trace id nor sampling)' },
];

export function loadGatewayConfig(sources: ConfigSources): GatewayConfig {
  return loadConfig(gatewayConfigSchema, gatewayOptions, sources);
}
