/**
 * Spec files through the CLI's reader: the misspellings in YAML are
 * refused with the file, the key's path and a "did you mean", before any
 * connection is made (readSpecFile runs before withCluster in every command).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, checkGangSpec, checkPlacementGroupSpec, checkReplicaGroupSpec } from '@muster/sdk';
import { readSpecFile } from './spec-file.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'muster-spec-file-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function file(name: string, lines: string[]): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `${lines.join('\n')}\n`);
  return path;
}

const rg = ['kind: ReplicaGroup', 'name: echo', 'tp: 2', 'template:', '  command: node', '  ports: [{ name: http }]'];

describe('readSpecFile', () => {
  it.each([
    ['resource', [...rg, 'resource: { gpus: 1 }'], 'resource: unknown key; did you mean "resources"?'],
    ['readines', [...rg, '  readines: { kind: http, port: http }'], 'template.readines: unknown key; did you mean "readiness"?'],
    ['taget', [...rg, 'autoscaling:', '  taget: 5'], 'autoscaling.taget: unknown key; did you mean "target"?'],
  ])('refuses a replica group with %s, naming file, path and suggestion', async (name, lines, message) => {
    const path = await file(`${name}.yaml`, lines);
    const e = await readSpecFile(path, 'ReplicaGroup', checkReplicaGroupSpec).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    expect((e as Error).message).toBe(`${path}: invalid replica group spec: ${message}`);
  });

  it('reads a good replica group, without its kind', async () => {
    const spec = await readSpecFile(await file('good.yaml', [...rg, 'resources: { gpus: 1 }', 'autoscaling: { target: 5 }']), 'ReplicaGroup', checkReplicaGroupSpec);
    expect(spec).toMatchObject({ name: 'echo', tp: 2, resources: { gpus: 1 }, autoscaling: { target: 5 } });
    expect(spec).not.toHaveProperty('kind');
  });

  it('refuses unknown keys in gang and placement group files, and a kind that is not the command’s', async () => {
    const gang = await file('gang.yaml', ['name: g', 'placementGroup: pg', 'tp: 1', 'pp: 1', 'template: { command: node }', 'startup: { deadlinMs: 1000 }']);
    await expect(readSpecFile(gang, 'Gang', checkGangSpec)).rejects.toThrow(`${gang}: invalid gang spec: startup.deadlinMs: unknown key; did you mean "deadlineMs"?`);
    const pg = await file('pg.yaml', ['name: x', 'bundles: [{ gpus: 1 }]', 'toleration: []']);
    await expect(readSpecFile(pg, 'PlacementGroup', checkPlacementGroupSpec)).rejects.toThrow(`${pg}: invalid placement group spec: toleration: unknown key; did you mean "tolerations"?`);
    const wrongKind = await file('kind.yaml', ['kind: Gang', 'name: x']);
    await expect(readSpecFile(wrongKind, 'ReplicaGroup', checkReplicaGroupSpec)).rejects.toThrow(/kind "Gang" is not something this command knows \(ReplicaGroup\)/);
    const list = await file('list.yaml', ['- a']);
    await expect(readSpecFile(list, 'Gang', checkGangSpec)).rejects.toThrow(/expected a Gang spec \(a mapping of keys\), got a list/);
  });
});
