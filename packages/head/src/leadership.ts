/**
 * The leadership loop of a head: campaign → lead one term → stand by →
 * campaign again, until the head stops.
 *
 *   campaign ──won──▶ load the term (from the standby's mirror when it is
 *      ▲              caught up, else from the store) ──▶ open the gate,
 *      │              serve ──▶ the term ends (fenced, lost lease, failure,
 *      │              stop) ──▶ close the gate, give the leader key up
 *      └────────────────────────────────────────────────┘
 *
 * Decisions kept here, with their reasons:
 *  - A standby on etcd follows the state (ha/mirror.ts) so a takeover loads
 *    from memory; the embedded store has no standbys, so no mirror.
 *  - A head that wins but cannot load the state resigns, gives the key up
 *    and tries again a second later: another head may do better.
 *  - The key is released through the term's fence when the term ends: if it
 *    is still ours, a standby wins at once instead of after the lease; if
 *    another head already leads, the store refuses and the log says so.
 *  - The leader, and only while it leads, compacts etcd's history
 *    (state/compactor.ts): standbys follow it, they do not trim it.
 *  - `roleDecided` settles once the first campaign attempt has decided this
 *    head's role (leader with a loaded term, or standby): `startHead`
 *    returns then.
 */
import { ErrorCode, MusterError, type Logger } from '@muster/common';
import type { HeadConfig } from './config.js';
import type { Election, Term } from './ha/election.js';
import type { LeaderGate } from './ha/gate.js';
import { StateMirror } from './ha/mirror.js';
import { startLeaderTerm, type HeadProcess, type LeaderTerm } from './leader-term.js';
import { StoreCompactor } from './state/compactor.js';
import { LEADER_KEY } from './state/fence.js';
import type { StateStore } from './state/index.js';

/** Pause after a won election whose state could not be loaded. */
const RETRY_AFTER_FAILED_LOAD_MS = 1_000;

export class Leadership {
  /** The current term while this head leads, else undefined. */
  term: LeaderTerm | undefined;
  /** Settles once the first campaign attempt has decided this head's role. */
  readonly roleDecided: Promise<void>;
  private decided!: () => void;
  /** The won election being served (set while loading too). */
  private current: Term | undefined;
  private mirror: StateMirror | undefined;
  private stopping = false;
  private stopNow!: () => void;
  private readonly stopped = new Promise<void>((r) => (this.stopNow = r));
  private loop: Promise<void> | undefined;
  private readonly config: HeadConfig;
  private readonly log: Logger;

  constructor(
    private readonly store: StateStore,
    private readonly election: Election,
    private readonly gate: LeaderGate,
    private readonly head: HeadProcess,
    private readonly advertiseAddress: string,
  ) {
    this.config = head.config;
    this.log = head.log;
    this.roleDecided = new Promise<void>((r) => (this.decided = r));
    this.mirror = this.follow();
  }

  /** Campaigns, leads and stands by until `stop`. */
  start(): void {
    this.loop = (async () => {
      while (!this.stopping) {
        let won: Term;
        try {
          won = await this.election.campaign(this.decided);
        } catch {
          break; // stopped
        }
        const ok = await this.lead(won);
        if (!ok) await new Promise((r) => setTimeout(r, RETRY_AFTER_FAILED_LOAD_MS));
      }
    })();
  }

  /** Ends the term being served, if any (its memory can no longer be trusted). */
  endTerm(reason: string): boolean {
    this.current?.end(reason);
    return this.current !== undefined;
  }

  /** Ends the term (giving the key up), then hands over at once: the lease is revoked rather than left to expire. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.stopNow();
    this.election.stop();
    await this.loop;
    await this.election.resign();
    await this.mirror?.close();
  }

  private follow(): StateMirror | undefined {
    return this.store.kind === 'etcd' ? new StateMirror(this.store, this.log) : undefined;
  }

  /** Serves one won term until it ends; false if its state could not be loaded. */
  private async lead(won: Term): Promise<boolean> {
    const { headId } = this.config;
    this.current = won;
    const started = performance.now();
    const loading = this.mirror && (await this.mirror.caughtUp(won.revision, 1_000)) ? this.mirror.forLoading() : undefined;
    let term: LeaderTerm;
    try {
      term = await startLeaderTerm(loading ? won.writer.withStore(loading.store) : won.writer, this.head);
      this.term = term;
      loading?.loaded();
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'won the election but could not load the state; resigning');
      won.end('state load failed');
      this.current = undefined;
      await this.releaseKey(won);
      await this.election.resign();
      this.decided();
      return false;
    }
    this.gate.open(term.services);
    await this.mirror?.close();
    this.mirror = undefined;
    this.log.info(
      { headId, address: this.advertiseAddress, revision: won.revision, loadedFrom: loading ? 'mirror' : 'store', loadMs: Math.round(performance.now() - started) },
      'became leader',
    );
    this.decided();
    const compactor = new StoreCompactor(this.store, { intervalMs: this.config.storeCompactionIntervalMs, log: this.log });
    compactor.start();
    const reason = await Promise.race([won.ended, this.stopped.then(() => 'head stopping')]);
    this.gate.close();
    term.close();
    this.term = undefined;
    this.current = undefined;
    if (!this.stopping) this.mirror = this.follow();
    if (!this.stopping) this.log.warn({ headId, reason }, 'leadership lost; standing by');
    await this.releaseKey(won);
    await compactor.stop(); // after the hand-over: a compaction in flight must not delay it
    return true;
  }

  /** Gives the leader key up through the term's fence (see the file comment). */
  private releaseKey(won: Term): Promise<void> {
    const { headId } = this.config;
    return won.writer.txn([{ type: 'delete', key: LEADER_KEY }]).then(
      () => this.log.info({ headId }, 'leader key released'),
      (e: unknown) => this.log.warn({ headId, code: (e as MusterError).code, err: (e as Error).message }, 'leader key not released'),
    );
  }
}

/** Why a call is refused on a head that does not lead: sent to the leader, or told none is elected yet. */
export function notLeaderError(election: Election, headId: string): MusterError {
  const leader = election.leader;
  return leader && leader.headId !== headId
    ? new MusterError(ErrorCode.NOT_LEADER, `head ${headId} is a standby; the leader is ${leader.headId} at ${leader.address}`, { details: { leader: leader.address } })
    : new MusterError(
        ErrorCode.NOT_LEADER,
        election.lastError
          ? `no leader: the state store is unreachable (${election.lastError}); changes are refused until it returns`
          : `head ${headId} is not the leader and no leader is elected yet; retry shortly`,
      );
}
