/**
 * A replica group's membership in bounded parts: the head splits a snapshot
 * whose encoding would pass MEMBERSHIP_PART_BYTES (256 KiB) into parts
 * (`membershipParts`), the SDK joins them again (`assembleMembership`). Both
 * halves of the one wire rule live here, so they are read and tested together
 * (no gRPC message over 1 MiB anywhere: issue 15).
 *
 * The rule (`Membership.more`, field 8): the parts of one snapshot have its
 * group and version and go out back to back; the first carries the group-level
 * fields (revision weights, router limit, overflow, routing: fields 4-7) and
 * the first replicas, the next ones only group, version and further replicas,
 * in order; every part but the last has `more` set. A snapshot that fits in one
 * part is sent exactly as before the field existed (one message, `more` unset).
 *
 * The largest membership (why the bounds below hold). A membership lists the
 * READY replicas. A group has at most SPEC_LIMITS.replicas (10,000) desired;
 * a canary runs up to `desired` of the stable revision beside
 * max(1, round(desired × weight)) ≤ `desired` of the new one, a rolling update
 * surges at most 100 (rollout.maxSurge) above `desired`, and one replacement of
 * a replica on a draining node runs beside it: MAX_MEMBERSHIP_REPLICAS =
 * 2 × 10,000 + 100 + 1 = 20,101 bounds them all (the surge and the canary
 * never add up: the planner starts nothing while other revisions run beyond
 * desired + surge). One replica's encoding, at its longest:
 *   replica_id  "r-" + 8 hex digits (the head's randomId)         1 + 1 + 10  = 12 B
 *   revision    10 hex digits (rg-spec.ts revisionOf)              1 + 1 + 10  = 12 B
 *   subject     prefix (≤ MAX_SUBJECT_PREFIX_LENGTH = 64) ".rg."
 *               group (≤ 42) "." replica_id: ≤ 121 characters      1 + 1 + 121 = 123 B
 *   the entry in `replicas` (tag, 2-byte length, 147 B)                         = 150 B
 * The group-level fields at their longest: group 44 B, version (< 2^53) 9,
 * two revision weights 46, router limit (≤ 1,000,000) 4, overflow (a
 * 42-character group, a rule ≤ 10,000,000, a flag) 53, routing 23, `more` 2:
 * 181 B, bounded here by MAX_MEMBERSHIP_HEADER_BYTES = 256. So the largest
 * snapshot is 20,101 × 150 + 179 = 3,015,329 B (2.9 MiB) in one message: over
 * 1 MiB from about 7,000 such replicas, under MAX_MESSAGE_BYTES (4 MiB) still.
 * A part holds at least (262,144 − 256) / 150 = 1,745 of them, so a snapshot
 * is MAX_MEMBERSHIP_PARTS = 12 parts at most. The membership-parts test
 * encodes these longest values and checks each number.
 *
 * What the reader bounds: a partial snapshot of at most MAX_MEMBERSHIP_PARTS
 * parts and MAX_MEMBERSHIP_REPLICAS replicas (beyond either it is dropped). A
 * partial is dropped, and counted by reason, when the stream breaks before its
 * last part ('broken': the reopened stream starts with a whole snapshot), when
 * a part of another version or group comes before its last part
 * ('interleaved': a protocol error) or when it passes a bound ('oversized');
 * after the last two the assembler ends, so the caller reopens the stream for
 * a fresh snapshot.
 */
import { Membership, type MemberReplica } from '@muster/proto';
import { SPEC_LIMITS } from '@muster/contracts';

/** The most bytes one WatchMembership message carries when it is one part of several. */
export const MEMBERSHIP_PART_BYTES = 256 * 1024;
/** The most READY replicas a group's membership can list (see the top of this file). */
export const MAX_MEMBERSHIP_REPLICAS = 2 * SPEC_LIMITS.replicas + 100 + 1;
/** One replica's encoding in a membership at its longest. */
export const MAX_MEMBER_BYTES = 150;
/** A bound on the encoding of a part's fields other than its replicas. */
export const MAX_MEMBERSHIP_HEADER_BYTES = 256;
/** The most parts one snapshot takes (12). */
export const MAX_MEMBERSHIP_PARTS = Math.ceil(MAX_MEMBERSHIP_REPLICAS / Math.floor((MEMBERSHIP_PART_BYTES - MAX_MEMBERSHIP_HEADER_BYTES) / MAX_MEMBER_BYTES));

/** Why a partial snapshot was dropped. */
export type MembershipDiscard = 'broken' | 'interleaved' | 'oversized';

/**
 * `m` as the messages that carry it, each encoded in at most `maxBytes`: `[m]`
 * itself when it fits. A part holds at least one replica, so only a replica
 * larger than the bound alone (none is: see the top) makes a part pass it.
 */
export function membershipParts(m: Membership, maxBytes: number = MEMBERSHIP_PART_BYTES): Membership[] {
  const sizes = m.replicas.map(entryBytes);
  const total = sizes.reduce((a, b) => a + b, 0);
  if (sizes.length === 0 || Membership.encode({ ...m, replicas: [], more: false }).finish().length + total <= maxBytes) return [m];
  const first: Membership = { ...m, replicas: [], more: true };
  const rest: Membership = { group: m.group, version: m.version, replicas: [], revisionWeights: {}, maxInFlightPerReplica: 0, overflow: undefined, routing: undefined, more: true };
  const headers = [Membership.encode(first).finish().length, Membership.encode(rest).finish().length] as const;
  const parts: Membership[] = [];
  for (let start = 0; start < sizes.length; ) {
    let bytes = parts.length === 0 ? headers[0] : headers[1];
    let end = start;
    while (end < sizes.length && (end === start || bytes + sizes[end]! <= maxBytes)) bytes += sizes[end++]!;
    parts.push({ ...(parts.length === 0 ? first : rest), replicas: m.replicas.slice(start, end) });
    start = end;
  }
  parts[parts.length - 1]!.more = false;
  return parts;
}

/**
 * The whole snapshots in one stream's messages (`parts`: one connection, from
 * its first message): a message sent whole passes as it is, the parts of a
 * split one are joined and yielded once the last came. `onDiscard` hears of
 * every partial snapshot dropped (see the top of this file).
 */
export async function* assembleMembership(parts: AsyncIterable<Membership>, onDiscard: (why: MembershipDiscard, partial: { group: string; version: number; parts: number; replicas: number }) => void = () => {}): AsyncGenerator<Membership> {
  let partial: { first: Membership; replicas: MemberReplica[]; parts: number } | undefined;
  const discard = (why: MembershipDiscard) => {
    if (!partial) return;
    onDiscard(why, { group: partial.first.group, version: partial.first.version, parts: partial.parts, replicas: partial.replicas.length });
    partial = undefined;
  };
  try {
    for await (const m of parts) {
      if (!partial) {
        if (!m.more) {
          yield m;
          continue;
        }
        partial = { first: m, replicas: [], parts: 0 };
      } else if (m.version !== partial.first.version || m.group !== partial.first.group) {
        discard('interleaved');
        return;
      }
      if (partial.parts + 1 > MAX_MEMBERSHIP_PARTS || partial.replicas.length + m.replicas.length > MAX_MEMBERSHIP_REPLICAS) {
        partial.parts++;
        discard('oversized');
        return;
      }
      partial.parts++;
      for (const r of m.replicas) partial.replicas.push(r);
      if (m.more) continue;
      const whole: Membership = { ...partial.first, replicas: partial.replicas, more: false };
      partial = undefined;
      yield whole;
    }
  } finally {
    discard('broken');
  }
}

/** Bytes of `r` as one entry of `Membership.replicas` (tag, length, message), as protobuf encodes it. */
function entryBytes(r: MemberReplica): number {
  const inner = stringField(r.replicaId) + stringField(r.revision) + stringField(r.subject);
  return 1 + varintBytes(inner) + inner;
}

/** A proto3 string field of a number below 16: nothing when empty, else tag, length, UTF-8. */
function stringField(s: string): number {
  if (s === '') return 0;
  const n = Buffer.byteLength(s, 'utf8');
  return 1 + varintBytes(n) + n;
}

function varintBytes(n: number): number {
  let bytes = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    bytes++;
  }
  return bytes;
}
