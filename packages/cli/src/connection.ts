/**
 * How CLI commands find the cluster, kubectl's way: flags win over the
 * environment, which wins over the context of the client config file.
 *
 *   flags        --address --tls-ca --tls-cert --tls-key --insecure
 *                --token-file --context
 *   environment  MUSTER_ADDRESS MUSTER_TLS_CA MUSTER_TLS_CERT MUSTER_TLS_KEY
 *                MUSTER_INSECURE MUSTER_TOKEN_FILE MUSTER_TOKEN MUSTER_CONTEXT
 *   context      `--context` / MUSTER_CONTEXT, else current-context of
 *                MUSTER_CONFIG (default ~/.muster/config.yaml), which
 *                `muster up` writes
 *
 * A context is used when the flags and environment leave out the address or
 * the transport (TLS files or --insecure); what they do give overrides the
 * context's entry. No secret is ever needed on the command line: a
 * certificate's key and the token are read from files. MUSTER_CALL_TIMEOUT_MS
 * bounds each call, retries across heads included (default 10 s).
 *
 * A call that has to retry (the head is down or restarting, a standby
 * refuses) says so on stderr, at most every 2 s, with the time it has left:
 * a command against a dead head is not silent for its whole timeout.
 */
import type { Command } from 'commander';
import { connect, connectOptionsFromEnv, type Cluster, type ConnectOptions, type RetryNotice } from '@muster/sdk';
import { CLIENT_ENV } from '@muster/contracts';

export interface ConnectionFlags {
  address?: string;
  tokenFile?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  insecure?: boolean;
  context?: string;
}

export function addConnectionFlags(cmd: Command): Command {
  return cmd
    .option('--address <host:port,...>', 'head address, or every head of an HA cluster comma-separated [env MUSTER_ADDRESS] (default: the context\'s)')
    .option('--tls-ca <file>', 'cluster CA file: the head must present a certificate it signed, with role head [env MUSTER_TLS_CA]')
    .option('--tls-cert <file>', 'your client certificate (`muster cert client`): your identity [env MUSTER_TLS_CERT]')
    .option('--tls-key <file>', 'your client key [env MUSTER_TLS_KEY]')
    .option('--insecure', 'plaintext, to a head started with --insecure [env MUSTER_INSECURE]')
    .option('--token-file <file>', 'cluster token file (the admin break-glass credential) [env MUSTER_TOKEN_FILE]')
    .option('--context <name>', 'context of the client config file [env MUSTER_CONTEXT] (default: its current-context)');
}

/** The environment the flags override: a flag replaces its variable, and a transport or credential flag the other's. */
export function flagsOverEnv(flags: ConnectionFlags, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env };
  const set = (name: string, v: string | undefined) => {
    if (v !== undefined) out[name] = v;
  };
  if (flags.tlsCa !== undefined || flags.insecure) {
    for (const n of [CLIENT_ENV.TLS_CA, CLIENT_ENV.TLS_CERT, CLIENT_ENV.TLS_KEY, CLIENT_ENV.INSECURE]) delete out[n];
  }
  if (flags.tokenFile !== undefined) delete out[CLIENT_ENV.TOKEN];
  set(CLIENT_ENV.ADDRESS, flags.address);
  set(CLIENT_ENV.TLS_CA, flags.tlsCa);
  set(CLIENT_ENV.TLS_CERT, flags.tlsCert);
  set(CLIENT_ENV.TLS_KEY, flags.tlsKey);
  set(CLIENT_ENV.INSECURE, flags.insecure ? 'true' : undefined);
  set(CLIENT_ENV.TOKEN_FILE, flags.tokenFile);
  set(CLIENT_ENV.CONTEXT, flags.context);
  return out;
}

/** connect() options from the flags, the environment and the config file, in that order. */
export function connectionOptions(flags: ConnectionFlags, env: NodeJS.ProcessEnv = process.env): ConnectOptions {
  const timeout = env.MUSTER_CALL_TIMEOUT_MS;
  return { ...connectOptionsFromEnv(flagsOverEnv(flags, env)), onRetry: retryReporter(), ...(timeout ? { callTimeoutMs: Number(timeout) } : {}) };
}

/** `extra`: connect() options of the command's own (the gateway's `direct`). */
export function connectFromFlags(flags: ConnectionFlags, extra: Partial<ConnectOptions> = {}): Promise<Cluster> {
  return connect({ ...connectionOptions(flags), ...extra });
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
