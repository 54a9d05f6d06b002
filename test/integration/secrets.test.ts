/**
 * No secret in argv or logs, checked on real processes: the cluster token
 * and the NATS password are nowhere in a head's or a worker's
 * /proc/<pid>/cmdline, nor in anything they printed, after calls with the
 * right and a wrong token and a gang whose template env carries a secret.
 * A secret given as a flag still works but is warned about, without its
 * value; the kit refuses to put one on a command line at all.
 */
import { execFile, spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCode, isMusterError, waitFor } from '@muster/common';
import { connect, type Cluster } from '@muster/sdk';
import { spawnManaged, tempDir, type LocalCluster } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';

const require = createRequire(import.meta.url);
const bin = (pkg: string) => join(dirname(require.resolve(`${pkg}/package.json`)), 'dist/main.js');
const TEMPLATE_SECRET = 'hf_template-secret-0123456789abcdef';

const cmdline = async (pid: number) => (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').join(' ');

describe('secrets stay out of argv and logs', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;
  useCluster({ workers: 1 }, (fx) => ({ cluster, sdk } = fx));

  it('a head and a worker never show the token, the NATS account seed or a TLS key', async () => {
    const token = (await readFile(cluster.tokenFile, 'utf8')).trim();
    const natsSeed = (await readFile(cluster.nats!.accountSeedFile, 'utf8')).trim();
    const tlsKey = (await readFile(cluster.tls!.key, 'utf8')).split('\n')[1]!;
    expect(token.length).toBeGreaterThanOrEqual(32);
    expect(natsSeed.length).toBeGreaterThan(8);
    expect(tlsKey.length).toBeGreaterThan(32);

    // Traffic that could log a credential: a refused call, accepted ones, a gang with a secret in its env.
    const { tokenFile: _ignored, ...asAdmin } = cluster.clientOptions();
    const refused = await connect({ ...asAdmin, token: 'x'.repeat(40) }).then((c) => c.nodes().finally(() => c.close()), (e: unknown) => e);
    expect(isMusterError(refused) && refused.code).toBe(ErrorCode.UNAUTHENTICATED);
    const pg = await sdk.placementGroups.create({ name: 'secret-pg', bundles: [{ cpuMillis: 10 }] });
    await pg.ready({ timeout: 10_000 });
    const gang = await sdk.gangs.launch({
      name: 'secret-gang',
      placementGroup: pg.name,
      tp: 1,
      pp: 1,
      template: { command: process.execPath, args: ['-e', 'setInterval(() => {}, 1000)'], env: { HF_TOKEN: TEMPLATE_SECRET } },
    });
    await gang.ready({ timeout: 15_000 });
    await gang.stop();
    await pg.remove();

    const procs = [cluster.head.process, ...[...cluster.workers.values()].map((w) => w.process)];
    for (const p of procs) {
      const argv = await cmdline(p.pid);
      expect(argv).toContain('--token-file'); // the window: this is the process, and it got its token by file
      for (const secret of [token, natsSeed, tlsKey, TEMPLATE_SECRET]) {
        expect(argv, `${p.name}'s cmdline`).not.toContain(secret);
        expect(p.output(), `${p.name}'s log`).not.toContain(secret);
      }
    }
    // The logs were read after the work above was logged (the markers prove the window).
    expect(cluster.head.process.output()).toContain('"head ready"');
    expect([...cluster.workers.values()][0]!.process.output()).toContain('"worker registered"');
  }, 60_000);

  it('the kit refuses a secret flag on a command line', () => {
    expect(() => spawnManaged('w', process.execPath, ['-e', '', '--token', 'x'])).toThrow(/--token would put a secret on its command line.*file \(--token-file\) or environment variable/);
    expect(() => spawnManaged('h', process.execPath, ['-e', '', '--nats-password=x'])).toThrow(/--nats-password would put a secret/);
  });
});

describe('a secret given as a flag', () => {
  it('works, and the head and worker warn without printing it', async () => {
    const dir = await tempDir('muster-secret-flag-');
    const natsPassword = 'flag-password-0123456789abcdef';
    const token = 't'.repeat(48);
    await writeFile(join(dir.path, 'token'), token, { mode: 0o600 });
    // Spawned by hand: the kit would refuse these command lines.
    const head = spawn(process.execPath, [bin('@muster/head'), '--listen', '127.0.0.1:0', '--data-dir', dir.path, '--metrics-listen', '', '--insecure', '--nats-password', natsPassword], { stdio: ['ignore', 'pipe', 'pipe'] });
    let headOut = '';
    head.stdout.on('data', (b: Buffer) => (headOut += b.toString()));
    head.stderr.on('data', (b: Buffer) => (headOut += b.toString()));
    try {
      await waitFor('the head to be ready', () => headOut.includes('"head ready"'), { timeoutMs: 20_000 });
      const address = (JSON.parse(headOut.split('\n').find((l) => l.includes('"head ready"'))!) as { address: string }).address;
      expect(headOut).toContain('--nats-password was given on the command line, where every user of this machine can read it');
      expect(headOut).toContain('use the MUSTER_NATS_PASSWORD environment variable instead');
      expect(headOut).not.toContain(natsPassword);

      const workerOut = await new Promise<string>((resolve) => {
        const w = execFile(process.execPath, [bin('@muster/worker'), '--head', address, '--insecure', '--shard-user', '0:0', '--token', token, '--node-id', 'flagged', '--metrics-listen', '', '--data-dir', join(dir.path, 'w')], (_e, out, err) => resolve(out + err));
        let seen = '';
        w.stdout?.on('data', (b: Buffer) => {
          seen += b.toString();
          if (seen.includes('"worker registered"')) w.kill('SIGTERM');
        });
        setTimeout(() => w.kill('SIGKILL'), 20_000).unref();
      });
      expect(workerOut).toContain('"worker registered"'); // the flag still works
      expect(workerOut).toContain('--token was given on the command line');
      expect(workerOut).not.toContain(token);
    } finally {
      if (head.exitCode === null && head.signalCode === null) {
        const exited = new Promise((r) => head.once('exit', r));
        head.kill('SIGTERM');
        await exited;
      }
      await dir.remove();
    }
  }, 60_000);
});
