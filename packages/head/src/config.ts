/**
 * muster-head configuration: defaults < --config file < MUSTER_* env < flags.
 * Every option is declared once here; main.ts builds its flags from this list.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { loadConfig, OTLP_ENDPOINT_HELP, parseBool, parseList, parseNumber, type ConfigSources, type OptionSpec } from '@muster/common';
import { isHostPort, MAX_MESSAGE_BYTES, MAX_SUBJECT_PREFIX_LENGTH } from '@muster/contracts';

/** Listen addresses (port 0: any); the advertised address is dialled, so it takes a host and a real port. */
const hostPort = z.string().refine((v) => isHostPort(v, 'listen'), 'expected host:port');
const DAY_MS = 24 * 60 * 60 * 1000;
const dialAddress = z.string().refine((v) => isHostPort(v, 'dial'), 'expected host:port with a host and a port 1…65535');

export const headConfigSchema = z
  .object({
    listen: hostPort.default('127.0.0.1:7400'),
    dataDir: z.string().min(1).default('.muster/head'),
    tokenFile: z.string().optional(),
    allowInsecurePermissions: z.boolean().default(false),
    store: z.enum(['embedded', 'etcd']).default('embedded'),
    etcdEndpoints: z.array(z.string().url()).default(['https://127.0.0.1:2379']),
    /** etcd's CA and the head's etcd client certificate (the etcd CA's, not the cluster CA's): TLS to etcd when etcdCa is set. */
    etcdCa: z.string().min(1).optional(),
    etcdCert: z.string().min(1).optional(),
    etcdKey: z.string().min(1).optional(),
    /** The cluster CA and this head's certificate (role head); default <dataDir>/pki/ca.crt, head.crt, head.key. */
    tlsCa: z.string().min(1).optional(),
    tlsCert: z.string().min(1).optional(),
    tlsKey: z.string().min(1).optional(),
    /** Plaintext gRPC (the token is the only credential, and it travels in clear): a warning is logged. */
    insecure: z.boolean().default(false),
    natsUrl: z.array(z.string()).default([]),
    /** The Muster NATS account's public key ("A…", 56 characters): issuer_account of the users the head mints. */
    natsAccount: z.union([z.literal(''), z.string().regex(/^A[A-Z2-7]{55}$/, 'expected a NATS account public key (56 characters starting "A")')]).default(''),
    /** File (0600) holding the account's signing-key seed ("SA…"): the head mints every NATS user with it. */
    natsAccountSeedFile: z.string().default(''),
    /** CA of the NATS server's certificate ('' : plaintext NATS). */
    natsCa: z.string().default(''),
    /** Legacy: one NATS user shared by head, replicas and callers (instead of operator mode; a warning at start). */
    natsUser: z.string().default(''),
    natsPassword: z.string().default(''),
    /** Lifetime of a caller's NATS user (GetDataPlaneAccess); clients ask again before it ends. */
    natsCallerTtlMs: z.number().int().min(60_000).max(30 * DAY_MS).default(DAY_MS),
    natsSubjectPrefix: z.string().max(MAX_SUBJECT_PREFIX_LENGTH).regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'expected NATS subject tokens').default('muster'),
    heartbeatIntervalMs: z.number().int().min(50).max(60_000).default(1_000),
    deadAfterMs: z.number().int().min(100).max(600_000).default(3_000),
    metricsListen: z.union([z.literal(''), hostPort]).default('127.0.0.1:9400'),
    /** The web dashboard's HTTPS listener (docs/dashboard.md); '' (the default): none. */
    dashboardListen: z.union([z.literal(''), hostPort]).default(''),
    /** The built web app it serves (default: packages/dashboard/dist, found through the workspace). */
    dashboardAssets: z.string().min(1).optional(),
    maxMessageBytes: z.number().int().min(64 * 1024).max(MAX_MESSAGE_BYTES).default(MAX_MESSAGE_BYTES),
    eventRetention: z.number().int().min(100).max(1_000_000).default(10_000),
    /** Retention of finished (STOPPED, FAILED) gangs: docs/gangs.md, "Finished gangs". */
    finishedGangsKept: z.number().int().min(0).max(1_000_000).default(1_000),
    finishedGangMaxAgeMs: z.number().int().min(1_000).max(365 * DAY_MS).default(DAY_MS),
    /** A DEAD node's record is deleted this long after it died (event node.removed). */
    deadNodeTtlMs: z.number().int().min(1_000).max(365 * DAY_MS).default(DAY_MS),
    streamBufferMessages: z.number().int().min(4).max(1_000_000).default(1_024),
    eventMaxAgeMs: z.number().int().min(1_000).max(365 * 86_400_000).default(86_400_000),
    /** etcd only: the leader compacts etcd's history this often, to the previous tick's revision (state/compactor.ts); 0: never. */
    storeCompactionIntervalMs: z.union([z.literal(0), z.number().int().min(10_000).max(DAY_MS)]).default(300_000),
    /** Test only: added to this head's clock for event ids, to show they survive a clock step. */
    testClockOffsetMs: z.number().int().default(0),
    advertiseAddress: z.union([z.literal(''), dialAddress]).default(''),
    leaseSeconds: z.number().int().min(2).max(60).default(2),
    headId: z.string().min(1).default(() => `${hostname()}-${randomBytes(3).toString('hex')}`),
    shardPortRange: z
      .string()
      .regex(/^\d{1,5}-\d{1,5}$/, 'expected FIRST-LAST, e.g. 30000-32767')
      .default('30000-32767')
      .transform((r) => ({ first: Number(r.split('-')[0]), last: Number(r.split('-')[1]) }))
      .refine((r) => r.first >= 1024 && r.last <= 65535 && r.first <= r.last, 'expected 1024 ≤ FIRST ≤ LAST ≤ 65535'),
    /** Metrics endpoint protection (common/metrics.ts): a scrape token file, HTTPS. */
    metricsTokenFile: z.string().min(1).optional(),
    metricsTlsCert: z.string().min(1).optional(),
    metricsTlsKey: z.string().min(1).optional(),
    /** OTLP/HTTP collector base URL: traces on; '' (the default): the OTEL_* variables decide. Checked in one place: tracesUrl (common/tracing.ts). */
    otlpEndpoint: z.string().default(''),
  })
  .refine((c) => !c.etcdCert === !c.etcdKey && (!c.etcdCert || c.etcdCa), {
    message: 'etcdCert and etcdKey go together, and need etcdCa',
    path: ['etcdCert'],
  })
  .refine((c) => c.natsUrl.length === 0 || c.natsUser !== '' || (c.natsAccount !== '' && c.natsAccountSeedFile !== ''), {
    message: 'NATS runs in operator mode: --nats-url needs --nats-account and --nats-account-seed-file (the head mints every NATS user; --nats-user is the legacy shared user)',
    path: ['natsAccountSeedFile'],
  })
  .refine((c) => c.natsUser === '' || (c.natsAccount === '' && c.natsAccountSeedFile === ''), {
    message: 'give either operator mode (--nats-account, --nats-account-seed-file) or the legacy shared user (--nats-user), not both',
    path: ['natsUser'],
  })
  .refine((c) => c.deadAfterMs >= 2 * c.heartbeatIntervalMs, {
    message: 'deadAfterMs must be at least twice heartbeatIntervalMs, or one late heartbeat kills a node',
    path: ['deadAfterMs'],
  });

export type HeadConfig = z.infer<typeof headConfigSchema>;

export const headOptions: OptionSpec[] = [
  { key: 'listen', flag: 'listen', env: 'MUSTER_LISTEN', description: 'gRPC listen address host:port (port 0 picks one)' },
  { key: 'dataDir', flag: 'data-dir', env: 'MUSTER_DATA_DIR', description: 'data directory (embedded store, token)' },
  { key: 'tokenFile', flag: 'token-file', env: 'MUSTER_TOKEN_FILE', description: 'cluster token file (default <data-dir>/token, created 0600)' },
  { key: 'allowInsecurePermissions', flag: 'allow-insecure-permissions', env: 'MUSTER_ALLOW_INSECURE_PERMISSIONS', parse: parseBool, description: 'accept a token or key file readable by group or others, with a warning (default: refuse to start)' },
  { key: 'store', flag: 'store', env: 'MUSTER_STORE', description: 'state store: embedded | etcd' },
  { key: 'etcdEndpoints', flag: 'etcd-endpoints', env: 'MUSTER_ETCD_ENDPOINTS', parse: parseList, description: 'etcd endpoints, comma-separated (https:// with --etcd-ca)' },
  { key: 'etcdCa', flag: 'etcd-ca', env: 'MUSTER_ETCD_CA', description: 'CA file of etcd\'s server certificate (pki/etcd-ca.crt): TLS to etcd' },
  { key: 'etcdCert', flag: 'etcd-cert', env: 'MUSTER_ETCD_CERT', description: 'the head\'s etcd client certificate file (pki/etcd-client.crt)' },
  { key: 'etcdKey', flag: 'etcd-key', env: 'MUSTER_ETCD_KEY', description: 'the head\'s etcd client key file (pki/etcd-client.key)' },
  { key: 'tlsCa', flag: 'tls-ca', env: 'MUSTER_TLS_CA', description: 'cluster CA file: signs clients\' and agents\' certificates (default <data-dir>/pki/ca.crt)' },
  { key: 'tlsCert', flag: 'tls-cert', env: 'MUSTER_TLS_CERT', description: 'this head\'s certificate, role head, naming its dial addresses (default <data-dir>/pki/head.crt)' },
  { key: 'tlsKey', flag: 'tls-key', env: 'MUSTER_TLS_KEY', description: 'this head\'s private key (default <data-dir>/pki/head.key)' },
  { key: 'insecure', flag: 'insecure', env: 'MUSTER_INSECURE', parse: parseBool, boolean: true, description: 'plaintext gRPC: no TLS, the token travels in clear (logs a warning)' },
  { key: 'natsUrl', flag: 'nats-url', env: 'MUSTER_NATS_URL', parse: parseList, description: 'NATS servers, comma-separated (none: no data plane)' },
  { key: 'natsAccount', flag: 'nats-account', env: 'MUSTER_NATS_ACCOUNT', description: 'public key of the Muster NATS account (operator mode; required with --nats-url)' },
  { key: 'natsAccountSeedFile', flag: 'nats-account-seed-file', env: 'MUSTER_NATS_ACCOUNT_SEED_FILE', description: 'file (0600) with the account signing-key seed the head mints NATS users with' },
  { key: 'natsCa', flag: 'nats-ca', env: 'MUSTER_NATS_CA', description: 'CA certificate of the NATS server (TLS); empty: plaintext NATS' },
  { key: 'natsUser', flag: 'nats-user', env: 'MUSTER_NATS_USER', description: 'legacy: one NATS user shared by head, replicas and callers (prefer operator mode: --nats-account)' },
  { key: 'natsPassword', flag: 'nats-password', env: 'MUSTER_NATS_PASSWORD', secret: true, instead: 'the MUSTER_NATS_PASSWORD environment variable', description: 'legacy: the shared NATS user\'s password (set the env var, not the flag: a flag is visible to every user of the machine, and the head warns)' },
  { key: 'natsCallerTtlMs', flag: 'nats-caller-ttl-ms', env: 'MUSTER_NATS_CALLER_TTL_MS', parse: parseNumber, description: 'lifetime of a caller\'s NATS user (default 24 h; clients renew it before)' },
  { key: 'natsSubjectPrefix', flag: 'nats-subject-prefix', env: 'MUSTER_NATS_SUBJECT_PREFIX', description: 'first token of every NATS subject' },
  { key: 'heartbeatIntervalMs', flag: 'heartbeat-interval-ms', env: 'MUSTER_HEARTBEAT_INTERVAL_MS', parse: parseNumber, description: 'agent heartbeat interval' },
  { key: 'deadAfterMs', flag: 'dead-after-ms', env: 'MUSTER_DEAD_AFTER_MS', parse: parseNumber, description: 'a node silent this long is dead' },
  { key: 'metricsListen', flag: 'metrics-listen', env: 'MUSTER_METRICS_LISTEN', description: 'Prometheus endpoint host:port ("" disables)' },
  { key: 'dashboardListen', flag: 'dashboard-listen', env: 'MUSTER_DASHBOARD_LISTEN', description: 'serve the web dashboard on host:port (HTTPS with the head\'s certificate; sign in with `muster dashboard`); "" (default) disables' },
  { key: 'dashboardAssets', flag: 'dashboard-assets', env: 'MUSTER_DASHBOARD_ASSETS', description: 'directory of the built dashboard (default: the @muster/dashboard package\'s dist)' },
  { key: 'maxMessageBytes', flag: 'max-message-bytes', env: 'MUSTER_MAX_MESSAGE_BYTES', parse: parseNumber, description: 'largest gRPC message accepted (at most the system-wide limit, 4 MiB)' },
  { key: 'eventRetention', flag: 'event-retention', env: 'MUSTER_EVENT_RETENTION', parse: parseNumber, description: 'cluster events kept in the store' },
  { key: 'finishedGangsKept', flag: 'finished-gangs-kept', env: 'MUSTER_FINISHED_GANGS_KEPT', parse: parseNumber, description: 'finished (STOPPED, FAILED) gangs kept, newest first; older ones are deleted (default 1000)' },
  { key: 'finishedGangMaxAgeMs', flag: 'finished-gang-max-age-ms', env: 'MUSTER_FINISHED_GANG_MAX_AGE_MS', parse: parseNumber, description: 'a finished gang is deleted this long after it finished (default 24 h)' },
  { key: 'deadNodeTtlMs', flag: 'dead-node-ttl-ms', env: 'MUSTER_DEAD_NODE_TTL_MS', parse: parseNumber, description: 'a DEAD node is forgotten this long after it died (default 24 h; `muster node rm` does it at once)' },
  { key: 'streamBufferMessages', flag: 'stream-buffer-messages', env: 'MUSTER_STREAM_BUFFER_MESSAGES', parse: parseNumber, description: 'messages a slow stream consumer may fall behind before it is cut (it resumes from its last id)' },
  { key: 'eventMaxAgeMs', flag: 'event-max-age-ms', env: 'MUSTER_EVENT_MAX_AGE_MS', parse: parseNumber, description: 'cluster events older than this are deleted (default 24 h)' },
  { key: 'storeCompactionIntervalMs', flag: 'store-compaction-interval-ms', env: 'MUSTER_STORE_COMPACTION_INTERVAL_MS', parse: parseNumber, description: 'etcd only: the leader compacts etcd\'s history this often, keeping one interval of it for watchers (default 5 min; 0 turns it off, for an etcd that compacts itself; otherwise at least 10 s)' },
  { key: 'testClockOffsetMs', flag: 'test-clock-offset-ms', env: 'MUSTER_TEST_CLOCK_OFFSET_MS', parse: parseNumber, description: 'test only: shifts this head\'s event clock (a clock step)' },
  { key: 'shardPortRange', flag: 'shard-port-range', env: 'MUSTER_SHARD_PORT_RANGE', description: 'ports the head allocates to shard ranks, FIRST-LAST' },
  { key: 'advertiseAddress', flag: 'advertise-address', env: 'MUSTER_ADVERTISE_ADDRESS', description: 'host:port other heads send clients to when this head leads (default: the bound --listen address; set it when listening on 0.0.0.0)' },
  { key: 'leaseSeconds', flag: 'lease-seconds', env: 'MUSTER_LEASE_SECONDS', parse: parseNumber, description: 'leader lease TTL: a dead leader is replaced after about this long (etcd\'s minimum is 2)' },
  { key: 'headId', flag: 'head-id', env: 'MUSTER_HEAD_ID', description: 'this head\'s id (default hostname-random)' },
  { key: 'metricsTokenFile', flag: 'metrics-token-file', env: 'MUSTER_METRICS_TOKEN_FILE', description: 'scrapes of /metrics must send "Authorization: Bearer <this file\'s token>" (≥ 32 bytes; re-read when it changes)' },
  { key: 'metricsTlsCert', flag: 'metrics-tls-cert', env: 'MUSTER_METRICS_TLS_CERT', description: 'serve /metrics over HTTPS with this certificate (PEM)' },
  { key: 'metricsTlsKey', flag: 'metrics-tls-key', env: 'MUSTER_METRICS_TLS_KEY', description: 'the metrics HTTPS certificate\'s key (PEM)' },
  { key: 'otlpEndpoint', flag: 'otlp-endpoint', description: OTLP_ENDPOINT_HELP },
];

export function loadHeadConfig(sources: ConfigSources): HeadConfig {
  return loadConfig(headConfigSchema, headOptions, sources);
}

export function tokenPath(config: HeadConfig): string {
  return config.tokenFile ?? join(config.dataDir, 'token');
}

/** The TLS files the gRPC server binds with: the flags, else <dataDir>/pki/; undefined with --insecure. */
export function headTlsFiles(config: HeadConfig): { ca: string; cert: string; key: string } | undefined {
  if (config.insecure) return undefined;
  const pki = join(config.dataDir, 'pki');
  return { ca: config.tlsCa ?? join(pki, 'ca.crt'), cert: config.tlsCert ?? join(pki, 'head.crt'), key: config.tlsKey ?? join(pki, 'head.key') };
}
