/**
 * The agent stream's snapshots in parts: every part within AGENT_PART_BYTES,
 * `more` on all but the last, joined back in order by the reader; a snapshot
 * that fits is the one message it always was; a reader past its bounds drops
 * the partial snapshot and says so.
 */
import { describe, expect, it } from 'vitest';
import { ReservationSnapshot, ShardInventory, type ReserveBundles, type ShardStatusReport } from '@muster/proto';
import { AGENT_MAX_PARTS, AGENT_PART_BYTES, PartsAssembler, PartsOverflow, reservationParts, shardInventoryParts, splitBySize } from './agent-parts.js';

const report = (rank: number, tail = 4096): ShardStatusReport => ({
  gangId: `g-${rank}`, attempt: 1, rank, phase: 'running', pid: 1000 + rank, exitCode: undefined, signal: '', reason: '€'.repeat(1024), stopped: false, logTail: '€'.repeat(tail), portInUse: 0, warmupMs: 0,
} as ShardStatusReport);
const group = (i: number): ReserveBundles => ({
  groupId: `pg-${i}`,
  bundles: [{ bundleIndex: 0, nodeId: 'n1', gpuIndices: [0], migUuids: [], cpuMillis: 1000, memoryBytes: 2 ** 30, custom: Object.fromEntries(Array.from({ length: 8 }, (_, k) => [`r${k}${'x'.repeat(100)}`, 1])), gpuUuids: [] }],
});

describe('shard inventory parts', () => {
  it('an inventory that fits is one message without more, as before the field existed', () => {
    const shards = [report(0, 10), report(1, 10)];
    expect(shardInventoryParts(shards)).toEqual([{ shards, more: false }]);
  });

  it('1,000 shards with the longest reasons and tails go in parts within the bound, joined back in order', () => {
    const shards = Array.from({ length: 1000 }, (_, i) => report(i));
    const parts = shardInventoryParts(shards);
    expect(parts.length).toBeGreaterThan(50); // ~16 KiB a report: 15 a part
    for (const p of parts) expect(ShardInventory.encode(p).finish().length).toBeLessThanOrEqual(AGENT_PART_BYTES);
    expect(parts.map((p) => p.more)).toEqual([...parts.map(() => true).slice(1), false]);
    const reader = new PartsAssembler<ShardStatusReport>();
    const joined = parts.map((p) => reader.add(p.shards, p.more));
    expect(joined.slice(0, -1).every((j) => j === undefined)).toBe(true);
    expect(joined.at(-1)?.map((s) => s.rank)).toEqual(shards.map((s) => s.rank));
    expect(reader.partial).toBe(false);
  });
});

describe('reservation snapshot parts', () => {
  it('10,000 one-bundle groups on one node go in parts within the bound', () => {
    const snapshot = { groups: Array.from({ length: 10_000 }, (_, i) => group(i)), more: false };
    expect(ReservationSnapshot.encode(snapshot).finish().length).toBeGreaterThan(4 * 1024 * 1024); // over the gRPC limit whole
    const parts = reservationParts(snapshot);
    for (const p of parts) expect(ReservationSnapshot.encode(p).finish().length).toBeLessThanOrEqual(AGENT_PART_BYTES);
    expect(parts.flatMap((p) => p.groups.map((g) => g.groupId))).toEqual(snapshot.groups.map((g) => g.groupId));
    expect(parts.filter((p) => !p.more)).toHaveLength(1);
    expect(reservationParts({ groups: [], more: false })).toEqual([{ groups: [], more: false }]);
  });
});

describe('the reader', () => {
  it('drops a snapshot past its parts bound, and starts afresh with the next', () => {
    const reader = new PartsAssembler<number>(AGENT_MAX_PARTS, 10);
    expect(reader.add([1, 2], true)).toBeUndefined();
    expect(() => reader.add(Array.from({ length: 9 }, (_, i) => i), true)).toThrow(PartsOverflow);
    expect(reader.partial).toBe(false);
    expect(reader.add([7], false)).toEqual([7]);
  });

  it('splitBySize gives an item larger than the bound a part of its own', () => {
    expect(splitBySize([1, 100, 1], (n) => n, 58, 8)).toEqual([[1], [100], [1]]);
  });
});
