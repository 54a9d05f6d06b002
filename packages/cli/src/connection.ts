/**
 * How CLI commands find the cluster: --address / MUSTER_ADDRESS (default
 * 127.0.0.1:7400, what `muster up` binds; with several heads, all of them,
 * comma-separated: the SDK finds the leader) and --token-file /
 * MUSTER_TOKEN_FILE (default .muster/head/token, where `muster up` keeps it)
 * or MUSTER_TOKEN.
 */
import type { Command } from 'commander';
import { connect, type Cluster } from '@muster/sdk';

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
  const address = flags.address ?? process.env.MUSTER_ADDRESS ?? '127.0.0.1:7400';
  const token = process.env.MUSTER_TOKEN;
  if (token && !flags.tokenFile) return connect({ address, token });
  return connect({ address, tokenFile: flags.tokenFile ?? process.env.MUSTER_TOKEN_FILE ?? '.muster/head/token' });
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
