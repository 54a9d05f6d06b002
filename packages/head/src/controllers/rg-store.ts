/**
 * How a replica group lies in the store: one key for the group's own fields
 * and one key per replica, so the group's record stays small however many
 * replicas it has, and a change of one replica rewrites one small key instead
 * of the whole group (issue 15, point 5; docs/replica-groups.md, "Stored
 * layout").
 *
 *   /muster/rgs/<group>                    ReplicaGroup, `replicas` empty
 *   /muster/rgs/<group>/replicas/<id>      Replica
 *
 * Group names have no "/" (rg-spec.ts), so `<group>/replicas/` is the one
 * prefix of a group's replicas and the keys of two groups never mix. Both
 * kinds sit under RGS_PREFIX: one paged walk loads them (assemble), and a
 * fault armed on RGS_PREFIX covers them all.
 *
 * Size bound per key: a replica key holds ids, a revision, a subject and a
 * message cut to REPLICA_MESSAGE_BYTES: under 2 KiB. The group key holds the
 * spec (and a canary's stable spec, each bounded by SPEC_LIMITS) and a message
 * cut to GROUP_MESSAGE_BYTES; it no longer grows with the replica count.
 *
 * Older heads stored the replicas inline in the group record. Such a record
 * is read as it is (its inline list is the truth, whatever replica keys a
 * half-done migration left), and the first write of the group migrates it:
 * every replica to its key, stray keys deleted, the record rewritten without
 * them. Replica keys go before the group key in a commit, so a commit split
 * into several transactions that fails half-way leaves the inline record
 * (still the truth) or extra replica records (which the planner retires),
 * never a record that names fewer replicas than exist.
 *
 * A replica key whose group record exists but cannot be read is no orphan:
 * its group is unknown, not gone, and its replicas are the only record of
 * which placement groups and gangs they hold. assemble() keeps such keys out
 * of `orphans` (and reports the group in `unreadable`, with its replicas in
 * `strays`); the controller quarantines the group (quarantine.ts) and leaves
 * every key in place until an operator deletes it or a later head reads it.
 * A new group's first write deletes every key under its replicas prefix, so
 * it never inherits replica keys a deleted group of the same name left.
 *
 * Each replica is encoded once per write: the bytes last stored under each
 * replica key are kept (StoredGroup.keyed) and compared with the new bytes.
 *
 * Pure: no I/O; the controller writes what storeOps says through its commit.
 */
import { Replica, ReplicaGroup } from '@muster/proto';
import type { KeyValue } from '../state/store.js';

export const RGS_PREFIX = '/muster/rgs/';
/** A replica's message is cut to this many bytes when stored (a gang's failure text can be long). */
export const REPLICA_MESSAGE_BYTES = 1024;
/** The group's message likewise (it quotes the last failed replica's message). */
export const GROUP_MESSAGE_BYTES = 4096;

export const groupKey = (group: string): string => RGS_PREFIX + group;
export const replicasPrefix = (group: string): string => `${RGS_PREFIX}${group}/replicas/`;
export const replicaKey = (group: string, id: string): string => replicasPrefix(group) + id;

/** What the store holds of one group, as the controller keeps it. */
export interface StoredGroup {
  /** The group with its replicas (from their keys, or inline in an old record). */
  rg: ReplicaGroup;
  /** Ids of the replicas that have a key in the store → the bytes stored under it. */
  keyed: Map<string, Uint8Array>;
  /** The stored group record still carries its replicas inline (written by an older head). */
  inline: boolean;
}

/** The group a key under RGS_PREFIX belongs to, and the replica id for a replica key. */
export function parseKey(key: string): { group: string; replica?: string } | undefined {
  if (!key.startsWith(RGS_PREFIX)) return undefined;
  const parts = key.slice(RGS_PREFIX.length).split('/');
  if (parts.length === 1 && parts[0]) return { group: parts[0] };
  if (parts.length === 3 && parts[0] && parts[1] === 'replicas' && parts[2]) return { group: parts[0], replica: parts[2] };
  return undefined;
}

/**
 * Groups from the keys of a paged walk (any order). `orphans`: replica keys
 * whose group has no record (left by a group deletion whose commit was cut
 * short), to be deleted; `skipped`: keys that could not be read;
 * `unreadable`: groups whose record is among them (their replica keys are
 * kept, not orphans: see the top of this file); `strays`: each of those as
 * far as it is known (a stand-in record with the name and the replicas of
 * the keys that could be read).
 */
export function assemble(kvs: readonly KeyValue[]): { groups: StoredGroup[]; orphans: string[]; skipped: string[]; unreadable: string[]; strays: StoredGroup[] } {
  const records = new Map<string, ReplicaGroup>();
  const replicas = new Map<string, Array<{ r: Replica; bytes: Uint8Array }>>();
  const keysOf = new Map<string, string[]>();
  const skipped: string[] = [];
  const unreadable = new Set<string>();
  for (const kv of kvs) {
    const at = parseKey(kv.key);
    try {
      if (!at) throw new Error('not a replica group key');
      if (at.replica === undefined) {
        unreadable.add(at.group); // until it decodes
        records.set(at.group, ReplicaGroup.decode(kv.value));
        unreadable.delete(at.group);
        continue;
      }
      const r = Replica.decode(kv.value);
      if (r.id !== at.replica) throw new Error(`replica id ${r.id} does not match its key`);
      push(replicas, at.group, { r, bytes: kv.value });
      push(keysOf, at.group, kv.key);
    } catch {
      skipped.push(kv.key);
    }
  }
  const groups: StoredGroup[] = [];
  for (const [name, record] of records) {
    const stored = replicas.get(name) ?? [];
    const keyed = new Map(stored.map(({ r, bytes }) => [r.id, bytes] as const));
    const inline = record.replicas.length > 0;
    groups.push({ rg: bounded({ ...record, replicas: inline ? record.replicas : stored.map(({ r }) => r) }), keyed, inline });
  }
  const orphans = [...keysOf].filter(([name]) => !records.has(name) && !unreadable.has(name)).flatMap(([, keys]) => keys);
  const strays = [...unreadable].map((name) => {
    const stored = replicas.get(name) ?? [];
    const standIn = { ...ReplicaGroup.decode(new Uint8Array(0)), name, replicas: stored.map(({ r }) => r) };
    return { rg: bounded(standIn), keyed: new Map(stored.map(({ r, bytes }) => [r.id, bytes] as const)), inline: false };
  });
  return { groups, orphans, skipped, unreadable: [...unreadable], strays };
}

/** The writes that take the store from `prev` (undefined: a new group) to `next`. */
export interface StoreOps {
  /** Replica keys first, the group key last (see the top of this file). */
  puts: Array<[key: string, value: Uint8Array]>;
  deletes: string[];
  /** A new group: every key under this prefix is deleted first (stray replica keys of a deleted group of the same name). */
  clear?: string;
  /** The replica ids with a key once these ops are written → the bytes stored under it. */
  keyed: Map<string, Uint8Array>;
}

export function storeOps(prev: StoredGroup | undefined, next: ReplicaGroup): StoreOps {
  const name = next.name;
  const puts: StoreOps['puts'] = [];
  const before = new Map((prev?.rg.replicas ?? []).map((r) => [r.id, r] as const));
  const migrating = prev?.inline ?? false;
  const keyed = new Map<string, Uint8Array>();
  for (const r of next.replicas) {
    const last = migrating ? undefined : prev?.keyed.get(r.id);
    // The same object as stored: its bytes are the stored ones, no encoding needed.
    const bytes = last && before.get(r.id) === r ? last : Replica.encode(r).finish();
    if (last && (bytes === last || sameBytes(bytes, last))) keyed.set(r.id, last);
    else {
      puts.push([replicaKey(name, r.id), bytes]);
      keyed.set(r.id, bytes);
    }
  }
  const deletes = [...(prev?.keyed.keys() ?? [])].filter((id) => !keyed.has(id)).map((id) => replicaKey(name, id));
  if (!prev || migrating || !sameBytes(ownFields(prev.rg), ownFields(next))) puts.push([groupKey(name), ReplicaGroup.encode({ ...next, replicas: [] }).finish()]);
  return { puts, deletes, keyed, ...(prev ? {} : { clear: replicasPrefix(name) }) };
}

/** Every key of a stored group, replicas first: what deleting the group deletes. */
export function keysOf(stored: StoredGroup): string[] {
  return [...[...stored.keyed.keys()].map((id) => replicaKey(stored.rg.name, id)), groupKey(stored.rg.name)];
}

/**
 * `rg` as it is stored and kept in memory: its replicas in creation order
 * (ties by id; keys carry no order, so this is the order a new leader reads
 * back and every API answer shows), messages cut to their bounds. The same
 * objects where nothing changes.
 */
export function bounded(rg: ReplicaGroup): ReplicaGroup {
  let changed = !rg.replicas.every((r, i) => i === 0 || byCreation(rg.replicas[i - 1]!, r) <= 0);
  const replicas = (changed ? [...rg.replicas].sort(byCreation) : rg.replicas).map((r) => {
    const message = cut(r.message, REPLICA_MESSAGE_BYTES);
    if (message === r.message) return r;
    changed = true;
    return { ...r, message };
  });
  const message = cut(rg.message, GROUP_MESSAGE_BYTES);
  return changed || message !== rg.message ? { ...rg, replicas, message } : rg;
}

/** `s` cut to at most `max` UTF-8 bytes, ending in "…" when cut. */
export function cut(s: string, max: number): string {
  if (Buffer.byteLength(s, 'utf8') <= max) return s;
  // Cut at a byte count, then drop a code point split in two (decoded as U+FFFD).
  return Buffer.from(s, 'utf8').subarray(0, max - 3).toString('utf8').replace(/\uFFFD$/, '') + '…';
}

/** The group's own fields as stored (no replicas; the autoscaler's soft timers left out: they only ride along). */
function ownFields(rg: ReplicaGroup): Uint8Array {
  return ReplicaGroup.encode({ ...rg, replicas: [], autoscaler: undefined }).finish();
}

function byCreation(a: Replica, b: Replica): number {
  return a.createdAtMs - b.createdAtMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function push<T>(m: Map<string, T[]>, k: string, v: T): void {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
}
