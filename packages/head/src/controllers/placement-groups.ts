/**
 * The placement group controller: turns specs into reservations, all or
 * nothing, and keeps them placed while nodes come and go.
 *
 * Lifecycle: the numbered transition table is docs/placement-groups.md
 * ("Lifecycle"); "row N" in this file refers to it. Records live at
 * /muster/pgs/<id>; REMOVED records are deleted and remembered in memory for
 * a while, so `get` still answers for them.
 *
 * PENDING and RESCHEDULING groups carry the scheduler's latest reason, from
 * data (`explain`). On head restart, every record is read back: RESERVED
 * groups wait for their agents' acknowledgements again (agents get a snapshot
 * of their reservations whenever they register), pending ones are queued.
 *
 * Concurrency: all changes are made by one loop of cycles (group-commit.ts),
 * one cycle at a time. Creates, removals, acknowledgements and node deaths
 * mark records and kick the loop; a cycle schedules what is queued
 * (`schedule`), then writes every marked record in one fenced transaction,
 * and only then answers callers and tells the agents. No GPU can be booked
 * twice because one cycle sees the reservations of all the previous ones
 * (pg-view.ts keeps them between cycles), and a deposed head cannot commit
 * (StateWriter's fence).
 *
 * A stored group this head cannot decode or validate is quarantined
 * (quarantine.ts, pg-quarantine.ts): kept beside the groups the cycle sees,
 * its bundles still reserved (scheduling view, agents' snapshots), shown by
 * get and list, removable by hand; never scheduled, moved or released.
 */
import type { Histogram } from '@opentelemetry/api';
import { checkLength, ErrorCode, MusterError, type Logger, randomId, toMusterError } from '@muster/common';
import {
  NodeState,
  PlacementGroup,
  type Node,
  PlacementGroupState as S,
  type HeadMessage,
  type PlacementGroupSpec,
  type ReservationSnapshot,
} from '@muster/proto';
import { parsePlacementGroupSpec, planMoves, runCycle, type BundlePlacement, type ClusterState, type Hold, type ValidPgSpec, type QueuedGroup } from '../scheduler/index.js';
import type { NodeRegistry } from '../cluster/registry.js';
import type { EventLog } from '../events/event-log.js';
import type { StateWriter } from '../state/fence.js';
import { readAll } from '../state/paged.js';
import { ChangeWaiters } from './waiters.js';
import { GroupCommit } from './group-commit.js';
import { pgRecordProblem, plainReason, specInput, wirePlacement, wireReason, wireSpec } from './pg-convert.js';
import { PendingQueue } from './pg-queue.js';
import { readPg, stageRemoval } from './pg-quarantine.js';
import { Quarantine, type Quarantined } from './quarantine.js';
import { SchedulingView } from './pg-view.js';

export const PGS_PREFIX = '/muster/pgs/';
const REMOVED_REMEMBERED = 1_000;

interface Entry {
  pg: PlacementGroup;
  spec: ValidPgSpec;
  /** Nodes that acknowledged this group's bundles (RESERVED → CREATED). */
  acked: Set<string>;
}

export interface PlacementGroupControllerOptions {
  /** How long the first group in the queue waits before holding nodes (scheduler/queue.ts). */
  starvationAfterMs?: number;
  metrics?: { cycleSeconds: Histogram; cycleWrites: Histogram };
}

export class PlacementGroupController {
  private readonly groups = new Map<string, Entry>();
  private readonly byName = new Map<string, string>();
  private readonly queue: PendingQueue;
  private readonly view: SchedulingView;
  private readonly removed = new Map<string, PlacementGroup>();
  /** Stored groups this head cannot read: kept, holding their bundles, never scheduled (pg-quarantine.ts). */
  private readonly quarantine: Quarantine<PlacementGroup>;
  private readonly commits: GroupCommit;
  private readonly waiters = new ChangeWaiters();
  private readonly changeListeners: Array<(pgId: string) => void> = [];
  private hold: Hold | undefined;
  /**
   * Groups another controller moves off draining nodes itself (replica
   * groups). Undefined until that controller has loaded: no group moves
   * before then, or a replica could be moved break-before-make.
   */
  private claimsMove: ((pgId: string) => boolean) | undefined;
  /** Why a group on a draining node could not move in the last cycle. */
  private readonly moveBlocked = new Map<string, string>();

  constructor(
    private readonly writer: StateWriter,
    private readonly registry: NodeRegistry,
    private readonly events: EventLog,
    private readonly log: Logger,
    private readonly opts: PlacementGroupControllerOptions = {},
  ) {
    this.quarantine = new Quarantine(log, 'placement group');
    // Quarantined groups' placements stay reserved: nobody else is given their GPUs.
    this.view = new SchedulingView(registry, () => [...[...this.groups.values()].map((e) => e.pg), ...[...this.quarantine.values()].map((q) => q.record)]);
    this.queue = new PendingQueue((id) => {
      const e = this.groups.get(id)!;
      return { spec: e.spec, createdAtMs: e.pg.createdAtMs };
    }, opts.starvationAfterMs);
    this.commits = new GroupCommit(writer, log, { name: 'placement groups', step: () => this.schedule(), recover: () => this.recover(), metrics: opts.metrics });
    registry.onTransition((kind, node) => {
      if (kind === 'node.dead') this.nodeLost(node.nodeId);
      // Capacity (or a shape) came back: queued groups and blocked moves get a new try. With
      // nothing waiting there is nothing to schedule: a registration storm must not rebuild
      // the scheduling view (O(nodes)) once per node.
      else if (this.queue.size > 0 || this.moveBlocked.size > 0 || kind === 'node.draining' || kind === 'node.uncordoned') this.kick();
    });
  }

  async load(): Promise<void> {
    const { kvs } = await readAll(this.writer.store, PGS_PREFIX);
    const quarantined = new Map<string, Quarantined<PlacementGroup>>();
    for (const kv of kvs) {
      const read = readPg(kv, PGS_PREFIX);
      if (!read.ok) {
        quarantined.set(read.q.id, read.q);
        continue;
      }
      const { pg, spec } = read;
      this.groups.set(pg.id, { pg, spec, acked: new Set() });
      this.byName.set(pg.spec!.name, pg.id);
      this.queue.track(pg.id, pg.state);
    }
    for (const q of this.quarantine.replace(quarantined)) {
      this.commits.stage(this.events.stage('pg.quarantined', { message: `placement group ${q.name ?? q.id}: ${q.record.reason!.message}`, attributes: { pg: q.id, name: q.name ?? '', key: q.key, reason: q.why } }));
    }
    this.view.invalidate();
    this.log.info({ groups: this.groups.size, quarantined: this.quarantine.size }, 'placement groups loaded');
    // Bundles on nodes that died (or vanished) while no head was watching.
    const alive = new Set(this.registry.list(NodeState.NODE_STATE_ALIVE).map((n) => n.nodeId));
    const lost = new Set([...this.groups.values()].flatMap((e) => nodesOf(e.pg)).filter((n) => !alive.has(n)));
    for (const n of lost) this.nodeLost(n);
    this.kick();
  }

  // ── API ────────────────────────────────────────────────────────────────

  /**
   * A create whose name exists with the same non-empty `requestId` is a retry
   * of one that committed (the reply was lost in a failover): it returns that
   * group rather than ALREADY_EXISTS, once it is durable.
   */
  async create(wire: PlacementGroupSpec | undefined, requestId = ''): Promise<PlacementGroup> {
    const id = this.admit(wire, requestId);
    await this.commits.flush();
    return this.current(id);
  }

  /**
   * Many creates, each admitted (or refused) on its own as `create` would,
   * made durable by one commit: the batched call's path. Resolves with each
   * item's group record (as it is once durable) or refusal, in order; rejects
   * (and changes nothing) when the commit fails. The records are the live
   * objects taken at admission, not looked up again after the commit: a
   * group removed in between (and even forgotten by `removed`) is answered
   * as it ended, never by failing the whole batch.
   */
  async createMany(items: ReadonlyArray<{ spec: PlacementGroupSpec | undefined; requestId: string }>): Promise<Array<PlacementGroup | MusterError>> {
    const out = items.map((it) => attempt(() => this.current(this.admit(it.spec, it.requestId))));
    if (out.some((r) => !(r instanceof MusterError))) await this.commits.flush();
    return out;
  }

  /** Validates a create and makes the group in memory (its record marked for the next commit); returns its id. */
  private admit(wire: PlacementGroupSpec | undefined, requestId: string): string {
    checkLength('request_id', requestId, 'refLength'); // stored with the group
    const parsed = parsePlacementGroupSpec(specInput(wire));
    if (!parsed.ok) {
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, parsed.message, { details: { fields: parsed.issues.map((i) => i.path) } });
    }
    const spec = parsed.spec;
    const tooLarge = pgRecordProblem(spec);
    if (tooLarge) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid placement group spec: ${tooLarge}`, { details: { field: tooLarge.startsWith('bundles:') ? 'bundles' : 'spec' } });
    const existing = this.byName.get(spec.name) ?? this.quarantine.find(spec.name)?.id;
    if (existing !== undefined && requestId !== '' && this.groups.get(existing)?.pg.requestId === requestId) return existing;
    if (existing !== undefined) {
      throw new MusterError(ErrorCode.ALREADY_EXISTS, `a placement group named "${spec.name}" exists (${existing}); remove it or pick another name`, { details: { field: 'name' } });
    }
    const now = Date.now();
    const pg: PlacementGroup = {
      id: randomId('pg', 12),
      spec: wireSpec(spec),
      state: S.PLACEMENT_GROUP_STATE_PENDING,
      placements: [],
      reason: plainReason('QUEUED', 'waiting for its first scheduling cycle'),
      createdAtMs: now,
      stateChangedAtMs: now,
      reschedules: 0,
      requestId,
    };
    this.groups.set(pg.id, { pg, spec, acked: new Set() });
    this.byName.set(spec.name, pg.id);
    this.queue.track(pg.id, pg.state);
    this.markDirty(pg);
    return pg.id;
  }

  get(idOrName: string): PlacementGroup {
    const id = this.byName.get(idOrName) ?? idOrName;
    const found = this.groups.get(id)?.pg ?? this.quarantine.find(id)?.record ?? this.removed.get(id);
    if (!found) throw new MusterError(ErrorCode.NOT_FOUND, `no placement group "${idOrName}"`, { details: { id: idOrName } });
    return found;
  }

  list(state: S = S.PLACEMENT_GROUP_STATE_UNSPECIFIED): PlacementGroup[] {
    const all = state === S.PLACEMENT_GROUP_STATE_REMOVED ? [...this.removed.values()] : [...this.groups.values()].map((e) => e.pg).concat([...this.quarantine.values()].map((q) => q.record));
    return all
      .filter((pg) => state === S.PLACEMENT_GROUP_STATE_UNSPECIFIED || pg.state === state)
      .sort((a, b) => a.createdAtMs - b.createdAtMs || a.id.localeCompare(b.id));
  }

  /** Idempotent: a removed group is answered again (once its removal is durable). */
  async remove(idOrName: string): Promise<PlacementGroup> {
    const pg = this.drop(idOrName);
    await this.commits.flush();
    return pg;
  }

  /** Many removes, each as `remove` would do it, made durable by one commit (see createMany). */
  async removeMany(idsOrNames: readonly string[]): Promise<Array<PlacementGroup | MusterError>> {
    const out = idsOrNames.map((id) => attempt(() => this.drop(id)));
    if (out.some((r) => !(r instanceof MusterError))) await this.commits.flush();
    return out;
  }

  /** Removes the group from memory (its record's delete and event marked for the next commit). */
  private drop(idOrName: string): PlacementGroup {
    const pg = this.get(idOrName);
    const q = this.groups.has(pg.id) ? undefined : this.quarantine.find(pg.id);
    if (q) return this.dropQuarantined(q);
    const entry = this.groups.get(pg.id);
    if (!entry) return pg; // already removed
    this.release(entry);
    this.view.release(pg.id);
    this.transition(entry, S.PLACEMENT_GROUP_STATE_REMOVED, 'pg.removed', `placement group ${pg.spec!.name} removed`);
    this.groups.delete(pg.id);
    this.byName.delete(pg.spec!.name);
    this.remember(entry.pg);
    this.commits.delete(PGS_PREFIX + pg.id);
    return entry.pg;
  }

  /** A quarantined group removed by hand: out of memory and the view now, its key and release staged (pg-quarantine.ts). */
  private dropQuarantined(q: Quarantined<PlacementGroup>): PlacementGroup {
    this.quarantine.delete(q.id);
    this.view.release(q.id);
    const pg = stageRemoval({ commits: this.commits, events: this.events, registry: this.registry }, q);
    this.remember(pg);
    this.commits.after(() => {
      this.wake(q.id);
      for (const l of this.changeListeners) l(q.id);
    });
    return pg;
  }

  /** Whether the group `id` is quarantined (its record cannot be read by this head). */
  isQuarantined(id: string): boolean {
    return this.quarantine.has(id);
  }

  /** A path of another controller left quarantined group `id` alone: said once per path. */
  noteSkipped(id: string, path: string): void {
    this.quarantine.skipped(id, path);
  }

  /** Resolves when the group is CREATED, INFEASIBLE or REMOVED, or at the deadline, with its record. */
  wait(idOrName: string, timeoutMs: number): Promise<PlacementGroup> {
    const id = this.get(idOrName).id;
    return this.waiters.until(id, timeoutMs, () => this.get(id), (pg) => settled(pg.state));
  }

  /**
   * Groups for which `claims` says yes are moved off draining nodes by their
   * owner (the replica group controller: make-before-break); every other
   * group is moved here (lifecycle row 8).
   */
  setMoveOwner(claims: (pgId: string) => boolean): void {
    this.claimsMove = claims;
    this.kick();
  }

  /** Why a group holding a bundle on a draining node has not moved yet (undefined: it is not waiting). */
  blockedMove(pgId: string): string | undefined {
    return this.moveBlocked.get(pgId);
  }

  /**
   * Resolves once a cycle that starts after this call has committed: what
   * was asked before it (creates, removals, node changes) is scheduled and
   * durable.
   */
  sync(): Promise<void> {
    return this.commits.flush();
  }

  /** Called (after the commit) whenever a group changes state. */
  onChange(listener: (pgId: string) => void): void {
    this.changeListeners.push(listener);
  }

  // ── agents ─────────────────────────────────────────────────────────────

  /** Every reservation on `nodeId`, sent to its agent when it registers. */
  snapshotFor(nodeId: string): ReservationSnapshot {
    const groups = [];
    for (const pg of [...[...this.groups.values()].map((e) => e.pg), ...[...this.quarantine.values()].map((q) => q.record)]) {
      const bundles = pg.placements.filter((p) => p.nodeId === nodeId);
      if (bundles.length > 0) groups.push({ groupId: pg.id, bundles });
    }
    return { groups, more: false };
  }

  /** The agent of `nodeId` took note of `groupId`'s bundles. */
  acked(nodeId: string, groupId: string): void {
    const e = this.groups.get(groupId);
    if (!e || e.pg.state !== S.PLACEMENT_GROUP_STATE_RESERVED) return;
    if (!e.pg.placements.some((p) => p.nodeId === nodeId)) return;
    e.acked.add(nodeId);
    if (nodesOf(e.pg).every((n) => e.acked.has(n))) {
      // CREATED needs no durable write before it is announced: the
      // reservation is durable already (RESERVED), and after a head restart
      // the agents confirm it again. So waiters are woken now and the record
      // is written by the next cycle, off the caller's path.
      this.transition(e, S.PLACEMENT_GROUP_STATE_CREATED, 'pg.created', `placement group ${e.spec.name} created: ${describePlacements(e.pg)}`);
      this.wake(e.pg.id);
      this.kick();
    } else {
      const waiting = nodesOf(e.pg).filter((n) => !e.acked.has(n));
      e.pg.reason = plainReason('AWAITING_AGENTS', `waiting for node(s) ${waiting.join(', ')} to confirm their bundles`);
    }
  }

  // ── internals ──────────────────────────────────────────────────────────

  private nodeLost(nodeId: string): void {
    let lost = false;
    for (const e of this.groups.values()) {
      if (!e.pg.placements.some((p) => p.nodeId === nodeId)) continue;
      lost = true;
      this.release(e, nodeId);
      this.view.release(e.pg.id);
      e.pg.placements = [];
      e.pg.reschedules++;
      e.acked.clear();
      this.transition(e, S.PLACEMENT_GROUP_STATE_RESCHEDULING, 'pg.rescheduling', `placement group ${e.spec.name} lost node ${nodeId}; placing it again whole`);
      e.pg.reason = plainReason('NODE_LOST', `node ${nodeId} died; waiting to be placed again`);
    }
    for (const q of this.quarantine.values()) if (q.record.placements.some((p) => p.nodeId === nodeId)) this.quarantine.skipped(q.id, 'node death', { nodeId });
    // A node that held nothing changes no group: no cycle (and no O(nodes) view rebuild) for it.
    if (lost || this.queue.size > 0) this.kick();
  }

  /** Tells the agents holding bundles of `e` to drop them (after the next commit). */
  private release(e: Entry, except?: string): void {
    const msg: HeadMessage = { msg: { $case: 'releaseBundles', value: { groupId: e.pg.id } } };
    for (const n of nodesOf(e.pg)) if (n !== except) this.commits.after(() => this.registry.connection(n)?.send(msg));
  }

  private transition(e: Entry, state: S, kind: string, message: string): void {
    e.pg.state = state;
    this.queue.track(e.pg.id, state);
    e.pg.stateChangedAtMs = Date.now();
    if (state === S.PLACEMENT_GROUP_STATE_CREATED || state === S.PLACEMENT_GROUP_STATE_RESERVED) e.pg.reason = undefined;
    this.markDirty(e.pg);
    const id = e.pg.id;
    this.commits.stage(this.events.stage(kind, { message, attributes: { pg: id, name: e.spec.name } }));
    this.commits.after(() => {
      this.wake(id);
      for (const l of this.changeListeners) l(id);
    });
  }

  private wake(id: string): void {
    this.waiters.wake(id);
  }

  private remember(pg: PlacementGroup): void {
    this.removed.set(pg.id, pg);
    if (this.removed.size > REMOVED_REMEMBERED) this.removed.delete(this.removed.keys().next().value!);
  }

  private current(id: string): PlacementGroup {
    return this.groups.get(id)?.pg ?? this.get(id);
  }

  /** `pg`'s record is written by the next commit, as it is then. */
  private markDirty(pg: PlacementGroup): void {
    this.commits.put(PGS_PREFIX + pg.id, () => PlacementGroup.encode(pg).finish());
  }

  private kick(): void {
    this.commits.kick();
  }

  /** A commit failed: the in-memory view ran ahead of the store, so read the truth back. */
  private async recover(): Promise<void> {
    this.groups.clear();
    this.byName.clear();
    this.queue.clear();
    try {
      await this.load();
    } catch (reload) {
      this.writer.abandon(`placement groups could not be read back after a failed commit: ${(reload as Error).message}`);
    }
  }

  /**
   * Places queued groups on the scheduling state (pg-view.ts; pure core, scheduler/),
   * then moves groups off draining nodes where they fit (row 8): after the
   * queue, so a drain never takes room a pending group could have had.
   */
  private schedule(): void {
    const { state, nodeById, draining } = this.view.current();
    const queue = this.queue.due(state, this.hold, Date.now());
    const claims = this.claimsMove;
    const moving = draining.size === 0 || !claims ? [] : [...this.groups.values()].filter((e) =>
      (e.pg.state === S.PLACEMENT_GROUP_STATE_RESERVED || e.pg.state === S.PLACEMENT_GROUP_STATE_CREATED) &&
      e.pg.placements.some((p) => draining.has(p.nodeId)) && !claims(e.pg.id));
    const movingIds = new Set(moving.map((e) => e.pg.id));
    for (const id of this.moveBlocked.keys()) if (!movingIds.has(id)) this.moveBlocked.delete(id);
    if (queue.length > 0) this.placeQueued(state, queue, nodeById);
    else this.hold = undefined; // nothing queued: nobody starves
    if (moving.length === 0) return;
    const held = this.hold && new Map(this.hold.nodeIds.map((n) => [n, this.hold!.groupId]));
    const plan = planMoves(state, moving.map((e) => ({ id: e.pg.id, spec: e.spec, enqueuedAtMs: e.pg.createdAtMs })), held);
    for (const { id, placements } of plan.moved) {
      const e = this.groups.get(id)!;
      const from = nodesOf(e.pg).filter((n) => draining.has(n));
      this.moveBlocked.delete(id);
      this.release(e);
      e.pg.reschedules++;
      this.transition(e, S.PLACEMENT_GROUP_STATE_RESCHEDULING, 'pg.rescheduling', `placement group ${e.spec.name} moves off draining node(s) ${from.join(', ')}; placed again whole`);
      this.reserve(e, placements, nodeById);
    }
    for (const { id, reason } of plan.blocked) this.moveBlocked.set(id, `no room elsewhere: ${reason.message}`);
  }

  private placeQueued(state: ClusterState, queue: QueuedGroup[], nodeById: ReadonlyMap<string, Node>): void {
    const now = Date.now();
    const result = runCycle(state, queue, now, this.hold, { starvationAfterMs: this.opts.starvationAfterMs });
    this.hold = result.hold;
    for (const { id, placements } of result.placed) this.reserve(this.groups.get(id)!, placements, nodeById);
    for (const { id, reason } of result.pending) {
      this.groups.get(id)!.pg.reason = wireReason(reason);
      this.queue.stayedPending(id, now);
    }
    for (const { id, reason } of result.infeasible) {
      const e = this.groups.get(id)!;
      const was = e.pg.state;
      e.pg.reason = wireReason(reason);
      if (was !== S.PLACEMENT_GROUP_STATE_INFEASIBLE) {
        this.transition(e, S.PLACEMENT_GROUP_STATE_INFEASIBLE, 'pg.infeasible', `placement group ${e.spec.name} is infeasible: ${reason.message}`);
      }
    }
  }

  /** Step 2: the group holds `placements` now (after the commit: its agents are told). */
  private reserve(e: Entry, placements: BundlePlacement[], nodeById: ReadonlyMap<string, Node>): void {
    e.pg.placements = placements.map((p) => wirePlacement(p, nodeById.get(p.nodeId)));
    e.acked.clear();
    this.transition(e, S.PLACEMENT_GROUP_STATE_RESERVED, 'pg.reserved', `placement group ${e.spec.name} reserved: ${describePlacements(e.pg)}`);
    e.pg.reason = plainReason('AWAITING_AGENTS', `waiting for node(s) ${nodesOf(e.pg).join(', ')} to confirm their bundles`);
    for (const nodeId of nodesOf(e.pg)) {
      const msg: HeadMessage = { msg: { $case: 'reserveBundles', value: { groupId: e.pg.id, bundles: e.pg.placements.filter((p) => p.nodeId === nodeId) } } };
      this.commits.after(() => this.registry.connection(nodeId)?.send(msg));
    }
  }
}

/** What `f` returns, or what it throws as a MusterError: one item of a batch fails only itself. */
function attempt<T>(f: () => T): T | MusterError {
  try {
    return f();
  } catch (e) {
    return toMusterError(e);
  }
}

function settled(s: S): boolean {
  return s === S.PLACEMENT_GROUP_STATE_CREATED || s === S.PLACEMENT_GROUP_STATE_INFEASIBLE || s === S.PLACEMENT_GROUP_STATE_REMOVED;
}

function nodesOf(pg: PlacementGroup): string[] {
  return [...new Set(pg.placements.map((p) => p.nodeId))];
}

function describePlacements(pg: PlacementGroup): string {
  return pg.placements.map((p) => `#${p.bundleIndex}→${p.nodeId}${p.gpuIndices.length ? `[${p.gpuIndices.join(',')}]` : ''}${p.migUuids.length ? `(${p.migUuids.length} MIG)` : ''}`).join(' ');
}
