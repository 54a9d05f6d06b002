/**
 * Moving a replica group's replicas off draining nodes, make-before-break
 * (rg-plan.ts, lifecycle steps 7-8), as seen in one reconcile pass.
 *
 * An *evacuee* is a live (starting or ready) replica with a bundle on a
 * draining node. Its *replacement* is a live replica whose persisted
 * `replaces` names it. The two count as ONE replica for everything else the
 * reconcile does (start what is missing, scale down, roll out, autoscale):
 * the replacement is a surge beyond `desired`, invisible to those counts,
 * until the evacuee is drained. That is what keeps the desired count steady
 * and keeps the move from fighting a rollout or the autoscaler.
 *
 * No I/O: the controller acts on what this says.
 */
import type { PlacementGroup, Replica } from '@muster/proto';

/** What this needs of the placement group controller. */
interface Groups {
  get(id: string): PlacementGroup;
}

export const isLive = (r: Replica): boolean => r.state === 'starting' || r.state === 'ready';

export class ReplicaMoves {
  /** Evacuee id → the draining nodes holding its bundles. */
  readonly evacuees: Map<string, string[]>;
  /** Evacuee id → its live replacement. */
  readonly replacementOf = new Map<string, Replica>();

  constructor(private readonly replicas: readonly Replica[], drainingNodesOf: (r: Replica) => string[]) {
    this.evacuees = new Map(replicas.filter(isLive).map((r) => [r.id, drainingNodesOf(r)] as const).filter(([, nodes]) => nodes.length > 0));
    for (const s of replicas) if (s.replaces && isLive(s) && this.evacuees.has(s.replaces)) this.replacementOf.set(s.replaces, s);
  }

  /** Step 8: evacuees whose replacement is READY, to be drained now; they leave the pairs. */
  takeDone(): Array<{ evacuee: Replica; replacement: Replica; nodes: string[] }> {
    const done = [];
    for (const [id, s] of [...this.replacementOf]) {
      if (s.state !== 'ready') continue;
      this.replacementOf.delete(id);
      done.push({ evacuee: this.replicas.find((r) => r.id === id)!, replacement: s, nodes: this.evacuees.get(id)! });
    }
    return done;
  }

  /** Replacements counted with their evacuee (left out of every count). */
  shadows(): Set<string> {
    return new Set([...this.replacementOf.values()].map((s) => s.id));
  }

  /** Step 7: the evacuee to replace next among `live` (oldest first), if no move is under way in the group. */
  next(live: readonly Replica[]): Replica | undefined {
    if (this.replacementOf.size > 0) return undefined;
    return live.filter((r) => this.evacuees.has(r.id) && !this.replacementOf.has(r.id)).sort((a, b) => a.createdAtMs - b.createdAtMs)[0];
  }

  /** Scale-down order: replicas on draining nodes first (they are leaving anyway). */
  readonly evacueesFirst = (a: Replica, b: Replica): number => Number(this.evacuees.has(b.id)) - Number(this.evacuees.has(a.id));

  /** For the group's message: each move under way, with `progress` of its replacement, and how many wait. */
  describe(progress: (replacement: Replica) => string): string[] {
    const lines = [...this.replacementOf].map(([id, s]) => `moving ${id} off draining node ${this.evacuees.get(id)!.join(', ')}: replacement ${s.id} ${progress(s)}`);
    const waiting = [...this.evacuees.keys()].filter((id) => !this.replacementOf.has(id) && isLive(this.replicas.find((r) => r.id === id)!)).length;
    if (waiting > 0) lines.push(`${waiting} replica(s) on draining nodes wait their turn`);
    return lines;
  }
}

function groupOf(pgs: Groups, r: Replica): PlacementGroup | undefined {
  try {
    return r.placementGroupId ? pgs.get(r.placementGroupId) : undefined;
  } catch {
    return undefined;
  }
}

/** The draining nodes holding a bundle of the replica's placement group. */
export function drainingNodesOf(pgs: Groups, isDraining: (nodeId: string) => boolean, r: Replica): string[] {
  return [...new Set(groupOf(pgs, r)?.placements.map((p) => p.nodeId) ?? [])].filter(isDraining);
}

/** A replacement's progress: "waiting for capacity: <why its group is pending>", else its state and gang's message. */
export function progressOf(pgs: Groups, s: Replica): string {
  const pg = groupOf(pgs, s);
  if (pg && pg.placements.length === 0) return `waiting for capacity: ${pg.reason?.message ?? 'not placed yet'}`;
  return `${s.state}${s.message ? ` (${s.message})` : ''}`;
}
