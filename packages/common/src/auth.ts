/**
 * The cluster token: created by the head on first start (32 random bytes,
 * base64url, file mode 0600 in its data dir) and sent by every SDK client and
 * agent as `authorization: Bearer <token>` gRPC metadata.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Metadata } from '@grpc/grpc-js';
import { ErrorCode, MusterError } from './errors.js';
import { checkSecretFile, type SecretFileOptions } from './secret-file.js';

export const AUTH_HEADER = 'authorization';

/**
 * The shortest token a head accepts, in bytes: a generated one has 43
 * (32 random bytes, base64url). An empty or short token file would make the
 * head accept an empty or guessable credential from anyone.
 */
export const MIN_TOKEN_BYTES = 32;

/**
 * Reads the token at `path`, creating it (0600) when absent. An existing
 * file whose token is empty or shorter than MIN_TOKEN_BYTES is refused: the
 * head does not start on it; so is one readable by group or others
 * (secret-file.ts), unless `opts.allowInsecurePermissions`.
 */
export async function loadOrCreateToken(path: string, opts: SecretFileOptions = {}): Promise<string> {
  try {
    const text = await readFile(path, 'utf8');
    checkSecretFile(path, 'cluster token file', opts);
    return checkTokenStrength(text.trim(), path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const token = randomBytes(32).toString('base64url');
  try {
    await writeFile(path, `${token}\n`, { mode: 0o600, flag: 'wx' });
  } catch (e) {
    // Lost a race with another process creating it: use theirs, checked as any existing file.
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateToken(path, opts);
    throw e;
  }
  await chmod(path, 0o600);
  return token;
}

function checkTokenStrength(token: string, path: string): string {
  const bytes = Buffer.byteLength(token);
  if (bytes >= MIN_TOKEN_BYTES) return token;
  throw new MusterError(
    ErrorCode.FAILED_PRECONDITION,
    `cluster token file ${path} holds ${bytes === 0 ? 'no token' : `a ${bytes}-byte token`}; at least ${MIN_TOKEN_BYTES} bytes are required (remove the file and the head creates a strong one, or write e.g. \`openssl rand -base64 32\` into it)`,
  );
}

/**
 * Reads a token file written by the head (for agents and clients); one
 * readable by group or others is refused (secret-file.ts), unless
 * `opts.allowInsecurePermissions`.
 */
export async function readToken(path: string, opts: SecretFileOptions = {}): Promise<string> {
  checkSecretFile(path, 'cluster token file', opts);
  try {
    const token = (await readFile(path, 'utf8')).trim();
    if (token) return token;
  } catch (e) {
    throw new MusterError(ErrorCode.UNAUTHENTICATED, `cannot read cluster token file ${path}: ${(e as Error).message}`, { cause: e });
  }
  throw new MusterError(ErrorCode.UNAUTHENTICATED, `cluster token file ${path} is empty`);
}

export function tokenMetadata(token: string): Metadata {
  const md = new Metadata();
  md.set(AUTH_HEADER, `Bearer ${token}`);
  return md;
}

/**
 * The credential of an `Authorization: Bearer <credential>` header (the
 * scheme is case-insensitive, RFC 6750); undefined for anything else. The one
 * parser of the head's token check, the metrics endpoints and the gateway.
 */
export function bearerToken(header: unknown): string | undefined {
  return typeof header === 'string' && /^bearer /i.test(header) ? header.slice('bearer '.length).trim() : undefined;
}
