/**
 * The gang controller's quarantined records (quarantine.ts says why they
 * exist): how a stored gang is read on load, and how one is deleted by hand.
 * Kept out of gangs.ts so that file only asks, at each path that would act
 * on a gang, whether the gang is one of these.
 *
 * A quarantined gang is never planned: no launch, restart, stop, deadline or
 * collection. Its ranks' reports are matched to it (not stopped as those of
 * an unknown gang), its ports stay in use. StopGang on it deletes its key
 * (with a `gang.deleted` event) in one commit and, once that is durable,
 * tells the agents to stop its ranks: the nodes its record names, or every
 * live node when its value could not be decoded.
 */
import { ErrorCode, MusterError } from '@muster/common';
import { Gang, GangState as G, NodeState } from '@muster/proto';
import type { NodeRegistry } from '../cluster/registry.js';
import type { KeyValue } from '../state/store.js';
import { parseGangSpec, type ValidGangSpec } from './gang-spec.js';
import type { PlanSink } from './gang-executor.js';
import { quarantineNote, type Quarantine, type Quarantined } from './quarantine.js';

/** A stored gang as read on load: valid (run it) or quarantined (keep it). */
export type ReadGang = { ok: true; gang: Gang; spec: ValidGangSpec } | { ok: false; q: Quarantined<Gang> };

/** Decodes and validates one stored gang; never throws. */
export function readGang(kv: KeyValue, prefix: string): ReadGang {
  const idOfKey = kv.key.slice(prefix.length);
  let gang: Gang;
  try {
    gang = Gang.decode(kv.value);
  } catch (e) {
    const why = `its value does not decode: ${(e as Error).message}`;
    return { ok: false, q: { id: idOfKey, key: kv.key, record: { ...Gang.decode(new Uint8Array(0)), id: idOfKey, message: quarantineNote(kv.key, why) }, decoded: false, why } };
  }
  try {
    if (gang.id !== idOfKey) throw new Error(`its id ${JSON.stringify(gang.id.slice(0, 64))} does not match its key`);
    return { ok: true, gang, spec: parseGangSpec(gang.spec, { stored: true }) };
  } catch (e) {
    const why = (e as Error).message;
    return { ok: false, q: { id: idOfKey, key: kv.key, name: gang.spec?.name, record: { ...gang, id: idOfKey, message: quarantineNote(kv.key, why) }, decoded: true, why } };
  }
}

/** Stages the `gang.quarantined` event of each record a load found for the first time. */
export function stageQuarantined(sink: PlanSink, found: ReadonlyArray<Quarantined<Gang>>): void {
  for (const q of found) {
    sink.commits.stage(sink.events.stage('gang.quarantined', { message: `gang ${q.name ?? q.id}: ${q.record.message}`, attributes: { gang: q.id, name: q.name ?? '', key: q.key, reason: q.why } }));
  }
}

/**
 * Deletes a quarantined gang by hand: its key and a `gang.deleted` event in
 * the next commit; once durable it leaves memory and its ranks are told to
 * stop. Resolves with the record as it was, marked STOPPING.
 */
export async function deleteQuarantined(sink: PlanSink, quarantine: Quarantine<Gang>, q: Quarantined<Gang>, registry: NodeRegistry): Promise<Gang> {
  const name = q.name ?? q.id;
  const reason = `quarantined gang ${name} deleted by hand`;
  sink.commits.delete(q.key);
  sink.commits.stage(sink.events.stage('gang.deleted', { message: `${reason}; its ranks are told to stop`, attributes: { gang: q.id, name: q.name ?? '', key: q.key } }));
  sink.commits.after(() => {
    quarantine.delete(q.id);
    const nodes = q.decoded ? new Set(q.record.ranks.map((r) => r.nodeId)) : new Set(registry.list(NodeState.NODE_STATE_ALIVE).map((n) => n.nodeId));
    for (const nodeId of nodes) sink.send(nodeId, { msg: { $case: 'stopShards', value: { gangId: q.id, attempt: 0, reason } } });
  });
  await sink.commits.flush();
  return { ...q.record, state: q.decoded ? G.GANG_STATE_STOPPING : G.GANG_STATE_UNSPECIFIED, message: `${reason}: its key is deleted and its ranks are told to stop` };
}

/** Refuses a launch onto a quarantined placement group, or one that a quarantined live gang names or runs on. */
export function checkLaunchAgainst(quarantine: Quarantine<Gang>, name: string, pgId: string, pgQuarantined: boolean): void {
  if (pgQuarantined) {
    throw new MusterError(ErrorCode.FAILED_PRECONDITION, `placement group "${pgId}" is quarantined (this head cannot read its record): remove it, or run a head version that accepts it`, { details: { field: 'placementGroup' } });
  }
  for (const q of quarantine.values()) {
    const live = !q.decoded || (q.record.state !== G.GANG_STATE_STOPPED && q.record.state !== G.GANG_STATE_FAILED);
    if (!live) continue;
    if (q.name === name) throw new MusterError(ErrorCode.ALREADY_EXISTS, `a quarantined gang named "${name}" exists (${q.id}): stop it to delete it, or run a head version that accepts it`, { details: { field: 'name' } });
    if (q.record.placementGroupId === pgId) throw new MusterError(ErrorCode.ALREADY_EXISTS, `placement group ${pgId} already runs quarantined gang ${q.name ?? q.id}`, { details: { field: 'placementGroup' } });
  }
}
