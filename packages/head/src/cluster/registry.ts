/**
 * The node registry: the head's view of every node, fed by agent streams.
 *
 * Node lifecycle (persisted at /muster/nodes/<id> on every transition, never on
 * a plain heartbeat — 2,000 nodes × 1 Hz must not become 2,000 writes/s):
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
 * The flag, its reason, since when and who set it are persisted with the
 * record, carried over by every registration (a restarted agent does not
 * undo a drain; it sends its own view again after registering) and read back
 * after a head restart. Every change makes a new record object, which is
 * what the scheduler's per-record view cache keys on.
 *
 * A closed stream alone does not kill a node: the agent gets deadAfterMs to
 * come back (a network blip or a head restart must not restart shards).
 * After a head restart, nodes read back as ALIVE get twice deadAfterMs to
 * reconnect before the sweep may declare them dead: agents were backing off
 * while the head was away, and a restart of the head alone must not look like
 * the death of every node.
 */
import { ErrorCode, MusterError, type Logger } from '@muster/common';
import { Node, NodeState, type HeadMessage, type Register } from '@muster/proto';
import type { StateWriter } from '../state/fence.js';
import type { EventLog } from '../events/event-log.js';

export const NODES_PREFIX = '/muster/nodes/';

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
}

export class NodeRegistry {
  private readonly nodes = new Map<string, Entry>();
  private readonly listeners: NodeListener[] = [];
  private replaced = 0;

  constructor(
    private readonly writer: StateWriter,
    private readonly events: EventLog,
    private readonly log: Logger,
    private readonly deadAfterMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Loads persisted nodes (head restart). */
  async load(): Promise<void> {
    const { kvs } = await this.writer.store.range(NODES_PREFIX);
    const grace = this.now() + this.deadAfterMs;
    for (const kv of kvs) {
      const node = Node.decode(kv.value);
      this.nodes.set(node.nodeId, { node, lastSeen: grace });
    }
    this.replaced++;
    this.log.info({ nodes: kvs.length }, 'node records loaded');
  }

  /**
   * Moves whenever a node record is added or replaced (a heartbeat does not
   * replace it): what is derived from the node set is kept while it stays.
   */
  get version(): number {
    return this.replaced;
  }

  list(state: NodeState = NodeState.NODE_STATE_UNSPECIFIED): Node[] {
    return [...this.nodes.values()]
      .map((e) => e.node)
      .filter((n) => state === NodeState.NODE_STATE_UNSPECIFIED || n.state === state)
      .sort((a, b) => a.nodeId.localeCompare(b.nodeId));
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
  async register(reg: Register, conn: AgentConnection): Promise<Node> {
    const prev = this.nodes.get(reg.nodeId);
    const t = this.now();
    let kind: string;
    if (!prev) kind = 'node.registered';
    else if (prev.node.state !== NodeState.NODE_STATE_ALIVE) kind = 'node.alive';
    else if (prev.node.incarnation === reg.incarnation) kind = 'node.reconnected';
    else if (prev.conn && t - prev.lastSeen < this.deadAfterMs) {
      throw new MusterError(
        ErrorCode.ALREADY_EXISTS,
        `node id "${reg.nodeId}" is held by another live agent (incarnation ${prev.node.incarnation}, address ${prev.node.address}); ` +
          'give each agent its own --node-id, or stop the other one (it is considered gone after ' +
          `${this.deadAfterMs} ms of silence)`,
        { details: { field: 'nodeId', nodeId: reg.nodeId } },
      );
    } else kind = 'node.restarted';

    const wall = Date.now();
    const node: Node = {
      nodeId: reg.nodeId,
      state: NodeState.NODE_STATE_ALIVE,
      labels: reg.labels,
      taints: reg.taints,
      inventory: reg.inventory,
      address: reg.address,
      incarnation: reg.incarnation,
      agentVersion: reg.agentVersion,
      registeredAtMs: prev && kind === 'node.reconnected' ? prev.node.registeredAtMs : wall,
      lastHeartbeatMs: wall,
      stateChangedAtMs: prev?.node.state === NodeState.NODE_STATE_ALIVE ? prev.node.stateChangedAtMs : wall,
      stateReason: kind === 'node.registered' ? 'registered' : kind.slice('node.'.length),
      ...drainOf(prev?.node),
    };
    await this.persist(node);
    // A drain or uncordon that landed while this record was being written:
    // keep it (and write it again), a registration never undoes one.
    const now = this.nodes.get(node.nodeId)?.node;
    if (now && now !== prev?.node && now.draining !== node.draining) {
      Object.assign(node, drainOf(now));
      await this.persist(node);
    }
    const old = prev?.conn;
    this.nodes.set(node.nodeId, { node, conn, lastSeen: t });
    this.replaced++;
    if (old && old.id !== conn.id) {
      old.close(new MusterError(ErrorCode.NODE_SUPERSEDED, `a newer connection of node ${node.nodeId} replaced this one`));
    }
    const gpus = reg.inventory?.gpus.length ?? 0;
    await this.events.append(kind, {
      nodeId: node.nodeId,
      message: `node ${node.nodeId} ${kind.slice('node.'.length)} (${gpus} GPUs, incarnation ${node.incarnation})`,
      attributes: { incarnation: node.incarnation, gpus: String(gpus) },
    });
    for (const l of this.listeners) l(kind, node);
    return node;
  }

  /** A heartbeat from `conn`; ignored when that stream was superseded. */
  heartbeat(nodeId: string, conn: AgentConnection): boolean {
    const e = this.nodes.get(nodeId);
    if (!e || e.conn?.id !== conn.id || e.node.state !== NodeState.NODE_STATE_ALIVE) return false;
    e.lastSeen = this.now();
    e.node.lastHeartbeatMs = Date.now();
    return true;
  }

  /** The stream of `conn` ended; the node lives on until the sweep says otherwise. */
  disconnected(nodeId: string, conn: AgentConnection): void {
    const e = this.nodes.get(nodeId);
    if (e?.conn?.id === conn.id) e.conn = undefined;
  }

  /** Transition 6: returns the nodes declared dead by this sweep. */
  async sweep(): Promise<Node[]> {
    const t = this.now();
    const dead: Node[] = [];
    for (const e of this.nodes.values()) {
      if (e.node.state !== NodeState.NODE_STATE_ALIVE) continue;
      const silentMs = Math.round(t - e.lastSeen);
      if (silentMs < this.deadAfterMs) continue;
      const node: Node = {
        ...e.node,
        state: NodeState.NODE_STATE_DEAD,
        stateChangedAtMs: Date.now(),
        stateReason: `no heartbeat for ${silentMs} ms (limit ${this.deadAfterMs} ms)`,
      };
      e.node = node;
      this.replaced++;
      e.conn?.close(new MusterError(ErrorCode.UNAVAILABLE, `node ${node.nodeId} declared dead: ${node.stateReason}`));
      e.conn = undefined;
      dead.push(node);
      await this.persist(node);
      await this.events.append('node.dead', { nodeId: node.nodeId, message: `node ${node.nodeId} dead: ${node.stateReason}`, attributes: { silentMs: String(silentMs) } });
      for (const l of this.listeners) l('node.dead', node);
    }
    return dead;
  }

  /**
   * Transition 7. Idempotent: a node already draining stays so (an
   * operator's drain takes over an agent's, so an agent's undrain no longer
   * clears it). A dead node may be drained too: it will not take work when it
   * comes back.
   */
  async drain(nodeId: string, reason: string, by: DrainedBy): Promise<Node> {
    const e = this.entry(nodeId);
    const cur = e.node;
    if (cur.draining && (by === 'agent' || (cur.drainedBy === 'operator' && (reason === '' || reason === cur.drainReason)))) return cur;
    const first = !cur.draining;
    const node: Node = { ...cur, draining: true, drainReason: reason || cur.drainReason, drainSinceMs: first ? Date.now() : cur.drainSinceMs, drainedBy: by };
    await this.change(e, node);
    if (first) {
      await this.events.append('node.draining', {
        nodeId,
        message: `node ${nodeId} draining${node.drainReason ? ` (${node.drainReason})` : ''}, asked by the ${by}: no new placements; its work moves elsewhere`,
        attributes: { reason: node.drainReason, by },
      });
      for (const l of this.listeners) l('node.draining', node);
    }
    return node;
  }

  /** Transition 8. Idempotent; an agent's uncordon leaves an operator's drain alone. */
  async uncordon(nodeId: string, by: DrainedBy): Promise<Node> {
    const e = this.entry(nodeId);
    const cur = e.node;
    if (!cur.draining) return cur;
    if (by === 'agent' && cur.drainedBy !== 'agent') {
      this.log.info({ nodeId, drainedBy: cur.drainedBy }, 'agent asked to undrain a node an operator drained; left draining');
      return cur;
    }
    const node: Node = { ...cur, ...drainOf(undefined) };
    await this.change(e, node);
    await this.events.append('node.uncordoned', {
      nodeId,
      message: `node ${nodeId} uncordoned by the ${by}: it takes new placements again`,
      attributes: { by, drainedForMs: String(Date.now() - cur.drainSinceMs) },
    });
    for (const l of this.listeners) l('node.uncordoned', node);
    return node;
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

  /** Replaces a record (a new object: views cached per record see the change), persisted; undone if the write fails. */
  private async change(e: Entry, node: Node): Promise<void> {
    const before = e.node;
    e.node = node;
    this.replaced++;
    try {
      await this.persist(node);
    } catch (err) {
      if (e.node === node) {
        e.node = before;
        this.replaced++;
      }
      throw err;
    }
  }

  private async persist(node: Node): Promise<void> {
    await this.writer.put(NODES_PREFIX + node.nodeId, Node.encode(node).finish());
  }
}

/** The drain fields of a record (none: not draining). */
function drainOf(n: Node | undefined): Pick<Node, 'draining' | 'drainReason' | 'drainSinceMs' | 'drainedBy'> {
  return n?.draining
    ? { draining: true, drainReason: n.drainReason, drainSinceMs: n.drainSinceMs, drainedBy: n.drainedBy }
    : { draining: false, drainReason: '', drainSinceMs: 0, drainedBy: '' };
}
