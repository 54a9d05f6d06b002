export { startWorker, type Worker } from './worker.js';
export { Agent, type AgentOptions, type AgentState } from './agent.js';
export { loadWorkerConfig, workerConfigSchema, workerOptions, type WorkerConfig } from './config.js';
export * from './inventory/index.js';
