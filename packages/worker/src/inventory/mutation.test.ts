/**
 * Property tests for "truncated and mutated variants of the fixtures either
 * parse correctly or fail with a line-numbered error; never a wrong matrix".
 *
 * "Correctly" is checked against the parse of the untouched fixture: the GPU
 * matrix and the GPU-to-NIC links must come out identical, and of the facts
 * that a single line states on its own (one GPU's affinity values, one NIC's
 * legend name) at most one may differ, because that is what the edited text
 * now says. Anything else must be a MusterError whose details.line points
 * into the text.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isMusterError } from '@muster/common';
import { parseGpuList, type ListGpu } from './parse-list.js';
import { parseQueryGpu, QUERY_GPU_FIELDS } from './parse-query.js';
import { parseTopo, type TopoResult } from './parse-topo.js';

const DIR = new URL('../../test-fixtures/nvidia-smi/', import.meta.url);
const fixture = (dir: URL, name: string): string => readFileSync(new URL(name, dir), 'utf8').split('\n').slice(1).join('\n');

const FIXTURES: [string, string][] = [
  ['hgx-h100 (spaces, NIC legend)', fixture(DIR, 'hgx-h100-8gpu-nv18-8nic.txt')],
  ['dgx1-v100 (spaces, mlx5_0 column)', fixture(DIR, 'dgx1-v100-8gpu-hybrid-cube-mesh.txt')],
  ['rtx4090 (tabs, no legend)', fixture(DIR, 'pcie-8x-rtx4090-all-sys-2nic-tabs.txt')],
  ['k40m (SOC)', fixture(DIR, 'k40m-4gpu-soc-mlx4-tabs.txt')],
  ['v100-power9 (NV3 islands)', fixture(DIR, 'v100-4gpu-nv3-power9-numa8-tabs.txt')],
];

type Outcome<T> = { ok: true; result: T } | { ok: false; line: number };

function outcome<T>(parse: (text: string) => T, source: string, text: string): Outcome<T> {
  try {
    return { ok: true, result: parse(text) };
  } catch (e) {
    if (!isMusterError(e) || e.code !== 'MUSTER_INVALID_ARGUMENT') throw e;
    const line = e.details.line;
    expect(typeof line).toBe('number');
    expect(e.message.startsWith(`${source} line ${line}: `)).toBe(true);
    expect(line).toBeGreaterThanOrEqual(1);
    expect(line).toBeLessThanOrEqual(text.split('\n').length + 1);
    return { ok: false, line: line as number };
  }
}

/** How many per-line facts differ between two parses whose matrices are equal. */
function lineFactDiffs(a: TopoResult, b: TopoResult): number {
  let diffs = 0;
  const fields = ['numaNodes', 'cpuAffinity', 'gpuNumaIds'] as const;
  for (const f of fields) a[f].forEach((v, i) => (diffs += v === b[f][i] ? 0 : 1));
  a.nics.forEach((nic, j) => (diffs += nic.name === b.nics[j]!.name ? 0 : 1));
  return diffs;
}

/** The check every variant must pass: a line-numbered error, or the original matrix. */
function expectCorrectOrLineError(base: TopoResult, text: string, allowedFactDiffs: number, legendMayVanish = false): void {
  const o = outcome(parseTopo, 'topo -m', text);
  if (!o.ok) return;
  expect(o.result.links).toEqual(base.links);
  expect(o.result.nics.map((n) => [n.column, n.links])).toEqual(base.nics.map((n) => [n.column, n.links]));
  if (legendMayVanish && o.result.nics.every((n) => n.name === n.column)) {
    // The cut removed the NIC legend: names fall back to the column labels the text still has.
    o.result.nics.forEach((n, j) => (n.name = base.nics[j]!.name));
  }
  expect(lineFactDiffs(o.result, base)).toBeLessThanOrEqual(allowedFactDiffs);
}

const EDIT_CHARS = [' ', '\t', '\n', 'X', 'N', 'V', 'I', 'S', 'Y', 'P', 'H', 'B', 'O', 'D', 'E', '0', '1', '2', '8', '-', ',', ':', '_', '/'];

describe.each(FIXTURES)('topo -m variants of %s', (_name, text) => {
  const base = parseTopo(text);

  it('cut at any point: the original model or a line-numbered error', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: text.length - 1 }), (cut) => {
        expectCorrectOrLineError(base, text.slice(0, cut), 0, true);
      }),
      { numRuns: 400 },
    );
  });

  it('one character replaced, deleted or inserted: the original matrix or a line-numbered error', () => {
    const edit = fc.record({
      at: fc.integer({ min: 0, max: text.length - 1 }),
      kind: fc.constantFrom('replace', 'delete', 'insert'),
      char: fc.constantFrom(...EDIT_CHARS),
    });
    fc.assert(
      fc.property(edit, ({ at, kind, char }) => {
        const mutated = text.slice(0, at) + (kind === 'delete' ? '' : char) + text.slice(kind === 'insert' ? at : at + 1);
        expectCorrectOrLineError(base, mutated, 1);
      }),
      { numRuns: 1500 },
    );
  });

  it('a line deleted, duplicated or swapped with the next: the original model or a line-numbered error', () => {
    const lines = text.split('\n');
    const edit = fc.record({ at: fc.integer({ min: 0, max: lines.length - 2 }), kind: fc.constantFrom('delete', 'duplicate', 'swap') });
    fc.assert(
      fc.property(edit, ({ at, kind }) => {
        const out = [...lines];
        if (kind === 'delete') out.splice(at, 1);
        else if (kind === 'duplicate') out.splice(at, 0, out[at]!);
        else [out[at], out[at + 1]] = [out[at + 1]!, out[at]!];
        expectCorrectOrLineError(base, out.join('\n'), 0);
      }),
      { numRuns: 300 },
    );
  });

  it('any re-spacing with tabs and spaces gives the same model', () => {
    const gaps = fc.array(fc.constantFrom(' ', '\t', '  ', ' \t', '\t\t', '     '), { minLength: 1, maxLength: 400 });
    fc.assert(
      fc.property(gaps, (pick) => {
        let k = 0;
        const respaced = text.replace(/[ \t]+/g, () => pick[k++ % pick.length]!);
        expect(parseTopo(respaced)).toEqual(base);
      }),
      { numRuns: 100 },
    );
  });
});

/** Flattens -L output to one string per stated fact, so edits can be counted. */
const listFacts = (gpus: ListGpu[]): string[] =>
  gpus.flatMap((g) => [`${g.index}`, g.name, g.uuid, ...g.mig.flatMap((m) => [`${m.index}`, m.profile, m.uuid])]);

const edits = (text: string) =>
  fc.record({ at: fc.integer({ min: 0, max: text.length - 1 }), kind: fc.constantFrom('replace', 'delete', 'insert'), char: fc.constantFrom(...EDIT_CHARS, 'g', 'b', 'a', 'M', ')', '(') });
const applyEdit = (text: string, { at, kind, char }: { at: number; kind: string; char: string }): string =>
  text.slice(0, at) + (kind === 'delete' ? '' : char) + text.slice(kind === 'insert' ? at : at + 1);

describe('-L and --query-gpu variants', () => {
  const list = fixture(DIR, 'list-4x-a100-80gb-gpu0-mig-4x1g20gb.txt');
  const listBase = parseGpuList(list);
  const query = [
    'index, uuid, name, memory.total [MiB], pci.bus_id, mig.mode.current',
    ...[0, 1, 2, 3].map((i) => `${i}, ${listBase[i]!.uuid}, NVIDIA A100-SXM4-80GB, 81920 MiB, 00000000:${i}7:00.0, ${i === 0 ? 'Enabled' : 'Disabled'}`),
    '',
  ].join('\n');
  // Discovery knows the fields it asked for, and parses with them.
  const parseQuery = (text: string) => parseQueryGpu(text, { columns: QUERY_GPU_FIELDS });
  const queryBase = parseQuery(query);

  it('-L cut at any point: a line-numbered error, or exactly the complete lines before the cut', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: list.length - 1 }), (cut) => {
        const o = outcome(parseGpuList, '-L', list.slice(0, cut));
        if (!o.ok) return;
        // A cut on a line boundary is a shorter but true listing; nothing may be half-read.
        const facts = listFacts(o.result);
        expect(facts).toEqual(listFacts(listBase).slice(0, facts.length));
      }),
      { numRuns: 400 },
    );
  });

  it('-L with one character edited: a line-numbered error, or one stated fact changed', () => {
    fc.assert(
      fc.property(edits(list), (edit) => {
        const o = outcome(parseGpuList, '-L', applyEdit(list, edit));
        if (!o.ok) return;
        const got = listFacts(o.result);
        const want = listFacts(listBase);
        expect(got.length).toBe(want.length);
        expect(got.filter((f, i) => f !== want[i]).length).toBeLessThanOrEqual(1);
      }),
      { numRuns: 1500 },
    );
  });

  it('--query-gpu with one character edited or cut: a line-numbered error, or one stated fact changed', () => {
    const facts = (rows: ReturnType<typeof parseQueryGpu>): string[] =>
      rows.flatMap((r) => [r.index, r.uuid, r.name, r.memoryMiB, r.pciBusId, r.migEnabled].map(String));
    fc.assert(
      fc.property(edits(query), fc.boolean(), (edit, cut) => {
        const text = cut ? query.slice(0, edit.at) : applyEdit(query, edit);
        const o = outcome(parseQuery, 'query-gpu', text);
        if (!o.ok) return;
        const got = facts(o.result);
        const want = facts(queryBase);
        if (cut) expect(got).toEqual(want.slice(0, got.length));
        else expect(got.filter((f, i) => f !== want[i]).length + Math.abs(got.length - want.length)).toBeLessThanOrEqual(1);
      }),
      { numRuns: 1500 },
    );
  });
});
