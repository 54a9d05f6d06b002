/**
 * How CLI commands find the cluster: --address / MUSTER_ADDRESS (default
 * 127.0.0.1:7400, what `muster up` binds; with several heads, all of them,
 * comma-separated: the SDK finds the leader) and --token-file /
 * MUSTER_TOKEN_FILE (default .muster/head/token, where `muster up` keeps it)
 * or MUSTER_TOKEN. MUSTER_CALL_TIMEOUT_MS bounds each call, retries across
 * heads included (default 10 s).
 *
 * A call that has to retry (the head is down or restarting, a standby
 * refuses) says so on stderr, at most every 2 s, with the time it has left:
 * a command against a dead head is not silent for its whole timeout.
 */
import type { Command } from 'commander';
import { connect, type Cluster, type RetryNotice } from '@muster/sdk';
import { CLIENT_ENV } from '@muster/contracts';

export interface ConnectionFlags {
  address?: string;
  tokenFile?: string;
}

export function addConnectionFlags(cmd: Command): Command {
  return cmd
    .option('--address <host:port,...>', 'head address, or every head of an HA cluster comma-separated [env MUSTER_ADDRESS] (default 127.0.0.1:7400)')
    .option('--token-file <file>', 'cluster token file [env MUSTER_TOKEN_FILE] (default .muster/head/token)');
}

export function connectFromFlags(flags: ConnectionFlags): Promise<Cluster> {
  const address = flags.address ?? process.env[CLIENT_ENV.ADDRESS] ?? '127.0.0.1:7400';
  const timeout = process.env.MUSTER_CALL_TIMEOUT_MS;
  const common = { address, onRetry: retryReporter(), ...(timeout ? { callTimeoutMs: Number(timeout) } : {}) };
  const token = process.env[CLIENT_ENV.TOKEN];
  if (token && !flags.tokenFile) return connect({ ...common, token });
  return connect({ ...common, tokenFile: flags.tokenFile ?? process.env[CLIENT_ENV.TOKEN_FILE] ?? '.muster/head/token' });
}

/** Says on stderr that a call is retrying, and why: the first time, then at most every 2 s. */
function retryReporter(): (n: RetryNotice) => void {
  let said = 0;
  return (n) => {
    if (Date.now() - said < 2_000) return;
    said = Date.now();
    process.stderr.write(`muster: ${n.address}: ${n.error.message} [${n.error.code}]; trying again (${(n.deadlineInMs / 1000).toFixed(1)} s left)\n`);
  };
}

/** Connects, runs `fn`, and closes the connection whatever happens. */
export async function withCluster(flags: ConnectionFlags, fn: (c: Cluster) => Promise<void>): Promise<void> {
  const cluster = await connectFromFlags(flags);
  try {
    await fn(cluster);
  } finally {
    cluster.close();
  }
}
