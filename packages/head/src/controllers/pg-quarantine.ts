/**
 * The placement group controller's quarantined records (quarantine.ts says
 * why they exist): how a stored group is read on load.
 *
 * A quarantined group is never scheduled, moved, rescheduled on a node's
 * death or released: it is not among the groups the cycle sees. Its
 * placements (when its value decodes) stay reserved in the scheduling view
 * and are in its nodes' reservation snapshots, so no other group is given
 * its GPUs. Its reason says it is quarantined (code QUARANTINED). Removing
 * it deletes its key, with a `pg.removed` event, and once that is durable
 * releases its bundles: on the nodes its record names, or on every live node
 * when its value could not be decoded. A gang cannot be launched on it.
 */
import { NodeState, PlacementGroup, PlacementGroupState as S, type HeadMessage } from '@muster/proto';
import type { NodeRegistry } from '../cluster/registry.js';
import type { EventLog } from '../events/event-log.js';
import { parsePlacementGroupSpec, type ValidPgSpec } from '../scheduler/index.js';
import type { KeyValue } from '../state/store.js';
import type { GroupCommit } from './group-commit.js';
import { plainReason, specInput } from './pg-convert.js';
import { QUARANTINED, quarantineNote, type Quarantined } from './quarantine.js';

/** A stored group as read on load: valid (schedule it) or quarantined (keep it). */
export type ReadPg = { ok: true; pg: PlacementGroup; spec: ValidPgSpec } | { ok: false; q: Quarantined<PlacementGroup> };

/** Decodes and validates one stored placement group; never throws. */
export function readPg(kv: KeyValue, prefix: string): ReadPg {
  const id = kv.key.slice(prefix.length);
  const quarantined = (pg: PlacementGroup, why: string, decoded: boolean): ReadPg => ({
    ok: false,
    q: { id, key: kv.key, name: pg.spec?.name, record: { ...pg, id, reason: plainReason(QUARANTINED, quarantineNote(kv.key, why)) }, decoded, why },
  });
  let pg: PlacementGroup;
  try {
    pg = PlacementGroup.decode(kv.value);
  } catch (e) {
    return quarantined(PlacementGroup.decode(new Uint8Array(0)), `its value does not decode: ${(e as Error).message}`, false);
  }
  if (pg.id !== id) return quarantined(pg, `its id ${JSON.stringify(pg.id.slice(0, 64))} does not match its key`, true);
  const parsed = parsePlacementGroupSpec(specInput(pg.spec));
  return parsed.ok ? { ok: true, pg, spec: parsed.spec } : quarantined(pg, parsed.message, true);
}

/**
 * Stages the removal of a quarantined group in the next commit: its key's
 * delete and a `pg.removed` event; once durable, the release of its bundles
 * on the nodes its record names (every live node when it could not be
 * decoded). Returns its record as removed.
 */
export function stageRemoval(sink: { commits: GroupCommit; events: EventLog; registry: NodeRegistry }, q: Quarantined<PlacementGroup>): PlacementGroup {
  const name = q.name ?? q.id;
  const { commits, events, registry } = sink;
  commits.delete(q.key);
  commits.stage(events.stage('pg.removed', { message: `quarantined placement group ${name} removed by hand`, attributes: { pg: q.id, name: q.name ?? '' } }));
  const nodes = q.decoded ? new Set(q.record.placements.map((p) => p.nodeId)) : new Set(registry.list(NodeState.NODE_STATE_ALIVE).map((n) => n.nodeId));
  const msg: HeadMessage = { msg: { $case: 'releaseBundles', value: { groupId: q.id } } };
  for (const n of nodes) commits.after(() => registry.connection(n)?.send(msg));
  return { ...q.record, state: S.PLACEMENT_GROUP_STATE_REMOVED, stateChangedAtMs: Date.now(), reason: plainReason('REMOVED', `quarantined placement group ${name} removed by hand; its bundles are released`) };
}
