/**
 * Parser for `nvidia-smi --query-gpu=<fields> --format=csv[,noheader][,nounits]`.
 *
 * With a header (the default, and what discovery asks for) the columns are
 * read from it, so any field order and extra fields work:
 *
 *   index, uuid, name, memory.total [MiB], pci.bus_id, mig.mode.current
 *   0, GPU-4f1c...-9a2b, NVIDIA H100 80GB HBM3, 81559 MiB, 00000000:18:00.0, Disabled
 *
 * Without a header the caller says which fields were queried (default: the
 * discovery query, QUERY_GPU_FIELDS); when the caller says so and a header is
 * present, the header must name exactly those fields. Unknown fields of a
 * recorded file read without `columns` are ignored. Values nvidia-smi cannot give
 * ("[N/A]", "[Not Supported]", ...) become "unknown". A value that is present
 * but malformed (an index that is not a number, a UUID of the wrong shape,
 * memory in another unit) is an error naming the line, never a guess.
 */
import { GPU_UUID, numberedLines, parseError, requireFinalNewline } from './parse-util.js';

/** The fields discovery queries, in order. */
export const QUERY_GPU_FIELDS = ['index', 'uuid', 'name', 'memory.total', 'pci.bus_id', 'mig.mode.current'] as const;

export interface QueryGpuRow {
  /** Line of the row, for errors that compare sources. */
  line: number;
  index: number;
  uuid?: string;
  name?: string;
  memoryMiB?: number;
  pciBusId?: string;
  /** mig.mode.current; undefined when not queried or not applicable. */
  migEnabled?: boolean;
}

const SRC = 'query-gpu' as const;
/** nvidia-smi's aliases for the fields we read. */
const ALIASES: Record<string, string> = { gpu_name: 'name', gpu_uuid: 'uuid', gpu_bus_id: 'pci.bus_id' };
const HEADER_FIELD = /^([a-z_][a-z0-9_.]*)(?:\s*\[([^\]]*)\])?$/;
const PCI_BUS_ID = /^[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]$/;
/** "[N/A]", "[Not Supported]", "[Unknown Error]", "N/A": nvidia-smi's ways of saying it cannot tell. */
const UNKNOWN = /^(\[[^\]]*\]|N\/A)$/;

function splitCsv(text: string): string[] {
  return text.split(',').map((f) => f.trim());
}

/** Reads the header row, or returns undefined when the first row is data. */
function readHeader(fields: string[]): { names: string[]; units: (string | undefined)[] } | undefined {
  const parsed = fields.map((f) => HEADER_FIELD.exec(f));
  if (parsed.some((p) => p === null)) return undefined;
  return {
    names: parsed.map((p) => ALIASES[p![1]!] ?? p![1]!),
    units: parsed.map((p) => p![2]),
  };
}

export function parseQueryGpu(text: string, opts: { columns?: readonly string[] } = {}): QueryGpuRow[] {
  const lines = numberedLines(text).filter((l) => l.text.trim() !== '');
  const first = lines[0];
  if (!first) return [];
  const header = readHeader(splitCsv(first.text));
  const asked = opts.columns?.map((c) => ALIASES[c] ?? c);
  // When the caller knows what it queried (discovery does), the header must say exactly that:
  // a garbled header must not quietly turn a known field into an ignored one.
  if (header && asked && header.names.join(',') !== asked.join(',')) {
    throw parseError(SRC, first.no, `header names ${header.names.join(', ')}; expected ${asked.join(', ')}`);
  }
  const columns = header?.names ?? asked ?? [...QUERY_GPU_FIELDS];
  if (header?.names.includes('memory.total')) {
    const unit = header.units[header.names.indexOf('memory.total')];
    if (unit !== undefined && unit !== 'MiB') throw parseError(SRC, first.no, `memory.total is in ${unit}, expected MiB`);
  }
  const rows: QueryGpuRow[] = [];
  const seen = new Map<number, number>();
  const data = header ? lines.slice(1) : lines;
  for (const line of data) {
    const fields = splitCsv(line.text);
    if (fields.length !== columns.length) {
      throw parseError(SRC, line.no, `${fields.length} fields, expected ${columns.length} (${columns.join(', ')})`);
    }
    const row: QueryGpuRow = { line: line.no, index: rows.length };
    columns.forEach((column, k) => {
      const value = fields[k]!;
      if (UNKNOWN.test(value) || value === '') return;
      readField(row, column, value, line.no);
    });
    const dup = seen.get(row.index);
    if (dup !== undefined) throw parseError(SRC, line.no, `GPU index ${row.index} already listed on line ${dup}`);
    seen.set(row.index, line.no);
    rows.push(row);
  }
  requireFinalNewline(SRC, text, data.at(-1)?.no);
  return rows;
}

function readField(row: QueryGpuRow, column: string, value: string, line: number): void {
  switch (column) {
    case 'index':
      if (!/^\d+$/.test(value)) throw parseError(SRC, line, `index '${value}' is not a number`);
      row.index = Number(value);
      return;
    case 'uuid':
      if (!GPU_UUID.test(value)) throw parseError(SRC, line, `uuid '${value}' is not a GPU UUID (GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)`);
      row.uuid = value;
      return;
    case 'name':
      row.name = value;
      return;
    case 'memory.total': {
      const m = /^(\d+)(?:\s*MiB)?$/.exec(value);
      if (!m) throw parseError(SRC, line, `memory.total '${value}' is not a number of MiB`);
      row.memoryMiB = Number(m[1]);
      return;
    }
    case 'pci.bus_id':
      if (!PCI_BUS_ID.test(value)) throw parseError(SRC, line, `pci.bus_id '${value}' is not a PCI address like 00000000:18:00.0`);
      row.pciBusId = value;
      return;
    case 'mig.mode.current':
      if (value !== 'Enabled' && value !== 'Disabled') throw parseError(SRC, line, `mig.mode.current '${value}' is not Enabled, Disabled or [N/A]`);
      row.migEnabled = value === 'Enabled';
      return;
    default:
      // A field we do not use (pci.device_id, driver_version, ...): kept out of the model.
      return;
  }
}
