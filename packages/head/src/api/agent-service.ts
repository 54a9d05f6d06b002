/**
 * AgentService.Connect: one bidirectional stream per node. The first message
 * must register the node (validated; a bad one ends this stream with
 * INVALID_ARGUMENT naming the field and touches nothing else); then every
 * heartbeat refreshes liveness and is acknowledged, so the agent can tell a
 * frozen head from a quiet one.
 *
 * Admission control: at most `maxAdmitting` registrations are in flight
 * (waiting for their durable write) at once; one more is refused at once
 * with RESOURCE_EXHAUSTED, and the agent retries after a jittered backoff
 * that starts at a second. When every agent reconnects at once (a head
 * restart or failover) the head thus answers each within a commit or two,
 * either way, instead of queueing 10,000 registrations behind each other
 * until agents give up on their registration deadline and reconnect again
 * (the thrash that kept 10,000 agents from ever registering), and heartbeats
 * of admitted nodes are not starved behind the queue.
 *
 * Node identity (as Kubernetes' NodeRestriction binds a kubelet to its Node):
 * an agent that authenticated with a node certificate registers only as the
 * node id its certificate names, so it cannot register, take over (by
 * replaying an incarnation) or hear the orders of another node: the stream,
 * and everything the head sends on it, is bound to that id. An admin (the
 * cluster token) may register any node id.
 */
import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { Histogram } from '@opentelemetry/api';
import type { Identity } from '@muster/contracts';
import { ErrorCode, MusterError, PartsAssembler, PartsOverflow, reservationParts, toGrpcError, type Logger } from '@muster/common';
import { SPEC_LIMITS } from '@muster/contracts';
import type { AgentLogChunk, AgentMessage, AgentServiceServer, HeadMessage, NatsAccess, NodeUsage, ReservationSnapshot, ShardStatusReport } from '@muster/proto';
import type { AgentConnection, NodeRegistry } from '../cluster/registry.js';
import { validateRegister } from '../cluster/validate.js';
import { bidiStream, type RpcContext } from './rpc.js';

export interface AgentServiceDeps {
  registry: NodeRegistry;
  log: Logger;
  headId: string;
  heartbeatIntervalMs: number;
  deadAfterMs: number;
  nats: NatsAccess | undefined;
  heartbeatLag: Histogram;
  /** Where shard reports go (the gang controller) and log chunks (the relay). */
  shards: {
    shardStatus(nodeId: string, s: ShardStatusReport): Promise<void>;
    shardInventory(nodeId: string, shards: ShardStatusReport[]): Promise<void>;
  };
  logs: { chunk(nodeId: string, c: AgentLogChunk): void };
  /**
   * Where a node's usage reports go (the replica group controller), under the
   * node id this stream registered; synchronous, so a heartbeat behind one
   * waits for no I/O. Unset: they are ignored.
   */
  usage?: { nodeUsage(nodeId: string, u: NodeUsage): void };
  /** Registrations in flight at most (default DEFAULT_MAX_ADMITTING). */
  maxAdmitting?: number;
  /** Where reservations live (the placement group controller). */
  reservations: {
    snapshotFor(nodeId: string): ReservationSnapshot;
    acked(nodeId: string, groupId: string): void;
  };
}

/** Enough to fill a group commit or two (the store's fsync is the pace), few enough to answer each within a second. */
export const DEFAULT_MAX_ADMITTING = 512;

let nextConnId = 1;

export function agentService(ctx: RpcContext, deps: AgentServiceDeps): AgentServiceServer {
  const admission = { inFlight: 0, max: deps.maxAdmitting ?? DEFAULT_MAX_ADMITTING };
  return { connect: bidiStream(ctx, 'AgentConnect', (call, who) => serveAgent(call, who, deps, admission)) };
}

function serveAgent(call: ServerDuplexStream<AgentMessage, HeadMessage>, who: Identity, deps: AgentServiceDeps, admission: { inFlight: number; max: number }): Promise<void> {
  const { registry, log } = deps;
  let nodeId: string | undefined;
  let ended = false;
  const conn: AgentConnection = {
    id: nextConnId++,
    send(msg: HeadMessage) {
      if (!ended) call.write(msg);
    },
    close(err: MusterError) {
      if (ended) return;
      ended = true;
      call.emit('error', toGrpcError(err));
    },
  };
  // Messages are handled one at a time, in order: a heartbeat must not
  // overtake the registration it follows.
  let chain = Promise.resolve();
  // An inventory over AGENT_PART_BYTES comes in parts: reconciled once, after the last (common/agent-parts.ts).
  const inventory = new PartsAssembler<ShardStatusReport>();

  return new Promise<void>((resolve) => {
    const finish = () => {
      if (nodeId) registry.disconnected(nodeId, conn);
      resolve();
    };
    call.on('data', (msg: AgentMessage) => {
      chain = chain.then(() => handle(msg)).catch((e: unknown) => {
        // A refused admission is routine in a storm (thousands a second): not worth a warning each.
        const busy = e instanceof MusterError && e.code === ErrorCode.RESOURCE_EXHAUSTED;
        log[busy ? 'debug' : 'warn']({ nodeId, err: e instanceof Error ? e.message : e }, 'agent stream refused');
        conn.close(e instanceof MusterError ? e : new MusterError(ErrorCode.INTERNAL, String(e), { cause: e }));
      });
    });
    call.on('end', () => {
      if (!ended) {
        ended = true;
        call.end();
      }
      finish();
    });
    call.on('cancelled', finish);
    call.on('error', finish);
  });

  async function handle(msg: AgentMessage): Promise<void> {
    if (ended) return;
    if (!nodeId) {
      const reg = validateRegister(msg.msg?.$case === 'register' ? msg.msg.value : undefined);
      checkNodeBinding(who, reg.nodeId);
      if (admission.inFlight >= admission.max) {
        // A storm: nodes still outside are waiting in it, not dead (registry.ts).
        registry.admissionRefused();
        throw new MusterError(
          ErrorCode.RESOURCE_EXHAUSTED,
          `the head is admitting ${admission.inFlight} registrations already; node ${reg.nodeId}: retry after a jittered backoff`,
          { details: { nodeId: reg.nodeId } },
        );
      }
      admission.inFlight++;
      try {
        await registry.register(reg, conn);
      } finally {
        admission.inFlight--;
      }
      nodeId = reg.nodeId;
      call.write({
        msg: {
          $case: 'registered',
          value: {
            nodeId,
            headId: deps.headId,
            heartbeatIntervalMs: deps.heartbeatIntervalMs,
            deadAfterMs: deps.deadAfterMs,
            nats: deps.nats,
            acceptsNodeUsage: true,
            readsInventoryParts: true,
          },
        },
      });
      // In parts past AGENT_PART_BYTES, back to back: the agent replaces its reservations after the last.
      for (const part of reservationParts(deps.reservations.snapshotFor(nodeId))) call.write({ msg: { $case: 'reservations', value: part } });
      return;
    }
    switch (msg.msg?.$case) {
      case 'heartbeat': {
        const hb = msg.msg.value;
        if (!registry.heartbeat(nodeId, conn, hb.sentAtMs)) {
          throw new MusterError(ErrorCode.FAILED_PRECONDITION, `node ${nodeId} is not registered on this stream any more; reconnect and register again`);
        }
        if (hb.sentAtMs > 0) deps.heartbeatLag.record(Math.max(0, Date.now() - hb.sentAtMs) / 1000);
        call.write({ msg: { $case: 'heartbeatAck', value: { seq: hb.seq } } });
        return;
      }
      case 'shardStatus':
        await deps.shards.shardStatus(nodeId, boundedReport(msg.msg.value));
        return;
      case 'shardInventory': {
        const part = msg.msg.value;
        let whole: ShardStatusReport[] | undefined;
        try {
          whole = inventory.add(part.shards.map(boundedReport), part.more);
        } catch (e) {
          if (!(e instanceof PartsOverflow)) throw e;
          throw new MusterError(ErrorCode.RESOURCE_EXHAUSTED, `node ${nodeId}: its shard inventory ${e.message}`, { details: { field: 'shardInventory', parts: e.parts, shards: e.items } });
        }
        if (whole) await deps.shards.shardInventory(nodeId, whole);
        return;
      }
      case 'logChunk':
        deps.logs.chunk(nodeId, msg.msg.value);
        return;
      case 'usage':
        // Keyed by the stream's node (bound to its certificate), never by what the message says.
        deps.usage?.nodeUsage(nodeId, msg.msg.value);
        return;
      case 'bundlesReserved':
        deps.reservations.acked(nodeId, msg.msg.value.groupId);
        return;
      case 'drain': {
        // The agent's own view (its Kubernetes node cordoned or not): an undrain clears only an agent's drain.
        const d = msg.msg.value;
        // Kept, not refused: a long reason from a node's own tooling must not undo its drain.
        if (d.draining) await registry.drain(nodeId, d.reason.slice(0, SPEC_LIMITS.reasonLength) || 'asked by the node agent', 'agent');
        else await registry.uncordon(nodeId, 'agent');
        return;
      }
      case 'register':
        throw new MusterError(ErrorCode.FAILED_PRECONDITION, `node ${nodeId} is already registered on this stream`);
      default:
        throw new MusterError(ErrorCode.INVALID_ARGUMENT, 'unknown or empty agent message (a field had the wrong wire type?)');
    }
  }
}

/**
 * An agent's report with its free text cut to the limits (a reason to
 * SPEC_LIMITS.reasonLength, a signal name to 32, the log tail to its last
 * 4 KiB): the rank records keep these, so a report must not grow them.
 */
export function boundedReport(s: ShardStatusReport): ShardStatusReport {
  return { ...s, reason: s.reason.slice(0, SPEC_LIMITS.reasonLength), signal: s.signal.slice(0, 32), phase: s.phase.slice(0, 32), logTail: s.logTail.slice(-4096) };
}

/** A node certificate registers its own node id only; an admin any. */
export function checkNodeBinding(who: Identity, nodeId: string): void {
  if (who.role === 'admin' || (who.role === 'node' && who.name === nodeId)) return;
  throw new MusterError(
    ErrorCode.PERMISSION_DENIED,
    who.role === 'node'
      ? `node "${who.name}" may not register as node "${nodeId}": a node certificate registers only the node id it names (CN)`
      : `${who.role} "${who.name}" may not register a node: it needs a node certificate or role admin`,
    { details: { role: who.role, name: who.name, nodeId } },
  );
}
