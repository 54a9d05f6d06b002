/**
 * A running worker: discovers the inventory, serves metrics, keeps the agent
 * registered with the head and, in Kubernetes, drains the node while it is
 * cordoned (kube-node.ts).
 */
import { existsSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, MusterError, parseHostPort, readToken, type Logger } from '@muster/common';
import { startMetrics } from '@muster/common/metrics';
import { Agent } from './agent.js';
import type { WorkerConfig } from './config.js';
import { discoverInventory } from './inventory/index.js';
import { hasServiceAccount, kubeApiFromEnv, NodeCordonWatch } from './kube-node.js';
import { ShardAgent } from './shard-agent.js';
import { LocalSupervisor } from './shards/index.js';

export interface Worker {
  readonly agent: Agent;
  readonly metricsAddress: string | undefined;
  close(): Promise<void>;
}

export async function startWorker(config: WorkerConfig, log: Logger): Promise<Worker> {
  const token = config.token ?? (config.tokenFile ? await readToken(config.tokenFile) : undefined);
  if (!token) {
    throw new MusterError(ErrorCode.UNAUTHENTICATED, 'no cluster token: pass --token-file <head data dir>/token or set MUSTER_TOKEN', { details: { field: 'token' } });
  }
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
  const inventory = await discoverInventory({
    profile: config.profile,
    topoFile: config.topoFile,
    queryGpuFile: config.queryGpuFile,
    listFile: config.listFile,
    nvlinkDomain: config.nvlinkDomain,
    log,
  });
  const metrics = await startMetrics('worker', config.metricsListen);
  const address = config.address || defaultAddress(config.head[0]!);
  // The supervisor reports through the shard agent, which needs the supervisor: bind late.
  const late: { agent?: ShardAgent } = {};
  const supervisor = await LocalSupervisor.open({
    dataDir: config.dataDir,
    log,
    onStatus: (s) => late.agent?.onStatus(s),
    logRetention: { maxAgeMs: config.logRetentionMs, attemptsKept: config.logAttemptsKept },
  });
  // HTTP bridges connect to NATS as their group's user, from the launch order (shard-agent.ts): the agent has no NATS user.
  const shardAgent = (late.agent = new ShardAgent(supervisor, log));
  const agent = new Agent(
    {
      heads: config.head,
      token,
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
  let first = true;
  agent.onRegistered = (r) => {
    if (first) log.info({ nodeId: r.nodeId, headId: r.headId, gpus: inventory.gpus.length, metrics: metrics.address }, 'worker registered');
    first = false;
  };
  log.info({ heads: config.head, gpus: inventory.gpus.length, source: inventory.source, address, watchNodeCordon: watchCordon }, 'worker starting');
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
      await agent.stop();
      await supervisor.close({ stopShards: config.stopShardsOnExit });
      await metrics.close();
    },
  };
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
