/**
 * The table bench/peers prints: one row per comparison, the peer's median
 * (Ray, or the raw NATS floor), ours, the ratio and its target. A ratio is
 * always "how many times better we are" (rates: ours / theirs; latencies:
 * theirs / ours), except the floor rows, where the targets are a ceiling on
 * our p50 (≤ 1.3× the floor) and a floor on our throughput (≥ 0.8×).
 * Pure: numbers in, text and a verdict out (test/unit/bench-peers.test.ts checks it).
 */

export const median = (xs: number[]): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((x, y) => x - y);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

export interface Row {
  /** What is compared. */
  shape: string;
  /** The peer's name for its side: "Ray", "Ray Serve proxy", "NATS floor". */
  peer: string;
  theirs: number;
  ours: number;
  unit: string;
  /** rate: more is better (ratio ours/theirs); latency: less is better (ratio theirs/ours). */
  kind: 'rate' | 'latency';
  /** ≥ for "at least this many times better"; ≤ for the floor's p50 ceiling (ours/theirs). */
  target: { op: '>=' | '<='; ratio: number };
  /** Extra columns: per-round values, p99, errors. */
  note?: string;
}

/** The number compared against the target. Floor p50 rows (op ≤) compare ours/theirs directly. */
export function ratioOf(r: Row): number {
  if (r.target.op === '<=') return r.ours / r.theirs;
  return r.kind === 'rate' ? r.ours / r.theirs : r.theirs / r.ours;
}

export function meets(r: Row): boolean {
  const x = ratioOf(r);
  if (!Number.isFinite(x)) return false;
  return r.target.op === '>=' ? x >= r.target.ratio : x <= r.target.ratio;
}

const fmt = (x: number, unit: string): string => {
  if (!Number.isFinite(x)) return '—';
  const digits = x >= 100 ? 0 : unit === 'ms' ? 3 : x < 10 ? 2 : 0;
  return `${x.toLocaleString('en-US', { maximumFractionDigits: digits })} ${unit}`;
};

/** The table as aligned text (also valid Markdown), and whether every row met its target. */
export function renderTable(rows: Row[]): { text: string; ok: boolean } {
  const head = ['shape', 'peer', 'peer (median)', 'Muster (median)', 'ratio', 'target', 'met', 'notes'];
  const body = rows.map((r) => [
    r.shape,
    r.peer,
    fmt(r.theirs, r.unit),
    fmt(r.ours, r.unit),
    `${ratioOf(r).toFixed(2)}×`,
    `${r.target.op === '>=' ? '≥' : '≤'} ${r.target.ratio}×`,
    meets(r) ? 'yes' : 'NO',
    r.note ?? '',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  const text = [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
  return { text, ok: rows.every(meets) };
}

/** `a` and `b` with every array concatenated (the rounds of two passes as one sample). */
export function mergeRounds<T>(a: T | undefined, b: T): T {
  if (a === undefined) return b;
  if (Array.isArray(a) && Array.isArray(b)) return [...a, ...b] as T;
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null) {
    const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
    for (const [k, v] of Object.entries(b)) out[k] = mergeRounds(out[k], v);
    return out as T;
  }
  return b;
}
