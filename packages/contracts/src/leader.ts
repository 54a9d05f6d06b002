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
 *     itself as it sees fit) — but only on TLS, where the channel credentials
 *     accept no server whose certificate lacks role head and that address
 *     (@muster/common tls.ts). A plaintext client (`hintsOutsideList: false`)
 *     verifies nobody, so it follows hints within its list only: a hint
 *     elsewhere is refused (`refusedHint` says which) and the token is never
 *     sent there;
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

export interface RotationOptions {
  /** Follow a leader hint to an address outside the list (TLS: the certificate proves the head). Default true. */
  hintsOutsideList?: boolean;
  /** How long a head that failed other than by refusing is not followed as a hint. Default 1 s. */
  hintQuarantineMs?: number;
}

export class HeadRotation {
  private cursor = 0;
  private at: string;
  /** When each head last failed other than by refusing. */
  private readonly unreachable = new Map<string, number>();
  private readonly hintsOutsideList: boolean;
  private readonly hintQuarantineMs: number;
  /** The last hint not followed because it is outside the list (plaintext); cleared by the next failure. */
  refusedHint: string | undefined;

  /** `addresses`: validated, non-empty, without duplicates. */
  constructor(
    readonly addresses: readonly string[],
    opts: RotationOptions = {},
  ) {
    if (addresses.length === 0) throw new Error('HeadRotation: no address');
    this.at = addresses[0]!;
    this.hintsOutsideList = opts.hintsOutsideList ?? true;
    this.hintQuarantineMs = opts.hintQuarantineMs ?? 1_000;
  }

  /** The head to talk to now. */
  get current(): string {
    return this.at;
  }

  /** Moves off `from` after a failure there; returns the head to try next. */
  failed(from: string, f: HeadFailure): string {
    if (!f.notLeader) this.unreachable.set(from, f.nowMs);
    if (from !== this.at) return this.at;
    this.refusedHint = undefined;
    let hint = f.leaderHint;
    if (hint !== undefined && !this.hintsOutsideList && !this.addresses.includes(hint)) {
      this.refusedHint = hint;
      hint = undefined;
    }
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
