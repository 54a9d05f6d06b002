/**
 * Strict objects with "did you mean": every spec (placement group, gang,
 * replica group; SDK object, YAML, head) refuses a key it does not know,
 * names where it was, and suggests the allowed key the user most likely
 * meant. A misspelt key is never dropped in silence: `resource:` for
 * `resources:` would otherwise give replicas with no GPUs.
 *
 *   z.strictObject({ resources: ..., replicas: ... }, didYouMeanKeys)
 *   formatIssues(error.issues)
 *     → 'resource: unknown key; did you mean "resources"?'
 *
 * A key is "close" to an allowed one when they differ only by case or a
 * plural "s", or by at most two single-character edits (insert, delete,
 * substitute: Levenshtein distance; an adjacent swap counts two), and the
 * allowed key is not so short that two edits make anything of it. The
 * closest wins; ties go to the order the schema lists its keys in.
 *
 * Also the bounded shapes every spec builds on (`limitedString`,
 * `limitedArray`, `limitedRecord`): each takes its number from SPEC_LIMITS
 * (@muster/contracts) by name, and its error names the limit, so a refusal
 * reads `template.args: 2000 items; the limit is 1024 (args)`.
 */
import { z } from 'zod';
import { SPEC_LIMITS, type SpecLimit } from '@muster/contracts';
import { ErrorCode, MusterError } from './errors.js';

/** The allowed key `key` most likely meant, or undefined when none is close. */
export function didYouMean(key: string, allowed: readonly string[]): string | undefined {
  const fold = (s: string) => s.toLowerCase().replace(/s$/, '');
  let best: { key: string; d: number } | undefined;
  for (const a of allowed) {
    const d = fold(a) === fold(key) ? 0 : editDistance(key.toLowerCase(), a.toLowerCase());
    if (d > 2 || (d > 0 && d >= a.length - 1)) continue;
    if (!best || d < best.d) best = { key: a, d };
  }
  return best?.key;
}

/** Levenshtein distance: the fewest single-character inserts, deletes or substitutions from a to b. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

/** Longest key or path segment an error message repeats; longer ones are cut with "…" (an error is never as large as what it refuses). */
const SHOWN_KEY_CHARS = 64;
/** Most unknown keys one message names. */
const SHOWN_KEYS = 10;
const clip = (k: string) => (k.length > SHOWN_KEY_CHARS ? `${k.slice(0, SHOWN_KEY_CHARS)}…` : k);

/** The message for keys an object does not allow, with a suggestion for each close one. */
export function unknownKeysMessage(keys: readonly string[], allowed: readonly string[]): string {
  const one = (k: string) => {
    const hint = k.length <= SHOWN_KEY_CHARS ? didYouMean(k, allowed) : undefined;
    return hint ? `"${k}" (did you mean "${hint}"?)` : `"${clip(k)}"`;
  };
  const more = keys.length > SHOWN_KEYS ? ` and ${keys.length - SHOWN_KEYS} more` : '';
  return `unknown key${keys.length > 1 ? 's' : ''} ${keys.slice(0, SHOWN_KEYS).map(one).join(', ')}${more}; allowed: ${allowed.join(', ')}`;
}

/**
 * The error option of a strict object whose unknown-key error names each key
 * and what it probably meant: `z.strictObject({ ... }, didYouMeanKeys)`.
 * Other issues keep zod's message.
 */
export const didYouMeanKeys = {
  error: (iss: z.core.$ZodRawIssue): string | undefined => {
    if (iss.code !== 'unrecognized_keys') return undefined;
    const inst = iss.inst as { shape?: Record<string, unknown> } | undefined;
    return unknownKeysMessage(iss.keys, Object.keys(inst?.shape ?? {}));
  },
};

/** `a.b[0].c`: a zod issue path as the user wrote it. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? clip(String(p)) : `.${clip(String(p))}`;
  return out;
}

/**
 * One line per issue, `path: message`. A single unknown key is put on the
 * path itself (`autoscaling.taget: unknown key; did you mean "target"?`).
 */
export function issueLines(issues: readonly z.core.$ZodIssue[]): Array<{ path: string; message: string }> {
  return issues.map((i) => {
    if (i.code === 'unrecognized_keys' && i.keys.length === 1) {
      const key = i.keys[0]!;
      const hint = /\(did you mean "([^"]+)"\?\)/.exec(i.message)?.[1];
      return { path: formatPath([...i.path, key]), message: hint ? `unknown key; did you mean "${hint}"?` : `unknown key (${i.message.replace(/^.*; allowed/, 'allowed')})` };
    }
    return { path: formatPath(i.path), message: i.message };
  });
}

/** All issues as one sentence: `path: message; path: message`. */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issueLines(issues)
    .map((l) => (l.path ? `${l.path}: ${l.message}` : l.message))
    .join('; ');
}

/** What an over-limit error says: the size seen, the limit and its name in SPEC_LIMITS. */
export function limitMessage(limit: SpecLimit, seen: number, unit: string): string {
  return `${seen} ${unit}; the limit is ${SPEC_LIMITS[limit]} (${limit})`;
}

/** `value` if it has at most SPEC_LIMITS[limit] characters, else MUSTER_INVALID_ARGUMENT naming `field` (a request field outside a spec schema). */
export function checkLength(field: string, value: string, limit: SpecLimit): string {
  if (value.length <= SPEC_LIMITS[limit]) return value;
  throw new MusterError(ErrorCode.INVALID_ARGUMENT, `${field}: ${limitMessage(limit, value.length, 'characters')}`, { details: { field } });
}

/** A string of at most SPEC_LIMITS[limit] characters. */
export function limitedString(limit: SpecLimit): z.ZodString {
  return z.string().max(SPEC_LIMITS[limit], { error: (iss) => limitMessage(limit, String(iss.input).length, 'characters') });
}

/** An array of at most SPEC_LIMITS[limit] items. */
export function limitedArray<T extends z.ZodType>(item: T, limit: SpecLimit): z.ZodArray<T> {
  return z.array(item).max(SPEC_LIMITS[limit], { error: (iss) => limitMessage(limit, (iss.input as unknown[]).length, 'items') });
}

/**
 * A record of at most SPEC_LIMITS[limit] entries whose keys are at most
 * SPEC_LIMITS[keyLimit] characters (values and the keys' form are checked by
 * their own schemas). A long key is reported on the record, shortened: the
 * error must not be as large as what it refuses.
 */
export function limitedRecord<K extends z.core.$ZodRecordKey, V extends z.ZodType>(key: K, value: V, limit: SpecLimit, keyLimit: SpecLimit) {
  return z.record(key, value).check((ctx) => {
    const keys = Object.keys(ctx.value);
    if (keys.length > SPEC_LIMITS[limit]) ctx.issues.push({ code: 'custom', input: ctx.value, message: limitMessage(limit, keys.length, 'entries') });
    const long = keys.find((k) => k.length > SPEC_LIMITS[keyLimit]);
    if (long !== undefined) ctx.issues.push({ code: 'custom', input: ctx.value, message: `key "${long.slice(0, 32)}…": ${limitMessage(keyLimit, long.length, 'characters')}` });
  });
}
