/**
 * muster-worker configuration: defaults < --config file < MUSTER_* env < flags.
 * In a Kubernetes pod the node identity and topology labels come from the
 * environment (MUSTER_NODE_ID from the downward API, MUSTER_LABELS, ...), and
 * the worker follows its Node's cordon (kube-node.ts): `watchNodeCordon`
 * unset means "on when running in a pod with a service account token".
 */
import { hostname } from 'node:os';
import { z } from 'zod';
import { ErrorCode, MusterError, loadConfig, OTLP_ENDPOINT_HELP, parseBool, parseList, parseMap, type ConfigSources, type OptionSpec } from '@muster/common';
import { isHostPort } from '@muster/contracts';
import { DEFAULT_SERVICE_ACCOUNT_DIR } from './kube-node.js';
import { SHARD_UID_RANGE, SHARD_USER } from './shards/rank-users.js';

/** Listen addresses (port 0: any); head addresses are dialled, so they take a host and a real port. */
const hostPort = z.string().refine((v) => isHostPort(v, 'listen'), 'expected host:port');
const dialAddress = z.string().refine((v) => isHostPort(v, 'dial'), 'expected host:port with a host and a port 1…65535');

/** "key=value:Effect" or "key:Effect" */
const TAINT = /^([^=:]+)(?:=([^:]*))?:(NoSchedule|PreferNoSchedule)$/;

export const workerConfigSchema = z.object({
  head: z.array(dialAddress).min(1, 'at least one head address').default(['127.0.0.1:7400']),
  token: z.string().optional(),
  tokenFile: z.string().optional(),
  /** The cluster CA, and this node's certificate (role node, CN = the node id) and key. */
  tlsCa: z.string().min(1).optional(),
  tlsCert: z.string().min(1).optional(),
  tlsKey: z.string().min(1).optional(),
  /** Plaintext gRPC to a head started with --insecure (logs a warning). */
  insecure: z.boolean().default(false),
  nodeId: z.string().min(1).default(() => hostname()),
  address: z.string().default(''),
  profile: z.string().optional(),
  topoFile: z.string().optional(),
  queryGpuFile: z.string().optional(),
  listFile: z.string().optional(),
  nvlinkDomain: z.string().optional(),
  labels: z.record(z.string(), z.string()).default({}),
  taints: z
    .array(z.string().regex(TAINT, 'expected key[=value]:NoSchedule|PreferNoSchedule'))
    .default([])
    .transform((ts) => ts.map((t) => {
      const m = TAINT.exec(t)!;
      return { key: m[1]!, value: m[2] ?? '', effect: m[3]! };
    })),
  dataDir: z.string().min(1).default('.muster/worker'),
  /** Who ranks run as (shards/rank-users.ts): one user, or one uid per gang from a range; neither: per gang from 200000-299999 when the worker may switch users. */
  shardUser: z.string().regex(SHARD_USER, 'expected a user name or uid[:gid]').optional(),
  shardUidRange: z.string().regex(SHARD_UID_RANGE, 'expected FIRST-LAST, e.g. 200000-299999').optional(),
  /** Where gangs' homes are made (default: <data-dir>-homes; the data dir itself stays 0700). */
  shardHomeDir: z.string().min(1).optional(),
  allowInsecurePermissions: z.boolean().default(false),
  stopShardsOnExit: z.boolean().default(false),
  /** Finished attempts' shard logs: kept this long after their last write, at most this many per gang, of at most this many finished gangs (log-retention.ts). */
  logRetentionMs: z.number().int().min(1_000).max(365 * 24 * 3_600_000).default(24 * 3_600_000),
  logAttemptsKept: z.number().int().min(0).max(10_000).default(5),
  logGangsKept: z.number().int().min(0).max(100_000).default(1_000),
  metricsListen: z.union([z.literal(''), hostPort]).default('127.0.0.1:9401'),
  reconnectMaxMs: z.number().int().min(100).max(60_000).default(2_000),
  watchNodeCordon: z.boolean().optional(),
  kubeApi: z.url({ protocol: /^https?$/ }).optional(),
  serviceAccountDir: z.string().min(1).default(DEFAULT_SERVICE_ACCOUNT_DIR),
  nodePollMs: z.number().int().min(100).max(300_000).default(5_000),
  /** Metrics endpoint protection (common/metrics.ts): a scrape token file, HTTPS. */
  metricsTokenFile: z.string().min(1).optional(),
  metricsTlsCert: z.string().min(1).optional(),
  metricsTlsKey: z.string().min(1).optional(),
  /** OTLP/HTTP collector base URL: traces on; '' (the default): the OTEL_* variables decide. Checked in one place: tracesUrl (common/tracing.ts). */
  otlpEndpoint: z.string().default(''),
});

export type WorkerConfig = z.infer<typeof workerConfigSchema>;

/**
 * The TLS files the agent dials with; undefined with --insecure. Without
 * either, MUSTER_INVALID_ARGUMENT saying how to get a node certificate.
 */
export function workerTlsFiles(config: WorkerConfig): { ca: string; cert?: string; key?: string } | undefined {
  if (config.insecure) return undefined;
  if (!config.tlsCa) {
    throw new MusterError(
      ErrorCode.INVALID_ARGUMENT,
      `no --tls-ca: the agent talks to heads over TLS; give --tls-ca <pki>/ca.crt and this node's certificate (\`muster cert node --dir <pki> --node-id ${config.nodeId}\` writes <pki>/nodes/${config.nodeId}.crt and .key) as --tls-cert and --tls-key, or --insecure for a plaintext head`,
      { details: { field: 'tlsCa' } },
    );
  }
  if (!config.tlsCert !== !config.tlsKey) throw new MusterError(ErrorCode.INVALID_ARGUMENT, '--tls-cert and --tls-key go together', { details: { field: 'tlsCert' } });
  return { ca: config.tlsCa, ...(config.tlsCert && config.tlsKey ? { cert: config.tlsCert, key: config.tlsKey } : {}) };
}

export const workerOptions: OptionSpec[] = [
  { key: 'head', flag: 'head', env: 'MUSTER_HEAD', parse: parseList, description: 'head address(es) host:port, comma-separated' },
  { key: 'token', flag: 'token', env: 'MUSTER_TOKEN', secret: true, instead: '--token-file or the MUSTER_TOKEN environment variable', description: 'cluster token (prefer --token-file or the env var: a flag is visible to every user of the machine, and the worker warns)' },
  { key: 'tokenFile', flag: 'token-file', env: 'MUSTER_TOKEN_FILE', description: 'file holding the cluster token' },
  { key: 'tlsCa', flag: 'tls-ca', env: 'MUSTER_TLS_CA', description: 'cluster CA file: the head must present a certificate it signed, with role head, naming the address dialled' },
  { key: 'tlsCert', flag: 'tls-cert', env: 'MUSTER_TLS_CERT', description: 'this node\'s certificate (`muster cert node`: role node, CN = the node id)' },
  { key: 'tlsKey', flag: 'tls-key', env: 'MUSTER_TLS_KEY', description: 'this node\'s private key' },
  { key: 'insecure', flag: 'insecure', env: 'MUSTER_INSECURE', parse: parseBool, boolean: true, description: 'plaintext gRPC to a head started with --insecure: nothing proves the head is one (logs a warning)' },
  { key: 'nodeId', flag: 'node-id', env: 'MUSTER_NODE_ID', description: 'node id (default: hostname)' },
  { key: 'address', flag: 'address', env: 'MUSTER_ADDRESS', description: 'address other nodes reach this one at (default: derived)' },
  { key: 'profile', flag: 'profile', env: 'MUSTER_GPU_PROFILE', description: 'simulated GPU profile instead of nvidia-smi (see `muster-worker inventory --help`)' },
  { key: 'topoFile', flag: 'topo', env: 'MUSTER_TOPO_FILE', description: 'recorded `nvidia-smi topo -m` output to use' },
  { key: 'queryGpuFile', flag: 'query-gpu', env: 'MUSTER_QUERY_GPU_FILE', description: 'recorded `nvidia-smi --query-gpu` csv to use' },
  { key: 'listFile', flag: 'list', env: 'MUSTER_LIST_FILE', description: 'recorded `nvidia-smi -L` output to use' },
  { key: 'nvlinkDomain', flag: 'nvlink-domain', env: 'MUSTER_NVLINK_DOMAIN', description: 'multi-node NVLink domain / clique of this node' },
  { key: 'labels', flag: 'labels', env: 'MUSTER_LABELS', parse: parseMap, description: 'node labels k=v,k2=v2 (zone: muster.io/zone, rack: muster.io/rack)' },
  { key: 'taints', flag: 'taints', env: 'MUSTER_TAINTS', parse: parseList, description: 'taints key[=value]:Effect, comma-separated' },
  { key: 'dataDir', flag: 'data-dir', env: 'MUSTER_DATA_DIR', description: 'shard logs and the shard registry (adoption after a restart)' },
  { key: 'shardUser', flag: 'shard-user', env: 'MUSTER_SHARD_USER', description: 'run every rank as this user: name or uid[:gid] (default: as root, each gang its own uid from --shard-uid-range)' },
  { key: 'shardUidRange', flag: 'shard-uid-range', env: 'MUSTER_SHARD_UID_RANGE', description: 'uids FIRST-LAST to give each gang its own (gid = uid; default 200000-299999 when the worker runs as root)' },
  { key: 'shardHomeDir', flag: 'shard-home-dir', env: 'MUSTER_SHARD_HOME_DIR', description: 'where each gang\'s home (its cwd and HOME, 0700, owned by its uid) is made (default <data-dir>-homes)' },
  { key: 'allowInsecurePermissions', flag: 'allow-insecure-permissions', env: 'MUSTER_ALLOW_INSECURE_PERMISSIONS', parse: parseBool, description: 'accept a token or key file readable by group or others, with a warning (default: refuse to start)' },
  { key: 'stopShardsOnExit', flag: 'stop-shards-on-exit', env: 'MUSTER_STOP_SHARDS_ON_EXIT', parse: parseBool, description: 'stop every shard when the agent stops (default: leave them running, to be adopted)' },
  { key: 'logRetentionMs', flag: 'log-retention-ms', env: 'MUSTER_LOG_RETENTION_MS', parse: (s) => Number(s), description: 'finished shards\' log files are deleted this long after their last write (default 24 h)' },
  { key: 'logAttemptsKept', flag: 'log-attempts-kept', env: 'MUSTER_LOG_ATTEMPTS_KEPT', parse: (s) => Number(s), description: 'logs of at most this many finished attempts are kept per gang (default 5)' },
  { key: 'logGangsKept', flag: 'log-gangs-kept', env: 'MUSTER_LOG_GANGS_KEPT', parse: (s) => Number(s), description: 'logs (and homes) of at most this many gangs that run nothing here are kept, newest first (default 1000)' },
  { key: 'metricsListen', flag: 'metrics-listen', env: 'MUSTER_METRICS_LISTEN', description: 'Prometheus endpoint host:port ("" disables)' },
  { key: 'reconnectMaxMs', flag: 'reconnect-max-ms', env: 'MUSTER_RECONNECT_MAX_MS', parse: (s) => Number(s), description: 'longest wait between reconnect attempts' },
  { key: 'watchNodeCordon', flag: 'watch-node-cordon', env: 'MUSTER_WATCH_NODE_CORDON', parse: parseBool, description: 'drain this node while its Kubernetes Node (named by --node-id) is cordoned (default: on in a pod with a service account token)' },
  { key: 'kubeApi', flag: 'kube-api', env: 'MUSTER_KUBE_API', description: 'Kubernetes API base URL (default: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT)' },
  { key: 'serviceAccountDir', flag: 'service-account-dir', env: 'MUSTER_SERVICE_ACCOUNT_DIR', description: 'directory holding the service account token and ca.crt' },
  { key: 'nodePollMs', flag: 'node-poll-ms', env: 'MUSTER_NODE_POLL_MS', parse: (s) => Number(s), description: 'how often the Kubernetes Node is read for its cordon' },
  { key: 'metricsTokenFile', flag: 'metrics-token-file', env: 'MUSTER_METRICS_TOKEN_FILE', description: 'scrapes of /metrics must send "Authorization: Bearer <this file\'s token>" (≥ 32 bytes; re-read when it changes)' },
  { key: 'metricsTlsCert', flag: 'metrics-tls-cert', env: 'MUSTER_METRICS_TLS_CERT', description: 'serve /metrics over HTTPS with this certificate (PEM)' },
  { key: 'metricsTlsKey', flag: 'metrics-tls-key', env: 'MUSTER_METRICS_TLS_KEY', description: 'the metrics HTTPS certificate\'s key (PEM)' },
  { key: 'otlpEndpoint', flag: 'otlp-endpoint', description: OTLP_ENDPOINT_HELP },
];

export function loadWorkerConfig(sources: ConfigSources): WorkerConfig {
  return loadConfig(workerConfigSchema, workerOptions, sources);
}
