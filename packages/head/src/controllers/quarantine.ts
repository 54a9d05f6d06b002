/**
 * Records a head cannot read: quarantined, never dropped (issue 15: clusters
 * that live for months, through upgrades; docs/state-store.md, "Records a
 * head cannot read").
 *
 * On load (start, failover, a reload after a failed commit) every stored
 * gang, placement group and replica group is decoded and validated again. A
 * head whose validator got stricter than the one that wrote a record (a new
 * bound, a refused key), or a value damaged in the store, used to log the
 * record and leave it out of memory: its ranks were then stopped as unknown,
 * its bundles released and handed to others, and the record stayed in the
 * store where no list showed it and no call could delete it.
 *
 * Now such a record is kept, as Kubernetes keeps an object its controller
 * cannot handle:
 *   - in memory, beside the records the controller runs (never among them:
 *     no planner, timer, reconcile, collector or node-death path iterates it),
 *     and untouched in the store (never rewritten);
 *   - holding what it held: a placement group's bundles stay reserved in the
 *     scheduling view and in the agents' reservation snapshots, a gang's
 *     ports stay in use and its ranks' reports are matched to it (not stopped
 *     as unknown), a replica group's replicas keep their gangs and groups;
 *   - visible: Get and List answer it, its message (a placement group's
 *     reason, code QUARANTINED) saying why and what to do; the cluster
 *     summary counts it under QUARANTINED; a `<kind>.quarantined` event is
 *     written when a head first finds it;
 *   - deletable by hand: StopGang, RemovePlacementGroup, DeleteReplicaGroup
 *     delete its key through the one commit path and then let go of what it
 *     held (ranks told to stop, bundles released).
 * A record whose bytes do not decode has only its key: it is shown as a
 * stand-in (the id from its key, state unspecified) and, deleted, its
 * release goes to every live agent since no one knows where it ran.
 *
 * This module is the shared part: the note shown, and the set each
 * controller keeps (bounded by what the store holds; the log-once marks by
 * the set).
 */
import type { Logger } from '@muster/common';

/** The state name the cluster summary counts quarantined records under, and a placement group's reason code. */
export const QUARANTINED = 'QUARANTINED';

export interface Quarantined<T> {
  /** The record's id (a replica group's name), from its key when the value could not be decoded. */
  id: string;
  /** Its key in the store. */
  key: string;
  /** Its name, when decoded (placement groups and gangs are also found by name). */
  name?: string | undefined;
  /** What the store holds, as decoded; for an undecodable value, a stand-in with the id only. */
  record: T;
  /** False: the value did not decode (nothing is known of what it held). */
  decoded: boolean;
  /** The decoder's or validator's message. */
  why: string;
}

/** What a quarantined record says, in its message: why, and what to do. */
export function quarantineNote(key: string, why: string): string {
  return `quarantined: this head cannot read the stored record ${key} (${why}); it is kept and holds what it held, but nothing is done with it — delete it, or run a head version that accepts it`;
}

/** The quarantined records of one kind, as one controller keeps them. */
export class Quarantine<T> {
  private items = new Map<string, Quarantined<T>>();
  /** "<id> <path>" of the skips already logged (cleared with the record). */
  private readonly logged = new Set<string>();

  constructor(private readonly log: Logger, private readonly kind: string) {}

  /**
   * Memory becomes `next` (what a load found), each logged as an error.
   * Returns the records that were not quarantined before: their event is due.
   */
  replace(next: ReadonlyMap<string, Quarantined<T>>): Array<Quarantined<T>> {
    const fresh = [...next.values()].filter((q) => !this.items.has(q.id));
    for (const q of next.values()) this.log.error({ [this.kind]: q.id, key: q.key, decoded: q.decoded, err: q.why }, `stored ${this.kind} cannot be read by this head; quarantined (kept, holding what it held, not acted on)`);
    for (const k of this.logged) if (!next.has(k.slice(0, k.indexOf(' ')))) this.logged.delete(k);
    this.items = new Map(next);
    return fresh;
  }

  get size(): number {
    return this.items.size;
  }

  has(id: string): boolean {
    return this.items.has(id);
  }

  /** By id, else by name (a linear scan: quarantined records are few). */
  find(idOrName: string): Quarantined<T> | undefined {
    const byId = this.items.get(idOrName);
    if (byId) return byId;
    for (const q of this.items.values()) if (q.name === idOrName) return q;
    return undefined;
  }

  values(): Iterable<Quarantined<T>> {
    return this.items.values();
  }

  /** The record was deleted (its delete is durable). */
  delete(id: string): void {
    this.items.delete(id);
    for (const k of this.logged) if (k.startsWith(`${id} `)) this.logged.delete(k);
  }

  /** A path that would have acted on `id` left it alone: said once per record and path. */
  skipped(id: string, path: string, fields: Record<string, unknown> = {}): void {
    const k = `${id} ${path}`;
    if (this.logged.has(k)) return;
    this.logged.add(k);
    this.log.warn({ [this.kind]: id, path, ...fields }, `quarantined ${this.kind} left alone`);
  }
}
