/**
 * The node registry: the head's view of every node, fed by agent streams.
 *
 * Node lifecycle (persisted at /muster/nodes/<id> on every transition, never on
 * a plain heartbeat — 2,000 nodes × 1 Hz must not become 2,000 writes/s).
 * Every transition is written first, with its event in the same fenced
 * transaction, and only then changes memory, closes streams and reaches the
 * listeners; a failed write changes nothing (the caller gets the error, a
 * death is retried by the next sweep). Changes of one node run one at a time.
 * Writes go through the shared GroupCommit (controllers/group-commit.ts):
 * the changes of every node that arrive while a commit is in flight share
 * the next transaction, so a storm of 10,000 registrations is a few hundred
 * writes, not 10,000. Unlike the other controllers, the registry changes no
 * memory in the cycle: the record is encoded and marked, and memory, streams
 * and listeners change in the commit's `after()` — so there is nothing to
 * undo when a write fails (its waiters get the error). One case remains: a
 * batch larger than one transaction is split (group-commit.ts), and a later
 * part failing leaves the earlier parts' records written while memory keeps
 * the old ones. So such a commit reloads the records from the store
 * (`reloadRecords`): memory takes what the store holds, keeping each live
 * node's stream and last sign of life. Listeners hear nothing of it: a node
 * whose registration was written but refused to its agent comes back by the
 * agent's retry (a reconnect, 3), and a death by the next sweep.
 * What a registration makes of a record (and the drain fields, the death
 * warning line) is derived by pure functions in node-records.ts. The ids of
 * the draining nodes are kept beside the map (updated in the same `after()`)
 * so the drain check visits those, not every node, twice a second.
 *
 *   (none) ──register──▶ ALIVE ──silent ≥ deadAfterMs──▶ DEAD
 *                          ▲                               │
 *                          └────────── register ───────────┘
 *
 *   1. register, unknown id     → ALIVE, event node.registered
 *   2. register, DEAD           → ALIVE, event node.alive
 *   3. register, ALIVE, same incarnation (reconnect, head restart)
 *                               → ALIVE, event node.reconnected
 *   4. register, ALIVE, new incarnation, old stream silent or closed
 *                               → ALIVE, event node.restarted
 *   5. register, ALIVE, new incarnation, old stream still heartbeating
 *                               → refused ALREADY_EXISTS (two agents claim one id)
 *   6. no heartbeat for deadAfterMs (liveness sweep) → DEAD, event node.dead
 *
 * Draining is a flag beside the state, not a state: a draining node is ALIVE
 * (or DEAD) as before, keeps heartbeating and keeps running what it runs, but
 * takes no new placement (the scheduler's `draining` filter), and the
 * controllers move its work elsewhere (docs/deploy.md, "Draining a node").
 *
 *   7. drain (operator: DrainNode; agent: its Kubernetes node was cordoned)
 *                               → draining, event node.draining
 *   8. uncordon (operator: any drain; agent: only a drain an agent asked for)
 *                               → not draining, event node.uncordoned
 *
 * A DEAD node is forgotten (its record deleted, event node.removed) after
 * --dead-node-ttl-ms (liveness.ts `collectDead`) or at once by an
 * operator (`muster node rm`, RemoveNode):
 *
 *   9. remove, DEAD, no placement group holds bundles on it
 *                               → (no record), event node.removed
 *      remove, ALIVE, or still holding bundles → refused FAILED_PRECONDITION
 *      (nothing is released for it: the placement group controller releases
 *      a dead node's bundles itself, so a refusal is a moment's race, and the
 *      TTL sweep tries again). If the agent comes back later it registers as
 *      new (1).
 *
 * The flag, its reason, since when and who set it are persisted with the
 * record, carried over by every registration (a restarted agent does not
 * undo a drain; it sends its own view again after registering) and read back
 * after a head restart. Every change makes a new record object, which is
 * what the scheduler's per-record view cache keys on.
 *
 * Silence is counted from when the head could have read a heartbeat, not
 * from when it did: an overloaded head (a starved CPU, a registration storm)
 * reads heartbeats late, and declaring their nodes dead would close their
 * streams and start the very reconnect storm that overloads it (10,000
 * agents thrashed this way). Each heartbeat carries the agent's send time;
 * per node the smallest delay seen is its baseline (clock skew plus the
 * network), and how far the delays of the last sweep period stood above
 * their baselines is the head's backlog. A node is dead after deadAfterMs +
 * backlog of silence: 3 s on a head that keeps up, later on one that does
 * not (liveness.ts excuses whole event-loop stalls the same way). And a
 * sweep declares at most MIN_DEATHS_PER_SWEEP deaths (one per 1,000 alive
 * nodes on larger clusters), the longest silent first: 100 a second at the
 * default sweep, so a rack of 1,000 nodes failing at once is declared dead
 * over 10 s, and a node that only looked silent has its heartbeat read
 * before its turn.
 *
 * A closed stream alone does not kill a node: the agent gets deadAfterMs to
 * come back (a network blip or a head restart must not restart shards).
 * After a head restart, nodes read back as ALIVE get twice deadAfterMs to
 * reconnect before the sweep may declare them dead: agents were backing off
 * while the head was away, and a restart of the head alone must not look like
 * the death of every node. And while the head turns registrations away for
 * want of room (admission control, `admissionRefused`: every agent of a
 * large cluster reconnecting at once after a failover), a node without a
 * stream is not declared dead: its agent is more likely waiting in that
 * storm than gone (10,000 agents after a failover on etcd took longer than
 * the grace to get in, and the new leader declared the ones still waiting
 * dead — each a gang restart on a real cluster). Its silence counts again
 * once no registration was refused for deadAfterMs; a node that still has
 * a stream is judged by its heartbeats as always. The excuse has a ceiling:
 * a stream-less node silent for deadAfterMs + backlog + STORM_EXCUSE_LIMIT ×
 * deadAfterMs is judged anyway, however long refusals go on, so a sustained
 * storm (or one hostile node certificate keeping admission full) cannot
 * switch death detection off.
 */
import { ErrorCode, MusterError, type Logger } from '@muster/common';
import { Node, NodeState, type HeadMessage, type Register } from '@muster/proto';
import type { EventFields, EventLog } from '../events/event-log.js';
import { GroupCommit } from '../controllers/group-commit.js';
import type { StateWriter } from '../state/fence.js';
import { readAll } from '../state/paged.js';
import { ChangeLog } from './change-log.js';
import { admission, deathWarning, drainOf } from './node-records.js';

export const NODES_PREFIX = '/muster/nodes/';

/** Record changes remembered by id for views that catch up (changesSince); beyond it they build anew. */
const CHANGES_KEPT = 8_192;

/** Deaths declared per sweep at most (more on clusters over 10,000 nodes: one per 1,000 alive). */
/**
 * How many deadAfterMs of extra silence admission refusals excuse a node
 * without a stream (see the top): 20, i.e. 60 s at the default 3 s, the time
 * 10,000 agents are given to register after a failover (issue 15). Past it
 * the node is judged whatever the refusals.
 */
export const STORM_EXCUSE_LIMIT = 20;
const MIN_DEATHS_PER_SWEEP = 10;
/** Records decoded between turns of the event loop in a first load (~50 ms of work on a busy machine). */
const DECODE_SLICE = 1_000;

/** Who asked for a drain (persisted as `Node.drainedBy`). */
export type DrainedBy = 'operator' | 'agent';

/** One live agent stream. `close` ends it with an error the agent sees. */
export interface AgentConnection {
  readonly id: number;
  send(msg: HeadMessage): void;
  close(err: MusterError): void;
}

/** A node changed state; `kind` is the event kind (node.registered, node.dead, node.draining, ...). */
export type NodeListener = (kind: string, node: Node) => void;

interface Entry {
  node: Node;
  conn?: AgentConnection | undefined;
  /** Monotonic ms of the last sign of life (register or heartbeat). */
  lastSeen: number;
  /** The smallest (head wall clock − heartbeat send time) seen on this stream: skew plus network. */
  baseDelay?: number | undefined;
}

export class NodeRegistry {
  private readonly nodes = new Map<string, Entry>();
  /** Ids of the draining nodes (alive or dead), kept in step with `nodes` where a record changes: per-tick checks read these, not every node. */
  private readonly drainingIds = new Set<string>();
  private readonly listeners: NodeListener[] = [];
  /** Per node, the tail of its queued changes (see `serial`). */
  private readonly busy = new Map<string, Promise<void>>();
  /** The version and which records each step changed (change-log.ts). */
  private readonly changes = new ChangeLog(CHANGES_KEPT);
  private holders: (nodeId: string) => string[] = () => [];
  private readonly commits: GroupCommit;
  /** The largest heartbeat delay above its node's baseline in this sweep period, and in the last. */
  private backlogNow = 0;
  private backlog = 0;
  private heartbeatsNow = 0;
  /** When a registration was last turned away for want of room (see the file comment). */
  private refusedAt = -Infinity;

  constructor(
    private readonly writer: StateWriter,
    private readonly events: EventLog,
    private readonly log: Logger,
    private readonly deadAfterMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    // Memory changes only after a durable write (see `commit`): a failed commit
    // leaves memory as the store has it, unless a split commit wrote its earlier
    // transactions: then memory takes the store's records.
    this.commits = new GroupCommit(writer, log, {
      name: 'node registry',
      recover: async (partlyWritten) => {
        if (partlyWritten) await this.reloadRecords();
      },
    });
  }

  /** Loads persisted nodes (head restart). */
  async load(): Promise<void> {
    const loaded = await this.reloadRecords(true);
    this.log.info({ nodes: loaded }, 'node records loaded');
  }

  /**
   * The term starts judging silence now: nodes read back at load (no stream
   * yet) get their grace from this moment, not from when their records were
   * read — the rest of a term's load took 4 s at 10,000 nodes on a busy
   * machine, and the new leader declared nodes dead 2 s into its term.
   */
  startJudging(): void {
    const grace = this.now() + this.deadAfterMs;
    for (const e of this.nodes.values()) if (!e.conn && e.node.state === NodeState.NODE_STATE_ALIVE) e.lastSeen = Math.max(e.lastSeen, grace);
  }

  /**
   * Memory takes the store's node records: an entry keeps its stream and last
   * sign of life, a record memory lacked gets a grace of deadAfterMs (as at a
   * head restart), and an entry whose record is gone goes. Returns the count.
   * `yielding` (a term's first load, before anything else runs): the decoding
   * gives the event loop a turn every DECODE_SLICE records, so the leader
   * lease's keepalives go out while 10,000 records are decoded (mirror.ts).
   * Not after a failed commit: changes made between slices would be
   * overwritten by the older records read before them.
   */
  private async reloadRecords(yielding = false): Promise<number> {
    const { kvs } = await readAll(this.writer.store, NODES_PREFIX);
    const grace = this.now() + this.deadAfterMs;
    const seen = new Set<string>();
    let changed = false;
    let decoded = 0;
    for (const kv of kvs) {
      if (yielding && ++decoded % DECODE_SLICE === 0) await new Promise((r) => setImmediate(r));
      const node = Node.decode(kv.value);
      seen.add(node.nodeId);
      const entry = this.nodes.get(node.nodeId);
      // A record memory already holds keeps its object (its readers compare by identity).
      if (entry && Buffer.from(Node.encode(entry.node).finish()).equals(Buffer.from(kv.value))) continue;
      changed = true;
      if (entry) entry.node = node;
      else this.nodes.set(node.nodeId, { node, lastSeen: grace });
    }
    for (const id of [...this.nodes.keys()]) {
      if (seen.has(id)) continue;
      this.nodes.delete(id);
      changed = true;
    }
    if (changed) {
      this.drainingIds.clear();
      for (const [id, e] of this.nodes) if (e.node.draining) this.drainingIds.add(id);
      // Which records changed is not worked out here: views derived from the node set build anew.
      this.changes.reset();
    }
    return kvs.length;
  }

  /**
   * Moves whenever a node record is added or replaced (a heartbeat does not
   * replace it): what is derived from the node set is kept while it stays.
   */
  get version(): number {
    return this.changes.current;
  }

  /**
   * The ids of the records added, replaced or removed since `version` (one per
   * step, repeats possible), or undefined when they are no longer known (more
   * than CHANGES_KEPT steps ago, or before a reload from the store): then
   * whatever was derived from the node set is derived again. The scheduling
   * view (controllers/pg-view.ts) catches up this way, one node at a time,
   * instead of rebuilding from every node when one registers.
   */
  changesSince(version: number): string[] | undefined {
    return this.changes.since(version);
  }

  /** Every node record, unsorted: for one pass over the nodes (a summary, a page) without list()'s sort. */
  *all(): IterableIterator<Node> {
    for (const e of this.nodes.values()) yield e.node;
  }

  /** Sorted by id (code-point order: localeCompare cost a sweep of 10,000 nodes most of its time). */
  list(state: NodeState = NodeState.NODE_STATE_UNSPECIFIED): Node[] {
    const out: Node[] = [];
    for (const e of this.nodes.values()) if (state === NodeState.NODE_STATE_UNSPECIFIED || e.node.state === state) out.push(e.node);
    return out.sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  }

  /** How many nodes are draining (alive or dead), without a pass over the nodes. */
  get drainingCount(): number {
    return this.drainingIds.size;
  }

  /** The draining nodes, sorted by id: what a drain check visits instead of every node. */
  listDraining(): Node[] {
    const out: Node[] = [];
    for (const id of this.drainingIds) {
      const n = this.nodes.get(id)?.node;
      if (n) out.push(n);
    }
    return out.sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  }

  /** Called after every transition of the table above, once it is persisted. */
  onTransition(listener: NodeListener): void {
    this.listeners.push(listener);
  }

  /** The live stream of a node, if it has one. */
  connection(nodeId: string): AgentConnection | undefined {
    return this.nodes.get(nodeId)?.conn;
  }

  get(nodeId: string): Node | undefined {
    return this.nodes.get(nodeId)?.node;
  }

  count(state: NodeState): number {
    let n = 0;
    for (const e of this.nodes.values()) if (e.node.state === state) n++;
    return n;
  }

  /** Transitions 1-5 of the table above. */
  register(reg: Register, conn: AgentConnection): Promise<Node> {
    return this.serial(reg.nodeId, () => this.admit(reg, conn));
  }

  private async admit(reg: Register, conn: AgentConnection): Promise<Node> {
    const prev = this.nodes.get(reg.nodeId);
    const live = !!prev?.conn && this.now() - prev.lastSeen < this.deadAfterMs;
    const { kind, node, event } = admission(prev && { node: prev.node, live }, reg, this.deadAfterMs);
    await this.commit(node, kind, event, () => {
      const old = prev?.conn;
      this.nodes.set(node.nodeId, { node, conn, lastSeen: this.now() });
      if (old && old.id !== conn.id) {
        old.close(new MusterError(ErrorCode.NODE_SUPERSEDED, `a newer connection of node ${node.nodeId} replaced this one`));
      }
    });
    return node;
  }

  /** A heartbeat from `conn`; ignored when that stream was superseded. Never written: it only moves lastSeen. */
  heartbeat(nodeId: string, conn: AgentConnection, sentAtMs = 0): boolean {
    const e = this.nodes.get(nodeId);
    if (!e || e.conn?.id !== conn.id || e.node.state !== NodeState.NODE_STATE_ALIVE) return false;
    const wall = Date.now();
    e.lastSeen = this.now();
    e.node.lastHeartbeatMs = wall;
    if (sentAtMs > 0) {
      const delay = wall - sentAtMs;
      if (e.baseDelay === undefined || delay < e.baseDelay) e.baseDelay = delay;
      this.backlogNow = Math.max(this.backlogNow, delay - e.baseDelay);
      this.heartbeatsNow++;
    }
    return true;
  }

  /** How far behind the head reads heartbeats, ms (see the file comment); 0 on a head that keeps up. */
  get heartbeatBacklogMs(): number {
    return this.backlog;
  }

  /**
   * The head itself was not listening for `ms` (its event loop stalled: a
   * long GC, a registration storm): every alive node gets that long back, so
   * heartbeats the head could not read in time do not count as silence.
   */
  excuse(ms: number): void {
    for (const e of this.nodes.values()) if (e.node.state === NodeState.NODE_STATE_ALIVE) e.lastSeen += ms;
  }

  /**
   * A registration was turned away for want of room (admission control): for
   * deadAfterMs from now, nodes without a stream are not declared dead.
   */
  admissionRefused(): void {
    this.refusedAt = this.now();
  }

  /** Whether the sweep may judge `e` by its silence now (not while its agent may be queueing in a storm). */
  private judged(e: Entry, t: number): boolean {
    return e.conn !== undefined || t - this.refusedAt >= this.deadAfterMs || t - e.lastSeen >= this.deadAfterMs * (1 + STORM_EXCUSE_LIMIT) + this.backlog;
  }

  /** The stream of `conn` ended; the node lives on until the sweep says otherwise. */
  disconnected(nodeId: string, conn: AgentConnection): void {
    const e = this.nodes.get(nodeId);
    if (e?.conn?.id === conn.id) e.conn = undefined;
  }

  /**
   * Transition 6: returns the nodes declared dead by this sweep. Each death
   * is written before anything sees it; a node whose write fails stays as
   * stored (ALIVE, still silent) and is tried again by the next sweep.
   */
  async sweep(): Promise<Node[]> {
    const t = this.now();
    // A period in which no heartbeat was read says nothing new about the backlog: keep the last.
    if (this.heartbeatsNow > 0) this.backlog = this.backlogNow;
    this.backlogNow = 0;
    this.heartbeatsNow = 0;
    const limit = this.deadAfterMs + this.backlog;
    const due: Entry[] = [];
    let alive = 0;
    for (const e of this.nodes.values()) {
      if (e.node.state !== NodeState.NODE_STATE_ALIVE) continue;
      alive++;
      if (t - e.lastSeen >= limit && this.judged(e, t)) due.push(e);
    }
    // At most a few deaths per sweep, the longest silent first (like Kubernetes' eviction rate
    // limit): a node that only looked silent because the head was behind has its heartbeat read
    // before its turn comes, instead of being cut off and joining a reconnect storm.
    const cap = Math.max(MIN_DEATHS_PER_SWEEP, Math.ceil(alive / 1_000));
    if (due.length > cap) {
      due.sort((a, b) => a.lastSeen - b.lastSeen);
      due.length = cap;
    }
    const results = await Promise.allSettled(due.map((e) => this.serial(e.node.nodeId, () => this.markDead(e.node.nodeId))));
    const dead: Node[] = [];
    const failed: unknown[] = [];
    for (const r of results) {
      if (r.status === 'rejected') failed.push(r.reason);
      else if (r.value) dead.push(r.value);
    }
    if (failed.length > 0) {
      const err = failed[0] instanceof Error ? failed[0].message : String(failed[0]);
      this.log.error({ nodes: failed.length, err }, 'could not persist node deaths; they stay as stored and are retried on the next sweep');
    }
    if (dead.length > 0) {
      // One line per sweep, not per node (the event log logs each node.dead at debug).
      const { fields, message } = deathWarning(dead);
      this.log.warn(fields, message);
    }
    return dead;
  }

  /** The node is still alive and silent (it may have registered while waiting its turn): marks it DEAD. */
  private async markDead(nodeId: string): Promise<Node | undefined> {
    const e = this.nodes.get(nodeId);
    const silentMs = e ? Math.round(this.now() - e.lastSeen) : 0;
    if (!e || e.node.state !== NodeState.NODE_STATE_ALIVE || silentMs < this.deadAfterMs + this.backlog || !this.judged(e, this.now())) return undefined;
    const node: Node = {
      ...e.node,
      state: NodeState.NODE_STATE_DEAD,
      stateChangedAtMs: Date.now(),
      stateReason: `no heartbeat for ${silentMs} ms (limit ${this.deadAfterMs} ms${this.backlog > 0 ? ` + ${Math.round(this.backlog)} ms the head was behind reading heartbeats` : ''})`,
    };
    const event = { nodeId, message: `node ${nodeId} dead: ${node.stateReason}`, attributes: { silentMs: String(silentMs) } };
    await this.commit(node, 'node.dead', event, () => {
      e.node = node;
      e.conn?.close(new MusterError(ErrorCode.UNAVAILABLE, `node ${nodeId} declared dead: ${node.stateReason}`));
      e.conn = undefined;
    });
    return node;
  }

  /**
   * Transition 7. Idempotent: a node already draining stays so (an
   * operator's drain takes over an agent's, so an agent's undrain no longer
   * clears it). A dead node may be drained too: it will not take work when it
   * comes back.
   */
  drain(nodeId: string, reason: string, by: DrainedBy): Promise<Node> {
    return this.serial(nodeId, async () => {
      const e = this.entry(nodeId);
      const cur = e.node;
      if (cur.draining && (by === 'agent' || (cur.drainedBy === 'operator' && (reason === '' || reason === cur.drainReason)))) return cur;
      const first = !cur.draining;
      const node: Node = { ...cur, draining: true, drainReason: reason || cur.drainReason, drainSinceMs: first ? Date.now() : cur.drainSinceMs, drainedBy: by };
      const event = {
        nodeId,
        message: `node ${nodeId} draining${node.drainReason ? ` (${node.drainReason})` : ''}, asked by the ${by}: no new placements; its work moves elsewhere`,
        attributes: { reason: node.drainReason, by },
      };
      // A second drain (an operator's over an agent's, a new reason) is written, not announced.
      await this.commit(node, first ? 'node.draining' : undefined, event, () => (e.node = node));
      return node;
    });
  }

  /** Transition 8. Idempotent; an agent's uncordon leaves an operator's drain alone. */
  uncordon(nodeId: string, by: DrainedBy): Promise<Node> {
    return this.serial(nodeId, async () => {
      const e = this.entry(nodeId);
      const cur = e.node;
      if (!cur.draining) return cur;
      if (by === 'agent' && cur.drainedBy !== 'agent') {
        this.log.info({ nodeId, drainedBy: cur.drainedBy }, 'agent asked to undrain a node an operator drained; left draining');
        return cur;
      }
      const node: Node = { ...cur, ...drainOf(undefined) };
      const event = {
        nodeId,
        message: `node ${nodeId} uncordoned by the ${by}: it takes new placements again`,
        attributes: { by, drainedForMs: String(Date.now() - cur.drainSinceMs) },
      };
      await this.commit(node, 'node.uncordoned', event, () => (e.node = node));
      return node;
    });
  }

  /**
   * Who still holds bundles on a node (placement group names): a node held
   * is not removed. Set by the leader term; none set: nothing holds.
   */
  setHolders(holders: (nodeId: string) => string[]): void {
    this.holders = holders;
  }

  /**
   * Transition 9, by an operator: forgets a DEAD node (deleted from the
   * store with its event node.removed, then from memory). Returns its last
   * record. Refused for an ALIVE node or one still holding bundles.
   */
  remove(nodeId: string, reason = 'removed by an operator'): Promise<Node> {
    return this.serial(nodeId, async () => {
      const e = this.entry(nodeId);
      const state = e.node.state === NodeState.NODE_STATE_ALIVE ? 'ALIVE' : e.node.state === NodeState.NODE_STATE_DEAD ? 'DEAD' : String(e.node.state);
      if (e.node.state !== NodeState.NODE_STATE_DEAD) {
        throw new MusterError(ErrorCode.FAILED_PRECONDITION, `node ${nodeId} is ${state}: only a DEAD node can be removed (stop its agent first; it is dead after ${this.deadAfterMs} ms of silence)`, {
          details: { nodeId, state },
        });
      }
      const held = this.holders(nodeId);
      if (held.length > 0) {
        throw new MusterError(ErrorCode.FAILED_PRECONDITION, `node ${nodeId} is DEAD but placement groups still hold bundles on it (${held.slice(0, 5).join(', ')}); try again once they are placed elsewhere`, {
          details: { nodeId, state, holders: held.slice(0, 5).join(',') },
        });
      }
      const node = e.node;
      // Through the one write path, as a delete: memory forgets the node only once it is durable.
      this.commits.delete(NODES_PREFIX + nodeId);
      this.commits.stage(this.events.stage('node.removed', { nodeId, message: `node ${nodeId} removed: ${reason}`, attributes: { reason, deadForMs: String(Math.max(0, Date.now() - node.stateChangedAtMs)) } }));
      this.commits.after(() => {
        this.nodes.delete(nodeId);
        this.drainingIds.delete(nodeId);
        this.changes.note(nodeId);
        for (const l of this.listeners) l('node.removed', node);
      });
      await this.commits.flush();
      return node;
    });
  }

  /** Heartbeat lag of alive nodes, ms since last sign of life. */
  silences(): number[] {
    const t = this.now();
    return [...this.nodes.values()].filter((e) => e.node.state === NodeState.NODE_STATE_ALIVE).map((e) => t - e.lastSeen);
  }

  private entry(nodeId: string): Entry {
    const e = this.nodes.get(nodeId);
    if (!e) throw new MusterError(ErrorCode.NOT_FOUND, `no node "${nodeId}"`, { details: { nodeId } });
    return e;
  }

  /**
   * Runs `change` after every earlier change of the same node has settled:
   * each reads the record the last one left (no lost update between a drain
   * and a death), while different nodes write concurrently.
   */
  private serial<T>(nodeId: string, change: () => Promise<T>): Promise<T> {
    const run = (this.busy.get(nodeId) ?? Promise.resolve()).then(change);
    const done = run.then(
      () => undefined,
      () => undefined,
    );
    this.busy.set(nodeId, done);
    // `done` never rejects (both outcomes map to undefined): nothing to catch.
    done.then(() => {
      if (this.busy.get(nodeId) === done) this.busy.delete(nodeId);
    }, () => undefined);
    return run;
  }

  /**
   * The one write path: the record and its event (when `kind` is given) are
   * marked for the next group commit; only once it is durable does `apply`
   * change memory (a new record object: views cached per record see the
   * change), and then the listeners hear of it. A failed write rejects and
   * changes nothing: memory, streams, events and listeners see what the
   * store holds.
   */
  private commit(node: Node, kind: string | undefined, event: EventFields, apply: () => void): Promise<void> {
    const value = Node.encode(node).finish();
    this.commits.put(NODES_PREFIX + node.nodeId, () => value);
    if (kind) this.commits.stage(this.events.stage(kind, event));
    this.commits.after(() => {
      apply();
      if (node.draining) this.drainingIds.add(node.nodeId);
      else this.drainingIds.delete(node.nodeId);
      this.changes.note(node.nodeId);
      if (kind) for (const l of this.listeners) l(kind, node);
    });
    return this.commits.flush();
  }
}
