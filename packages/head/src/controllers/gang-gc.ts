/**
 * Which finished gangs to forget, pure: the retention policy of finished
 * (STOPPED, FAILED) gang records, so a head that runs for months keeps a
 * bounded set of them (docs/gangs.md, "Finished gangs").
 *
 *   - at most `kept` finished gangs, the most recently finished first;
 *   - none finished longer than `maxAgeMs` ago;
 *   - never one still held by its owner (a replica group whose replica record
 *     names it): it is collected once the owner lets go.
 *
 * A FAILED gang keeps its first and last failure (each with a bounded log
 * tail, `boundFailure`) in its record until it is collected; live gangs are
 * never collected. The gang controller (gangs.ts) deletes what this returns
 * through its GroupCommit, each delete with a `gang.collected` event, and
 * forgets a gang only once its delete is durable.
 */
import { GangState as G, type Gang, type GangFailure } from '@muster/proto';

export interface GangRetention {
  /** Finished gangs kept, newest first (0: none kept). */
  kept: number;
  /** A finished gang is collected this long after it finished. */
  maxAgeMs: number;
}

export const DEFAULT_GANG_RETENTION: GangRetention = { kept: 1_000, maxAgeMs: 24 * 60 * 60 * 1000 };

/** How often the controller checks the age bound (a tenth of it, at most once a minute). */
export function collectEveryMs(policy: GangRetention): number {
  return Math.max(100, Math.min(60_000, Math.floor(policy.maxAgeMs / 10)));
}

/** The most of a failure's log tail and reason a gang record keeps (the ends: where the error is). */
export const MAX_LOG_TAIL_CHARS = 4_096;
export const MAX_REASON_CHARS = 1_024;

const FINISHED = new Set([G.GANG_STATE_STOPPED, G.GANG_STATE_FAILED]);

export function isFinished(g: Gang): boolean {
  return FINISHED.has(g.state);
}

export interface Collection {
  gang: Gang;
  reason: string;
}

/** The finished gangs `policy` no longer keeps at `nowMs`, oldest first. */
export function planCollection(gangs: Iterable<Gang>, held: (gangId: string) => boolean, policy: GangRetention, nowMs: number): Collection[] {
  const finished = [...gangs].filter(isFinished).sort((a, b) => b.stateChangedAtMs - a.stateChangedAtMs || b.id.localeCompare(a.id));
  const out: Collection[] = [];
  finished.forEach((g, i) => {
    if (held(g.id)) return;
    const ageMs = nowMs - g.stateChangedAtMs;
    if (ageMs >= policy.maxAgeMs) out.push({ gang: g, reason: `finished ${Math.round(ageMs / 1000)} s ago (kept ${Math.round(policy.maxAgeMs / 1000)} s)` });
    else if (i >= policy.kept) out.push({ gang: g, reason: `beyond the ${policy.kept} most recently finished gangs kept` });
  });
  return out.reverse();
}

/** A failure as a record keeps it: the end of its log tail and reason, bounded. */
export function boundFailure(f: GangFailure): GangFailure {
  const tail = (s: string, max: number) => (s.length > max ? `…${s.slice(s.length - max + 1)}` : s);
  return { ...f, reason: tail(f.reason, MAX_REASON_CHARS), logTail: tail(f.logTail, MAX_LOG_TAIL_CHARS) };
}
