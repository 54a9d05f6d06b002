/**
 * The agent's reservation table: a snapshot in parts replaces the table, and
 * acknowledges its groups, only after its last part; a stream that breaks
 * between parts leaves the table as it was; a snapshot that fits is applied
 * at once, as before parts existed.
 */
import { describe, expect, it } from 'vitest';
import { PartsOverflow, reservationParts } from '@muster/common';
import type { ReserveBundles } from '@muster/proto';
import { ReservationTable } from './reservations.js';

const group = (i: number): ReserveBundles => ({
  groupId: `pg-${i}`,
  bundles: [{ bundleIndex: 0, nodeId: 'n1', gpuIndices: [], migUuids: [], cpuMillis: 1, memoryBytes: 1, custom: { [`r${'x'.repeat(200)}`]: 1 }, gpuUuids: [] }],
});

describe('the reservation table', () => {
  it('applies a snapshot in parts after its last part, acknowledging every group then', () => {
    const t = new ReservationTable();
    t.reserve(group(-1));
    const parts = reservationParts({ groups: Array.from({ length: 4000 }, (_, i) => group(i)), more: false });
    expect(parts.length).toBeGreaterThan(2);
    for (const p of parts.slice(0, -1)) {
      expect(t.snapshot(p)).toEqual([]);
      expect([...t.byGroup.keys()]).toEqual(['pg--1']); // unchanged until the last part
    }
    const acked = t.snapshot(parts.at(-1)!);
    expect(acked).toHaveLength(4000);
    expect(t.byGroup.size).toBe(4000);
    expect(t.byGroup.has('pg--1')).toBe(false); // replaced: a release missed while away
  });

  it("a stream broken between parts changes nothing; the next stream's snapshot applies whole", () => {
    const t = new ReservationTable();
    t.snapshot({ groups: [group(1)], more: false });
    expect(t.snapshot({ groups: [group(2)], more: true })).toEqual([]);
    t.restart();
    expect([...t.byGroup.keys()]).toEqual(['pg-1']);
    expect(t.snapshot({ groups: [group(3)], more: false })).toEqual(['pg-3']);
    expect([...t.byGroup.keys()]).toEqual(['pg-3']);
  });

  it('reserve and release keep the table between snapshots; a snapshot past the bounds throws and changes nothing', () => {
    const t = new ReservationTable();
    expect(t.reserve(group(1))).toBe('pg-1');
    t.release('pg-1');
    expect(t.byGroup.size).toBe(0);
    t.reserve(group(5));
    const one = group(0);
    expect(() => t.snapshot({ groups: Array.from({ length: 65_537 }, () => one), more: true })).toThrow(PartsOverflow);
    expect([...t.byGroup.keys()]).toEqual(['pg-5']);
  });
});
