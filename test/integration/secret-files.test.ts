/**
 * Token and key files readable by group or others are refused at start (issue 21
 * point 5), by the real head, worker and CLI: each exits non-zero naming the
 * file and the fix (`chmod 600`); with --allow-insecure-permissions the head
 * starts (warned) instead. The worker's check runs before it dials anything,
 * so no head is needed to see it refuse.
 */
import { execFile } from 'node:child_process';
import { chmod, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawnManaged, tempDir } from '@muster/testing';

const binOf = (pkg: string) => join(dirname(createRequire(import.meta.url).resolve(`${pkg}/package.json`)), 'dist/main.js');
const cli = fileURLToPath(new URL('../../packages/cli/dist/main.js', import.meta.url));

/** Runs a CLI to its exit (it must exit by itself: it refuses to start). */
function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, args, { timeout: 20_000, env: { ...process.env, ...env } }, (_err, stdout, stderr) => resolve({ code: child.exitCode, out: stdout + stderr }));
  });
}

describe('token files readable by group or others', () => {
  let dir: { path: string; remove(): Promise<void> };
  let tokenFile: string;
  beforeEach(async () => {
    dir = await tempDir('muster-secret-files-');
    tokenFile = join(dir.path, 'token');
    await writeFile(tokenFile, `${'t'.repeat(43)}\n`);
    await chmod(tokenFile, 0o644);
  });
  afterEach(() => dir.remove());

  it('the head refuses one, naming the file and the fix', async () => {
    const r = await run([binOf('@muster/head'), '--listen', '127.0.0.1:0', '--data-dir', join(dir.path, 'data'), '--token-file', tokenFile, '--metrics-listen', '', '--insecure']);
    expect(r.code).toBe(1);
    expect(r.out).toContain(`cluster token file ${tokenFile}: mode 0644 gives its group and others access`);
    expect(r.out).toContain(`chmod 600 ${tokenFile}`);
    expect(r.out).not.toContain('head ready');
  });

  it('the head starts on one with --allow-insecure-permissions, and warns', async () => {
    const head = spawnManaged('head', process.execPath, [binOf('@muster/head'), '--listen', '127.0.0.1:0', '--data-dir', join(dir.path, 'data'), '--token-file', tokenFile, '--metrics-listen', '', '--insecure', '--allow-insecure-permissions', 'true']);
    try {
      const warning = await head.waitForLine((l) => l.includes('accepted: --allow-insecure-permissions'), 20_000);
      expect(warning).toContain(tokenFile);
      await head.waitForLine((l) => l.includes('head ready'), 20_000);
    } finally {
      await head.stop(3_000);
    }
  });

  it('the worker refuses one before dialling any head', async () => {
    const r = await run([binOf('@muster/worker'), 'run', '--head', '127.0.0.1:9', '--token-file', tokenFile, '--data-dir', join(dir.path, 'worker'), '--profile', 'hgx-h100-8', '--metrics-listen', '', '--insecure']);
    expect(r.code).toBe(1);
    expect(r.out).toContain('worker failed to start');
    expect(r.out).toContain(`chmod 600 ${tokenFile}`);
  });

  it('the CLI (the SDK\'s token read) refuses one', async () => {
    const r = await run([cli, 'status'], { MUSTER_ADDRESS: '127.0.0.1:9', MUSTER_TOKEN_FILE: tokenFile, MUSTER_INSECURE: 'true' });
    expect(r.code).not.toBe(0);
    expect(r.out).toContain(`chmod 600 ${tokenFile}`);
  });
});

describe('key files readable by group or others', () => {
  it('the head refuses a group-readable TLS key, naming it', async () => {
    const dir = await tempDir('muster-secret-keys-');
    try {
      const { ensureClusterPki, pairPaths, PKI_FILES } = await import('@muster/common/pki');
      const pki = await ensureClusterPki(join(dir.path, 'data', 'pki'));
      const key = pairPaths(pki, PKI_FILES.head).key;
      await chmod(key, 0o640);
      await writeFile(join(dir.path, 'token'), `${'t'.repeat(43)}\n`, { mode: 0o600 });
      const r = await run([binOf('@muster/head'), '--listen', '127.0.0.1:0', '--data-dir', join(dir.path, 'data'), '--token-file', join(dir.path, 'token'), '--metrics-listen', '']);
      expect(r.code).toBe(1);
      expect(r.out).toContain(`TLS key file ${key}: mode 0640 gives its group access`);
    } finally {
      await dir.remove();
    }
  });
});
