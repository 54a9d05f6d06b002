/**
 * A node's usage report (AgentMessage.usage): what each replica's ranks on
 * the node use, sent by its worker agent once a second on its own stream.
 * This is the check before the head keeps any of it (load-reports.ts keeps
 * what passes as the node's share of each replica's use).
 *
 * Whose report: the node is the one the stream registered, which a node
 * certificate binds to its own id (api/agent-service.ts): an agent speaks
 * for its own node only, and no field of the message names a node. Of that
 * node's report an entry is kept only when its replica is in its group's
 * record and has a rank on that node (`mayReport`), so an agent cannot speak
 * for ranks another node runs.
 *
 * What is refused, each entry counted once as dropped
 * (`muster_load_reports_dropped_total{kind="resources"}`):
 *  - every entry of a message without a valid sample time;
 *  - entries past MAX_USAGE_ENTRIES (@muster/contracts resource-usage.ts);
 *  - an entry with no group or replica id, or one longer than a reference
 *    may be (SPEC_LIMITS.refLength), or without a usage;
 *  - an entry carrying any value a report may not carry (negative, not
 *    finite, absurd, a utilisation outside [0, 1]): whole, not half-kept;
 *  - a second entry for the same replica in one message;
 *  - an entry for a replica `mayReport` denies.
 * Pure: no clock, no I/O.
 */
import { isExactResourceUsage, MAX_USAGE_ENTRIES, resourceUsageOf, SPEC_LIMITS, type ResourceUsage } from '@muster/contracts';
import type { NodeUsage } from '@muster/proto';

/** One replica's share, as kept. */
export interface UsageEntry {
  group: string;
  replicaId: string;
  usage: ResourceUsage;
}

const ref = (s: string): boolean => s.length > 0 && s.length <= SPEC_LIMITS.refLength;

/** The entries of `report` the head keeps, and how many it refused. */
export function checkNodeUsage(report: NodeUsage, mayReport: (group: string, replicaId: string) => boolean): { kept: UsageEntry[]; dropped: number } {
  const all = report.replicas;
  if (!Number.isFinite(report.sampledAtMs) || report.sampledAtMs <= 0) return { kept: [], dropped: all.length };
  const kept: UsageEntry[] = [];
  const seen = new Set<string>();
  const n = Math.min(all.length, MAX_USAGE_ENTRIES);
  for (let i = 0; i < n; i++) {
    const e = all[i]!;
    if (!ref(e.group) || !ref(e.replicaId) || !e.usage) continue;
    // proto3: an int32 left unset reads 0; "no GPUs counted" is an absent value here.
    const given = { ...e.usage, gpus: e.usage.gpus === 0 ? undefined : e.usage.gpus };
    if (!isExactResourceUsage(given)) continue;
    const key = `${e.group}\0${e.replicaId}`;
    if (seen.has(key)) continue;
    seen.add(key);
    if (!mayReport(e.group, e.replicaId)) continue;
    kept.push({ group: e.group, replicaId: e.replicaId, usage: resourceUsageOf(given)! });
  }
  return { kept, dropped: all.length - kept.length };
}
