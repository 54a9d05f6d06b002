export { startWorker, type Worker } from './worker.js';
export { Agent, type AgentOptions, type AgentState } from './agent.js';
export { loadWorkerConfig, workerConfigSchema, workerOptions, type WorkerConfig } from './config.js';
export * from './inventory/index.js';
export { LocalSupervisor } from './shards/index.js';
export type * from './shards/types.js';
export { ShardAgent } from './shard-agent.js';
export { NodeCordonWatch, kubeApiFromEnv, hasServiceAccount, type NodeCordonWatchOptions } from './kube-node.js';
