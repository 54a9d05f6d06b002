/**
 * A replica group's live membership: its READY replicas and, during a
 * canary, the traffic weight of each revision. Routers take a membership
 * only when its version is higher than the one they have, so versions must
 * only grow — across head restarts and failovers too: a feed starts from the
 * version stored with the group, and the controller stores a new version
 * before it announces it (`propose` → store → `commit`; a proposal whose
 * write fails is dropped, and the next one reuses its number). It also
 * carries the group's router limit per replica (`maxInFlightPerReplica`), so
 * a change of that limit reaches every router without a roll, and its
 * overflow (group and saturation rule) and routing policy (`routing`,
 * defaults filled by contracts' routingConfig), the same way.
 */
import { routingConfig } from '@muster/contracts';
import type { Membership, ReplicaGroup } from '@muster/proto';
import { maxInFlightOf } from './rg-spec.js';

export class MembershipFeed {
  private current: Membership;
  private readonly watchers = new Set<(m: Membership) => void>();

  constructor(group: string, storedVersion: number) {
    this.current = { group, version: storedVersion, replicas: [], revisionWeights: {}, maxInFlightPerReplica: 0, overflow: undefined, routing: undefined, more: false };
  }

  get version(): number {
    return this.current.version;
  }

  /**
   * A record read back from the store carries `version`: a later proposal
   * numbers on from it (a write that failed at the store after taking
   * effect may have stored a version nobody heard of). Nothing is announced.
   */
  observeStored(version: number): void {
    if (version > this.current.version) this.current = { ...this.current, version };
  }

  /** The membership as `rg` stands now, with the next version; undefined when nothing changed. */
  propose(rg: ReplicaGroup, canaryWeight: number): Membership | undefined {
    const replicas = rg.replicas.filter((r) => r.state === 'ready').map((r) => ({ replicaId: r.id, revision: r.revision, subject: r.subject }));
    const revisionWeights: Record<string, number> = {};
    const revisions = new Set(replicas.map((m) => m.revision));
    if (rg.stableRevision && rg.stableRevision !== rg.revision && revisions.has(rg.stableRevision) && revisions.has(rg.revision)) {
      revisionWeights[rg.revision] = canaryWeight;
      revisionWeights[rg.stableRevision] = 1 - canaryWeight;
    }
    const maxInFlightPerReplica = rg.spec ? maxInFlightOf(rg.spec) : 0;
    const routing = rg.spec ? routingConfig(rg.spec.routing) : undefined;
    const next: Membership = { group: rg.name, version: this.current.version + 1, replicas, revisionWeights, maxInFlightPerReplica, overflow: rg.spec?.overflow, routing, more: false };
    return sameMembers(next, this.current) ? undefined : next;
  }

  /** `next` was stored: it becomes the membership and goes to every watcher. */
  commit(next: Membership): void {
    this.current = next;
    for (const w of this.watchers) w(next);
  }

  /** The membership now, then on every commit, until `signal` aborts. */
  async *watch(signal: AbortSignal): AsyncGenerator<Membership> {
    let latest: Membership | undefined = this.current;
    let wake: (() => void) | undefined;
    const w = (m: Membership) => {
      latest = m;
      wake?.();
    };
    this.watchers.add(w);
    signal.addEventListener('abort', () => wake?.(), { once: true });
    try {
      while (!signal.aborted) {
        if (latest) {
          const m: Membership = latest;
          latest = undefined;
          yield m;
          continue;
        }
        await new Promise<void>((r) => (wake = r));
      }
    } finally {
      this.watchers.delete(w);
    }
  }
}

function sameMembers(a: Membership, b: Membership): boolean {
  const key = (m: Membership) => JSON.stringify([m.replicas.map((x) => x.replicaId).sort(), m.revisionWeights, m.maxInFlightPerReplica, m.overflow ?? null, m.routing ?? null]);
  return key(a) === key(b);
}
