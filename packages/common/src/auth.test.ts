/** The head's token file: created strong, and an empty or short one refused instead of accepted. */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MIN_TOKEN_BYTES, loadOrCreateToken } from './auth.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
async function dir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'muster-token-'));
  dirs.push(d);
  return d;
}

describe('loadOrCreateToken', () => {
  it('creates a strong token with mode 0600, and reads the same one back', async () => {
    const path = join(await dir(), 'sub', 'token');
    const token = await loadOrCreateToken(path);
    expect(Buffer.byteLength(token)).toBeGreaterThanOrEqual(MIN_TOKEN_BYTES);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await loadOrCreateToken(path)).toBe(token);
    expect((await readFile(path, 'utf8')).trim()).toBe(token);
  });

  it.each([
    ['empty', '', /holds no token/],
    ['whitespace only', '  \n\t\n', /holds no token/],
    ['short', 'hunter2\n', /a 7-byte token; at least 32 bytes/],
  ])('refuses a %s token file, naming it', async (_what, content, message) => {
    const path = join(await dir(), 'token');
    await writeFile(path, content, { mode: 0o600 });
    const err = await loadOrCreateToken(path).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'MUSTER_FAILED_PRECONDITION' });
    expect((err as Error).message).toContain(path);
    expect((err as Error).message).toMatch(message);
  });
});
