/**
 * The ordered key index of the embedded store.
 *
 * Keys are kept in etcd's order: by their UTF-8 bytes. That is JavaScript's
 * string order except where a surrogate pair (a code point above U+FFFF)
 * meets a BMP character in U+E000..U+FFFF, so `compareKeys` fixes exactly that
 * case and is otherwise a plain char-code comparison.
 *
 * The structure is a list of sorted chunks (a "sorted list of lists"): an
 * insert or delete binary-searches the chunk, then splices inside one chunk of
 * at most 2 × CHUNK keys, so a write costs O(log n + CHUNK) instead of the
 * O(n) memmove of one big sorted array. A range is a walk from the first key
 * >= the prefix. Chunks are split when they grow and rebuilt in one O(n) pass
 * when deletes have left too many small ones (rare, so amortized away).
 */

const CHUNK = 512;

/** Orders two keys by their UTF-8 bytes, as etcd does. */
export function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    // In UTF-16 surrogates (D800-DFFF) sort below E000-FFFF; in UTF-8 the
    // code points they encode (>= 0x10000) sort above. Lift them.
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

/** Index of the first element of `arr` that is >= key. */
function lowerBound(arr: readonly string[], key: string): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(arr[mid]!, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class SortedKeys {
  /** Non-empty sorted chunks in order; a single empty chunk when there are no keys. */
  private chunks: string[][] = [[]];
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Index of the chunk that holds `key` or where it would be inserted. */
  private chunkOf(key: string): number {
    let lo = 0;
    let hi = this.chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const chunk = this.chunks[mid]!;
      if (compareKeys(chunk[chunk.length - 1]!, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Adds a key that is not yet present (the caller's map says so). */
  insert(key: string): void {
    const ci = this.chunkOf(key);
    const chunk = this.chunks[ci]!;
    chunk.splice(lowerBound(chunk, key), 0, key);
    this.count++;
    if (chunk.length > 2 * CHUNK) this.chunks.splice(ci + 1, 0, chunk.splice(CHUNK));
  }

  /** Removes a key that is present. */
  delete(key: string): void {
    const ci = this.chunkOf(key);
    const chunk = this.chunks[ci]!;
    const i = lowerBound(chunk, key);
    if (chunk[i] !== key) return;
    chunk.splice(i, 1);
    this.count--;
    if (chunk.length === 0 && this.chunks.length > 1) this.chunks.splice(ci, 1);
    if (this.chunks.length > 8 && this.chunks.length > (4 * this.count) / CHUNK) this.rebuild();
  }

  /** Keys >= `start`, in order. Do not insert or delete while iterating. */
  *from(start: string): Generator<string> {
    let ci = this.chunkOf(start);
    let i = lowerBound(this.chunks[ci]!, start);
    for (; ci < this.chunks.length; ci++, i = 0) {
      const chunk = this.chunks[ci]!;
      for (; i < chunk.length; i++) yield chunk[i]!;
    }
  }

  private rebuild(): void {
    const all = this.chunks.flat();
    this.chunks = [];
    for (let i = 0; i < all.length; i += CHUNK) this.chunks.push(all.slice(i, i + CHUNK));
    if (this.chunks.length === 0) this.chunks.push([]);
  }
}
