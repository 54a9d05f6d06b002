/** `muster up`, `muster status` and `muster cert` as a user runs them: real processes, real output. */
import { X509Certificate } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { waitFor } from '@muster/common';
import { spawnManaged, tempDir, type ManagedProcess } from '@muster/testing';

const cli = fileURLToPath(new URL('../../packages/cli/dist/main.js', import.meta.url));

describe('muster CLI', () => {
  let up: ManagedProcess | undefined;
  let dir: { path: string; remove(): Promise<void> } | undefined;
  afterAll(async () => {
    await up?.stop();
    await dir?.remove();
  });

  it('`muster status` prints every node of a running `muster up`, and Ctrl-C stops every child', async () => {
    dir = await tempDir('muster-up-');
    // `muster up` writes its context here (never to the home of whoever runs the tests).
    const env = { MUSTER_CONFIG: join(dir.path, 'config.yaml') };
    up = spawnManaged('muster-up', process.execPath, [cli, 'up', '--workers', '3', '--port', '0', '--data-dir', dir.path, '--profile', 'dgx1-v100-8', '--gateway', '127.0.0.1:0'], { env });
    const ready = await up.waitForLine((l) => l.includes('cluster is up'), 60_000);
    expect(ready).toBeTruthy();
    expect(up.output()).toMatch(/head ready at \S+ \(TLS, CA /);
    expect(up.output()).toContain(`context "local" written to ${env.MUSTER_CONFIG} (current)`);
    // Every child's metrics endpoint is printed: 9400 and the ports after it, or a free one (said why) when taken.
    const endpoints = [...up.output().matchAll(/^ {2}(head|node-\d|gateway): http:\/\/(127\.0\.0\.1:(\d+))\/metrics(.*)$/gm)];
    expect(endpoints.map((m) => m[1])).toEqual(['head', 'node-1', 'node-2', 'node-3', 'gateway']);
    endpoints.forEach((m, i) => {
      const wanted = m[1] === 'gateway' ? 9390 : 9400 + i;
      expect(m[3] === String(wanted) || m[4]!.includes(`port ${wanted} was taken: fell back to a free one`)).toBe(true);
    });
    // The gateway asks for its key, which is in a 0600 file (never printed); its metrics count both answers.
    const gw = /^gateway at (http:\/\/\S+) \(API key in (\S+):/m.exec(up.output())!;
    expect((await stat(gw[2]!)).mode & 0o777).toBe(0o600);
    const key = (await readFile(gw[2]!, 'utf8')).trim();
    expect(up.output()).not.toContain(key);
    expect((await fetch(`${gw[1]}/v1/models`)).status).toBe(401);
    expect((await fetch(`${gw[1]}/v1/models`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
    // Counted when the server's side of each answer closes, which may follow the client's read.
    let gwMetrics = '';
    await waitFor('the gateway metrics to count both answers', async () => {
      gwMetrics = await (await fetch(`http://${endpoints[4]![2]}/metrics`)).text();
      return /status="200"/.test(gwMetrics) && /status="401"/.test(gwMetrics);
    });
    expect(gwMetrics).toMatch(/^muster_gateway_requests_total\{group="",revision="",route="models",status="401",[^}]*\} 1$/m);
    expect(gwMetrics).toMatch(/^muster_gateway_requests_total\{group="",revision="",route="models",status="200",[^}]*\} 1$/m);
    expect(await (await fetch(`http://${endpoints[0]![2]}/metrics`)).text()).toContain('target_info{service_name="muster-head"}');
    expect(await (await fetch(`http://${endpoints[1]![2]}/metrics`)).text()).toContain('target_info{service_name="muster-worker"}');
    const contexts = await execa(process.execPath, [cli, 'config', 'get-contexts'], { env });
    expect(contexts.stdout).toMatch(new RegExp(`^\\* local\t127\\.0\\.0\\.1:\\d+\ttls, cert ${join(dir.path, 'pki', 'admin.crt')}$`, 'm'));

    // The dashboard: printed, written to the context, and `muster dashboard` makes a sign-in link from it.
    const board = /^dashboard at (https:\/\/127\.0\.0\.1:\d+) /m.exec(up.output())![1]!;
    expect((await execa(process.execPath, [cli, 'dashboard'], { env })).stdout).toMatch(new RegExp(`^${board}/#ticket=[A-Za-z0-9_-]{43}$`));

    const table = await execa(process.execPath, [cli, 'status'], { env });
    expect(table.stdout).toMatch(/3 node\(s\): 3 alive, 0 dead; 24 GPU\(s\)/);
    for (const id of ['node-1', 'node-2', 'node-3']) expect(table.stdout).toMatch(new RegExp(`^${id}\\s+alive\\s+8× Tesla V100-SXM2-16GB\\s+126 GiB\\s+8\\s`, 'm'));

    const json = JSON.parse((await execa(process.execPath, [cli, 'status', '--json'], { env })).stdout) as { nodes: Array<{ id: string; gpus: unknown[] }>; cluster: Record<string, unknown> };
    expect(json.nodes.map((n) => n.id)).toEqual(['node-1', 'node-2', 'node-3']);
    expect(json.cluster.nats).toBeUndefined(); // credentials are never printed

    const wrong = await execa(process.execPath, [cli, 'status'], { env: { ...env, MUSTER_TOKEN: 'nope' }, reject: false });
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stderr).toMatch(/wrong cluster token \[MUSTER_UNAUTHENTICATED\]/);

    up.signal('SIGINT');
    expect(await up.exited).toBe(130);
    expect(up.output()).toMatch(/stopped/);
  });

  it('against a dead head, says it is retrying and why, then names the head and the error', async () => {
    const probe = await execa(process.execPath, ['-e', "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"]);
    const dead = `127.0.0.1:${probe.stdout.trim()}`;
    const r = await execa(process.execPath, [cli, 'status'], { env: { MUSTER_ADDRESS: dead, MUSTER_INSECURE: 'true', MUSTER_TOKEN: 'x', MUSTER_TOKEN_FILE: '', MUSTER_CALL_TIMEOUT_MS: '1500' }, reject: false });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^muster: ${dead}: cannot connect: connect ECONNREFUSED ${dead} \\[MUSTER_UNAVAILABLE\\]; trying again \\(1\\.\\d s left\\)$`, 'm'));
    expect(r.stderr).toMatch(new RegExp(`head ${dead} did not answer within 1500 ms`));
  });

  it('`muster cert` writes a PKI directory, a node and a client certificate, never overwrites a key without --force, and prints no key', async () => {
    const pki = await tempDir('muster-cert-');
    try {
      const run = (...args: string[]) => execa(process.execPath, [cli, 'cert', ...args, '--dir', pki.path], { reject: false });
      const init = await run('init', '--host', 'head.example,10.0.0.1');
      expect(init.exitCode, init.stderr).toBe(0);
      expect(init.stdout).toContain(join(pki.path, 'head.crt'));
      const head = new X509Certificate(await readFile(join(pki.path, 'head.crt')));
      expect(head.subjectAltName).toBe('DNS:head.example, IP Address:10.0.0.1');

      const node = await run('node', '--node-id', 'gpu-7');
      expect(node.stdout).toContain(`wrote ${join(pki.path, 'nodes', 'gpu-7.crt')}`);
      expect(new X509Certificate(await readFile(join(pki.path, 'nodes', 'gpu-7.crt'))).subject).toBe('CN=gpu-7\nO=muster:node');
      expect((await stat(join(pki.path, 'nodes', 'gpu-7.key'))).mode & 0o777).toBe(0o600);

      const client = await run('client', '--name', 'ci', '--role', 'deployer', '--call', 'llm,embed');
      expect(client.exitCode, client.stderr).toBe(0);
      const ci = new X509Certificate(await readFile(join(pki.path, 'ci.crt')));
      expect(ci.subject).toBe('CN=ci\nO=muster:deployer');
      expect(ci.subjectAltName).toBe('URI:urn:muster:call:llm, URI:urn:muster:call:embed');
      for (const r of [init, node, client]) expect(r.stdout).not.toContain('PRIVATE KEY');

      const key = await readFile(join(pki.path, 'ci.key'), 'utf8');
      const again = await run('client', '--name', 'ci', '--role', 'viewer');
      expect(again.stdout).toContain('kept');
      expect(await readFile(join(pki.path, 'ci.key'), 'utf8')).toBe(key);
      await run('client', '--name', 'ci', '--role', 'viewer', '--force');
      expect(await readFile(join(pki.path, 'ci.key'), 'utf8')).not.toBe(key);

      const bad = await run('client', '--name', 'x', '--role', 'head');
      expect(bad.exitCode).toBe(1);
      expect(bad.stderr).toContain('--role: expected one of caller, viewer, deployer, admin, got "head"');
    } finally {
      await pki.remove();
    }
  });
});
