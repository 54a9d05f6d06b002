/**
 * Parser for `nvidia-smi topo -m`.
 *
 * The output is a header row, one row per GPU, optionally one row per NIC,
 * then a legend and (newer drivers) a NIC legend:
 *
 *         GPU0    GPU1    NIC0    CPU Affinity    NUMA Affinity   GPU NUMA ID
 *   GPU0   X      NV18    PIX     0-47,96-143     0               N/A
 *   GPU1  NV18     X      NODE    0-47,96-143     0               N/A
 *   NIC0  PIX     NODE     X
 *
 *   Legend: ...
 *   NIC Legend:
 *     NIC0: mlx5_0
 *
 * What varies in the wild and is accepted: tabs or runs of spaces (a tab
 * layout also pads with empty fields, which are dropped); the ` X ` self
 * cell; NIC columns named NIC<k> (with a NIC legend) or by device (`mlx5_0`);
 * no NIC columns at all; zero to three trailing columns (CPU Affinity, NUMA
 * Affinity, GPU NUMA ID); NIC rows present, absent or cut after the GPU rows;
 * SOC (old drivers) for SYS; CRLF line ends; legends and blank lines.
 *
 * What is refused, with the line named: anything else. Because a scheduler
 * trusts this matrix, the parser cross-checks what nvidia-smi states twice:
 * the GPU matrix must be symmetric with X exactly on the diagonal, and each
 * NIC row must repeat the NIC's column in the GPU rows. A cell changed by
 * copy-paste or corruption therefore fails instead of producing a wrong
 * matrix.
 */
import { parseLink } from './topology.js';
import { ID_LIST, type NumberedLine, numberedLines, parseError, requireFinalNewline, tokens } from './parse-util.js';

export interface TopoNic {
  /** The column label: `NIC0` or a device name such as `mlx5_0`. */
  column: string;
  /** The device name: from the NIC legend, else the column label. */
  name: string;
  /** Link from each GPU to this NIC, by GPU index. */
  links: string[];
}

export interface TopoResult {
  /** N×N, by GPU index; "X" on the diagonal; SOC already read as SYS. */
  links: string[][];
  nics: TopoNic[];
  /** The NUMA node nearest each GPU (first of NUMA Affinity), null when not printed or N/A. */
  numaNodes: (number | null)[];
  /** CPU Affinity as printed, null when absent or N/A. */
  cpuAffinity: (string | null)[];
  /** GPU NUMA ID (the GPU memory's own node on Grace systems), null when absent or N/A. */
  gpuNumaIds: (number | null)[];
}

const SRC = 'topo -m' as const;
/** The trailing columns nvidia-smi has printed, in order; a header carries a prefix of them. */
const TAIL_COLUMNS = ['CPU Affinity', 'NUMA Affinity', 'GPU NUMA ID'] as const;
const TAIL_START = new Set(['CPU', 'NUMA', 'GPU']);
const GPU_COL = /^GPU\d+$/;
const NIC_COL = /^NIC\d+$/;
/** A device-named NIC column; refuses names that are two labels run together (`NIC8NIC9`, `GPU0GPU1`). */
const NIC_DEVICE = /^(?!GPU\d)(?!NIC\d)[A-Za-z][\w.:-]*$/;
const LEGEND_ENTRY = /^(NIC\d+):\s*([A-Za-z][\w.:-]*)$/;

interface Header {
  gpus: number;
  nicColumns: string[];
  tail: number;
}

function parseHeader(line: NumberedLine): Header {
  const t = tokens(line.text);
  let k = 0;
  while (k < t.length && GPU_COL.test(t[k]!)) {
    if (t[k] !== `GPU${k}`) throw parseError(SRC, line.no, `expected column GPU${k}, found '${t[k]}'`);
    k++;
  }
  const gpus = k;
  if (gpus === 0) throw parseError(SRC, line.no, `expected the header row (GPU0 GPU1 ...), found '${line.text.trim().slice(0, 60)}'`);
  const nicColumns: string[] = [];
  let numbered = 0;
  while (k < t.length && !TAIL_START.has(t[k]!)) {
    const name = t[k]!;
    if (NIC_COL.test(name)) {
      if (name !== `NIC${numbered}`) throw parseError(SRC, line.no, `expected column NIC${numbered}, found '${name}'`);
      numbered++;
    } else if (!NIC_DEVICE.test(name)) {
      throw parseError(SRC, line.no, `column '${name}' is neither a GPU nor a NIC (two columns run together?)`);
    }
    if (nicColumns.includes(name)) throw parseError(SRC, line.no, `column '${name}' appears twice`);
    nicColumns.push(name);
    k++;
  }
  const tailText = t.slice(k).join(' ');
  const tail = [0, 1, 2, 3].find((n) => TAIL_COLUMNS.slice(0, n).join(' ') === tailText);
  if (tail === undefined) {
    throw parseError(SRC, line.no, `unknown trailing columns '${tailText}' (nvidia-smi prints ${TAIL_COLUMNS.join(', ')})`);
  }
  return { gpus, nicColumns, tail };
}

/** Reads one link cell; `self` says whether it is a diagonal cell (must be X). */
function cell(line: NumberedLine, value: string, where: string, self: boolean): string {
  const info = parseLink(value);
  if (!info) throw parseError(SRC, line.no, `${where}: '${value}' is not a link (X, NV<n>, PIX, PXB, PHB, NODE, SYS)`);
  if (self && info.kind !== 'X') throw parseError(SRC, line.no, `${where}: expected X on the diagonal, found '${value}'`);
  if (!self && info.kind === 'X') throw parseError(SRC, line.no, `${where}: X off the diagonal`);
  return value === 'SOC' ? 'SYS' : value;
}

function idList(line: NumberedLine, value: string, column: string): string | null {
  if (value === 'N/A') return null;
  if (!ID_LIST.test(value)) throw parseError(SRC, line.no, `${column} '${value}' is not a list like 0-47,96-143`);
  return value;
}

export function parseTopo(text: string): TopoResult {
  const lines = numberedLines(text);
  let i = 0;
  while (i < lines.length && lines[i]!.text.trim() === '') i++;
  const headerLine = lines[i];
  if (!headerLine) throw parseError(SRC, 1, 'empty output: no header row');
  const { gpus: n, nicColumns, tail } = parseHeader(headerLine);
  const m = nicColumns.length;

  const links: string[][] = [];
  const rowLine: number[] = [];
  const nicLinks: string[][] = nicColumns.map(() => []);
  const numaNodes: (number | null)[] = [];
  const cpuAffinity: (string | null)[] = [];
  const gpuNumaIds: (number | null)[] = [];
  const nicNic: string[][] = [];
  let lastDataLine = headerLine.no;

  for (i++; i < lines.length; i++) {
    const line = lines[i]!;
    const trimmed = line.text.trim();
    if (trimmed === '' || /^(NIC\s+)?Legend:/.test(trimmed)) break;
    const [label = '', ...cells] = tokens(line.text);
    const r = links.length;
    if (r < n) {
      if (label !== `GPU${r}`) throw parseError(SRC, line.no, `expected row GPU${r}, found '${label}'`);
      const want = n + m + tail;
      if (cells.length !== want) {
        throw parseError(SRC, line.no, `row GPU${r} has ${cells.length} cells, expected ${want} (${n} GPUs, ${m} NICs, ${tail} affinity columns)`);
      }
      const row = cells.slice(0, n).map((v, c) => cell(line, v, `GPU${r}/GPU${c}`, c === r));
      // Symmetry: nvidia-smi prints every GPU pair twice; they must agree.
      for (let c = 0; c < r; c++) {
        if (row[c] !== links[c]![r]) {
          throw parseError(SRC, line.no, `GPU${r}/GPU${c} is ${row[c]} here but ${links[c]![r]} in row GPU${c} (line ${rowLine[c]})`);
        }
      }
      cells.slice(n, n + m).forEach((v, j) => nicLinks[j]!.push(cell(line, v, `GPU${r}/${nicColumns[j]}`, false)));
      const [cpu, numa, gpuNuma] = cells.slice(n + m);
      cpuAffinity.push(cpu === undefined ? null : idList(line, cpu, 'CPU Affinity'));
      const numaList = numa === undefined ? null : idList(line, numa, 'NUMA Affinity');
      numaNodes.push(numaList === null ? null : Number(/^\d+/.exec(numaList)![0]));
      if (gpuNuma !== undefined && gpuNuma !== 'N/A' && !/^\d+$/.test(gpuNuma)) {
        throw parseError(SRC, line.no, `GPU NUMA ID '${gpuNuma}' is not a number or N/A`);
      }
      gpuNumaIds.push(gpuNuma === undefined || gpuNuma === 'N/A' ? null : Number(gpuNuma));
      links.push(row);
      rowLine.push(line.no);
    } else {
      const j = nicNic.length;
      const expected = nicColumns[j];
      if (expected === undefined) throw parseError(SRC, line.no, `unexpected row '${label}' after the last ${m > 0 ? 'NIC' : 'GPU'} row`);
      if (label !== expected) throw parseError(SRC, line.no, `expected row ${expected}, found '${label}'`);
      if (cells.length !== n + m) throw parseError(SRC, line.no, `row ${label} has ${cells.length} cells, expected ${n + m} (${n} GPUs, ${m} NICs)`);
      // A NIC row repeats the NIC's column of the GPU rows: a second reading to check against.
      cells.slice(0, n).forEach((v, c) => {
        const value = cell(line, v, `${label}/GPU${c}`, false);
        const fromGpu = nicLinks[j]![c];
        if (value !== fromGpu) throw parseError(SRC, line.no, `${label}/GPU${c} is ${value} here but ${fromGpu} in row GPU${c} (line ${rowLine[c]})`);
      });
      const row = cells.slice(n).map((v, c) => cell(line, v, `${label}/${nicColumns[c]}`, c === j));
      for (let c = 0; c < j; c++) {
        if (row[c] !== nicNic[c]![j]) throw parseError(SRC, line.no, `${label}/${nicColumns[c]} is ${row[c]} here but ${nicNic[c]![j]} in row ${nicColumns[c]}`);
      }
      nicNic.push(row);
    }
    lastDataLine = line.no;
  }
  if (links.length < n) {
    const at = lines[i]?.no ?? (lines.at(-1)?.no ?? headerLine.no) + 1;
    const found = lines[i] === undefined ? 'the end of the output' : lines[i]!.text.trim() === '' ? 'a blank line' : `'${lines[i]!.text.trim().slice(0, 40)}'`;
    throw parseError(SRC, at, `expected row GPU${links.length}, found ${found}`);
  }

  const legend = parseLegends(lines.slice(i), nicColumns);
  if (legend.lastEntryLine !== undefined) lastDataLine = legend.lastEntryLine;
  requireFinalNewline(SRC, text, lastDataLine);

  const nics = nicColumns.map((column, j) => ({ column, name: legend.names.get(column) ?? column, links: nicLinks[j]! }));
  return { links, nics, numaNodes, cpuAffinity, gpuNumaIds };
}

/**
 * Reads what follows the matrix: the link legend (prose, ignored) and the
 * NIC legend (NIC<k>: device), which must then name every NIC<k> column once.
 */
function parseLegends(lines: NumberedLine[], nicColumns: string[]): { names: Map<string, string>; lastEntryLine?: number } {
  const names = new Map<string, string>();
  let mode: 'none' | 'legend' | 'nic' = 'none';
  let nicLegendLine: number | undefined;
  let lastEntryLine: number | undefined;
  for (const line of lines) {
    const trimmed = line.text.trim();
    if (trimmed === '') continue;
    const entry = LEGEND_ENTRY.exec(trimmed);
    const heading = trimmed.replace(/\s+/g, ' ');
    if (heading === 'Legend:') {
      mode = 'legend';
    } else if (heading === 'NIC Legend:') {
      mode = 'nic';
      nicLegendLine = line.no;
    } else if (entry || mode === 'nic') {
      // An entry is one wherever it stands (a copy may have lost the "NIC Legend:" line).
      if (!entry) throw parseError(SRC, line.no, `expected a NIC legend entry like 'NIC0: mlx5_0', found '${trimmed.slice(0, 40)}'`);
      nicLegendLine ??= line.no;
      const [, column = '', name = ''] = entry;
      if (!nicColumns.includes(column)) throw parseError(SRC, line.no, `NIC legend names ${column}, which is not a column of the header`);
      if (names.has(column)) throw parseError(SRC, line.no, `NIC legend names ${column} twice`);
      if ([...names.values()].includes(name) || nicColumns.includes(name)) throw parseError(SRC, line.no, `NIC legend gives the name ${name} twice`);
      names.set(column, name);
      lastEntryLine = line.no;
    } else if (mode === 'legend' && /^\s/.test(line.text)) {
      // Legend prose ("  NV#  = Connection traversing a bonded set of # NVLinks").
    } else {
      throw parseError(SRC, line.no, `unexpected text after the matrix: '${trimmed.slice(0, 40)}'`);
    }
  }
  if (nicLegendLine !== undefined) {
    const missing = nicColumns.filter((c) => NIC_COL.test(c) && !names.has(c));
    if (missing.length > 0) {
      throw parseError(SRC, lastEntryLine ?? nicLegendLine, `NIC legend does not name ${missing.join(', ')}`);
    }
  }
  return lastEntryLine === undefined ? { names } : { names, lastEntryLine };
}
