/**
 * The agent's link to the head: register, heartbeat, reconnect.
 *
 *   ┌────────────┐ stream open ┌──────────┐ registered ┌────────────┐
 *   │ connecting │────────────▶│ register │───────────▶│ registered │──┐ heartbeat
 *   └────────────┘             └──────────┘            └────────────┘◀─┘ every interval
 *         ▲   stream error / head silent > deadAfterMs / superseded │
 *         └──────────────── backoff (100 ms … reconnectMaxMs) ◀─────┘
 *
 * The backoff is jittered (cockatiel's decorrelated jitter), so agents cut
 * off together do not come back together; a head refusing the registration
 * because it is admitting too many at once (RESOURCE_EXHAUSTED, after a
 * head restart or failover) starts it at a second instead of 100 ms.
 *
 * Heartbeats are acknowledged; a head that stops acknowledging for
 * deadAfterMs (frozen, partitioned) is abandoned and the agent reconnects,
 * trying the next head address; a standby head refuses with the leader's
 * address, which is tried next. Backoff resets after a successful register.
 *
 * TLS: the agent dials with the channel credentials it is given (its node
 * certificate, and the cluster CA: a server must present role head and the
 * dialled address, so a leader hint anywhere is safe to follow); plaintext
 * (--insecure) follows hints inside its --head list only (@muster/contracts
 * leader.ts) and logs the one it refused.
 *
 * Periodic reports (the node's resource usage, resources/reporter.ts) are
 * offered, not queued: `offer` writes one only while registered and while
 * the stream's write buffer is below its high-water mark, so they never
 * pile up in front of heartbeats on a slow or blocked stream.
 *
 * Drain: `setDrain` records whether this node should be drained (its
 * Kubernetes node was cordoned, kube-node.ts) and tells the head at once if
 * registered, and again after every registration (a message sent while
 * disconnected is lost, and a new leader must hear it too).
 */
import { randomUUID } from 'node:crypto';
import { Metadata, type ChannelCredentials, type ClientDuplexStream } from '@grpc/grpc-js';
import { ExponentialBackoff, type IBackoff } from 'cockatiel';
import type { Counter } from '@opentelemetry/api';
import { ErrorCode, PartsOverflow, VERSION, fromGrpcError, tokenMetadata, type Logger, type Metrics } from '@muster/common';
import { clientChannelOptions, HeadRotation } from '@muster/contracts';
import type { ShardAgent } from './shard-agent.js';
import { ReservationTable } from './reservations.js';
import { AgentServiceClient, type AgentMessage, type BundlePlacement, type HeadMessage, type NodeDrain, type NodeInventory, type Registered, type Taint } from '@muster/proto';

export interface AgentOptions {
  heads: string[];
  /** The cluster token, sent when given (a node certificate is the other credential). */
  token: string | undefined;
  /** How heads are dialled: TLS (a hint anywhere is followed: the head's certificate proves it) or plaintext (hints in the list only). */
  credentials: { channel: ChannelCredentials; tls: boolean };
  nodeId: string;
  address: string;
  labels: Record<string, string>;
  taints: Taint[];
  inventory: NodeInventory;
  reconnectMaxMs: number;
  /** Runs the shards the head launches here. */
  shards?: ShardAgent | undefined;
}

export type AgentState = 'connecting' | 'registered' | 'stopped';

export class Agent {
  readonly incarnation = randomUUID();
  private stateValue: AgentState = 'connecting';
  private stopped = false;
  private current: ClientDuplexStream<AgentMessage, HeadMessage> | undefined;
  private wake: (() => void) | undefined;
  /** Which head next: the leader a standby named, else the next of the list (@muster/contracts leader.ts). */
  private readonly rotation: HeadRotation;
  /** The head's dead-after time, as last told; also how long a registration may take. */
  private deadAfterMs = 3_000;
  private readonly clients = new Map<string, AgentServiceClient>();
  private readonly reconnects: Counter;
  private readonly heartbeats: Counter;
  private loop: Promise<void> | undefined;
  /** The head's reservations on this node (reservations.ts: a snapshot in parts applies after its last part). */
  private readonly reservationTable = new ReservationTable();
  /** Placement group id → its bundles here. */
  get reservations(): ReadonlyMap<string, BundlePlacement[]> {
    return this.reservationTable.byGroup;
  }
  /** Called after every successful registration (tests, status). */
  onRegistered: ((r: Registered) => void) | undefined;
  /** The agent's own view of draining (undefined: it has none); sent after every registration. */
  private drainWanted: NodeDrain | undefined;
  /** Writes to the head while registered. */
  private sendToHead: ((m: AgentMessage) => void) | undefined;
  /** Writes to the head while registered and the stream's buffer has room; false otherwise. */
  private offerToHead: ((m: AgentMessage) => boolean) | undefined;

  constructor(private readonly opts: AgentOptions, private readonly log: Logger, metrics: Metrics) {
    this.rotation = new HeadRotation(opts.heads, { hintsOutsideList: opts.credentials.tls });
    this.reconnects = metrics.meter.createCounter('muster_agent_reconnects_total', { description: 'agent stream (re)connection attempts' });
    this.heartbeats = metrics.meter.createCounter('muster_agent_heartbeats_total', { description: 'heartbeats sent to the head' });
    const connected = metrics.meter.createObservableGauge('muster_agent_registered', { description: '1 while registered with a head' });
    connected.addCallback((r) => r.observe(this.stateValue === 'registered' ? 1 : 0));
  }

  get state(): AgentState {
    return this.stateValue;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** This node should (not) be drained; the head hears it now if registered, else right after registering. */
  setDrain(drain: NodeDrain): void {
    if (this.drainWanted?.draining === drain.draining && this.drainWanted.reason === drain.reason) return;
    this.drainWanted = { ...drain };
    this.log.info({ draining: drain.draining, reason: drain.reason }, drain.draining ? 'asking the head to drain this node' : 'asking the head to undrain this node');
    this.sendToHead?.({ msg: { $case: 'drain', value: this.drainWanted } });
  }

  /**
   * Writes `m` to the head if registered and the stream's write buffer is
   * below its high-water mark; else drops it and answers false. For reports
   * the next one replaces: a heartbeat never waits behind a backlog of them.
   */
  offer(m: AgentMessage): boolean {
    return this.offerToHead?.(m) ?? false;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stateValue = 'stopped';
    this.current?.cancel();
    this.wake?.();
    await this.loop;
    for (const c of this.clients.values()) c.close();
  }

  private async run(): Promise<void> {
    const factory = new ExponentialBackoff({ initialDelay: 100, maxDelay: this.opts.reconnectMaxMs });
    const busyFactory = new ExponentialBackoff({ initialDelay: 1_000, maxDelay: Math.max(1_000, this.opts.reconnectMaxMs) });
    let backoff: IBackoff<unknown> | undefined;
    while (!this.stopped) {
      const head = this.rotation.current;
      this.reconnects.add(1);
      let registered = false;
      let namedLeader = false;
      let busy = false;
      try {
        registered = await this.session(head);
        this.rotation.failed(head, { notLeader: false, nowMs: Date.now() });
      } catch (e) {
        const err = fromGrpcError(e);
        // A standby names the leader: go there next instead of trying the list in turn.
        const notLeader = err.code === ErrorCode.NOT_LEADER;
        busy = err.code === ErrorCode.RESOURCE_EXHAUSTED;
        const hint = notLeader && typeof err.details.leader === 'string' ? err.details.leader : undefined;
        // A busy leader is still the leader: stay with it (a standby would only name it again).
        const next = busy ? head : this.rotation.failed(head, { notLeader, leaderHint: hint, nowMs: Date.now() });
        if (this.rotation.refusedHint !== undefined) {
          this.log.error(
            { head, leader: this.rotation.refusedHint, heads: this.opts.heads },
            'a head names a leader outside --head; a plaintext (--insecure) agent follows none (nothing proves who answers there): add it to --head, or use TLS',
          );
        }
        // A standby that names a leader we may follow answered: the cluster is mid-election, so
        // try again at once. A refused hint is no news: back off as after any failure.
        namedLeader = hint !== undefined && this.rotation.refusedHint === undefined;
        if (!this.stopped && !busy) this.log.warn({ head, code: err.code, err: err.message, next }, 'head connection lost');
        else if (busy) this.log.debug({ head, err: err.message }, 'head busy admitting other nodes; retrying after a backoff');
      }
      this.stateValue = this.stopped ? 'stopped' : 'connecting';
      if (this.stopped) break;
      if (registered || namedLeader) backoff = undefined;
      backoff = backoff ? backoff.next(undefined) : (busy ? busyFactory : factory).next();
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, backoff!.duration);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  private client(head: string): AgentServiceClient {
    let c = this.clients.get(head);
    if (!c) {
      c = new AgentServiceClient(head, this.opts.credentials.channel, clientChannelOptions({ reconnectMaxMs: this.opts.reconnectMaxMs }));
      this.clients.set(head, c);
    }
    return c;
  }

  /** One stream's life; resolves true if it got registered before ending. */
  private session(head: string): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      const call = this.client(head).connect(this.opts.token ? tokenMetadata(this.opts.token) : new Metadata());
      this.current = call;
      let registered = false;
      let seq = 0;
      let lastAck = performance.now();
      let timer: NodeJS.Timeout | undefined;
      // A head that takes the connection but never answers (frozen, or named
      // by a standby whose news is a moment old) is given up like a silent one.
      const registerBy = setTimeout(() => {
        this.log.warn({ head, waitedMs: this.deadAfterMs }, 'head did not answer the registration; trying another');
        call.cancel();
      }, this.deadAfterMs);
      const done = (err?: unknown) => {
        clearTimeout(registerBy);
        clearInterval(timer);
        this.sendToHead = undefined;
        this.offerToHead = undefined;
        this.opts.shards?.detach();
        this.current = undefined;
        if (err && !registered) reject(err);
        else {
          if (err) this.log.warn({ head, err: fromGrpcError(err).message }, 'head stream ended');
          resolve(registered);
        }
      };
      const ack = (groupId: string) => call.write({ msg: { $case: 'bundlesReserved', value: { groupId } } });
      this.reservationTable.restart();
      call.on('data', (msg: HeadMessage) => {
        lastAck = performance.now();
        if (this.opts.shards?.handle(msg)) return;
        switch (msg.msg?.$case) {
          case 'reservations':
            try {
              for (const groupId of this.reservationTable.snapshot(msg.msg.value)) ack(groupId);
            } catch (e) {
              if (!(e instanceof PartsOverflow)) throw e;
              this.log.warn({ head, err: e.message }, 'reservation snapshot dropped; keeping the reservations held');
            }
            return;
          case 'reserveBundles':
            ack(this.reservationTable.reserve(msg.msg.value));
            return;
          case 'releaseBundles':
            this.reservationTable.release(msg.msg.value.groupId);
            return;
          case 'registered':
            break;
          default:
            return;
        }
        const r = msg.msg.value;
        registered = true;
        clearTimeout(registerBy);
        this.deadAfterMs = r.deadAfterMs;
        this.stateValue = 'registered';
        this.log.info({ head, headId: r.headId, nodeId: r.nodeId, heartbeatIntervalMs: r.heartbeatIntervalMs }, 'registered with head');
        this.onRegistered?.(r);
        this.opts.shards?.attach((m) => call.write(m), (signal) => drained(call, signal), r.readsInventoryParts);
        this.sendToHead = (m) => call.write(m);
        // Only usage reports are offered, and a head older than them would end the stream on one.
        if (!r.acceptsNodeUsage) this.log.warn({ head, headId: r.headId }, 'the head does not read node usage (an older version): resource reports are off until it does');
        this.offerToHead = r.acceptsNodeUsage
          ? (m) => {
              if (call.writableNeedDrain) return false;
              call.write(m);
              return true;
            }
          : undefined;
        if (this.drainWanted) call.write({ msg: { $case: 'drain', value: this.drainWanted } });
        timer = setInterval(() => {
          if (performance.now() - lastAck > r.deadAfterMs) {
            this.log.warn({ head, silentMs: Math.round(performance.now() - lastAck) }, 'head stopped answering heartbeats; reconnecting');
            call.cancel();
            return;
          }
          this.heartbeats.add(1);
          call.write({ msg: { $case: 'heartbeat', value: { seq: ++seq, sentAtMs: Date.now() } } });
        }, r.heartbeatIntervalMs);
      });
      call.on('error', (e) => done(e));
      call.on('end', () => done());
      const { inventory, nodeId, address, labels, taints } = this.opts;
      call.write({
        msg: {
          $case: 'register',
          value: { nodeId, incarnation: this.incarnation, agentVersion: VERSION, inventory, labels, taints, address },
        },
      });
    });
  }
}

/** Resolves once `call` drained its write buffer, ended, or `signal` aborted. */
function drained(call: { once(event: string, listener: () => void): unknown; off(event: string, listener: () => void): unknown }, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      for (const e of ['drain', 'close', 'error']) call.off(e, done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    for (const e of ['drain', 'close', 'error']) call.once(e, done);
    signal.addEventListener('abort', done, { once: true });
  });
}
