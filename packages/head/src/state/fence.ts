/**
 * Fenced writes: every write of a leader term goes through one `StateWriter`,
 * which adds a compare on the leader key to the transaction: the key must
 * still carry the revision at which this head won the election. A head that
 * is no longer the leader (another head took over, or it was frozen past its
 * lease) cannot commit anything — its write fails with MUSTER_NOT_LEADER
 * instead of silently overwriting the new leader's state, and `onFenced`
 * tells its term to end. The election (ha/election.ts) writes the key.
 */
import { ErrorCode, MusterError } from '@muster/common';
import type { Compare, Op, StateStore, TxnResult } from './store.js';

export const LEADER_KEY = '/muster/leader';

/** What the leader key holds: who leads, and where clients reach it. */
export interface LeaderRecord {
  headId: string;
  /** gRPC address "host:port" clients and agents should use. */
  address: string;
  /** When it won, ms since the epoch. */
  sinceMs: number;
}

export function encodeLeaderRecord(r: LeaderRecord): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(r));
}

/** The record in a leader key's value, or undefined for a value it cannot read. */
export function leaderRecordOf(value: Uint8Array): LeaderRecord | undefined {
  try {
    const r = JSON.parse(new TextDecoder().decode(value)) as Partial<LeaderRecord>;
    return typeof r.headId === 'string' && typeof r.address === 'string' ? { headId: r.headId, address: r.address, sinceMs: Number(r.sinceMs) || 0 } : undefined;
  } catch {
    return undefined;
  }
}

export class StateWriter {
  private readonly fence: Compare;
  private readonly revision: number;

  /**
   * A writer for the term that put the leader key at `revision`. `onLost`
   * ends the term: called when a write finds the key has moved on, or by
   * `abandon`.
   */
  constructor(
    readonly store: StateStore,
    readonly headId: string,
    revision: number,
    private readonly onLost: (reason: string) => void = () => {},
  ) {
    this.revision = revision;
    this.fence = { key: LEADER_KEY, target: 'modRevision', op: '==', value: revision };
  }

  /** The same term's writer over another view of the store (e.g. one that loads from a mirror). */
  withStore(store: StateStore): StateWriter {
    return new StateWriter(store, this.headId, this.revision, this.onLost);
  }

  /**
   * Ends the term: for a component whose memory can no longer be trusted to
   * match the store (a commit failed and the store cannot be read back). The
   * head stands by and the next term loads the stored state.
   */
  abandon(reason: string): void {
    this.onLost(reason);
  }

  put(key: string, value: Uint8Array): Promise<TxnResult> {
    return this.txn([{ type: 'put', key, value }]);
  }

  /**
   * Runs `ops` atomically if this head still leads and every extra compare
   * holds. A lost fence throws MUSTER_NOT_LEADER; a lost extra compare
   * throws MUSTER_STORE_CONFLICT.
   */
  async txn(ops: Op[], compare: Compare[] = []): Promise<TxnResult> {
    const r = await this.store.txn({ compare: [this.fence, ...compare], success: ops, failure: [{ type: 'get', key: LEADER_KEY }] });
    if (r.succeeded) return r;
    const leader = r.results[0]?.kv;
    if (!leader || leader.modRevision !== this.fence.value) {
      const holder = leader ? leaderRecordOf(leader.value)?.headId ?? 'unknown' : 'nobody';
      this.onLost(`a write was fenced: the leader key is now held by ${holder}`);
      throw new MusterError(ErrorCode.NOT_LEADER, `head ${this.headId} is no longer the leader (leader key now held by ${holder}); write refused`);
    }
    throw new MusterError(ErrorCode.STORE_CONFLICT, 'a concurrent write changed the state first; retry');
  }
}
