/**
 * The two snapshots on the agent stream in bounded parts (no gRPC message over
 * 1 MiB: issue 15): an agent's ShardInventory (agent → head) and the head's
 * ReservationSnapshot (head → agent). Both halves of the wire rule live here,
 * so they are read and tested together, as membership-parts.ts does for
 * WatchMembership.
 *
 * The rule (field `more` of both messages): a snapshot whose encoding passes
 * AGENT_PART_BYTES (256 KiB) goes as several messages, sent back to back on
 * the stream, each at most AGENT_PART_BYTES; every part but the last has
 * `more` set. The reader keeps the items of the parts and acts on the whole
 * after the last one: the head reconciles the inventory (adopts the shards
 * it knows, stops the rest, and takes a rank missing from *all* parts for
 * gone); the agent replaces its reservations. A snapshot that fits is sent
 * exactly as before the field existed (one message, `more` unset).
 *
 * Why sizes get there: a node runs up to hundreds of shards, each report with
 * a reason (≤ 1 KiB) and a log tail (≤ 4 KiB, up to 12 KiB of UTF-8), so an
 * inventory passes 1 MiB from about 250 shards; a node holds up to thousands
 * of reservations (one-bundle placement groups), each up to ~1 KiB with its
 * custom resources, so a snapshot passes 1 MiB from a few thousand.
 *
 * What the reader bounds: AGENT_MAX_PARTS parts and AGENT_MAX_ITEMS items
 * per snapshot (256 parts of 256 KiB is 64 MiB: far above either real
 * snapshot). Past either, or when the stream ends before the last part, the
 * partial snapshot is dropped: the head ends the stream with an error (the
 * agent reconnects and sends a fresh inventory), the agent keeps its
 * reservations and waits for the next snapshot.
 *
 * Version skew: a reader older than this rule takes each part for a whole
 * snapshot. An older agent acks every part's groups and reads its table for
 * nothing else, so a new head's parts are harmless to it; an older head would
 * take an inventory's earlier parts for gone, so heads are upgraded before
 * agents. Only a snapshot over 256 KiB is split: under that size mixed
 * versions behave as before (docs/limits.md#agent-stream).
 */
import { ReserveBundles, ShardStatusReport, type ReservationSnapshot, type ShardInventory } from '@muster/proto';

/** The most bytes one part of a split snapshot takes. */
export const AGENT_PART_BYTES = 256 * 1024;
/** The most parts a reader joins into one snapshot. */
export const AGENT_MAX_PARTS = 256;
/** The most items (shard reports, reserved groups) a reader joins into one snapshot. */
export const AGENT_MAX_ITEMS = 65_536;

/**
 * `items` cut into runs whose sizes (`sizeOf`: each item's bytes in its
 * message, tag and length included) add up to at most `maxBytes − headerBytes`.
 * One run when everything fits; a single item larger than that is a run of
 * its own (it is sent, and the reader's message limit decides).
 */
export function splitBySize<T>(items: readonly T[], sizeOf: (item: T) => number, maxBytes: number = AGENT_PART_BYTES, headerBytes = 8): T[][] {
  const budget = maxBytes - headerBytes;
  const runs: T[][] = [];
  let run: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const n = sizeOf(item);
    if (run.length > 0 && bytes + n > budget) {
      runs.push(run);
      run = [];
      bytes = 0;
    }
    run.push(item);
    bytes += n;
  }
  if (run.length > 0 || runs.length === 0) runs.push(run);
  return runs;
}

/** The bytes a length-delimited field of `n` bytes takes in its message (a one-byte tag, the varint length, the bytes). */
export function fieldBytes(n: number): number {
  let len = 1;
  for (let v = n; v >= 0x80; v >>>= 7) len++;
  return 1 + len + n;
}

/** An agent's inventory as the messages that carry it: `[{ shards }]` when it fits in one part. */
export function shardInventoryParts(shards: readonly ShardStatusReport[], maxBytes: number = AGENT_PART_BYTES): ShardInventory[] {
  const runs = splitBySize(shards, (s) => fieldBytes(ShardStatusReport.encode(s).finish().length), maxBytes);
  return runs.map((run, i) => ({ shards: run, more: i < runs.length - 1 }));
}

/** A reservation snapshot as the messages that carry it: `[snapshot]` when it fits in one part. */
export function reservationParts(snapshot: ReservationSnapshot, maxBytes: number = AGENT_PART_BYTES): ReservationSnapshot[] {
  const runs = splitBySize(snapshot.groups, (g) => fieldBytes(ReserveBundles.encode(g).finish().length), maxBytes);
  return runs.map((run, i) => ({ groups: run, more: i < runs.length - 1 }));
}

/**
 * Joins the parts of one snapshot. `add` returns the whole snapshot's items
 * after its last part, undefined while more are due; it throws
 * (`PartsOverflow`) when a snapshot passes AGENT_MAX_PARTS or
 * AGENT_MAX_ITEMS, dropping what it held. `reset` drops a partial snapshot
 * (its stream ended).
 */
export class PartsAssembler<T> {
  private items: T[] = [];
  private parts = 0;

  constructor(
    private readonly maxParts: number = AGENT_MAX_PARTS,
    private readonly maxItems: number = AGENT_MAX_ITEMS,
  ) {}

  add(items: readonly T[], more: boolean): T[] | undefined {
    this.parts++;
    if (this.parts > this.maxParts || this.items.length + items.length > this.maxItems) {
      const seen = { parts: this.parts, items: this.items.length + items.length };
      this.reset();
      throw new PartsOverflow(seen.parts, seen.items, this.maxParts, this.maxItems);
    }
    if (this.parts === 1 && !more) {
      this.reset();
      return [...items];
    }
    for (const i of items) this.items.push(i);
    if (more) return undefined;
    const whole = this.items;
    this.reset();
    return whole;
  }

  /** True while a snapshot's parts are being joined. */
  get partial(): boolean {
    return this.parts > 0;
  }

  reset(): void {
    this.items = [];
    this.parts = 0;
  }
}

/** A snapshot in parts passed the reader's bounds. */
export class PartsOverflow extends Error {
  constructor(
    readonly parts: number,
    readonly items: number,
    readonly maxParts: number,
    readonly maxItems: number,
  ) {
    super(`a snapshot in parts passed the reader's bounds: ${parts} parts (the limit is ${maxParts}), ${items} items (the limit is ${maxItems})`);
    this.name = 'PartsOverflow';
  }
}
