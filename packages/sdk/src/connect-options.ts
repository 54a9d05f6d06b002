/**
 * connect()'s options: the schema (strict, with "did you mean"), how a
 * context of the client config file fills what they leave out (the options
 * win, as kubectl's flags do), and the checks that leave connect() an
 * address, a transport and a credential to dial with.
 */
import { z } from 'zod';
import { ErrorCode, MusterError, didYouMeanKeys, issueLines, loadClientContext } from '@muster/common';
import { isHostPort } from '@muster/contracts';
import type { RetryNotice } from './endpoints.js';

/** One head address; the message names the entry, so a typo in a list of five is found at once. */
const headAddress = z
  .string()
  .trim()
  .refine((v) => isHostPort(v, 'dial'), { error: (issue) => `${JSON.stringify(issue.input)} is not host:port` });

const connectOptionsSchema = z
  .strictObject({
    /** Head address "host:port", or every head of an HA cluster, comma-separated. */
    address: z
      .string()
      .transform((list) => list.split(','))
      .pipe(z.array(headAddress))
      .optional(),
    /** Head addresses "host:port" (with `address`, both are used). */
    addresses: z.array(headAddress).optional(),
    /** The cluster token, or… */
    token: z.string().min(1).optional(),
    /** …a file holding it (the head writes <data dir>/token). Not needed with a client certificate. */
    tokenFile: z.string().min(1).optional(),
    /** TLS: the cluster CA file, and this client's certificate and key files (its identity). */
    tls: z.strictObject({ ca: z.string().min(1), cert: z.string().min(1).optional(), key: z.string().min(1).optional() }, didYouMeanKeys)
      .refine((t) => !t.cert === !t.key, { message: 'cert and key go together', path: ['cert'] })
      .optional(),
    /** Plaintext, to a head started with --insecure: nothing proves who answers. */
    insecure: z.literal(true).optional(),
    /** A context of the client config file (MUSTER_CONFIG, ~/.muster/config.yaml); true: its current-context. */
    context: z.union([z.string().min(1), z.literal(true)]).optional(),
    /** The client config file the context is read from (default $MUSTER_CONFIG, else ~/.muster/config.yaml). */
    configFile: z.string().min(1).optional(),
    /** Deadline of each control call, retries across heads included, ms. */
    callTimeoutMs: z.number().int().positive().default(10_000),
    /**
     * The data plane's direct path (docs/dataplane.md, "The direct path"):
     * this client's routers — a handle's calls, `router()` — call each
     * replica on a TLS link of its own beside NATS, one broker hop less each
     * way; NATS carries calls until a link is up, and whenever it is not.
     * Default true; false: calls go on NATS only. A router's own `direct`
     * option wins.
     */
    direct: z.boolean().default(true),
    /** Called before each retry of a control call (a head down, a standby refusing): for progress output. */
    onRetry: z.custom<(notice: RetryNotice) => void>((v) => typeof v === 'function', { error: 'expected a function' }).optional(),
  }, didYouMeanKeys)
  .refine((o) => !(o.tls && o.insecure), { message: 'give tls or insecure, not both', path: ['insecure'] });

export type ConnectOptions = z.input<typeof connectOptionsSchema>;

type ParsedOptions = z.output<typeof connectOptionsSchema>;

function invalidOption(field: string, message: string): MusterError {
  return new MusterError(ErrorCode.INVALID_ARGUMENT, `connect(): ${field}: ${message}`, { details: { field } });
}

function parseOptions(options: ConnectOptions): ParsedOptions {
  const parsed = connectOptionsSchema.safeParse(options);
  if (parsed.success) return parsed.data;
  const first = parsed.error.issues[0]!;
  const i = first.code === 'unrecognized_keys' ? issueLines([first])[0]! : { path: first.path.join('.'), message: first.message };
  throw invalidOption(i.path, i.message);
}

/** The options, with what they leave out taken from the context they name (options win, as kubectl's flags do). */
async function withContext(o: ParsedOptions): Promise<ParsedOptions> {
  if (o.context === undefined) return o;
  const ctx = await loadClientContext(o.context === true ? undefined : o.context, o.configFile);
  const hasAddress = (o.address?.length ?? 0) + (o.addresses?.length ?? 0) > 0;
  const fromCtx = parseOptions({
    address: ctx.address,
    ...(ctx.ca ? { tls: { ca: ctx.ca, ...(ctx.cert ? { cert: ctx.cert } : {}), ...(ctx.key ? { key: ctx.key } : {}) } } : {}),
    ...(ctx.insecure ? { insecure: true } : {}),
    ...(ctx.tokenFile ? { tokenFile: ctx.tokenFile } : {}),
  });
  const secured = o.tls !== undefined || o.insecure !== undefined;
  const authed = o.token !== undefined || o.tokenFile !== undefined;
  return {
    ...o,
    ...(hasAddress ? {} : { address: fromCtx.address }),
    ...(secured ? {} : { tls: fromCtx.tls, insecure: fromCtx.insecure }),
    ...(authed ? {} : { tokenFile: fromCtx.tokenFile }),
  };
}


/** Options checked, a context merged in, the heads listed once: what connect() dials with. */
export type ResolvedConnectOptions = ParsedOptions & { heads: string[] };

/**
 * Validates `options`, fills what they leave out from the context they name,
 * and checks that an address, a transport (tls or insecure) and a credential
 * (a client certificate or the token) are there; MUSTER_INVALID_ARGUMENT
 * naming the field otherwise.
 */
export async function resolveConnectOptions(options: ConnectOptions): Promise<ResolvedConnectOptions> {
  const o = await withContext(parseOptions(options));
  const heads = [...new Set([...(o.address ?? []), ...(o.addresses ?? [])])];
  if (heads.length === 0) throw invalidOption('address', 'give address or addresses (or a context)');
  if (!o.tls && !o.insecure) {
    throw invalidOption('tls', 'give tls: { ca, cert, key } (the cluster CA and a client certificate: `muster cert`), a context, or insecure: true for a head started with --insecure');
  }
  if (!o.token && !o.tokenFile && !o.tls?.cert) throw invalidOption('token', 'give a client certificate (tls.cert, tls.key), token or tokenFile');
  return { ...o, heads };
}
