import { randomUUID } from 'node:crypto';

/**
 * `<prefix>-<hex>`: an object id with `hexChars` (at most 12) random hex
 * digits. Drawn from randomUUID, which takes its entropy from a pool, where
 * randomBytes makes a system call per id (a measurable cost at thousands of
 * placement groups a second).
 */
export function randomId(prefix: string, hexChars: number): string {
  if (hexChars > 12) throw new RangeError(`randomId: at most 12 hex digits, not ${hexChars}`);
  const uuid = randomUUID(); // xxxxxxxx-xxxx-4xxx-…: the first 12 hex digits are random
  return `${prefix}-${(uuid.slice(0, 8) + uuid.slice(9, 13)).slice(0, hexChars)}`;
}
