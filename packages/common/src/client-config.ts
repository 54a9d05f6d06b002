/**
 * The client config file: named contexts, each saying how to reach one
 * cluster (its heads, the CA that proves them, this client's certificate
 * and key, optionally a token file), and which one is current — as a
 * kubeconfig does. The CLI (`--context`, `muster use-context`, `muster
 * config get-contexts`) and the SDK (`connect({ context })`) read the same
 * file; `muster up` writes a context for the cluster it starts.
 *
 *   # ~/.muster/config.yaml (or $MUSTER_CONFIG)
 *   current-context: local
 *   contexts:
 *     local:
 *       address: 127.0.0.1:7400
 *       ca: /home/me/.muster/local/pki/ca.crt
 *       cert: /home/me/.muster/local/pki/admin.crt
 *       key: /home/me/.muster/local/pki/admin.key
 *
 * The file holds paths, never key material or a token: a secret stays in its
 * own 0600 file. Relative paths are relative to the config file's directory.
 * Validated once when read (unknown keys refused, with "did you mean").
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { z } from 'zod';
import { CLIENT_ENV } from '@muster/contracts';
import { ErrorCode, MusterError } from './errors.js';
import { didYouMeanKeys, formatIssues } from './strict.js';

/** A config file larger than this is refused (it holds a few paths per context). */
const MAX_CONFIG_BYTES = 1 << 20;
/** Contexts one file may name. */
export const MAX_CONTEXTS = 256;

const path = z.string().min(1).max(4096);

export const clientContextSchema = z.strictObject(
  {
    /** Head address "host:port", or every head of an HA cluster comma-separated. */
    address: z.string().min(1).max(4096),
    /** The cluster CA file (TLS). */
    ca: path.optional(),
    /** This client's certificate and key files (its identity). */
    cert: path.optional(),
    key: path.optional(),
    /** A file holding the cluster token (the admin's break-glass credential). */
    tokenFile: path.optional(),
    /** Plaintext, to a head started with --insecure. */
    insecure: z.boolean().optional(),
    /** The head's web dashboard URL (`muster dashboard`; `muster up` writes it). */
    dashboard: z.string().url().max(4096).optional(),
  },
  didYouMeanKeys,
);

export const clientConfigSchema = z.strictObject(
  {
    'current-context': z.string().min(1).max(253).optional(),
    contexts: z
      .record(z.string().min(1).max(253), clientContextSchema)
      .refine((m) => Object.keys(m).length <= MAX_CONTEXTS, `at most ${MAX_CONTEXTS} contexts`)
      .default({}),
  },
  didYouMeanKeys,
);

export type ClientContext = z.infer<typeof clientContextSchema>;
export type ClientConfig = z.infer<typeof clientConfigSchema>;

/** $MUSTER_CONFIG, else ~/.muster/config.yaml. */
export function clientConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return env[CLIENT_ENV.CONFIG] || join(homedir(), '.muster', 'config.yaml');
}

/** Reads and validates the config file; a file that does not exist is an empty config. */
export async function readClientConfig(file: string = clientConfigPath()): Promise<ClientConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { contexts: {} };
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `client config ${file}: ${(e as Error).message}`, { cause: e });
  }
  if (Buffer.byteLength(text) > MAX_CONFIG_BYTES) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `client config ${file} is larger than ${MAX_CONFIG_BYTES} bytes`);
  let data: unknown;
  try {
    data = parseYaml(text) ?? {};
  } catch (e) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `client config ${file}: ${(e as Error).message}`, { cause: e });
  }
  const parsed = clientConfigSchema.safeParse(data);
  if (!parsed.success) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `client config ${file}: ${formatIssues(parsed.error.issues)}`);
  return parsed.data;
}

/**
 * The context `name` (default: the file's current-context) with its paths
 * made absolute; MUSTER_INVALID_ARGUMENT naming the known contexts if there
 * is no such context.
 */
export async function loadClientContext(name?: string, file: string = clientConfigPath()): Promise<ClientContext & { name: string }> {
  const config = await readClientConfig(file);
  const want = name ?? config['current-context'];
  if (!want) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `client config ${file}: no context given and no current-context set: give the head's address and TLS files (or insecure), run \`muster up\` (it writes a context), or \`muster use-context <name>\``);
  const ctx = config.contexts[want];
  if (!ctx) {
    const known = Object.keys(config.contexts);
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `client config ${file}: no context "${want}" (${known.length ? `known: ${known.join(', ')}` : 'it has none'})`, { details: { field: 'context' } });
  }
  const base = dirname(resolve(file));
  const abs = (p: string | undefined) => (p === undefined || isAbsolute(p) ? p : join(base, p));
  return { ...ctx, ca: abs(ctx.ca), cert: abs(ctx.cert), key: abs(ctx.key), tokenFile: abs(ctx.tokenFile), name: want };
}

/** Writes the config file (0600, its directory 0700), atomically. */
export async function writeClientConfig(config: ClientConfig, file: string = clientConfigPath()): Promise<void> {
  const valid = clientConfigSchema.parse(config);
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, stringifyYaml(valid), { mode: 0o600 });
  await rename(tmp, file);
}

/** Adds or replaces context `name`, and makes it current unless told not to. */
export async function setClientContext(name: string, ctx: ClientContext, opts: { current?: boolean; file?: string } = {}): Promise<void> {
  const file = opts.file ?? clientConfigPath();
  const config = await readClientConfig(file);
  config.contexts[name] = ctx;
  if (opts.current ?? true) config['current-context'] = name;
  await writeClientConfig(config, file);
}
