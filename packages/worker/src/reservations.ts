/**
 * The head's reservations on this node, as the agent keeps them: placement
 * group id → its bundles here. Replaced by the snapshot the head sends at
 * every registration (releases may have been missed while away), then kept by
 * reserve and release messages; each reservation is acknowledged.
 *
 * A snapshot over 256 KiB comes in parts (`more` on all but the last:
 * @muster/common agent-parts.ts): the table changes, and the groups are
 * acknowledged, only after the last part, so a stream that breaks between
 * parts leaves the reservations as they were. A new stream starts with
 * `restart()`, dropping a partial snapshot of the old one.
 */
import { PartsAssembler } from '@muster/common';
import type { BundlePlacement, ReservationSnapshot, ReserveBundles } from '@muster/proto';

export class ReservationTable {
  readonly byGroup = new Map<string, BundlePlacement[]>();
  private parts = new PartsAssembler<ReserveBundles>();

  /** A part of a snapshot: the group ids to acknowledge (all of them after the last part; none before). Throws PartsOverflow past the reader's bounds, changing nothing. */
  snapshot(part: ReservationSnapshot): string[] {
    const groups = this.parts.add(part.groups, part.more);
    if (!groups) return [];
    this.byGroup.clear();
    for (const g of groups) this.byGroup.set(g.groupId, g.bundles);
    return groups.map((g) => g.groupId);
  }

  /** One group reserved here: its id, to acknowledge. */
  reserve(r: ReserveBundles): string {
    this.byGroup.set(r.groupId, r.bundles);
    return r.groupId;
  }

  release(groupId: string): void {
    this.byGroup.delete(groupId);
  }

  /** A new stream: a partial snapshot of the last one is dropped. */
  restart(): void {
    this.parts.reset();
  }
}
