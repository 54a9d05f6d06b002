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
import { PlacementGroup } from '@muster/proto';
import { parsePlacementGroupSpec, type ValidPgSpec } from '../scheduler/index.js';
import type { KeyValue } from '../state/store.js';
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
