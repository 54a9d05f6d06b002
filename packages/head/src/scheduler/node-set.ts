/**
 * A set of node indices (`NodeHeadroom.idx`) as a bitset: 32 nodes a word.
 *
 * The scheduler's index (node-index.ts) keeps one per free-GPU count and one
 * of the untouched nodes, and a pass intersects them with the candidates of
 * an attempt word by word. At 10,000 nodes a whole set is 313 words, so an
 * intersection costs far less than one filter call per node, and its members
 * come out in index order — the order ties are broken in — without a sort.
 */
export class NodeSet {
  words: Uint32Array;

  constructor(capacity = 0) {
    this.words = new Uint32Array(Math.max(1, Math.ceil(capacity / 32)));
  }

  static of(indices: Iterable<number>, capacity: number): NodeSet {
    const s = new NodeSet(capacity);
    for (const i of indices) s.add(i);
    return s;
  }

  add(i: number): void {
    const w = i >>> 5;
    if (w >= this.words.length) this.grow(w + 1);
    this.words[w]! |= 1 << (i & 31);
  }

  delete(i: number): void {
    const w = i >>> 5;
    if (w < this.words.length) this.words[w]! &= ~(1 << (i & 31));
  }

  has(i: number): boolean {
    const w = i >>> 5;
    return w < this.words.length && (this.words[w]! & (1 << (i & 31))) !== 0;
  }

  /** Members, ascending. */
  *[Symbol.iterator](): IterableIterator<number> {
    const ws = this.words;
    for (let w = 0; w < ws.length; w++) {
      let m = ws[w]!;
      while (m !== 0) {
        const low = m & -m;
        yield (w << 5) + (31 - Math.clz32(low));
        m ^= low;
      }
    }
  }

  private grow(words: number): void {
    const next = new Uint32Array(Math.max(words, this.words.length * 2));
    next.set(this.words);
    this.words = next;
  }
}

/**
 * Calls `visit` with each member of a ∩ b (∩ `and`, minus `not`, when
 * given), ascending, until it returns false.
 */
export function eachBoth(a: NodeSet, b: NodeSet, visit: (i: number) => boolean, opts: { and?: NodeSet | undefined; not?: NodeSet | undefined } = {}): void {
  const n = Math.min(a.words.length, b.words.length);
  const aw = a.words;
  const bw = b.words;
  const cw = opts.and?.words;
  const nw = opts.not?.words;
  for (let w = 0; w < n; w++) {
    let m = aw[w]! & bw[w]!;
    if (cw !== undefined) m &= w < cw.length ? cw[w]! : 0;
    if (nw !== undefined && w < nw.length) m &= ~nw[w]!;
    while (m !== 0) {
      const low = m & -m;
      if (!visit((w << 5) + (31 - Math.clz32(low)))) return;
      m ^= low;
    }
  }
}
