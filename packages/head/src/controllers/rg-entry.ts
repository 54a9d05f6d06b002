/**
 * What the replica-group controller keeps in memory per group: the record as
 * stored, its parsed specs, the membership feed, and the soft clocks (drain
 * starts, failures, autoscaler timers) that are not persisted. Its own module
 * so the controller (replica-groups.ts) and the executor (rg-executor.ts)
 * share it without importing each other.
 */
import type { AutoscalerMemory, ReplicaGroup } from '@muster/proto';
import type { AutoscalingPolicy } from '../autoscaler/index.js';
import type { MembershipFeed } from './rg-membership.js';
import type { StoredGroup } from './rg-store.js';
import type { ValidRgSpec } from './rg-spec.js';

export interface Entry extends StoredGroup {
  /** The record as stored (its replicas from their own keys, rg-store.ts). */
  rg: ReplicaGroup;
  spec: ValidRgSpec;
  /** The spec's autoscaling policy, parsed once per spec (undefined: not autoscaled). */
  policy: AutoscalingPolicy | undefined;
  stableSpec: ValidRgSpec | undefined;
  membership: MembershipFeed;
  /** The autoscaler's timers and last reason (soft: written with the next record). */
  autoscaler: AutoscalerMemory | undefined;
  /** replica id → when draining started (ms) */
  drainingSince: Map<string, number>;
  /** When replicas failed (for the replacement budget). */
  failures: number[];
  /** Placement groups made for replicas whose record does not name them yet. */
  making: Set<string>;
  running: boolean;
  again: boolean;
  /** An autoscaling decision is queued behind the group's writes (the 250 ms timer queues at most one). */
  autoscaleQueued: boolean;
}
