/**
 * A running worker: discovers the inventory, serves metrics, keeps the agent
 * registered with the head and, in Kubernetes, drains the node while it is
 * cordoned (kube-node.ts).
 */
import { existsSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { ErrorCode, MusterError, grpcChannelCredentials, parseHostPort, readToken, type Logger } from '@muster/common';
import { startMetrics } from '@muster/common/metrics';
import { startTracing } from '@muster/common/tracing';
import { Agent } from './agent.js';
import { workerTlsFiles, type WorkerConfig } from './config.js';
import { checkInventoryLimits, discoverInventory } from './inventory/index.js';
import { hasServiceAccount, kubeApiFromEnv, NodeCordonWatch } from './kube-node.js';
import { ShardAgent } from './shard-agent.js';
import { ResourceReporter } from './resources/reporter.js';
import { ResourceSampler } from './resources/sampler.js';
import { LocalSupervisor } from './shards/index.js';
import { checkHomeRootReachable, defaultHomeRoot, makeHomeRoot } from './shards/rank-homes.js';
import { hostFacts, resolveRankUsers, type RankUserPolicy } from './shards/rank-users.js';

export interface Worker {
  readonly agent: Agent;
  readonly metricsAddress: string | undefined;
  close(): Promise<void>;
}

export async function startWorker(config: WorkerConfig, log: Logger): Promise<Worker> {
  const secretFiles = { allowInsecurePermissions: config.allowInsecurePermissions, warn: (m: string) => log.warn(m) };
  const tls = workerTlsFiles(config);
  const token = config.token ?? (config.tokenFile ? await readToken(config.tokenFile, secretFiles) : undefined);
  // A node certificate is the node's credential; without one, the cluster token is.
  if (!token && !tls?.cert) {
    throw new MusterError(ErrorCode.UNAUTHENTICATED, 'no credential: give this node\'s certificate (--tls-cert, --tls-key) or the cluster token (--token-file, MUSTER_TOKEN)', { details: { field: 'token' } });
  }
  if (!tls) log.warn('--insecure: the head link is plaintext: the token travels in clear and nothing proves that a head is one');
  const channel = tls ? grpcChannelCredentials(tls, secretFiles) : credentials.createInsecure();
  const ranks = await rankPlacement(config, log);
  const kubeApi = config.kubeApi ?? kubeApiFromEnv();
  // Default: on in a pod (KUBERNETES_SERVICE_HOST set) with a service account token, off elsewhere.
  const watchCordon = config.watchNodeCordon ?? hasServiceAccount(config.serviceAccountDir);
  if (watchCordon && (!kubeApi || !existsSync(join(config.serviceAccountDir, 'token')))) {
    throw new MusterError(
      ErrorCode.INVALID_ARGUMENT,
      `--watch-node-cordon needs the Kubernetes API (${kubeApi ?? 'no --kube-api and no KUBERNETES_SERVICE_HOST: not in a pod?'}) and a service account token in ${config.serviceAccountDir}`,
      { details: { field: 'watchNodeCordon' } },
    );
  }
  // Refused here, by name, rather than by the head on every registration attempt.
  const inventory = checkInventoryLimits(await discoverInventory({
    profile: config.profile,
    topoFile: config.topoFile,
    queryGpuFile: config.queryGpuFile,
    listFile: config.listFile,
    nvlinkDomain: config.nvlinkDomain,
    log,
  }));
  const metrics = await startMetrics('worker', config.metricsListen, { tokenFile: config.metricsTokenFile, tlsCert: config.metricsTlsCert, tlsKey: config.metricsTlsKey }, { global: true });
  const tracing = startTracing({ service: 'muster-worker', endpoint: config.otlpEndpoint, warn: (m) => log.warn(m) });
  if (tracing.url) log.info({ traces: tracing.url, sampler: tracing.sampler }, 'tracing on');
  const address = config.address || defaultAddress(config.head[0]!);
  // The supervisor reports through the shard agent, which needs the supervisor: bind late.
  const late: { agent?: ShardAgent } = {};
  const supervisor = await LocalSupervisor.open({
    dataDir: config.dataDir,
    ranks,
    log,
    onStatus: (s) => late.agent?.onStatus(s),
    logRetention: { maxAgeMs: config.logRetentionMs, attemptsKept: config.logAttemptsKept, gangsKept: config.logGangsKept },
  });
  // HTTP bridges connect to NATS as their group's user, from the launch order (shard-agent.ts): the agent has no NATS user.
  const shardAgent = (late.agent = new ShardAgent(supervisor, log, address));
  const agent = new Agent(
    {
      heads: config.head,
      token,
      credentials: { channel, tls: tls !== undefined },
      nodeId: config.nodeId,
      address,
      labels: config.labels,
      taints: config.taints,
      inventory,
      reconnectMaxMs: config.reconnectMaxMs,
      shards: shardAgent,
    },
    log,
    metrics,
  );
  // What each replica's ranks here use (adopted ones too), sent on the agent's stream (resources/): GPU values
  // from one long-running nvidia-smi on real GPUs (stopped at close), stand-ins on a profile.
  const gpu = inventory.gpus.length === 0 ? 'none' : inventory.source === 'nvidia-smi' ? 'nvidia-smi' : 'simulated';
  const sampler = new ResourceSampler({ gpu, gpuCount: inventory.gpus.length, log });
  const resources = new ResourceReporter({ sampler, ranks: () => supervisor.ranks(), send: (m) => agent.offer(m), log });
  resources.start();
  let first = true;
  agent.onRegistered = (r) => {
    if (first) log.info({ nodeId: r.nodeId, headId: r.headId, gpus: inventory.gpus.length, metrics: metrics.address }, 'worker registered');
    first = false;
  };
  log.info({ heads: config.head, gpus: inventory.gpus.length, source: inventory.source, address, watchNodeCordon: watchCordon, ranks: describePolicy(ranks.policy), shardHomes: ranks.homeRoot }, 'worker starting');
  agent.start();
  const cordon = watchCordon
    ? new NodeCordonWatch({ nodeName: config.nodeId, apiBase: kubeApi!, serviceAccountDir: config.serviceAccountDir, pollMs: config.nodePollMs, onChange: (d) => agent.setDrain(d), log })
    : undefined;
  cordon?.start();
  return {
    agent,
    metricsAddress: metrics.address,
    async close() {
      cordon?.stop();
      resources.stop();
      await sampler.close();
      await agent.stop();
      await supervisor.close({ stopShards: config.stopShardsOnExit });
      await metrics.close();
      await tracing.shutdown();
    },
  };
}

/** Who ranks run as and where their homes go; refused at start when the flags cannot be honoured here. */
async function rankPlacement(config: WorkerConfig, log: Logger): Promise<{ policy: RankUserPolicy; homeRoot: string }> {
  const policy = await resolveRankUsers(config, hostFacts(), (m) => log.warn(m));
  const homeRoot = config.shardHomeDir ?? defaultHomeRoot(config.dataDir);
  if (policy.kind === 'worker') return { policy, homeRoot };
  makeHomeRoot(homeRoot, true);
  checkHomeRootReachable(homeRoot, policy.kind === 'fixed' ? policy.user : { uid: policy.first, gid: policy.first });
  return { policy, homeRoot };
}

function describePolicy(p: RankUserPolicy): string {
  if (p.kind === 'per-gang') return `a uid per gang from ${p.first}-${p.last}`;
  if (p.kind === 'fixed') return `uid ${p.user.uid} gid ${p.user.gid}`;
  return "the worker's uid";
}

/** Loopback when the head is local (a dev cluster), else the first external IPv4. */
function defaultAddress(head: string): string {
  const { host } = parseHostPort(head, '--head', 'dial');
  if (host === 'localhost' || host.startsWith('127.') || host === '::1') return '127.0.0.1';
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}
