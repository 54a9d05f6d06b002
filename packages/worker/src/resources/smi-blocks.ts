/**
 * The long-running GPU query's stdout (gpu-reader.ts) cut into lines and the
 * lines into blocks, with bounded memory whatever nvidia-smi writes.
 *
 * Lines: a line longer than `maxLine` characters is dropped whole (its start
 * and everything up to its newline), never held, and reported, so the block
 * it belonged to is known to be torn. A trailing CR is dropped; blank lines
 * are skipped.
 *
 * Blocks: nvidia-smi writes one row per GPU each interval, in index order, so
 * a block is complete when it holds as many rows as the node has GPUs. A row
 * whose index is not above the one before it starts a new interval: a block
 * still short then is torn (a row went missing), and the count restarts
 * there, so one lost or extra line costs one block, not every later one. A
 * line without a leading index (garbage) takes a row's place and fails that
 * block's parse. Why a count and not a `timestamp` column: the query's
 * fields (the one-shot query's) have none, and the count is known from the
 * inventory, so a block is whole the moment its last row arrives instead of
 * when the next interval's first row does.
 */

/** A row is under 100 characters (index, 40-character UUID, three numbers); this is 10 of them. */
export const MAX_LINE_CHARS = 1_024;

export class LineBuffer {
  private partial = '';
  /** Inside an over-long line: drop everything up to its newline. */
  private dropping = false;

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly onDropped: () => void,
    private readonly maxLine = MAX_LINE_CHARS,
  ) {}

  push(chunk: string): void {
    let start = 0;
    for (let nl = chunk.indexOf('\n'); nl >= 0; nl = chunk.indexOf('\n', start)) {
      const piece = chunk.slice(start, nl);
      start = nl + 1;
      if (this.dropping) this.dropping = false;
      else if (this.partial.length + piece.length > this.maxLine) this.onDropped();
      else this.line(this.partial + piece);
      this.partial = '';
    }
    if (this.dropping) return;
    const rest = chunk.slice(start);
    if (this.partial.length + rest.length <= this.maxLine) {
      this.partial += rest;
      return;
    }
    this.partial = '';
    this.dropping = true;
    this.onDropped();
  }

  private line(text: string): void {
    const clean = text.endsWith('\r') ? text.slice(0, -1) : text;
    if (clean.trim() !== '') this.onLine(clean);
  }
}

/** What a line completed: a whole block's rows, or a block known to miss rows. */
export type BlockEvent = { rows: string[] } | { torn: true };

export class BlockAssembler {
  private rows: string[] = [];
  private lastIndex = -1;
  private torn = false;

  constructor(private readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new Error(`a block needs at least one row, not ${size}`);
  }

  /** A line of the block being read was dropped: that block cannot be whole. */
  tear(): void {
    this.torn = true;
  }

  push(line: string): BlockEvent | undefined {
    const index = /^\s*(\d+)\s*,/.exec(line)?.[1];
    let event: BlockEvent | undefined;
    if (index !== undefined && this.rows.length > 0 && Number(index) <= this.lastIndex) {
      // A new interval began before this block was whole.
      event = { torn: true };
      this.reset();
    }
    if (index !== undefined) this.lastIndex = Number(index);
    this.rows.push(line);
    if (this.rows.length < this.size) return event;
    // Only reached with event unset: a resync leaves one row, and a one-row block never holds two.
    const done: BlockEvent = this.torn ? { torn: true } : { rows: this.rows };
    this.reset();
    return done;
  }

  private reset(): void {
    this.rows = [];
    this.lastIndex = -1;
    this.torn = false;
  }
}
