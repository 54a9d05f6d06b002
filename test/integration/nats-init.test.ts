/**
 * `muster nats init` makes a trust chain a real nats-server runs on (its
 * config included from nats-server.conf), whose signing seed makes users the
 * server accepts with their permissions; it never overwrites one.
 */
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { connectNats } from '@muster/common';
import { mintNatsUser } from '@muster/common/nats-auth';
import { callerInboxPrefix, callerPermissions } from '@muster/contracts';
import { findBinary, freePort, spawnManaged, tempDir, type ManagedProcess } from '@muster/testing';

const cli = fileURLToPath(new URL('../../packages/cli/dist/main.js', import.meta.url));

describe('muster nats init', () => {
  let dir: { path: string; remove(): Promise<void> } | undefined;
  let server: ManagedProcess | undefined;
  afterAll(async () => {
    await server?.stop(2_000);
    await dir?.remove();
  });

  it('writes a trust chain nats-server runs on; the seed (0600) mints users it accepts; a second run refuses', async () => {
    dir = await tempDir('muster-nats-init-');
    const out = await execa(process.execPath, [cli, 'nats', 'init', '--dir', dir.path]);
    const account = (await readFile(join(dir.path, 'nats-account.pub'), 'utf8')).trim();
    expect(out.stdout).toContain(`--nats-account ${account} --nats-account-seed-file ${join(dir.path, 'nats-account.seed')}`);
    expect((await stat(join(dir.path, 'nats-account.seed'))).mode & 0o777).toBe(0o600);
    const seed = (await readFile(join(dir.path, 'nats-account.seed'), 'utf8')).trim();
    expect(await readFile(join(dir.path, 'nats-operator.conf'), 'utf8')).not.toContain(seed);

    const port = await freePort();
    await writeFile(join(dir.path, 'nats-server.conf'), `listen: "127.0.0.1:${port}"\ninclude nats-operator.conf\n`);
    server = spawnManaged('nats-server', await findBinary('nats-server'), ['-c', join(dir.path, 'nats-server.conf')]);
    await server.waitForLine((l) => l.includes('Server is ready'), 15_000);

    const inbox = callerInboxPrefix('init');
    const u = mintNatsUser({ account, seed }, 'caller', callerPermissions('muster', ['a'], inbox));
    const nc = await connectNats({ servers: [`nats://127.0.0.1:${port}`], jwt: u.jwt, seed: u.seed, caPem: '', inboxPrefix: inbox }, 'init-test');
    const closed = await nc.subscribe('muster.>').closed;
    expect(String(closed)).toMatch(/Permissions Violation for Subscription/);
    await nc.close();

    const again = await execa(process.execPath, [cli, 'nats', 'init', '--dir', dir.path], { reject: false });
    expect(again.exitCode).toBe(1);
    expect(again.stderr).toMatch(/exists: a new trust chain would cut every NATS user off/);
  });
});
