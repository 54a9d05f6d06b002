/**
 * Strict specs end to end, against a real head: the misspellings
 * (`resource:`, `readines:`, `autoscaling: { taget: 5 }`) in a replica group,
 * and an unknown key in a gang and a placement group spec, are refused with
 * the key's path and a "did you mean" — as SDK objects and as YAML files
 * through `muster apply` / `pg create` / `gang launch` — and nothing is
 * created. A well-formed file through the same command path is created, so
 * the refusals are not the command failing for some other reason.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { ErrorCode, type Cluster, type ReplicaGroupSpec } from '@muster/sdk';
import { createTestCluster, type LocalCluster } from '@muster/testing';

const cli = fileURLToPath(new URL('../../packages/cli/dist/main.js', import.meta.url));

const template = { command: process.execPath, args: ['-e', 'setInterval(() => {}, 1000)'], ports: [{ name: 'http' }], readiness: { kind: 'tcp' as const, port: 'http' } };
const rg: ReplicaGroupSpec = { name: 'echo', template, resources: { gpus: 1 }, replicas: { initial: 1 } };

const misspelt: Array<[string, unknown, string[], string]> = [
  ['resource', { ...rg, resources: undefined, resource: { gpus: 1 } }, ['resource: { gpus: 1 }'], 'resource: unknown key; did you mean "resources"?'],
  ['readines', { ...rg, template: { ...template, readiness: undefined, readines: { kind: 'tcp', port: 'http' } } }, ['  readines: { kind: tcp, port: http }'], 'template.readines: unknown key; did you mean "readiness"?'],
  ['taget', { ...rg, autoscaling: { taget: 5 } }, ['autoscaling: { taget: 5 }'], 'autoscaling.taget: unknown key; did you mean "target"?'],
];

describe('strict specs against a running cluster', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;
  let env: Record<string, string>;

  beforeAll(async () => {
    cluster = await createTestCluster({ workers: 1 });
    sdk = await cluster.connect();
    env = cluster.clientEnv();
  });
  afterAll(async () => {
    sdk?.close();
    await cluster?.stop();
  });

  const nothingCreated = async () => {
    expect(await sdk.replicaGroups.list()).toEqual([]);
    expect(await sdk.gangs.list()).toEqual([]);
    expect(await sdk.placementGroups.list()).toEqual([]);
  };

  it.each(misspelt)('a replica group with %s, as an SDK object, is refused with path and suggestion', async (_, spec, __, message) => {
    const e = await sdk.replicaGroups.apply(spec as ReplicaGroupSpec).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    expect((e as Error).message).toContain(`invalid replica group spec: ${message}`);
    await nothingCreated();
  });

  it.each(misspelt)('a replica group with %s, in YAML through `muster apply`, is refused with path and suggestion', async (name, _, lines, message) => {
    const file = join(cluster.dataDir, `${name}.yaml`);
    await writeFile(file, ['kind: ReplicaGroup', 'name: echo', 'template:', `  command: ${process.execPath}`, '  ports: [{ name: http }]', ...lines, ''].join('\n'));
    const r = await execa(process.execPath, [cli, 'apply', '-f', file], { env, reject: false });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`${file}: invalid replica group spec: ${message}`);
    await nothingCreated();
  });

  it('an unknown key in a gang or placement group spec is refused, as an object and as a file', async () => {
    const gang = await sdk.gangs.launch({ name: 'g', placementGroup: 'pg', tp: 1, pp: 1, template, startup: { deadlinMs: 1_000 } } as never).catch((x: unknown) => x);
    expect((gang as Error).message).toContain('invalid gang spec: startup.deadlinMs: unknown key; did you mean "deadlineMs"?');
    const pg = await sdk.placementGroups.create({ name: 'x', bundles: [{ gpus: 1 }], toleration: [] } as never).catch((x: unknown) => x);
    expect((pg as Error).message).toContain('invalid placement group spec: toleration: unknown key; did you mean "tolerations"?');

    const gangFile = join(cluster.dataDir, 'gang.yaml');
    await writeFile(gangFile, ['name: g', 'placementGroup: pg', 'tp: 1', 'pp: 1', 'template: { command: node, enviroment: { A: "1" } }', ''].join('\n'));
    const g = await execa(process.execPath, [cli, 'gang', 'launch', '-f', gangFile], { env, reject: false });
    expect(g.exitCode).toBe(1);
    expect(g.stderr).toContain(`${gangFile}: invalid gang spec: template.enviroment: unknown key`);
    const pgFile = join(cluster.dataDir, 'pg.yaml');
    await writeFile(pgFile, ['name: x', 'bundles: [{ gpu: 1 }]', ''].join('\n'));
    const p = await execa(process.execPath, [cli, 'pg', 'create', '-f', pgFile], { env, reject: false });
    expect(p.exitCode).toBe(1);
    expect(p.stderr).toContain(`${pgFile}: invalid placement group spec: bundles[0].gpu: unknown key; did you mean "gpus"?`);
    await nothingCreated();

    // The same command path with the key spelt right reaches the head and creates the group.
    await writeFile(pgFile, ['name: x', 'bundles: [{ gpus: 1 }]', ''].join('\n'));
    const ok = await execa(process.execPath, [cli, 'pg', 'create', '-f', pgFile], { env, reject: false });
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect((await sdk.placementGroups.list()).map((x) => x.name)).toEqual(['x']);
  });
});
