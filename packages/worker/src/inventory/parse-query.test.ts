import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isMusterError } from '@muster/common';
import { parseQueryGpu } from './parse-query.js';

const FIXTURES = new URL('../../test-fixtures/nvidia-smi/', import.meta.url);
const fixture = (name: string): string => readFileSync(new URL(name, FIXTURES), 'utf8').split('\n').slice(1).join('\n');

function fails(text: string, opts: { columns?: string[] } = {}): { line: number; message: string } {
  try {
    parseQueryGpu(text, opts);
  } catch (e) {
    if (!isMusterError(e)) throw e;
    return { line: e.details.line as number, message: e.message };
  }
  throw new Error('expected a parse error');
}

const H100 = [
  'index, uuid, name, memory.total [MiB], pci.bus_id, mig.mode.current',
  '0, GPU-4f1c2a3b-1111-2222-3333-444455556666, NVIDIA H100 80GB HBM3, 81559 MiB, 00000000:18:00.0, Disabled',
  '1, GPU-9a8b7c6d-1111-2222-3333-444455556666, NVIDIA H100 80GB HBM3, 81559 MiB, 00000000:2A:00.0, Enabled',
  '',
].join('\n');

describe('parseQueryGpu', () => {
  it('reads the recorded noheader fixture with the columns it was queried with', () => {
    expect(parseQueryGpu(fixture('query-gpu-csv-noheader-h100nvl.txt'), { columns: ['name', 'pci.device_id'] })).toEqual([
      { line: 1, index: 0, name: 'NVIDIA H100 NVL' },
    ]);
  });

  it('reads the discovery query with its header', () => {
    expect(parseQueryGpu(H100)).toEqual([
      { line: 2, index: 0, uuid: 'GPU-4f1c2a3b-1111-2222-3333-444455556666', name: 'NVIDIA H100 80GB HBM3', memoryMiB: 81559, pciBusId: '00000000:18:00.0', migEnabled: false },
      { line: 3, index: 1, uuid: 'GPU-9a8b7c6d-1111-2222-3333-444455556666', name: 'NVIDIA H100 80GB HBM3', memoryMiB: 81559, pciBusId: '00000000:2A:00.0', migEnabled: true },
    ]);
  });

  it('reads any column order, aliases, nounits, extra fields and [N/A]', () => {
    const text = 'gpu_name, memory.total, driver_version, gpu_uuid, index, mig.mode.current\nTesla V100-SXM2-16GB, 16160, 535.104.05, [N/A], 3, [N/A]\n';
    expect(parseQueryGpu(text)).toEqual([{ line: 2, index: 3, name: 'Tesla V100-SXM2-16GB', memoryMiB: 16160 }]);
  });

  it('reads noheader output in the discovery field order by default', () => {
    const text = H100.split('\n').slice(1).join('\n');
    expect(parseQueryGpu(text).map((r) => r.pciBusId)).toEqual(['00000000:18:00.0', '00000000:2A:00.0']);
  });

  it('gives no rows for empty output', () => {
    expect(parseQueryGpu('')).toEqual([]);
    expect(parseQueryGpu('index, uuid\n')).toEqual([]);
  });

  it.each([
    ['a missing field', H100.replace(', Enabled', ''), 3, '5 fields, expected 6'],
    ['a malformed uuid', H100.replace('GPU-9a8b7c6d', 'GPU-9a8b7c6'), 3, 'is not a GPU UUID'],
    ['memory in another unit', H100.replace('memory.total [MiB]', 'memory.total [GiB]'), 1, 'memory.total is in GiB, expected MiB'],
    ['memory that is not a number', H100.replace('81559 MiB, 00000000:2A', '80 GB, 00000000:2A'), 3, "memory.total '80 GB'"],
    ['an index that is not a number', H100.replace('\n1, ', '\none, '), 3, "index 'one'"],
    ['a duplicate index', H100.replace('\n1, ', '\n0, '), 3, 'GPU index 0 already listed on line 2'],
    ['a bad PCI address', H100.replace('00000000:2A:00.0', '2A:00'), 3, "pci.bus_id '2A:00'"],
    ['an unknown MIG mode', H100.replace('Enabled', 'On'), 3, "mig.mode.current 'On'"],
    ['a row cut short (no final newline)', H100.trimEnd(), 3, 'output ends inside this line'],
  ])('refuses %s, naming the line', (_what, text, line, message) => {
    const err = fails(text);
    expect(err.line).toBe(line);
    expect(err.message).toMatch(new RegExp(`^query-gpu line ${line}: `));
    expect(err.message).toContain(message);
  });
});
