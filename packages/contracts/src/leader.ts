/**
 * Following the leader of an HA cluster: the trailer a standby names the
 * leader in, and the one rule for "which head next" that the SDK (control
 * calls) and the worker agent (its stream) both follow.
 *
 * A standby refuses with MUSTER_NOT_LEADER and, when it knows the leader,
 * its address in the LEADER_TRAILER trailer. `HeadRotation` decides where a
 * client goes after a failure at `from`:
 *  1. a refusal that names a leader (a dial address, not `from`, and not a
 *     head that failed other than by refusing in the last `hintQuarantineMs`)
 *     → that leader, even one outside the configured list (a head advertises
 *     itself as it sees fit);
 *  2. otherwise → the next configured address, in turn.
 * The quarantine matters right after a leader dies: standbys still name it
 * until its lease runs out, and following them would bounce between the dead
 * leader and a standby instead of finding the new leader once elected.
 * A failure reported for a head that is no longer current changes nothing: a
 * concurrent call already moved, and moving again would skip a head.
 *
 * Pure: the caller passes the clock; when to try again is its own business.
 */
import { isHostPort } from './address.js';

/** gRPC trailer (metadata key) carrying the leader's "host:port" with MUSTER_NOT_LEADER. */
export const LEADER_TRAILER = 'muster-leader';

export interface HeadFailure {
  /** The head refused because it is not the leader (it answered; it is not down). */
  notLeader: boolean;
  /** The leader the refusal named, if any. */
  leaderHint?: string | undefined;
  nowMs: number;
}

export class HeadRotation {
  private cursor = 0;
  private at: string;
  /** When each head last failed other than by refusing. */
  private readonly unreachable = new Map<string, number>();

  /** `addresses`: validated, non-empty, without duplicates. */
  constructor(
    readonly addresses: readonly string[],
    private readonly hintQuarantineMs = 1_000,
  ) {
    if (addresses.length === 0) throw new Error('HeadRotation: no address');
    this.at = addresses[0]!;
  }

  /** The head to talk to now. */
  get current(): string {
    return this.at;
  }

  /** Moves off `from` after a failure there; returns the head to try next. */
  failed(from: string, f: HeadFailure): string {
    if (!f.notLeader) this.unreachable.set(from, f.nowMs);
    if (from !== this.at) return this.at;
    const hint = f.leaderHint;
    if (hint !== undefined && hint !== from && isHostPort(hint) && f.nowMs - (this.unreachable.get(hint) ?? -Infinity) >= this.hintQuarantineMs) {
      this.at = hint;
      const i = this.addresses.indexOf(hint);
      if (i >= 0) this.cursor = i;
      return this.at;
    }
    this.cursor = (this.cursor + 1) % this.addresses.length;
    this.at = this.addresses[this.cursor]!;
    return this.at;
  }
}
