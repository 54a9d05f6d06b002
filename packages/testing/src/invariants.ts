/**
 * What must hold in a cluster whatever was done to it: the chaos suite calls
 * `assertInvariants(cluster)` after every fault.
 *
 * Settling. Right after a fault the cluster is allowed to be in flux (a
 * killed rank the head has not heard of yet, a node not yet declared dead),
 * so the check is a loop: each round takes one snapshot (head's node, PG and
 * gang lists, then a /proc scan) and evaluates every rule on it; the loop
 * ends at the first round without violations, or at the deadline
 * (`timeoutMs`, default 20 s) with the last round's violations. A round
 * counts as unsettled (rule 'settled') unless:
 *   - a leader answers: an SDK call through `cluster.address` (every head)
 *     succeeds within 3 s;
 *   - every worker whose process runs is listed ALIVE by the head, and none
 *     of them is frozen by the chaos helpers;
 *   - with `stable` (default true): no gang is STARTING, RESTARTING or
 *     STOPPING and no placement group is RESERVED or RESCHEDULING (set
 *     `stable: false` where a test leaves something in such a state on purpose).
 * The rules are evaluated in unsettled rounds too, so the last round's report
 * says both what is still moving and what is wrong.
 *
 * The rules, exactly:
 *   1. no-double-booking: over all placement groups in CREATED or RESERVED,
 *      no (node, GPU index) and no (node, MIG uuid) is in two bundles.
 *      (A whole GPU and a MIG slice of the same GPU are not compared: the
 *      view carries no slice → GPU map.)
 *   2. no-half-gang, per gang the head lists, by state:
 *      READY:    it has ranks; every rank's phase is `ready` and its pid is a
 *                live process (not a zombie) whose environment says this gang
 *                (MUSTER_GANG_ID), this attempt (MUSTER_ATTEMPT) and this rank
 *                (RANK); and no other live process carries the gang's id.
 *      STARTING: every live process of the gang is of the current attempt,
 *                at most one per rank (earlier attempts are gone before a new
 *                one starts: lifecycle step 5).
 *      PENDING:  no live process of the gang (before the first attempt, or
 *                after the ranks of a lost placement were all stopped).
 *      RESTARTING, STOPPING: none (ranks are being stopped; transitional).
 *      FAILED, STOPPED: covered by rule 3.
 *   3. no-orphan: every live shard process (one with MUSTER_GANG_ID) that
 *      carries this cluster's run tag, or whose gang this head knows, belongs
 *      to a gang the head lists in a live state (PENDING, STARTING, READY,
 *      RESTARTING, STOPPING). An untagged cluster (no `runTag`) cannot see
 *      shards of gangs its head has forgotten.
 *   4. no-lost-group: every placement group in `acknowledged` (ids or names
 *      the test recorded after create() returned), but not in `removed`, is
 *      listed by the head (not removed, not NOT_FOUND); every gang in
 *      `acknowledgedGangs` is listed (in any state: gangs are never deleted).
 */
import { connect, type Cluster, type Gang, type PlacementGroup } from '@muster/sdk';
import { isFrozen } from './chaos.js';
import type { LocalCluster } from '@muster/local';
import { pidAlive, procEnv, scanProcesses, type ScannedProcess } from './procfs.js';

export type InvariantRule = 'settled' | 'no-double-booking' | 'no-half-gang' | 'no-orphan' | 'no-lost-group';

export interface Violation {
  rule: InvariantRule;
  message: string;
}

export interface InvariantOptions {
  /** Placement groups (ids or names) whose create() returned: the head must keep them. */
  acknowledged?: Iterable<string>;
  /** Of those, the ones the test removed since. */
  removed?: Iterable<string>;
  /** Gangs (ids or names) whose launch() returned: the head must keep listing them. */
  acknowledgedGangs?: Iterable<string>;
  /** Deadline for the cluster to settle and every rule to hold; default 20 s. */
  timeoutMs?: number;
  /** Pause between rounds; default 250 ms. */
  intervalMs?: number;
  /** Also wait until no gang or placement group is in a transitional state; default true. */
  stable?: boolean;
}

const LIVE_GANG = new Set(['pending', 'starting', 'ready', 'restarting', 'stopping']);
const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Waits for the cluster to settle and the rules to hold; returns the violations (empty: all hold). */
export async function checkInvariants(cluster: LocalCluster, opts: InvariantOptions = {}): Promise<Violation[]> {
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  let sdk: Cluster | undefined;
  let last: Violation[];
  try {
    for (;;) {
      try {
        sdk ??= await connect({ ...cluster.clientOptions(), callTimeoutMs: 3_000 });
        last = await round(cluster, sdk, opts);
      } catch (e) {
        // No head answered (or it failed mid-round): connect afresh next round.
        sdk?.close();
        sdk = undefined;
        last = [{ rule: 'settled', message: `no leading head answered: ${message(e)}` }];
      }
      if (last.length === 0 || Date.now() >= deadline) return last;
      await new Promise((r) => setTimeout(r, opts.intervalMs ?? 250));
    }
  } finally {
    sdk?.close();
  }
}

/** checkInvariants, throwing one error that lists every violation. */
export async function assertInvariants(cluster: LocalCluster, opts: InvariantOptions = {}): Promise<void> {
  const v = await checkInvariants(cluster, opts);
  if (v.length > 0) {
    throw new Error(`${v.length} invariant violation(s) after ${opts.timeoutMs ?? 20_000} ms:\n${v.map((x) => `  [${x.rule}] ${x.message}`).join('\n')}`);
  }
}

async function round(cluster: LocalCluster, sdk: Cluster, opts: InvariantOptions): Promise<Violation[]> {
  const out: Violation[] = [];
  const nodes = await sdk.nodes();
  const pgs = await sdk.placementGroups.list();
  const gangs = await sdk.gangs.list();
  // After the head's view: a process it reported must still be visible here unless it died since.
  const shards = await scanProcesses((env) => env.has('MUSTER_GANG_ID'));

  out.push(...settled(cluster, nodes, pgs, gangs, opts.stable ?? true));
  out.push(...doubleBooked(pgs));
  const byGang = new Map<string, ScannedProcess[]>();
  for (const p of shards) {
    const id = p.env.get('MUSTER_GANG_ID')!;
    byGang.set(id, [...(byGang.get(id) ?? []), p]);
  }
  for (const g of gangs) out.push(...(await halfGang(g, byGang.get(g.id) ?? [])));
  out.push(...orphans(cluster, gangs, shards));
  out.push(...(await lost(sdk, pgs, gangs, opts)));
  return out;
}

function settled(cluster: LocalCluster, nodes: Awaited<ReturnType<Cluster['nodes']>>, pgs: PlacementGroup[], gangs: Gang[], stable: boolean): Violation[] {
  const out: Violation[] = [];
  const state = new Map(nodes.map((n) => [n.id, n.state]));
  for (const w of cluster.workers.values()) {
    if (!w.process.running) continue;
    if (isFrozen(w.process)) out.push({ rule: 'settled', message: `worker ${w.nodeId} is frozen` });
    else if (state.get(w.nodeId) !== 'alive') out.push({ rule: 'settled', message: `worker ${w.nodeId} runs but the head lists it ${state.get(w.nodeId) ?? 'not at all'}` });
  }
  if (!stable) return out;
  for (const g of gangs) {
    if (['starting', 'restarting', 'stopping'].includes(g.state)) out.push({ rule: 'settled', message: `gang ${g.name} (${g.id}) is ${g.state}: ${g.message}; ranks ${rankSummary(g)}` });
  }
  for (const pg of pgs) {
    if (pg.state === 'reserved' || pg.state === 'rescheduling') out.push({ rule: 'settled', message: `placement group ${pg.name} is ${pg.state}${pg.reason ? `: ${pg.reason.message}` : ''}` });
  }
  return out;
}

/** "0 ready@node-1 pid 123, 1 exited@node-2" (the first 16 ranks). */
function rankSummary(g: Gang): string {
  const parts = g.ranks.slice(0, 16).map((r) => `${r.rank} ${r.phase || '?'}@${r.nodeId}${r.pid ? ` pid ${r.pid}` : ''}`);
  return parts.join(', ') + (g.ranks.length > 16 ? `, … (${g.ranks.length})` : '');
}

function doubleBooked(pgs: PlacementGroup[]): Violation[] {
  const out: Violation[] = [];
  const owner = new Map<string, string>();
  for (const pg of pgs) {
    if (pg.state !== 'created' && pg.state !== 'reserved') continue;
    for (const p of pg.placements) {
      const who = `${pg.name}#${p.bundleIndex}`;
      const keys = [...p.gpuIndices.map((i) => `${p.nodeId} GPU ${i}`), ...p.migUuids.map((u) => `${p.nodeId} MIG ${u}`)];
      for (const k of keys) {
        const first = owner.get(k);
        if (first) out.push({ rule: 'no-double-booking', message: `${k} is in ${first} and in ${who}` });
        else owner.set(k, who);
      }
    }
  }
  return out;
}

async function halfGang(g: Gang, procs: ScannedProcess[]): Promise<Violation[]> {
  const out: Violation[] = [];
  const v = g.toJSON();
  const bad = (m: string) => out.push({ rule: 'no-half-gang', message: `gang ${v.name} (${v.id}, ${v.state}, attempt ${v.attempt}): ${m}` });
  const desc = (p: ScannedProcess) => `pid ${p.pid} (attempt ${p.env.get('MUSTER_ATTEMPT')}, rank ${p.env.get('RANK')})`;
  switch (v.state) {
    case 'ready': {
      if (v.ranks.length === 0) bad('READY without ranks');
      for (const r of v.ranks) {
        if (r.phase !== 'ready') bad(`rank ${r.rank} is ${r.phase || 'without a phase'}`);
        if (!pidAlive(r.pid)) {
          bad(`rank ${r.rank}: pid ${r.pid} is not a live process`);
          continue;
        }
        const env = await procEnv(r.pid);
        const want: Record<string, string> = { MUSTER_GANG_ID: v.id, MUSTER_ATTEMPT: String(v.attempt), RANK: String(r.rank) };
        const wrong = Object.entries(want).filter(([k, x]) => env?.get(k) !== x).map(([k, x]) => `${k}=${env?.get(k) ?? '(unset)'}, want ${x}`);
        if (wrong.length) bad(`rank ${r.rank}: pid ${r.pid} is not this rank (${wrong.join('; ')})`);
      }
      const pids = new Set(v.ranks.map((r) => r.pid));
      for (const p of procs) if (!pids.has(p.pid)) bad(`extra process ${desc(p)}`);
      break;
    }
    case 'starting': {
      const seen = new Set<string>();
      for (const p of procs) {
        if (p.env.get('MUSTER_ATTEMPT') !== String(v.attempt)) bad(`process of another attempt: ${desc(p)}`);
        else if (seen.has(p.env.get('RANK') ?? '')) bad(`second process for rank ${p.env.get('RANK')}: ${desc(p)}`);
        seen.add(p.env.get('RANK') ?? '');
      }
      break;
    }
    case 'pending':
      for (const p of procs) bad(`PENDING, yet ${desc(p)} runs`);
      break;
    default:
      break; // restarting/stopping: transitional; failed/stopped: rule 3
  }
  return out;
}

function orphans(cluster: LocalCluster, gangs: Gang[], shards: ScannedProcess[]): Violation[] {
  const byId = new Map(gangs.map((g) => [g.id, g]));
  const out: Violation[] = [];
  for (const p of shards) {
    const id = p.env.get('MUSTER_GANG_ID')!;
    const g = byId.get(id);
    const ours = (cluster.runTag !== undefined && p.env.get('MUSTER_TEST_RUN') === cluster.runTag) || g !== undefined;
    if (!ours || (g && LIVE_GANG.has(g.state))) continue;
    out.push({
      rule: 'no-orphan',
      message: `pid ${p.pid} (gang ${id}, attempt ${p.env.get('MUSTER_ATTEMPT')}, rank ${p.env.get('RANK')}) runs, but the head ${g ? `lists the gang ${g.state}` : 'does not know the gang'}`,
    });
  }
  return out;
}

async function lost(sdk: Cluster, pgs: PlacementGroup[], gangs: Gang[], opts: InvariantOptions): Promise<Violation[]> {
  const out: Violation[] = [];
  const removed = new Set(opts.removed ?? []);
  for (const ref of opts.acknowledged ?? []) {
    if (removed.has(ref) || pgs.some((pg) => pg.id === ref || pg.name === ref)) continue;
    // Not listed: removed by the test under its other name (id vs name), or lost.
    const got = await sdk.placementGroups.get(ref).then((pg) => pg.toJSON(), (e: unknown) => message(e));
    if (typeof got !== 'string' && got.state === 'removed' && (removed.has(got.id) || removed.has(got.name))) continue;
    const why = typeof got === 'string' ? got : `it is ${got.state}`;
    out.push({ rule: 'no-lost-group', message: `placement group ${ref} was acknowledged and not removed, but the head does not list it (${why})` });
  }
  for (const ref of opts.acknowledgedGangs ?? []) {
    if (!gangs.some((g) => g.id === ref || g.name === ref)) out.push({ rule: 'no-lost-group', message: `gang ${ref} was acknowledged, but the head does not list it` });
  }
  return out;
}
