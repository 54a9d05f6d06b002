import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isMusterError } from '@muster/common';
import { parseGpuList } from './parse-list.js';

const FIXTURES = new URL('../../test-fixtures/nvidia-smi/', import.meta.url);
const fixture = (dir: URL, name: string): string => readFileSync(new URL(name, dir), 'utf8').split('\n').slice(1).join('\n');

function fails(text: string): { line: number; message: string } {
  try {
    parseGpuList(text);
  } catch (e) {
    if (!isMusterError(e)) throw e;
    return { line: e.details.line as number, message: e.message };
  }
  throw new Error('expected a parse error');
}

describe('parseGpuList', () => {
  it('reads the recorded fixture: one A100 split into 7 × 1g.10gb', () => {
    const gpus = parseGpuList(fixture(FIXTURES, 'mig-L-a100-sxm4-80gb-7x1g10gb.txt'));
    expect(gpus).toHaveLength(1);
    expect(gpus[0]).toMatchObject({ index: 0, name: 'NVIDIA A100-SXM4-80GB', uuid: 'GPU-7fdaf0a5-179b-f636-d15d-daf243e3ff16' });
    expect(gpus[0]!.mig.map((m) => [m.index, m.profile, m.uuid])).toEqual([
      [0, '1g.10gb', 'MIG-feb88891-0321-5fef-9c87-d4af3b54259e'],
      [1, '1g.10gb', 'MIG-a25704ba-3a06-5299-a795-fd7cf4d13973'],
      [2, '1g.10gb', 'MIG-50f1c4c9-1508-5e8d-bb06-d08145b22e01'],
      [3, '1g.10gb', 'MIG-36c795f2-5cf7-55d6-af30-e535e79b7bb6'],
      [4, '1g.10gb', 'MIG-3f45d38c-8cee-503e-b806-a1f1bdceedeb'],
      [5, '1g.10gb', 'MIG-96655de9-9525-58f9-a62b-0e4c1cc1c265'],
      [6, '1g.10gb', 'MIG-1aae4990-b962-574e-8375-119d6d9b9687'],
    ]);
  });

  it('reads GPUs of two kinds without MIG', () => {
    expect(parseGpuList(fixture(FIXTURES, 'list-k80-p100-heterogeneous.txt')).map((g) => [g.index, g.name, g.uuid, g.mig.length])).toEqual([
      [0, 'Tesla K80', 'GPU-5c6dd8d9-b3bd-4e11-5d86-e33307f46ea5', 0],
      [1, 'Tesla P100-PCIE-16GB', 'GPU-10c6b41b-e02b-8724-b8ff-4d786579b7fa', 0],
    ]);
  });

  it('reads MIG on one GPU of four', () => {
    const gpus = parseGpuList(fixture(FIXTURES, 'list-4x-a100-80gb-gpu0-mig-4x1g20gb.txt'));
    expect(gpus.map((g) => g.mig.map((m) => m.profile))).toEqual([['1g.20gb', '1g.20gb', '1g.20gb', '1g.20gb'], [], [], []]);
    expect(gpus[3]!.uuid).toBe('GPU-69ec2344-ebac-b028-f88f-452abb3d7f11');
  });

  it('reads the pre-R470 MIG format and mixed profiles', () => {
    const text = [
      'GPU 0: A100-SXM4-40GB (UUID: GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77)',
      '  MIG 3g.20gb Device 0: (UUID: MIG-GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77/1/0)',
      '  MIG 1g.5gb+me Device 1: (UUID: MIG-GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77/7/0)',
      '  MIG 1c.3g.20gb Device 2: (UUID: MIG-GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77/2/1)',
      '',
    ].join('\n');
    expect(parseGpuList(text)[0]!.mig.map((m) => [m.index, m.profile, m.uuid])).toEqual([
      [0, '3g.20gb', 'MIG-GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77/1/0'],
      [1, '1g.5gb+me', 'MIG-GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77/7/0'],
      [2, '1c.3g.20gb', 'MIG-GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77/2/1'],
    ]);
  });

  it('reads "No devices were found" as no GPUs', () => {
    expect(parseGpuList('No devices were found\n')).toEqual([]);
    expect(parseGpuList('')).toEqual([]);
  });

  const mig7 = fixture(FIXTURES, 'mig-L-a100-sxm4-80gb-7x1g10gb.txt');
  it.each([
    ['a MIG line before any GPU', mig7.split('\n').slice(1).join('\n'), 1, 'MIG device before any GPU line'],
    ['a cut UUID', mig7.replace('d08145b22e01)', 'd08145b22e0'), 4, 'found'],
    ['a malformed MIG UUID', mig7.replace('MIG-50f1c4c9', 'MIG-50f1c4c'), 4, 'is not a MIG UUID'],
    ['a duplicate MIG device', mig7.replace('Device  2:', 'Device  1:'), 4, 'MIG device 1 of GPU 0 listed twice'],
    ['an unknown profile', mig7.replace('MIG 1g.10gb     Device  5', 'MIG 1g.10     Device  5'), 7, "'1g.10' is not a MIG profile"],
    ['a GPU out of sequence', `${mig7}GPU 2: NVIDIA A100-SXM4-80GB (UUID: GPU-7fdaf0a5-179b-f636-d15d-daf243e3ff17)\n`, 9, 'expected GPU 1, found GPU 2'],
    ['a driver error', 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.\n', 1, 'expected '],
  ])('refuses %s, naming the line', (_what, text, line, message) => {
    const err = fails(text);
    expect(err.line).toBe(line);
    expect(err.message).toMatch(new RegExp(`^-L line ${line}: `));
    expect(err.message).toContain(message);
  });
});
