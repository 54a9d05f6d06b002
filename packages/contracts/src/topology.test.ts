import { describe, expect, it } from 'vitest';
import { isNvlink, nvlinkIslands, parseLink } from './topology.js';

const m = (...rows: string[]): string[][] => rows.map((r) => r.trim().split(/\s+/));

describe('NVLink islands', () => {
  it('reads the cells nvidia-smi prints, nothing else', () => {
    expect(parseLink('NV18')).toEqual({ kind: 'NV', nvlinks: 18 });
    expect(parseLink(' SOC ')).toEqual({ kind: 'SYS', nvlinks: 0 });
    for (const s of ['NV', 'NV0', 'nv4', 'PCI', '', 'N/A']) expect(parseLink(s)).toBeUndefined();
    expect(isNvlink(undefined)).toBe(false);
  });

  it('puts every GPU in one island, joined through NVLink hops', () => {
    expect(nvlinkIslands(m('X NV4 SYS SYS PIX', 'NV4 X SYS SYS SYS', 'SYS SYS X SYS SYS', 'SYS SYS SYS X NV2', 'PIX SYS SYS NV2 X'))).toEqual([[0, 1], [2], [3, 4]]);
    expect(nvlinkIslands(m('X SYS NV1', 'SYS X NV1', 'NV1 NV1 X'))).toEqual([[0, 1, 2]]);
    expect(nvlinkIslands([])).toEqual([]);
  });

  it('needs NVLink in both halves of the matrix (the head and the worker used to disagree here)', () => {
    expect(nvlinkIslands(m('X NV2', 'SYS X'))).toEqual([[0], [1]]);
    expect(nvlinkIslands(m('X NV2', 'NV2 X'))).toEqual([[0, 1]]);
  });

  it('takes a ragged matrix without throwing', () => {
    expect(nvlinkIslands([['X', 'NV1'], []])).toEqual([[0], [1]]);
    expect(nvlinkIslands([['X', 'NV1'], ['NV1']])).toEqual([[0, 1]]);
  });
});
