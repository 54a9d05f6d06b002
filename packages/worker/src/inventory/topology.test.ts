import { describe, expect, it } from 'vitest';
import { compareLinks, linkBetween, linkKind, linkMatrix, linkRank, nearestGpus, nearestNics, nvlinkIslands, parseLink } from './topology.js';

const m = (...rows: string[]): string[][] => rows.map((r) => r.split(/\s+/));

describe('link kinds', () => {
  it.each([
    ['X', 'X', 0],
    ['NV18', 'NV', 18],
    ['NV1', 'NV', 1],
    ['PIX', 'PIX', 0],
    ['PXB', 'PXB', 0],
    ['PHB', 'PHB', 0],
    ['NODE', 'NODE', 0],
    ['SYS', 'SYS', 0],
    ['SOC', 'SYS', 0],
    [' X ', 'X', 0],
  ])('%s is %s with %i NVLinks', (s, kind, nvlinks) => {
    expect(linkKind(s)).toEqual({ kind, nvlinks });
  });

  it('refuses what nvidia-smi does not print', () => {
    for (const s of ['NV', 'NV0', 'nv4', 'PCI', '', 'N/A']) {
      expect(parseLink(s)).toBeUndefined();
      expect(() => linkKind(s)).toThrow(/unknown GPU link/);
    }
  });

  it('orders links: more NVLinks first, then PIX > PXB > PHB > NODE > SYS', () => {
    const shuffled = ['SYS', 'NV2', 'PHB', 'NV18', 'PIX', 'NODE', 'NV12', 'PXB', 'SOC', 'NV1'];
    expect([...shuffled].sort(compareLinks)).toEqual(['NV18', 'NV12', 'NV2', 'NV1', 'PIX', 'PXB', 'PHB', 'NODE', 'SYS', 'SOC']);
    expect(linkRank('X')).toBeGreaterThan(linkRank('NV18'));
    expect(linkRank('NV1')).toBeGreaterThan(linkRank('PIX'));
    expect(linkRank('SOC')).toBe(linkRank('SYS'));
  });
});

describe('nvlinkIslands', () => {
  it('puts every GPU in exactly one island; a GPU without NVLink is its own', () => {
    const links = m('X NV4 SYS SYS PIX', 'NV4 X SYS SYS SYS', 'SYS SYS X SYS SYS', 'SYS SYS SYS X NV2', 'PIX SYS SYS NV2 X');
    expect(nvlinkIslands(links)).toEqual([[0, 1], [2], [3, 4]]);
  });

  it('joins islands through NVLink hops (a chain is one island)', () => {
    expect(nvlinkIslands(m('X NV1 SYS', 'NV1 X NV1', 'SYS NV1 X'))).toEqual([[0, 1, 2]]);
    expect(nvlinkIslands(m('X SYS NV1', 'SYS X NV1', 'NV1 NV1 X'))).toEqual([[0, 1, 2]]);
  });

  it('gives no islands for no GPUs and one for one GPU', () => {
    expect(nvlinkIslands([])).toEqual([]);
    expect(nvlinkIslands([['X']])).toEqual([[0]]);
  });
});

describe('matrix helpers', () => {
  it('rebuilds the matrix from the proto flattening and reads a pair', () => {
    const flat = ['X', 'NV12', 'PIX', 'NV12', 'X', 'SYS', 'PIX', 'SYS', 'X'];
    expect(linkMatrix(flat, 3)).toEqual(m('X NV12 PIX', 'NV12 X SYS', 'PIX SYS X'));
    expect(linkBetween({ links: flat }, 3, 0, 2)).toBe('PIX');
    expect(() => linkBetween({ links: flat }, 3, 0, 3)).toThrow(/no link between GPU 0 and GPU 3/);
    expect(() => linkMatrix(flat, 2)).toThrow(/9 links, expected 2×2/);
  });

  it('finds the nearest NICs of a GPU and the nearest GPUs of a NIC, ties included', () => {
    const nics = [
      { name: 'mlx5_0', links: ['PIX', 'NODE', 'SYS'] },
      { name: 'mlx5_1', links: ['PIX', 'NODE', 'SYS'] },
      { name: 'mlx5_2', links: ['SYS', 'PXB', 'PXB'] },
    ];
    expect(nearestNics(nics, 0)).toEqual(['mlx5_0', 'mlx5_1']);
    expect(nearestNics(nics, 1)).toEqual(['mlx5_2']);
    expect(nearestNics([], 0)).toEqual([]);
    expect(nearestGpus(nics[2]!)).toEqual([1, 2]);
  });
});
