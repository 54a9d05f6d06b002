/**
 * The replica group controller's quarantined records (quarantine.ts says why
 * they exist): a stored group whose spec this head refuses, or whose group
 * key does not decode (rg-store.ts `strays`: then only its name and the
 * replicas of its readable replica keys are known).
 *
 * A quarantined group is never reconciled, autoscaled, scaled or re-applied:
 * it is not among the groups the controller's timers and calls run. Its
 * replicas' gangs stay held (not collected) and their placement groups
 * claimed (not moved off draining nodes by the placement group controller).
 * Get and List show it with its message saying why; Scale, Apply and
 * WatchMembership are refused (FAILED_PRECONDITION, saying what to do).
 *
 * DeleteReplicaGroup deletes it: first what it holds, each through its own
 * controller's commit path — its replicas' gangs stopped, then their
 * placement groups removed — and then every key of the group, with an
 * `rg.deleted` event, in one commit. A delete cut short (a failed write)
 * leaves the group quarantined with less to let go of; deleting again
 * finishes it.
 */
import { ErrorCode, MusterError, toMusterError } from '@muster/common';
import type { ReplicaGroup } from '@muster/proto';
import type { GangsPort, PgsPort } from './rg-executor.js';
import { groupKey, type StoredGroup } from './rg-store.js';
import { quarantineNote, type Quarantined } from './quarantine.js';

export function quarantinedGroup(stored: StoredGroup, why: string, decoded: boolean): Quarantined<StoredGroup> {
  const name = stored.rg.name;
  return { id: name, key: groupKey(name), name, record: stored, decoded, why };
}

/** What Get and List answer for it. */
export function shownQuarantined(q: Quarantined<StoredGroup>): ReplicaGroup {
  return { ...q.record.rg, message: quarantineNote(q.key, q.why) };
}

/** The refusal of a call that would act on it. */
export function quarantinedError(q: Quarantined<StoredGroup>, call: string): MusterError {
  return new MusterError(ErrorCode.FAILED_PRECONDITION, `replica group ${q.id} is quarantined (this head cannot read its stored record: ${q.why}); ${call} is refused — delete it, or run a head version that accepts it`, { details: { field: 'name' } });
}

/** Placement groups and gangs its replicas name. */
export function heldBy(q: Quarantined<StoredGroup>): { gangs: string[]; pgs: string[] } {
  const replicas = q.record.rg.replicas;
  return { gangs: replicas.flatMap((r) => (r.gangId ? [r.gangId] : [])), pgs: replicas.flatMap((r) => (r.placementGroupId ? [r.placementGroupId] : [])) };
}

/**
 * Lets go of what the group holds: its gangs stopped (durable STOPPING, ranks
 * told), then its placement groups removed (one commit). Gone ones are fine;
 * any other failure rejects (the group's keys are then not deleted).
 */
export async function letGo(q: Quarantined<StoredGroup>, gangs: Pick<GangsPort, 'stop'>, pgs: Pick<PgsPort, 'removeMany'>): Promise<void> {
  const held = heldBy(q);
  await Promise.all(held.gangs.map((id) => gangs.stop(id).catch(unlessGone)));
  if (held.pgs.length === 0) return;
  for (const r of await pgs.removeMany(held.pgs)) if (r instanceof MusterError) unlessGone(r);
}

function unlessGone(err: unknown): void {
  const e = toMusterError(err);
  if (e.code !== ErrorCode.NOT_FOUND) throw e;
}
