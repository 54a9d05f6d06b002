import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isMusterError } from '@muster/common';
import { parseTopo } from './parse-topo.js';
import { nvlinkIslands } from './topology.js';

const FIXTURES = new URL('../../test-fixtures/nvidia-smi/', import.meta.url);
/** A fixture's output, without its first `# source:` line. */
const fixture = (dir: URL, name: string): string => readFileSync(new URL(name, dir), 'utf8').split('\n').slice(1).join('\n');

/** Parses a matrix written as rows of space-separated cells. */
const m = (...rows: string[]): string[][] => rows.map((r) => r.split(/\s+/));

function parseFails(text: string): { line: number; message: string } {
  try {
    parseTopo(text);
  } catch (e) {
    if (!isMusterError(e)) throw e;
    expect(e.code).toBe('MUSTER_INVALID_ARGUMENT');
    expect(e.message).toMatch(/^topo -m line \d+: /);
    return { line: e.details.line as number, message: e.message };
  }
  throw new Error('expected a parse error');
}

describe('parseTopo on the recorded fixtures', () => {
  it('HGX H100: NV18 everywhere, 8 NICs named by the NIC legend, 3 affinity columns', () => {
    const t = parseTopo(fixture(FIXTURES, 'hgx-h100-8gpu-nv18-8nic.txt'));
    expect(t.links).toEqual(Array.from({ length: 8 }, (_, i) => Array.from({ length: 8 }, (_, j) => (i === j ? 'X' : 'NV18'))));
    expect(t.nics.map((n) => [n.column, n.name])).toEqual(Array.from({ length: 8 }, (_, k) => [`NIC${k}`, `mlx5_${k}`]));
    expect(t.nics.map((n) => n.links.join(' '))).toEqual([
      'PIX NODE NODE NODE SYS SYS SYS SYS',
      'PIX NODE NODE NODE SYS SYS SYS SYS',
      'NODE NODE PIX NODE SYS SYS SYS SYS',
      'NODE NODE PIX NODE SYS SYS SYS SYS',
      'SYS SYS SYS SYS PIX NODE NODE NODE',
      'SYS SYS SYS SYS PIX NODE NODE NODE',
      'SYS SYS SYS SYS NODE NODE PIX NODE',
      'SYS SYS SYS SYS NODE NODE PIX NODE',
    ]);
    expect(t.numaNodes).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
    expect(t.cpuAffinity).toEqual([...Array(4).fill('0-47,96-143'), ...Array(4).fill('48-95,144-191')]);
    expect(t.gpuNumaIds).toEqual(Array(8).fill(null));
    expect(nvlinkIslands(t.links)).toEqual([[0, 1, 2, 3, 4, 5, 6, 7]]);
  });

  it('DGX-1 V100: the hybrid cube-mesh of NV1/NV2, a raw mlx5_0 column, CPU Affinity only', () => {
    const t = parseTopo(fixture(FIXTURES, 'dgx1-v100-8gpu-hybrid-cube-mesh.txt'));
    expect(t.links).toEqual(
      m(
        'X NV1 NV1 NV2 NV2 SYS SYS SYS',
        'NV1 X NV2 NV1 SYS NV2 SYS SYS',
        'NV1 NV2 X NV2 SYS SYS NV1 SYS',
        'NV2 NV1 NV2 X SYS SYS SYS NV1',
        'NV2 SYS SYS SYS X NV1 NV1 NV2',
        'SYS NV2 SYS SYS NV1 X NV2 NV1',
        'SYS SYS NV1 SYS NV1 NV2 X NV2',
        'SYS SYS SYS NV1 NV2 NV1 NV2 X',
      ),
    );
    expect(t.nics).toEqual([{ column: 'mlx5_0', name: 'mlx5_0', links: m('NODE NODE PIX PIX SYS SYS SYS SYS')[0] }]);
    expect(t.numaNodes).toEqual(Array(8).fill(null));
    expect(t.cpuAffinity).toEqual([...Array(4).fill('0-11,24-35'), ...Array(4).fill('12-23,36-47')]);
    expect(nvlinkIslands(t.links)).toEqual([[0, 1, 2, 3, 4, 5, 6, 7]]);
  });

  it('8× RTX 4090 (tabs, padded empty field, no legend): all SYS, NIC0/NIC1 keep their column names', () => {
    const t = parseTopo(fixture(FIXTURES, 'pcie-8x-rtx4090-all-sys-2nic-tabs.txt'));
    expect(t.links).toEqual(Array.from({ length: 8 }, (_, i) => Array.from({ length: 8 }, (_, j) => (i === j ? 'X' : 'SYS'))));
    expect(t.nics).toEqual([
      { column: 'NIC0', name: 'NIC0', links: m('SYS SYS SYS SYS SYS SYS PHB SYS')[0] },
      { column: 'NIC1', name: 'NIC1', links: m('SYS SYS SYS SYS SYS SYS PHB SYS')[0] },
    ]);
    expect(t.numaNodes).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
    expect(t.gpuNumaIds).toEqual(Array(8).fill(null));
    expect(nvlinkIslands(t.links)).toEqual([[0], [1], [2], [3], [4], [5], [6], [7]]);
  });
});

describe('parseTopo on further recorded outputs', () => {
  it('4× K40m from a 2017 driver: SOC is read as SYS, mlx4_0 column', () => {
    const t = parseTopo(fixture(FIXTURES, 'k40m-4gpu-soc-mlx4-tabs.txt'));
    expect(t.links).toEqual(m('X PHB SYS SYS', 'PHB X SYS SYS', 'SYS SYS X PHB', 'SYS SYS PHB X'));
    expect(t.nics).toEqual([{ column: 'mlx4_0', name: 'mlx4_0', links: ['SYS', 'SYS', 'PHB', 'PHB'] }]);
    expect(t.cpuAffinity).toEqual(['0-5', '0-5', '6-11', '6-11']);
    expect(t.numaNodes).toEqual([null, null, null, null]);
    expect(nvlinkIslands(t.links)).toEqual([[0], [1], [2], [3]]);
  });

  it('2× A100 with NIC rows padded by empty tab fields, NUMA Affinity', () => {
    const t = parseTopo(fixture(FIXTURES, 'a100-2gpu-2nic-numa-tabs.txt'));
    expect(t.links).toEqual(m('X SYS', 'SYS X'));
    expect(t.nics.map((n) => [n.name, ...n.links])).toEqual([
      ['mlx5_0', 'NODE', 'SYS'],
      ['mlx5_1', 'SYS', 'NODE'],
    ]);
    expect(t.numaNodes).toEqual([0, 1]);
  });

  it('4× V100 on POWER9: two NV3 islands on NUMA nodes 0 and 8', () => {
    const t = parseTopo(fixture(FIXTURES, 'v100-4gpu-nv3-power9-numa8-tabs.txt'));
    expect(t.links).toEqual(m('X NV3 SYS SYS', 'NV3 X SYS SYS', 'SYS SYS X NV3', 'SYS SYS NV3 X'));
    expect(t.numaNodes).toEqual([0, 0, 8, 8]);
    expect(t.nics.map((n) => n.name)).toEqual(['mlx5_0', 'mlx5_1', 'mlx5_2', 'mlx5_3']);
    expect(nvlinkIslands(t.links)).toEqual([
      [0, 1],
      [2, 3],
    ]);
  });

  it('refuses the published H100 output whose copy ran two columns together, naming the header', () => {
    const err = parseFails(fixture(FIXTURES, 'malformed-h100-12nic-merged-columns-tabs.txt'));
    expect(err.line).toBe(1);
    expect(err.message).toContain("'NIC8NIC9'");
  });

  it('refuses the GB200 output cut inside row GPU3, naming that line', () => {
    const err = parseFails(fixture(FIXTURES, 'truncated-gb200-4gpu-6nic.txt'));
    expect(err.line).toBe(5);
    expect(err.message).toContain('row GPU3 has 5 cells, expected 13');
  });
});

describe('parseTopo tolerance', () => {
  const hgx = fixture(FIXTURES, 'hgx-h100-8gpu-nv18-8nic.txt');
  const rtx = fixture(FIXTURES, 'pcie-8x-rtx4090-all-sys-2nic-tabs.txt');

  it('reads tabs and runs of spaces alike', () => {
    expect(parseTopo(hgx.replace(/ {2,}/g, '\t'))).toEqual(parseTopo(hgx));
    expect(parseTopo(rtx.replace(/\t/g, '   '))).toEqual(parseTopo(rtx));
  });

  it('reads CRLF line ends, leading blank lines and a # comment line', () => {
    expect(parseTopo(`# recorded on gpu-07\n\n${hgx}`.replace(/\n/g, '\r\n'))).toEqual(parseTopo(hgx));
  });

  it('accepts output without NIC rows or legends', () => {
    const gpuRowsOnly = `${hgx.split('\n').slice(0, 9).join('\n')}\n`;
    const t = parseTopo(gpuRowsOnly);
    expect(t.links).toEqual(parseTopo(hgx).links);
    expect(t.nics.map((n) => n.name)).toEqual(Array.from({ length: 8 }, (_, k) => `NIC${k}`));
  });

  it('reads a single GPU without NICs', () => {
    const t = parseTopo('\tGPU0\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID\nGPU0\t X \t0-63\t0\t\tN/A\n');
    expect(t).toEqual({ links: [['X']], nics: [], numaNodes: [0], cpuAffinity: ['0-63'], gpuNumaIds: [null] });
  });

  it('takes the first node of a Grace NUMA Affinity list and keeps GPU NUMA ID', () => {
    const text = [
      '\tGPU0\tGPU1\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID',
      'GPU0\t X \tNV18\t0-71\t0,3-9,11-17\t\t2',
      'GPU1\tNV18\t X \t72-143\t1,19-25,27-33\t\t10',
      '',
    ].join('\n');
    const t = parseTopo(text);
    expect(t.numaNodes).toEqual([0, 1]);
    expect(t.gpuNumaIds).toEqual([2, 10]);
  });
});

describe('parseTopo refuses malformed input, naming the line', () => {
  const rtx = fixture(FIXTURES, 'pcie-8x-rtx4090-all-sys-2nic-tabs.txt');
  const lines = rtx.split('\n');
  /** The RTX fixture with line `no` (1-based) replaced. */
  const withLine = (no: number, text: string): string => lines.map((l, i) => (i === no - 1 ? text : l)).join('\n');
  const setCell = (no: number, cell: number, value: string): string => {
    const cells = lines[no - 1]!.split('\t');
    cells[cell] = value;
    return withLine(no, cells.join('\t'));
  };

  it.each([
    ['an asymmetric pair', setCell(4, 1, 'PHB'), 4, 'GPU2/GPU0 is PHB here but SYS in row GPU0 (line 2)'],
    ['X off the diagonal', setCell(2, 2, 'X'), 2, 'GPU0/GPU1: X off the diagonal'],
    ['a diagonal that is not X', setCell(3, 2, 'SYS'), 3, 'expected X on the diagonal'],
    ['an unknown link', setCell(5, 1, 'NV'), 5, "'NV' is not a link"],
    ['a missing cell', setCell(6, 3, ''), 6, 'row GPU4 has 12 cells, expected 13'],
    ['a row out of order', withLine(3, lines[3]!), 3, "expected row GPU1, found 'GPU2'"],
    ['a NIC row contradicting a GPU row', setCell(10, 7, 'SYS'), 10, 'NIC0/GPU6 is SYS here but PHB in row GPU6 (line 8)'],
    ['NIC rows contradicting each other', setCell(11, 9, 'NODE'), 11, 'NIC1/NIC0 is NODE here but PIX in row NIC0'],
    ['a bad NUMA Affinity', setCell(2, 12, 'zero'), 2, "NUMA Affinity 'zero'"],
    ['an unknown trailing column', setCell(1, 12, 'NUMA Node'), 1, "unknown trailing columns 'CPU Affinity NUMA Node GPU NUMA ID'"],
    ['an extra row', `${rtx}NIC2\tSYS\n`, 12, "unexpected row 'NIC2' after the last NIC row"],
    ['text after the matrix', `${rtx}\nsome notes\n`, 13, "unexpected text after the matrix: 'some notes'"],
    ['a header that is not one', `nvidia-smi topo -m\n${rtx}`, 1, 'expected the header row'],
    ['a NIC column out of sequence', setCell(1, 10, 'NIC2'), 1, "expected column NIC1, found 'NIC2'"],
  ])('%s', (_what, text, line, message) => {
    const err = parseFails(text);
    expect(err.line).toBe(line);
    expect(err.message).toContain(message);
  });

  it('refuses output that ends inside a row, where a cut cell could still look valid', () => {
    const cut = 'GPU0\t X \tNV18\t0-11\t1\nGPU1\tNV18\t X \t0-11\t12';
    const err = parseFails(`\tGPU0\tGPU1\tCPU Affinity\tNUMA Affinity\n${cut}`);
    expect(err).toEqual({ line: 3, message: 'topo -m line 3: output ends inside this line (no final newline): it looks cut short' });
  });

  it('refuses missing GPU rows, naming where they should be', () => {
    expect(parseFails(`${lines.slice(0, 5).join('\n')}\n\nLegend:\n`)).toEqual({
      line: 6,
      message: 'topo -m line 6: expected row GPU4, found a blank line',
    });
    expect(parseFails(`${lines.slice(0, 5).join('\n')}\n`)).toEqual({
      line: 6,
      message: 'topo -m line 6: expected row GPU4, found the end of the output',
    });
  });

  it('refuses an incomplete or inconsistent NIC legend', () => {
    const hgx = fixture(FIXTURES, 'hgx-h100-8gpu-nv18-8nic.txt');
    const hgxLines = hgx.split('\n');
    const without7 = `${hgxLines.filter((l) => !l.includes('NIC7: mlx5_7')).join('\n')}`;
    expect(parseFails(without7).message).toContain('NIC legend does not name NIC7');
    const dup = hgx.replace('NIC7: mlx5_7', 'NIC7: mlx5_6');
    expect(parseFails(dup).message).toContain('NIC legend gives the name mlx5_6 twice');
    expect(parseFails(hgx.replace('NIC7: mlx5_7', 'NIC8: mlx5_7')).message).toContain('NIC legend names NIC8, which is not a column');
  });

  it('refuses empty output', () => {
    expect(parseFails('')).toEqual({ line: 1, message: 'topo -m line 1: empty output: no header row' });
  });
});
