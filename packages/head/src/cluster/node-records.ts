/**
 * What the registry's transitions make of a node record, as pure functions:
 * the record and event of a registration (transitions 1-5 of registry.ts),
 * the drain fields a record carries, and the one warning line for a sweep's
 * deaths. The registry (registry.ts) owns the state: it serializes changes
 * per node, writes through the group commit and changes memory only after;
 * here is only what the new record is, so it reads (and is tested) alone.
 */
import { ErrorCode, MusterError } from '@muster/common';
import { NodeState, type Node, type Register } from '@muster/proto';
import type { EventFields } from '../events/event-log.js';

/** How many node ids the per-sweep death warning names. */
const DEATHS_NAMED = 5;

/** The record a registration writes, its event kind and fields. */
export interface Admission {
  kind: string;
  node: Node;
  event: EventFields;
}

/**
 * Transitions 1-5: a new node, a dead one back, the same incarnation
 * reconnecting, or a restarted agent. `live`: the previous record still has
 * a stream heard from within deadAfterMs (a second agent with the same id is
 * then refused, naming the field).
 */
export function admission(prev: { node: Node; live: boolean } | undefined, reg: Register, deadAfterMs: number, wall = Date.now()): Admission {
  let kind: string;
  if (!prev) kind = 'node.registered';
  else if (prev.node.state !== NodeState.NODE_STATE_ALIVE) kind = 'node.alive';
  else if (prev.node.incarnation === reg.incarnation) kind = 'node.reconnected';
  else if (prev.live) {
    throw new MusterError(
      ErrorCode.ALREADY_EXISTS,
      `node id "${reg.nodeId}" is held by another live agent (incarnation ${prev.node.incarnation}, address ${prev.node.address}); ` +
        'give each agent its own --node-id, or stop the other one (it is considered gone after ' +
        `${deadAfterMs} ms of silence)`,
      { details: { field: 'nodeId', nodeId: reg.nodeId } },
    );
  } else kind = 'node.restarted';

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
    // A registration never undoes a drain (changes of one node are serial, so this is the latest).
    ...drainOf(prev?.node),
  };
  const gpus = reg.inventory?.gpus.length ?? 0;
  const event = {
    nodeId: node.nodeId,
    message: `node ${node.nodeId} ${kind.slice('node.'.length)} (${gpus} GPUs, incarnation ${node.incarnation})`,
    attributes: { incarnation: node.incarnation, gpus: String(gpus) },
  };
  return { kind, node, event };
}

/** The drain fields of a record (none: not draining). */
export function drainOf(n: Node | undefined): Pick<Node, 'draining' | 'drainReason' | 'drainSinceMs' | 'drainedBy'> {
  return n?.draining
    ? { draining: true, drainReason: n.drainReason, drainSinceMs: n.drainSinceMs, drainedBy: n.drainedBy }
    : { draining: false, drainReason: '', drainSinceMs: 0, drainedBy: '' };
}

/**
 * The one warning line for a sweep's (durable, non-empty) deaths: the count
 * and the first few ids, so a storm of 10,000 agents is a handful of lines,
 * not one per node. Each death keeps its own node.dead event.
 */
export function deathWarning(dead: readonly Node[]): { fields: { event: string; nodes: number; nodeIds: string[] }; message: string } {
  const nodeIds = dead.slice(0, DEATHS_NAMED).map((n) => n.nodeId);
  const reason = dead[0]?.stateReason ?? '';
  const message = dead.length === 1
    ? `node ${nodeIds[0]} dead: ${reason}`
    : `${dead.length} nodes dead this sweep (${nodeIds.join(', ')}${dead.length > nodeIds.length ? ', ...' : ''}); the first: ${reason}`;
  return { fields: { event: 'node.dead', nodes: dead.length, nodeIds }, message };
}
