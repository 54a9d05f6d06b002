/**
 * The records the replica group API and the autoscaler store: pure functions
 * from the stored record (and a spec, a count or a decision) to the next
 * record and the event written with it. The controller stores them through
 * its one commit path and takes them into memory only once durable; nothing
 * here throws for a store reason or touches memory.
 *
 * Revisions: a spec's revision hashes everything but `replicas` and
 * `rollout` (rg-spec.ts), so a new count never rolls out. A canary keeps the
 * revision running before it as the stable one (a second canary while one
 * runs keeps the first stable); a rolling apply ends any canary, and so
 * does re-applying the stable spec, which takes back the stored stable
 * revision string rather than its own hash (they differ after a head upgrade).
 */
import type { Identity } from '@muster/contracts';
import type { AutoscalerMemory, MetricMemory, ReplicaGroup } from '@muster/proto';
import type { AutoscalerState, Decision, MetricTimers } from '../autoscaler/index.js';
import { revisionOf, rolesEngineNote, type ValidRgSpec } from './rg-spec.js';

/** An event written in the same transaction as the record. */
export interface RecordEvent {
  kind: string;
  message: string;
  attributes?: Record<string, string>;
}

/**
 * `event` naming who asked for it (attribute `by`: "<role>:<name>" of the API
 * caller), the audit trail of a change; unchanged when the head itself acts.
 */
export function byWhom(event: RecordEvent, by: Identity | undefined): RecordEvent {
  return by ? { ...event, attributes: { ...event.attributes, by: `${by.role}:${by.name}` } } : event;
}

export interface NextRecord {
  rg: ReplicaGroup;
  event: RecordEvent;
}

type Current = { rg: ReplicaGroup; spec: ValidRgSpec; stableSpec: ValidRgSpec | undefined } | undefined;

/** What apply stores: a new group, or the group under `spec` (and the stable spec a canary keeps); its event carries the spec's note, if any. */
export function appliedRecord(current: Current, spec: ValidRgSpec, nowMs: number): NextRecord & { stableSpec: ValidRgSpec | undefined } {
  const next = applied(current, spec, nowMs);
  const note = rolesEngineNote(spec);
  return note ? { ...next, event: { ...next.event, message: `${next.event.message}; ${note}` } } : next;
}

function applied(current: Current, spec: ValidRgSpec, nowMs: number): NextRecord & { stableSpec: ValidRgSpec | undefined } {
  const revision = revisionOf(spec);
  if (!current) {
    const rg: ReplicaGroup = {
      name: spec.name, spec, desired: spec.replicas.initial, revision, stableRevision: '', replicas: [],
      membershipVersion: 0, message: 'created', createdAtMs: nowMs, deleting: false, stableSpec: undefined, autoscaler: undefined,
    };
    return { rg, stableSpec: undefined, event: { kind: 'rg.created', message: `replica group ${spec.name} created with ${rg.desired} replica(s), revision ${revision}` } };
  }
  // What runs is compared spec to spec, not to the stored string: a revision
  // stored by an older head (another hash of the same spec) stays as it is,
  // so upgrading the head rolls nothing.
  const rolled = revision !== revisionOf(current.spec);
  let { stableRevision } = current.rg;
  let stableSpec = current.stableSpec;
  // Re-applying the stable spec aborts a canary, whatever its strategy: the
  // stable replicas keep the revision string they run under (an older head's
  // hash, maybe), so nothing rolls and no pointless canary starts.
  if (rolled && stableRevision && stableSpec && revision === revisionOf(stableSpec)) {
    const desired = Math.min(spec.replicas.max, Math.max(spec.replicas.min, current.rg.desired));
    const rg: ReplicaGroup = { ...current.rg, spec, revision: stableRevision, desired, stableRevision: '', stableSpec: undefined };
    return { rg, stableSpec: undefined, event: { kind: 'rg.rollout', message: `replica group ${spec.name}: back to the stable revision ${stableRevision} (canary ${current.rg.revision} ended)` } };
  }
  if (rolled && spec.rollout.strategy === 'canary') {
    if (!stableRevision) {
      stableRevision = current.rg.revision;
      stableSpec = current.spec;
    }
  } else if (spec.rollout.strategy === 'rolling') {
    stableRevision = '';
    stableSpec = undefined;
  }
  const desired = Math.min(spec.replicas.max, Math.max(spec.replicas.min, current.rg.desired));
  const rg: ReplicaGroup = { ...current.rg, spec, revision: rolled ? revision : current.rg.revision, desired, stableRevision, stableSpec };
  const event = rolled
    ? { kind: 'rg.rollout', message: `replica group ${spec.name}: rolling out revision ${revision} (${spec.rollout.strategy})` }
    : { kind: 'rg.updated', message: `replica group ${spec.name} updated (no rollout)` };
  return { rg, stableSpec, event };
}

export function scaledRecord(rg: ReplicaGroup, replicas: number): NextRecord {
  return { rg: { ...rg, desired: replicas }, event: { kind: 'rg.scaled', message: `replica group ${rg.name} scaled to ${replicas}` } };
}

export function deletingRecord(rg: ReplicaGroup): NextRecord {
  return { rg: { ...rg, deleting: true, desired: 0 }, event: { kind: 'rg.deleting', message: `replica group ${rg.name} is being deleted: draining ${rg.replicas.length} replica(s)` } };
}

/** One metric's timers as stored (0: unset). */
function metricMemory(t: MetricTimers): MetricMemory {
  const { belowPeak, belowRunningPeak, aboveLow } = t;
  return {
    aboveSinceMs: t.aboveSinceMs ?? 0,
    belowSinceMs: t.belowSinceMs ?? 0,
    ...(belowPeak === undefined ? {} : { belowPeak }),
    ...(belowRunningPeak === undefined ? {} : { belowRunningPeak }),
    ...(aboveLow === undefined ? {} : { aboveLow }),
    belowPeaks: t.belowPeaks ?? [],
  };
}

/** The autoscaler's timers as stored (0: unset); the other metrics' of a several-metric policy by metric. */
export function autoscalerMemory(d: Pick<Decision, 'state' | 'reason'>): AutoscalerMemory {
  const others = d.state.others ?? {};
  return {
    ...metricMemory(d.state),
    idleSinceMs: d.state.idleSinceMs ?? 0,
    lastChangeMs: d.state.lastChangeMs ?? 0,
    lastReason: d.reason,
    otherMetrics: Object.fromEntries(Object.entries(others).map(([m, t]) => [m, metricMemory(t)])),
  };
}

/** The state autoscalerMemory() stored, read back for the next decision. */
export function autoscalerState(mem: AutoscalerMemory | undefined): AutoscalerState {
  const timers = (t: Omit<MetricMemory, never> | undefined): MetricTimers => ({
    aboveSinceMs: t?.aboveSinceMs || undefined, belowSinceMs: t?.belowSinceMs || undefined, belowPeak: t?.belowPeak, belowRunningPeak: t?.belowRunningPeak, aboveLow: t?.aboveLow,
    // None stored (an older head): the autoscaler keeps belowPeak for one more window.
    ...(t?.belowPeaks.length ? { belowPeaks: t.belowPeaks } : {}),
  });
  const others = Object.entries(mem?.otherMetrics ?? {});
  return {
    ...timers(mem),
    idleSinceMs: mem?.idleSinceMs || undefined,
    lastChangeMs: mem?.lastChangeMs || undefined,
    ...(others.length ? { others: Object.fromEntries(others.map(([m, t]) => [m, timers(t)])) } : {}),
  };
}

/** What a changed autoscaling decision stores, with its inputs on the event. */
export function autoscaledRecord(rg: ReplicaGroup, d: Pick<Decision, 'desired' | 'reason' | 'inputs' | 'state' | 'metric'>): NextRecord {
  const inputs = Object.fromEntries(Object.entries(d.inputs).map(([k, v]) => [k, String(Math.round(v * 1000) / 1000)]));
  return {
    rg: { ...rg, desired: d.desired, autoscaler: autoscalerMemory(d) },
    // `metric` in the inputs is the metric's value; `drivenBy` names it.
    event: { kind: 'rg.autoscale', message: `replica group ${rg.name}: ${rg.desired} → ${d.desired}: ${d.reason}`, attributes: { from: String(rg.desired), to: String(d.desired), drivenBy: d.metric, ...inputs } },
  };
}
