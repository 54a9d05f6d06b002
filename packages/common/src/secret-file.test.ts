/**
 * Secret files readable by group or others are refused (issue 21 point 5):
 * by the mode check itself, table-driven, and through the token readers of
 * the head (loadOrCreateToken), agents and clients (readToken).
 */
import { chmod, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadOrCreateToken, readToken } from './auth.js';
import { checkSecretFile, secretModeProblem } from './secret-file.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
async function secret(mode: number, content = `${'s'.repeat(43)}\n`): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'muster-secret-'));
  dirs.push(d);
  const path = join(d, 'token');
  await writeFile(path, content);
  await chmod(path, mode);
  return path;
}
const refusal = (f: () => unknown): Promise<(Error & { code?: string; details?: Record<string, unknown> }) | undefined> =>
  Promise.resolve().then(f).then(() => undefined, (e: unknown) => e as Error);

describe('secretModeProblem', () => {
  it.each([
    [0o600, undefined],
    [0o400, undefined],
    [0o700, undefined],
    [0o640, 'mode 0640 gives its group access'],
    [0o604, 'mode 0604 gives others access'],
    [0o644, 'mode 0644 gives its group and others access'],
    [0o610, 'mode 0610 gives its group access'],
    [0o100600, undefined], // the file-type bits are not permissions
    [0o100666, 'mode 0666 gives its group and others access'],
  ])('mode %s → %s', (mode, want) => {
    expect(secretModeProblem(mode)).toBe(want);
  });
});

describe('checkSecretFile', () => {
  it('refuses a group- or world-readable file, naming it and the fix', async () => {
    for (const mode of [0o644, 0o640, 0o604]) {
      const path = await secret(mode);
      const err = await refusal(() => checkSecretFile(path, 'key file'));
      expect(err).toMatchObject({ code: 'MUSTER_FAILED_PRECONDITION' });
      expect(err?.message).toContain(`key file ${path}`);
      expect(err?.message).toContain(`chmod 600 ${path}`);
      expect(err?.message).toContain('--allow-insecure-permissions');
    }
  });

  it('passes a file only its owner can read, and a missing file (its reader says so)', async () => {
    expect(() => checkSecretFile(joinMissing(), 'key file')).not.toThrow();
    const path = await secret(0o600);
    expect(() => checkSecretFile(path, 'key file')).not.toThrow();
  });

  it('with allowInsecurePermissions, warns instead of refusing', async () => {
    const path = await secret(0o644);
    const warnings: string[] = [];
    checkSecretFile(path, 'key file', { allowInsecurePermissions: true, warn: (m) => warnings.push(m) });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`chmod 600 ${path}`);
  });

  it('judges the target of a symlink (a Kubernetes Secret volume), not the link', async () => {
    const target = await secret(0o644);
    const link = `${target}-link`;
    await symlink(target, link);
    expect((await refusal(() => checkSecretFile(link, 'token')))?.message).toContain('mode 0644');
    await chmod(target, 0o600);
    expect(() => checkSecretFile(link, 'token')).not.toThrow();
  });
});

describe('token readers', () => {
  it('readToken refuses a group-readable token file unless told to accept it', async () => {
    const path = await secret(0o640);
    expect((await refusal(() => readToken(path)))?.message).toMatch(/cluster token file .*mode 0640 gives its group access/);
    expect(await readToken(path, { allowInsecurePermissions: true, warn: () => {} })).toBe('s'.repeat(43));
  });

  it('loadOrCreateToken (the head) refuses a world-readable token file unless told to accept it', async () => {
    const path = await secret(0o644);
    expect(await refusal(() => loadOrCreateToken(path))).toMatchObject({ code: 'MUSTER_FAILED_PRECONDITION', details: { file: path, mode: '644' } });
    expect(await loadOrCreateToken(path, { allowInsecurePermissions: true, warn: () => {} })).toBe('s'.repeat(43));
  });
});

function joinMissing(): string {
  return join(tmpdir(), `muster-no-such-secret-${process.pid}-${Date.now()}`);
}
