/**
 * Membership in bounded parts: the splitter keeps every part under its bound
 * and every replica once and in order, with the group's fields in the first
 * part; the assembler yields only whole snapshots and drops a partial one on a
 * break, an interleaved version or past its bounds. The worst-case numbers of
 * membership-parts.ts's doc comment are checked against real encodings.
 */
import { describe, expect, it } from 'vitest';
import { MAX_MESSAGE_BYTES, MAX_SUBJECT_PREFIX_LENGTH, REPLICA_GROUP_NAME_PATTERN, replicaSubject } from '@muster/contracts';
import { Membership, type MemberReplica } from '@muster/proto';
import { randomId } from './ids.js';
import {
  assembleMembership,
  MAX_MEMBER_BYTES,
  MAX_MEMBERSHIP_HEADER_BYTES,
  MAX_MEMBERSHIP_PARTS,
  MAX_MEMBERSHIP_REPLICAS,
  MEMBERSHIP_PART_BYTES,
  membershipParts,
  type MembershipDiscard,
} from './membership-parts.js';

const GROUP = 'g'.repeat(42);
const PREFIX = 'p'.repeat(MAX_SUBJECT_PREFIX_LENGTH);
const bytes = (m: Membership) => Membership.encode(m).finish().length;

/** `n` replicas at their longest (ids of the head's shape: "r-" + 8 hex digits; revisions of 10). */
function replicas(n: number, revision = 'abcdef0123'): MemberReplica[] {
  return Array.from({ length: n }, (_, i) => {
    const replicaId = `r-${i.toString(16).padStart(8, '0')}`;
    return { replicaId, revision, subject: replicaSubject(PREFIX, GROUP, replicaId) };
  });
}

/** A membership with every group-level field set at its longest. */
function membership(version: number, members: MemberReplica[]): Membership {
  return {
    group: GROUP,
    version,
    replicas: members,
    revisionWeights: { abcdef0123: 0.25, '0123abcdef': 0.75 },
    maxInFlightPerReplica: 1_000_000,
    overflow: { group: 'o'.repeat(42), queuePerReplicaAbove: 10_000_000, onBackPressure: true },
    routing: { policy: 'prefix', prefixChars: 65_536, loadFactor: 1.25 },
    more: false,
  };
}

async function* from<T>(items: T[], then?: Error): AsyncGenerator<T> {
  for (const i of items) yield i;
  if (then) throw then;
}

async function drain(parts: AsyncIterable<Membership>): Promise<{ out: Membership[]; discards: [MembershipDiscard, { version: number; parts: number }][]; error?: unknown }> {
  const discards: [MembershipDiscard, { version: number; parts: number }][] = [];
  const out: Membership[] = [];
  try {
    for await (const m of assembleMembership(parts, (why, p) => discards.push([why, { version: p.version, parts: p.parts }]))) out.push(m);
  } catch (error) {
    return { out, discards, error };
  }
  return { out, discards };
}

describe('the largest membership (the numbers of membership-parts.ts)', () => {
  it('one replica at its longest encodes in MAX_MEMBER_BYTES, the group fields under MAX_MEMBERSHIP_HEADER_BYTES', () => {
    expect(REPLICA_GROUP_NAME_PATTERN.test(GROUP)).toBe(true);
    expect(REPLICA_GROUP_NAME_PATTERN.test(`${GROUP}g`)).toBe(false); // 42 is the longest name
    expect(randomId('r', 8)).toHaveLength(10);
    const one = membership(Number.MAX_SAFE_INTEGER, replicas(1));
    const header = bytes({ ...one, replicas: [], more: true });
    expect(bytes(one) + 2 - header).toBe(MAX_MEMBER_BYTES);
    expect(header).toBeLessThanOrEqual(MAX_MEMBERSHIP_HEADER_BYTES);
  });

  it('the largest snapshot passes 1 MiB whole, and goes in at most MAX_MEMBERSHIP_PARTS parts under the bound', () => {
    expect(MAX_MEMBERSHIP_REPLICAS).toBe(20_101);
    expect(MAX_MEMBERSHIP_PARTS).toBe(12);
    const m = membership(Number.MAX_SAFE_INTEGER, replicas(MAX_MEMBERSHIP_REPLICAS));
    expect(bytes(m)).toBe(3_015_329);
    expect(bytes(m)).toBeLessThan(MAX_MESSAGE_BYTES);
    const parts = membershipParts(m);
    expect(parts.length).toBeLessThanOrEqual(MAX_MEMBERSHIP_PARTS);
    for (const p of parts) expect(bytes(p)).toBeLessThanOrEqual(MEMBERSHIP_PART_BYTES);
  });
});

describe('membershipParts', () => {
  it('sends a snapshot that fits as it is: one message, the same object, no `more`', () => {
    const m = membership(3, replicas(100));
    expect(membershipParts(m)).toEqual([m]);
    expect(membershipParts(m)[0]).toBe(m);
    const empty = membership(4, []);
    expect(membershipParts(empty, 64)).toEqual([empty]);
  });

  it('splits 12,000 replicas into parts under 256 KiB: every replica once, in order; group fields in the first part', () => {
    const m = membership(9, replicas(12_000));
    expect(bytes(m)).toBeGreaterThan(1024 * 1024);
    const parts = membershipParts(m);
    expect(parts.length).toBeGreaterThan(4);
    for (const p of parts) {
      expect(bytes(p)).toBeLessThanOrEqual(MEMBERSHIP_PART_BYTES);
      expect([p.group, p.version]).toEqual([GROUP, 9]);
    }
    expect(parts.map((p) => p.more)).toEqual([...parts.slice(1).map(() => true), false]);
    expect(parts.flatMap((p) => p.replicas)).toEqual(m.replicas);
    const [first, ...rest] = parts;
    expect(first).toMatchObject({ revisionWeights: m.revisionWeights, maxInFlightPerReplica: 1_000_000, overflow: m.overflow, routing: m.routing });
    for (const p of rest) expect(p).toMatchObject({ revisionWeights: {}, maxInFlightPerReplica: 0, overflow: undefined, routing: undefined });
  });

  it('counts bytes exactly (multi-byte characters too): each part is full, one more replica would pass the bound', () => {
    const members = replicas(300).map((r, i) => (i % 7 === 0 ? { ...r, subject: `${r.subject}.é€😀`, revision: '' } : r));
    const m = membership(2, members);
    const bound = 2_000;
    const parts = membershipParts(m, bound);
    expect(parts.flatMap((p) => p.replicas)).toEqual(members);
    let next = 0;
    for (const p of parts) {
      next += p.replicas.length;
      expect(bytes(p)).toBeLessThanOrEqual(bound);
      if (next < members.length) expect(bytes({ ...p, replicas: [...p.replicas, members[next]!] })).toBeGreaterThan(bound);
    }
  });
});

describe('assembleMembership', () => {
  const big = membership(5, replicas(12_000));
  const parts = membershipParts(big);

  it('yields whole messages as they come and split ones once joined, equal to what was split', async () => {
    const small = membership(4, replicas(3));
    const { out, discards } = await drain(from([small, ...parts, membership(6, replicas(2))]));
    expect(out.map((m) => m.version)).toEqual([4, 5, 6]);
    expect(out[0]).toBe(small);
    expect(out[1]).toEqual(big);
    expect(discards).toEqual([]);
  });

  it('drops the partial snapshot when the stream breaks before its last part, and passes the error on', async () => {
    const broke = new Error('stream reset');
    const { out, discards, error } = await drain(from(parts.slice(0, 3), broke));
    expect(out).toEqual([]);
    expect(error).toBe(broke);
    expect(discards).toEqual([['broken', { version: 5, parts: 3 }]]);
  });

  it('refuses a part of another version before the last part: drops the partial and ends (the caller reopens)', async () => {
    const other = membershipParts(membership(6, replicas(12_000)));
    let read = 0;
    const counted = (async function* () {
      for (const p of [parts[0]!, parts[1]!, ...other]) {
        read++;
        yield p;
      }
    })();
    const { out, discards, error } = await drain(counted);
    expect(error).toBeUndefined();
    expect(out).toEqual([]);
    expect(discards).toEqual([['interleaved', { version: 5, parts: 2 }]]);
    expect(read).toBe(3); // nothing after the refused part was read
  });

  it('drops a snapshot past its bounds: more than MAX_MEMBERSHIP_PARTS parts', async () => {
    const tiny = (i: number): Membership => ({ ...membership(8, replicas(1)), more: i < MAX_MEMBERSHIP_PARTS + 5 });
    const { out, discards } = await drain(from(Array.from({ length: MAX_MEMBERSHIP_PARTS + 6 }, (_, i) => tiny(i))));
    expect(out).toEqual([]);
    expect(discards).toEqual([['oversized', { version: 8, parts: MAX_MEMBERSHIP_PARTS + 1 }]]);
  });

  it('drops a snapshot past its bounds: more than MAX_MEMBERSHIP_REPLICAS replicas', async () => {
    const many = membershipParts(membership(9, replicas(MAX_MEMBERSHIP_REPLICAS + 1)), 1024 * 1024);
    const { out, discards } = await drain(from(many));
    expect(many.length).toBeLessThanOrEqual(MAX_MEMBERSHIP_PARTS);
    expect(out).toEqual([]);
    expect(discards.map(([why]) => why)).toEqual(['oversized']);
  });
});
