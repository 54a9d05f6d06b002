/**
 * One simulated node agent: the real agent protocol (AgentService.Connect,
 * one bidi stream) without the worker around it — no shards, no inventory
 * discovery, no per-agent timers or channels — so thousands fit in one
 * process. The pool (pool.ts) owns the gRPC channels and the one heartbeat
 * ticker; this class is the per-node state machine:
 *
 *   idle ──connect──▶ registering ──registered──▶ registered ──┐ heartbeat when due
 *    ▲                                                          │ (pool ticker)
 *    └── jittered exponential backoff ◀── stream error / refused ┘
 *
 * Like the real agent (packages/worker/src/agent.ts) it acknowledges every
 * reservation, sends an empty shard inventory after registering, and backs
 * off with full jitter (a head refusing admission, RESOURCE_EXHAUSTED, starts
 * the backoff at a second instead of 100 ms). With several heads it follows
 * the leader by the same rule as the real agent (HeadRotation from
 * @muster/contracts): a stream that ends moves to the next head, a standby's
 * MUSTER_NOT_LEADER naming the leader sends it there at once, a busy leader
 * is kept. A `kill` ends the stream without a goodbye and stops heartbeats:
 * to the head it is a dead node.
 *
 * Each simulated node registers its own loopback address (`simAddress`:
 * 127.0.0.2 for node number 0, and on through 127.255.255.254), never one
 * shared by two: the head's port spaces are per host address (gang ranks get
 * ports per host), so 10,000 simulated nodes are 10,000 hosts, not one host
 * with 2,768 ports for every gang. All of 127.0.0.0/8 is local on Linux, and
 * nothing dials these addresses: the head only hands a node's address to
 * ranks (MASTER_ADDR, role endpoints), and simulated nodes run none.
 *
 * With `runShards`, a launch is acknowledged as if its ranks started: every
 * rank reported ready at once, exited (stopped) when told to stop, and the
 * ranks it "runs" sent in its inventory when it registers again — so gangs
 * on simulated nodes reach READY (bench/gang-scale.ts). Off by default:
 * without it ranks stay pending, as tests of a starting replica expect.
 */
import type { ClientDuplexStream, Metadata } from '@grpc/grpc-js';
import { ErrorCode, VERSION, fromGrpcError } from '@muster/common';
import { HeadRotation } from '@muster/contracts';
import type { AgentMessage, AgentServiceClient, HeadMessage, NodeInventory, ShardStatusReport } from '@muster/proto';

export type SimState = 'idle' | 'registering' | 'registered' | 'dead';

export interface SimAgentDeps {
  /** The heads, in the order tried (one, or every head of an HA cluster). */
  heads: readonly string[];
  /** The (shared) client of one head. */
  client: (head: string) => AgentServiceClient;
  metadata: Metadata;
  inventory: NodeInventory;
  /** The node's host address (`simAddress`). */
  address: string;
  /** Acknowledge launches as if the ranks ran (see the file comment). */
  runShards?: boolean;
  /** Called on every state change (the pool counts). */
  changed(a: SimAgent, from: SimState): void;
  /** Heartbeat round trip, ms. */
  lag(ms: number): void;
  /** A stream ended: why (the error code, or "end"), and whether it had registered. */
  ended(why: string, registered: boolean): void;
}

/** Node number `n`'s own loopback address: 127.0.0.2 for 0, on through 127.255.255.254 (2^24 - 3 nodes). */
export function simAddress(n: number): string {
  const v = n + 2;
  if (!Number.isInteger(n) || n < 0 || v > 0xff_ff_fe) throw new RangeError(`simAddress: node number ${n} is outside 0-${0xff_ff_fe - 2}`);
  return `127.${(v >> 16) & 255}.${(v >> 8) & 255}.${v & 255}`;
}

const BACKOFF_FIRST_MS = 100;
const BACKOFF_REFUSED_MS = 1_000;
const BACKOFF_MAX_MS = 5_000;

export class SimAgent {
  state: SimState = 'idle';
  incarnation = crypto.randomUUID();
  /** Monotonic ms when the next heartbeat is due (registered) or the next try (idle). */
  dueAt = 0;
  heartbeatMs = 1_000;
  registrations = 0;
  refusals = 0;
  readonly reservations = new Set<string>();
  /** With runShards: the ranks it "runs", by gang: one attempt each. */
  private readonly shards = new Map<string, { attempt: number; ranks: number[] }>();
  /** A reservation snapshot in parts is being read (its last part not seen yet). */
  private inSnapshot = false;
  private call: ClientDuplexStream<AgentMessage, HeadMessage> | undefined;
  private seq = 0;
  private sent = new Map<number, number>();
  private attempt = 0;
  /** Which head to try: the leader follower of an HA cluster (none for one head). */
  private readonly rotation: HeadRotation | undefined;
  private head: string;

  constructor(
    readonly nodeId: string,
    private readonly deps: SimAgentDeps,
  ) {
    this.rotation = deps.heads.length > 1 ? new HeadRotation(deps.heads) : undefined;
    this.head = deps.heads[0]!;
  }

  private set(state: SimState): void {
    const from = this.state;
    this.state = state;
    if (from !== state) this.deps.changed(this, from);
  }

  /** Opens a stream and registers (from idle). */
  connect(now: number): void {
    if (this.state !== 'idle') return;
    this.set('registering');
    this.head = this.rotation?.current ?? this.head;
    const call = this.deps.client(this.head).connect(this.deps.metadata);
    this.call = call;
    call.on('data', (msg: HeadMessage) => this.onMessage(msg, call));
    call.on('error', (e) => this.ended(call, e));
    call.on('end', () => this.ended(call, undefined));
    call.write({
      msg: {
        $case: 'register',
        value: { nodeId: this.nodeId, incarnation: this.incarnation, agentVersion: VERSION, inventory: this.deps.inventory, labels: { sim: 'true' }, taints: [], address: this.deps.address },
      },
    });
    this.dueAt = now;
  }

  private onMessage(msg: HeadMessage, call: ClientDuplexStream<AgentMessage, HeadMessage>): void {
    if (call !== this.call) return;
    switch (msg.msg?.$case) {
      case 'registered':
        this.heartbeatMs = msg.msg.value.heartbeatIntervalMs;
        this.attempt = 0;
        this.registrations++;
        // A random phase, as real agents have: heartbeats spread over the interval.
        this.dueAt = performance.now() + Math.random() * this.heartbeatMs;
        call.write({ msg: { $case: 'shardInventory', value: { shards: [...this.shards].flatMap(([gangId, s]) => s.ranks.map((rank) => shardReport(gangId, s.attempt, rank, 'ready'))), more: false } } });
        this.inSnapshot = false;
        this.set('registered');
        return;
      case 'heartbeatAck': {
        const at = this.sent.get(msg.msg.value.seq);
        if (at !== undefined) {
          this.sent.delete(msg.msg.value.seq);
          this.deps.lag(performance.now() - at);
        }
        return;
      }
      case 'reservations':
        // A snapshot in parts (`more` on all but the last): the table is replaced from its first part.
        if (!this.inSnapshot) this.reservations.clear();
        this.inSnapshot = msg.msg.value.more;
        for (const g of msg.msg.value.groups) this.ack(call, g.groupId);
        return;
      case 'reserveBundles':
        this.ack(call, msg.msg.value.groupId);
        return;
      case 'releaseBundles':
        this.reservations.delete(msg.msg.value.groupId);
        return;
      case 'launchShards': {
        if (!this.deps.runShards) return;
        const { gangId, attempt, shards } = msg.msg.value;
        this.shards.set(gangId, { attempt, ranks: shards.map((x) => x.rank) });
        for (const x of shards) call.write({ msg: { $case: 'shardStatus', value: shardReport(gangId, attempt, x.rank, 'ready') } });
        return;
      }
      case 'stopShards': {
        const { gangId, attempt } = msg.msg.value;
        const s = this.shards.get(gangId);
        if (!s || s.attempt > attempt) return;
        this.shards.delete(gangId);
        for (const rank of s.ranks) call.write({ msg: { $case: 'shardStatus', value: { ...shardReport(gangId, s.attempt, rank, 'exited'), stopped: true } } });
        return;
      }
      default:
        return;
    }
  }

  private ack(call: ClientDuplexStream<AgentMessage, HeadMessage>, groupId: string): void {
    this.reservations.add(groupId);
    call.write({ msg: { $case: 'bundlesReserved', value: { groupId } } });
  }

  /** The pool's ticker: sends a heartbeat if one is due. */
  tick(now: number): void {
    if (this.state !== 'registered' || now < this.dueAt || !this.call) return;
    this.dueAt += this.heartbeatMs;
    if (this.dueAt < now) this.dueAt = now + this.heartbeatMs;
    const seq = ++this.seq;
    this.sent.set(seq, now);
    if (this.sent.size > 8) this.sent.delete(this.sent.keys().next().value!);
    this.call.write({ msg: { $case: 'heartbeat', value: { seq, sentAtMs: Date.now() } } });
  }

  private ended(call: ClientDuplexStream<AgentMessage, HeadMessage>, err: unknown): void {
    if (call !== this.call) return;
    this.call = undefined;
    this.sent.clear();
    if (this.state === 'dead') return;
    const e = err === undefined ? undefined : fromGrpcError(err);
    const code = e?.code ?? 'end';
    const registered = this.state === 'registered';
    this.deps.ended(code, registered);
    const refused = code === ErrorCode.RESOURCE_EXHAUSTED;
    if (refused) this.refusals++;
    // A busy leader is still the leader: stay. Otherwise move on, to the leader a standby names if any.
    const notLeader = code === ErrorCode.NOT_LEADER;
    const hint = notLeader && typeof e?.details.leader === 'string' ? e.details.leader : undefined;
    if (this.rotation && !refused) this.rotation.failed(this.head, { notLeader, leaderHint: hint, nowMs: Date.now() });
    // A named leader (mid-election) or a stream that had registered (its head just went): start the backoff over.
    if (registered || (hint !== undefined && this.rotation?.current === hint)) this.attempt = 0;
    // Full jitter: a uniform wait up to the exponential bound, so a storm spreads out.
    const base = refused ? BACKOFF_REFUSED_MS : BACKOFF_FIRST_MS;
    const bound = Math.min(BACKOFF_MAX_MS, base * 2 ** this.attempt++);
    this.dueAt = performance.now() + Math.random() * bound;
    this.set('idle');
  }

  /** Drops the stream now (a network cut); the agent reconnects after its backoff. */
  disconnect(): void {
    const call = this.call;
    if (!call) return;
    this.call = undefined;
    call.cancel();
    this.dueAt = performance.now();
    this.set('idle');
  }

  /** Dies: no goodbye, no more heartbeats, never reconnects (until `revive`). */
  kill(): void {
    const call = this.call;
    this.call = undefined;
    this.shards.clear(); // a dead host's ranks died with it
    this.set('dead');
    call?.cancel();
  }

  /** A restarted agent process: a new incarnation, connecting at once. */
  revive(now: number): void {
    if (this.state !== 'dead') return;
    this.incarnation = crypto.randomUUID();
    this.attempt = 0;
    this.dueAt = now;
    this.set('idle');
  }
}

function shardReport(gangId: string, attempt: number, rank: number, phase: 'ready' | 'exited'): ShardStatusReport {
  return { gangId, attempt, rank, phase, pid: 0, exitCode: phase === 'exited' ? 0 : undefined, signal: '', reason: '', stopped: false, logTail: '', portInUse: 0, warmupMs: 0 };
}
