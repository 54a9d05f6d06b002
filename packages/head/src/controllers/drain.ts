/**
 * Draining a node, seen from above: who moves what (each controller moves its
 * own), what is still on a node and what moving it waits on, and when a
 * draining node is *drained* — nothing placed and nothing running there.
 *
 *   node draining (registry) ─▶ scheduler: the node takes no new placement
 *        │
 *        ├─ a replica's group ─▶ rg-plan.ts steps 7-8: replacement
 *        │                        first, READY, then the old replica drained
 *        │                        and stopped (make-before-break)
 *        ├─ any other group  ──▶ docs/placement-groups.md row 8: placed again
 *        │   (with or without    whole elsewhere once it fits there NOW, in
 *        │    a gang on it)      one cycle; else it stays and runs on.
 *        │                       Its gang follows: gangs.ts step 8 (stopped,
 *        │                       started where the group is now)
 *        └─ nothing left     ──▶ drained: event node.drained (once per drain,
 *                                also across leader terms: a new term reads
 *                                the retained events before announcing)
 *
 * When node.drained is announced: by the check every 500 ms, or at once when
 * `GetDrainStatus` finds the node drained (`settledStatus`): a caller told
 * "drained" can rely on the event being durable. Without that, a drain that
 * completed and was uncordoned within one check (`muster node drain --wait`
 * then `uncordon`) was announced or not by chance, and a later drain of the
 * same node could find one node.drained more than it expected.
 *
 * Why a bare gang moves only when it fits elsewhere now (Ray's choice, not
 * Kubernetes' evict-anyway): a training or batch gang has no second copy to
 * serve meanwhile, so stopping it before there is room elsewhere turns a
 * maintenance into an outage of unknown length. The drain waits on it
 * instead, and says so (`GetDrainStatus`); an operator who wants it gone
 * anyway stops the gang.
 */
import { GangState as G, PlacementGroupState as P, type DrainItem, type DrainStatus, type Gang, type Node, type PlacementGroup, type ReplicaGroup } from '@muster/proto';
import { ErrorCode, MusterError, type Logger } from '@muster/common';
import type { NodeRegistry } from '../cluster/registry.js';
import type { EventLog } from '../events/event-log.js';
import { isLive, progressOf } from './rg-moves.js';

const LIVE_GANG = new Set([G.GANG_STATE_PENDING, G.GANG_STATE_STARTING, G.GANG_STATE_READY, G.GANG_STATE_RESTARTING, G.GANG_STATE_STOPPING]);

export interface DrainSources {
  registry: NodeRegistry;
  pgs: { list(): PlacementGroup[]; get(id: string): PlacementGroup; blockedMove(pgId: string): string | undefined };
  gangs: { list(): Gang[] };
  replicaGroups: { list(): ReplicaGroup[] };
}

export class NodeDrains {
  /**
   * Drains announced as drained, or being announced: node id → the drain (its
   * `drainSinceMs`) and the write. A drain is told apart by its start, so a
   * node drained again is announced again even if no check saw the uncordon
   * between. Seeded from the stored events once per term.
   */
  private readonly announced = new Map<string, { sinceMs: number; written: Promise<void> }>();
  private seeded = false;
  private readonly timer: NodeJS.Timeout;
  private checking = false;

  constructor(private readonly src: DrainSources, private readonly events: EventLog, private readonly log: Logger) {
    // announce() catches its own failure (retried on the next tick); the catch here only keeps a bug in it visible.
    this.timer = setInterval(() => {
      this.announce().catch((e: unknown) => this.log.error({ err: (e as Error).message }, 'drain check threw; the next tick checks again'));
    }, 500);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** `status`, and when it says drained, node.drained is durable before it answers (announced now if the check has not yet). */
  async settledStatus(nodeId: string): Promise<DrainStatus> {
    const s = this.status(nodeId);
    const node = s.node;
    if (s.drained && node) {
      await this.seed();
      await this.announceOnce(node);
    }
    return s;
  }

  /** What is still on `nodeId`, what moving each thing waits on, and whether it is drained. */
  status(nodeId: string): DrainStatus {
    const node = this.src.registry.get(nodeId);
    if (!node) throw new MusterError(ErrorCode.NOT_FOUND, `no node "${nodeId}"`, { details: { nodeId } });
    const remaining: DrainItem[] = [];
    const gangs = this.src.gangs.list().filter((g) => LIVE_GANG.has(g.state));
    const replicas = new Map(this.src.replicaGroups.list().flatMap((rg) => rg.replicas.filter((r) => r.placementGroupId).map((r) => [r.placementGroupId, { rg, r }] as const)));
    const here = new Set<string>();
    for (const pg of this.src.pgs.list()) {
      if (!pg.placements.some((p) => p.nodeId === nodeId)) continue;
      here.add(pg.id);
      const item = { placementGroupId: pg.id, placementGroup: pg.spec?.name ?? pg.id };
      const owned = replicas.get(pg.id);
      if (owned) {
        remaining.push({ ...item, owner: `replica group ${owned.rg.name}, replica ${owned.r.id}`, waitingOn: node.draining ? this.replicaWaits(owned.rg, owned.r) : 'node not draining' });
        continue;
      }
      const gang = gangs.find((g) => g.placementGroupId === pg.id);
      const blocked = this.src.pgs.blockedMove(pg.id);
      const waitingOn = !node.draining ? 'node not draining' : blocked ?? (pg.state === P.PLACEMENT_GROUP_STATE_RESERVED || pg.state === P.PLACEMENT_GROUP_STATE_CREATED ? 'its next placement cycle' : 'placement');
      remaining.push({ ...item, owner: gang ? `gang ${gang.spec?.name ?? gang.id}` : '', waitingOn: gang && blocked ? `${blocked}; the gang keeps running here until its group fits elsewhere` : waitingOn });
    }
    // Ranks still running on the node after their group moved away (being stopped).
    for (const g of gangs) {
      if (here.has(g.placementGroupId)) continue;
      const ranks = g.ranks.filter((r) => r.nodeId === nodeId && r.phase !== 'exited' && r.phase !== 'pending');
      if (ranks.length === 0) continue;
      remaining.push({ placementGroupId: '', placementGroup: '', owner: `gang ${g.spec?.name ?? g.id}`, waitingOn: `${ranks.length} rank(s) stopping (${g.message})` });
    }
    return { node, drained: node.draining && remaining.length === 0, remaining };
  }

  private replicaWaits(rg: ReplicaGroup, r: ReplicaGroup['replicas'][number]): string {
    if (r.state === 'draining' || r.state === 'stopping') return r.message;
    if (r.state === 'failed') return 'a failed replica; its placement group is being freed';
    const replacement = rg.replicas.find((x) => x.replaces === r.id && isLive(x));
    if (replacement) return `replacement ${replacement.id} ${progressOf(this.src.pgs, replacement)}`;
    if (!isLive(r)) return r.message;
    return `its turn to be replaced (one move per group at a time): ${rg.message}`;
  }

  /** node.drained, once per drain: a drain announced by an earlier term (its event is still retained) is not announced again. */
  private async announce(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      await this.seed();
      // A node that was removed (`muster node rm`, the dead-node TTL) leaves the map too.
      // A drain that ended forgets its announcement (so the next drain of the node is announced).
      for (const id of this.announced.keys()) if (!this.src.registry.get(id)?.draining) this.announced.delete(id);
      // One unsorted pass, twice a second: at 10,000 nodes list()'s copy and sort was this check's whole cost.
      const draining: Node[] = [];
      for (const n of this.src.registry.all()) if (n.draining && this.announced.get(n.nodeId)?.sinceMs !== n.drainSinceMs) draining.push(n);
      for (const n of draining) if (this.status(n.nodeId).drained) await this.announceOnce(n);
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'drain check failed; retrying');
    } finally {
      this.checking = false;
    }
  }

  /** Once per term, before the first announcement: the drains an earlier term already announced (their event is retained). */
  private async seed(): Promise<void> {
    if (this.seeded) return;
    const drainedAt = new Map<string, number>();
    for (const e of await this.events.history()) if (e.kind === 'node.drained') drainedAt.set(e.nodeId, e.timeMs);
    if (this.seeded) return; // a concurrent caller seeded meanwhile
    for (const n of this.src.registry.all()) {
      if (n.draining && (drainedAt.get(n.nodeId) ?? -1) >= n.drainSinceMs) this.announced.set(n.nodeId, { sinceMs: n.drainSinceMs, written: Promise.resolve() });
    }
    this.seeded = true;
  }

  /** Appends node.drained unless this drain's is written or being written (then waits for that one); a failed write is retried by the next check. */
  private announceOnce(n: Node): Promise<void> {
    const known = this.announced.get(n.nodeId);
    if (known?.sinceMs === n.drainSinceMs) return known.written;
    const written = this.events.append('node.drained', {
      nodeId: n.nodeId,
      message: `node ${n.nodeId} drained: nothing is placed or running there${n.drainReason ? ` (${n.drainReason})` : ''}`,
      attributes: { reason: n.drainReason, drainedForMs: String(Date.now() - n.drainSinceMs) },
    }).then(() => undefined, (e: unknown) => {
      if (this.announced.get(n.nodeId)?.written === written) this.announced.delete(n.nodeId);
      throw e;
    });
    this.announced.set(n.nodeId, { sinceMs: n.drainSinceMs, written });
    return written;
  }
}
