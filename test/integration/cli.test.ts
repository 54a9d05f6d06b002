/** `muster up` and `muster status` as a user runs them: real processes, real output. */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
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
    up = spawnManaged('muster-up', process.execPath, [cli, 'up', '--workers', '3', '--port', '0', '--data-dir', dir.path, '--profile', 'dgx1-v100-8']);
    const ready = await up.waitForLine((l) => l.includes('cluster is up'), 60_000);
    expect(ready).toBeTruthy();
    const address = /head ready at (\S+)/.exec(up.output())![1]!;
    const env = { MUSTER_ADDRESS: address, MUSTER_TOKEN_FILE: join(dir.path, 'head', 'token') };

    const table = await execa(process.execPath, [cli, 'status'], { env });
    expect(table.stdout).toMatch(/3 node\(s\): 3 alive, 0 dead; 24 GPU\(s\)/);
    for (const id of ['node-1', 'node-2', 'node-3']) expect(table.stdout).toMatch(new RegExp(`^${id}\\s+alive\\s+8× Tesla V100-SXM2-16GB\\s+126 GiB\\s+8\\s`, 'm'));

    const json = JSON.parse((await execa(process.execPath, [cli, 'status', '--json'], { env })).stdout) as { nodes: Array<{ id: string; gpus: unknown[] }>; cluster: Record<string, unknown> };
    expect(json.nodes.map((n) => n.id)).toEqual(['node-1', 'node-2', 'node-3']);
    expect(json.cluster.nats).toBeUndefined(); // credentials are never printed

    const wrong = await execa(process.execPath, [cli, 'status'], { env: { ...env, MUSTER_TOKEN: 'nope', MUSTER_TOKEN_FILE: '' }, reject: false });
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stderr).toMatch(/wrong cluster token \[MUSTER_UNAUTHENTICATED\]/);

    up.signal('SIGINT');
    expect(await up.exited).toBe(130);
    expect(up.output()).toMatch(/stopped/);
  });

  it('against a dead head, says it is retrying and why, then names the head and the error', async () => {
    const probe = await execa(process.execPath, ['-e', "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"]);
    const dead = `127.0.0.1:${probe.stdout.trim()}`;
    const r = await execa(process.execPath, [cli, 'status'], { env: { MUSTER_ADDRESS: dead, MUSTER_TOKEN: 'x', MUSTER_TOKEN_FILE: '', MUSTER_CALL_TIMEOUT_MS: '1500' }, reject: false });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^muster: ${dead}: cannot connect: connect ECONNREFUSED ${dead} \\[MUSTER_UNAVAILABLE\\]; trying again \\(1\\.\\d s left\\)$`, 'm'));
    expect(r.stderr).toMatch(new RegExp(`head ${dead} did not answer within 1500 ms`));
  });
});
