/**
 * Fenced writes: every write of the head goes through one `StateWriter`,
 * which adds a compare on the leader key to the transaction, so a head that
 * is no longer the leader (another head took over, or it was frozen past its
 * term) cannot commit anything — its write fails with MUSTER_NOT_LEADER
 * instead of silently overwriting the new leader's state.
 *
 * Today the leader key is claimed at start (one head per store; the embedded
 * store also holds a lock file). Leader election for several heads on one
 * etcd builds on the same key.
 */
import { ErrorCode, MusterError } from '@muster/common';
import type { Compare, Op, StateStore, TxnResult } from './store.js';

export const LEADER_KEY = '/muster/leader';

export class StateWriter {
  private constructor(
    readonly store: StateStore,
    readonly headId: string,
    private readonly fence: Compare,
  ) {}

  /** Claims the leader key for `headId` and returns a writer fenced on it. */
  static async claim(store: StateStore, headId: string): Promise<StateWriter> {
    const { revision } = await store.put(LEADER_KEY, new TextEncoder().encode(headId));
    return new StateWriter(store, headId, { key: LEADER_KEY, target: 'modRevision', op: '==', value: revision });
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
      throw new MusterError(
        ErrorCode.NOT_LEADER,
        `head ${this.headId} is no longer the leader (leader key now held by ${leader ? new TextDecoder().decode(leader.value) : 'nobody'}); write refused`,
      );
    }
    throw new MusterError(ErrorCode.STORE_CONFLICT, 'a concurrent write changed the state first; retry');
  }
}
