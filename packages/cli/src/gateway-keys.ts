/**
 * The gateway's API keys: the keys file, and the ring of keys a running
 * gateway checks requests against (docs/security.md, "The gateway").
 *
 * The keys file (YAML, `--keys-file`, written 0600 by `muster gateway key
 * create`) holds no key, only the SHA-256 of each:
 *
 *   keys:
 *     - name: web-frontend          # who holds it: logs, 403/429 messages
 *       sha256: 9f86d0…             # hex SHA-256 of the key as presented
 *       groups: [echo, llm]         # groups it may call, or "*" for every group
 *       ratePerSecond: 50           # optional token bucket: refill per second
 *       burst: 100                  # optional bucket size (default: ratePerSecond, at least 1)
 *
 * A fast hash is the right one here: a key is 32 random bytes (256 bits), so
 * nobody can search for a preimage of its hash, and a slow password hash
 * (scrypt, argon2) would only spend CPU on every request. Looking the hash up
 * in a map compares keys in constant time with respect to the key: the only
 * thing that varies with the input is where its hash lands, which an attacker
 * cannot steer toward a stored hash.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, readFile, rename, writeFile } from 'node:fs/promises';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { z } from 'zod';
import { ALL_GROUPS } from '@muster/contracts';
import { ErrorCode, MusterError, didYouMeanKeys, formatIssues } from '@muster/common';

/** Bounds of a keys file: it is read into memory and every key gets a bucket. */
export const KEYS_LIMITS = { keys: 10_000, groupsPerKey: 1_000, nameLength: 128 } as const;
/** A generated key: this prefix (so secret scanners can spot one) and 32 random bytes, base64url. */
const KEY_PREFIX = 'mgw_';
const KEY_RANDOM_BYTES = 32;
/** The shortest key the gateway looks up at all: a generated one is 47 characters. */
export const MIN_KEY_LENGTH = 32;

const GROUP = /^[a-z0-9-]+$/;
const keyName = z.string().min(1).max(KEYS_LIMITS.nameLength).regex(/^[A-Za-z0-9._@-]+$/, 'expected letters, digits and . _ @ -');

const keyEntrySchema = z
  .strictObject({
    name: keyName,
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected the hex SHA-256 of the key (64 lower-case hex digits)'),
    groups: z.union([
      z.literal(ALL_GROUPS),
      z.array(z.string().regex(GROUP, 'expected a replica group name (a-z, 0-9, -)')).min(1, 'list at least one group, or "*" for every group').max(KEYS_LIMITS.groupsPerKey),
    ], { error: (iss) => (iss.input === undefined ? 'missing: a list of groups, or "*" for every group' : undefined) }),
    ratePerSecond: z.number().positive().max(1_000_000).optional(),
    burst: z.number().int().min(1).max(1_000_000).optional(),
  }, didYouMeanKeys)
  .refine((k) => k.burst === undefined || k.ratePerSecond !== undefined, { message: 'burst needs ratePerSecond', path: ['burst'] });

export const keysFileSchema = z
  .strictObject({ keys: z.array(keyEntrySchema).max(KEYS_LIMITS.keys).default([]) }, didYouMeanKeys)
  .superRefine((f, ctx) => {
    const names = new Set<string>();
    const hashes = new Set<string>();
    f.keys.forEach((k, i) => {
      if (names.has(k.name)) ctx.addIssue({ code: 'custom', path: ['keys', i, 'name'], message: `duplicate key name "${k.name}"` });
      if (hashes.has(k.sha256)) ctx.addIssue({ code: 'custom', path: ['keys', i, 'sha256'], message: `the same key is listed twice (also under an earlier name)` });
      names.add(k.name);
      hashes.add(k.sha256);
    });
  });

export type KeyEntry = z.infer<typeof keyEntrySchema>;
export type KeysFile = z.infer<typeof keysFileSchema>;

/** Hex SHA-256 of a key as presented: what the keys file stores and the ring looks up. */
export function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** A new key: shown once to whoever asked for it, never stored. */
export function generateKey(): string {
  return KEY_PREFIX + randomBytes(KEY_RANDOM_BYTES).toString('base64url');
}

/** Parses and validates a keys file's text; errors name the file and the field. */
export function parseKeysFile(text: string, path: string): KeysFile {
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (e) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `keys file ${path}: ${(e as Error).message}`, { cause: e });
  }
  const parsed = keysFileSchema.safeParse(data ?? {});
  if (!parsed.success) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `keys file ${path}: ${formatIssues(parsed.error.issues)}`);
  return parsed.data;
}

/** Reads a keys file; a missing one is an empty file when `missingIsEmpty` (key create), an error otherwise. */
export async function readKeysFile(path: string, opts: { missingIsEmpty?: boolean } = {}): Promise<KeysFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (opts.missingIsEmpty && (e as NodeJS.ErrnoException).code === 'ENOENT') return { keys: [] };
    throw new MusterError(ErrorCode.FAILED_PRECONDITION, `cannot read keys file ${path}: ${(e as Error).message}`, { cause: e });
  }
  return parseKeysFile(text, path);
}

/** Writes a keys file 0600, whole or not at all (a temp file renamed over it): a reloading gateway never reads half of one. */
export async function writeKeysFile(path: string, file: KeysFile): Promise<void> {
  const checked = keysFileSchema.parse(file);
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, `# muster gateway API keys: SHA-256 of each key, never a key (muster gateway key create)\n${toYaml(checked)}`, { mode: 0o600, flag: 'wx' });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}

/** Adds a key named `entry.name` to the file at `path` (created when absent); returns the key, which exists nowhere else. */
export async function createKey(path: string, entry: Omit<KeyEntry, 'sha256'>): Promise<string> {
  const file = await readKeysFile(path, { missingIsEmpty: true });
  if (file.keys.some((k) => k.name === entry.name)) {
    throw new MusterError(ErrorCode.ALREADY_EXISTS, `keys file ${path} already has a key named "${entry.name}": remove it first (muster gateway key rm) or choose another name`);
  }
  const key = generateKey();
  const parsed = keyEntrySchema.safeParse({ ...entry, sha256: hashKey(key) });
  if (!parsed.success) throw new MusterError(ErrorCode.INVALID_ARGUMENT, formatIssues(parsed.error.issues));
  await writeKeysFile(path, { keys: [...file.keys, parsed.data] });
  return key;
}

/** Removes the key named `name`; throws NOT_FOUND when there is none. */
export async function removeKey(path: string, name: string): Promise<void> {
  const file = await readKeysFile(path);
  const keys = file.keys.filter((k) => k.name !== name);
  if (keys.length === file.keys.length) throw new MusterError(ErrorCode.NOT_FOUND, `keys file ${path} has no key named "${name}"`);
  await writeKeysFile(path, { keys });
}

/** The keys a running gateway accepts, by hash; replaced whole on reload. */
export class KeyRing {
  private byHash = new Map<string, KeyEntry>();

  constructor(file: KeysFile) {
    this.replace(file);
  }

  get size(): number {
    return this.byHash.size;
  }

  /** The entry of a presented key, or undefined for an unknown (or implausibly short) one. */
  lookup(presented: string): KeyEntry | undefined {
    if (presented.length < MIN_KEY_LENGTH) return undefined;
    return this.byHash.get(hashKey(presented));
  }

  replace(file: KeysFile): void {
    this.byHash = new Map(file.keys.map((k) => [k.sha256, k]));
  }

  /** The hashes of the keys it holds (the rate limiter keeps only their buckets). */
  hashes(): ReadonlySet<string> {
    return new Set(this.byHash.keys());
  }
}

/** Whether the key `entry` may call `group`. */
export function keyMayCall(entry: KeyEntry, group: string): boolean {
  return entry.groups === ALL_GROUPS || entry.groups.includes(group);
}
