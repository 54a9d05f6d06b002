/**
 * Permissions of secret files (cluster token, private keys, signing seeds):
 * a secret that other local users can read is not a secret, so a file whose
 * mode grants group or others any access is refused at start, with an error
 * that names the file and the fix. An operator who knows better (a volume
 * that cannot be made private) passes `allowInsecurePermissions` and gets a
 * warning instead.
 *
 * The check reads the mode of the file the path resolves to (stat, not
 * lstat): a Kubernetes Secret volume links `token` to `..data/token`, and
 * it is the target's mode (the volume's `defaultMode`) that matters.
 */
import { readFileSync, statSync } from 'node:fs';
import { ErrorCode, MusterError } from './errors.js';

export interface SecretFileOptions {
  /** Accept a group- or world-accessible file, with a warning (default: refuse). */
  allowInsecurePermissions?: boolean | undefined;
  /** Where the warning goes when insecure permissions are accepted (default: stderr). */
  warn?: ((message: string) => void) | undefined;
}

/** Bits that give group or others any access. */
const GROUP_OR_OTHERS = 0o077;

/** What is wrong with a secret file of mode `mode`, in words; undefined when only its owner has access. */
export function secretModeProblem(mode: number): string | undefined {
  const extra = mode & GROUP_OR_OTHERS;
  if (extra === 0) return undefined;
  const who = [extra & 0o070 ? 'its group' : '', extra & 0o007 ? 'others' : ''].filter(Boolean).join(' and ');
  return `mode ${(mode & 0o777).toString(8).padStart(4, '0')} gives ${who} access`;
}

/**
 * Throws MUSTER_FAILED_PRECONDITION when the secret file at `path` can be
 * read (or written, or searched) by its group or others, unless
 * `allowInsecurePermissions` (then warns). A file that does not exist passes:
 * the caller's read reports that with its own words.
 */
export function checkSecretFile(path: string, what: string, opts: SecretFileOptions = {}): void {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch {
    return;
  }
  const problem = secretModeProblem(mode);
  if (!problem) return;
  const message = `${what} ${path}: ${problem}; a secret must be readable by its owner only: run \`chmod 600 ${path}\``;
  if (opts.allowInsecurePermissions) {
    (opts.warn ?? ((m: string) => process.stderr.write(`warning: ${m}\n`)))(`${message} (accepted: --allow-insecure-permissions)`);
    return;
  }
  throw new MusterError(ErrorCode.FAILED_PRECONDITION, `${message}, or pass --allow-insecure-permissions to accept it`, {
    details: { file: path, mode: (mode & 0o777).toString(8) },
  });
}

/** A certificate or CA file (PEM); FAILED_PRECONDITION naming `what` and the file when it cannot be read. */
export function readPemFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new MusterError(ErrorCode.FAILED_PRECONDITION, `cannot read ${what} ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * A private key file: refused when its group or others can read it
 * (`checkSecretFile`, with `opts`), then read as readPemFile reads. Every TLS
 * key Muster loads — gRPC, etcd, metrics, the gateway — goes through here.
 */
export function readKeyFile(path: string, what: string, opts: SecretFileOptions = {}): Buffer {
  checkSecretFile(path, what, opts);
  return readPemFile(path, what);
}
