/**
 * Connect options from a process's environment: what a program started by
 * `muster up --run`, a CI job or a container is given instead of flags
 * (CLIENT_ENV of @muster/contracts: MUSTER_ADDRESS, MUSTER_TLS_CA,
 * MUSTER_TLS_CERT, MUSTER_TLS_KEY, MUSTER_INSECURE, MUSTER_TOKEN_FILE,
 * MUSTER_TOKEN, MUSTER_CONTEXT, MUSTER_CONFIG). What the environment leaves
 * out comes from the config file's context (MUSTER_CONTEXT, else its
 * current-context), so a program with an empty environment reaches the
 * cluster `muster up` started last.
 *
 *   const cluster = await connect(connectOptionsFromEnv());
 */
import { clientConfigPath, ErrorCode, MusterError } from '@muster/common';
import { CLIENT_ENV } from '@muster/contracts';
import type { ConnectOptions } from './connect-options.js';

export function connectOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): ConnectOptions {
  const get = (name: string) => env[name] || undefined;
  const address = get(CLIENT_ENV.ADDRESS);
  const ca = get(CLIENT_ENV.TLS_CA);
  const cert = get(CLIENT_ENV.TLS_CERT);
  const key = get(CLIENT_ENV.TLS_KEY);
  const insecure = /^(1|true|yes|on)$/i.test(get(CLIENT_ENV.INSECURE) ?? '');
  const token = get(CLIENT_ENV.TOKEN);
  const tokenFile = get(CLIENT_ENV.TOKEN_FILE);
  const context = get(CLIENT_ENV.CONTEXT);
  // A client certificate without its CA would be dropped for the context's whole TLS block
  // (its certificate too): the call would go out as someone else. Say so instead.
  if ((cert !== undefined || key !== undefined) && ca === undefined) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `${CLIENT_ENV.TLS_CERT}/${CLIENT_ENV.TLS_KEY} (--tls-cert/--tls-key) given without ${CLIENT_ENV.TLS_CA} (--tls-ca): give the cluster CA too, or put the pair in a context`, { details: { field: 'tlsCa' } });
  }
  // Complete without a context: an address, and TLS or plaintext said.
  const complete = address !== undefined && (ca !== undefined || insecure);
  return {
    ...(context ? { context } : complete ? {} : { context: true as const }),
    configFile: clientConfigPath(env),
    ...(address ? { address } : {}),
    ...(ca ? { tls: { ca, ...(cert ? { cert } : {}), ...(key ? { key } : {}) } } : {}),
    ...(insecure && !ca ? { insecure: true as const } : {}),
    ...(token ? { token } : tokenFile ? { tokenFile } : {}),
  };
}
