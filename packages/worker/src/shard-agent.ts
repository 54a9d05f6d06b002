/**
 * The agent's shard side: turns the head's launch/stop/log orders into
 * supervisor calls, and the supervisor's status changes into reports.
 *
 * A rank that fails stops the other ranks of its gang attempt on this node at
 * once (no round trip to the head: a gang is restarted as one, and the head
 * stops the ranks on other nodes). While the head is away, reports are not
 * queued: on every registration the agent sends its whole shard inventory,
 * which carries the latest state of each shard, exits included.
 */
import { AGENT_PART_BYTES, contextOfFields, endSpan, ErrorCode, MusterError, shardInventoryParts, SpanKind, startSpan, tracingOn, type Logger } from '@muster/common';
import type { AgentMessage, HeadMessage, LaunchShards, LogRequest, Probe, ShardStatusReport } from '@muster/proto';
import { httpBridgePort, NATS_SECRET_ENV, SHARD_ENV } from '@muster/contracts';
import type { Server } from '@muster/dataplane';
import { startHttpBridge } from './http-bridge.js';
import { firstPortInUse } from './shards/ports.js';
import type { ProbeSpec, ProbeTiming, ShardStatus, ShardSupervisor } from './shards/types.js';
import { warmupOf } from './shards/warmup.js';

/**
 * A rank's environment: the launch order's, with the test kit's run tag. Only
 * a rank that serves on NATS itself keeps the group's NATS credential: one of
 * an HTTP group (MUSTER_HTTP_BRIDGE set, whether or not this rank's port
 * resolves) does not speak NATS (the agent's bridge does, as the group's
 * user), and a rank without MUSTER_SUBJECT (a non-entry role) serves nothing.
 * The launch order keeps it: the agent's HTTP bridge reads it there (the
 * resource reporter needs none: it reports on the agent's own stream).
 */
export function rankEnv(env: Record<string, string>, testRun: string | undefined): Record<string, string> {
  const out: Record<string, string> = testRun ? { ...env, [SHARD_ENV.TEST_RUN]: testRun } : { ...env };
  if (env[SHARD_ENV.HTTP_BRIDGE] || !env[SHARD_ENV.SUBJECT]) for (const k of NATS_SECRET_ENV) delete out[k];
  return out;
}

/**
 * The launch order's environment with this node's address for the direct
 * path (MUSTER_DATA_ADDR, docs/dataplane.md) when the rank serves a replica
 * subject — itself, or through the agent's HTTP bridge. A template that sets
 * it keeps its own.
 */
export function withDataAddr(env: Record<string, string>, dataAddr: string | undefined): Record<string, string> {
  return dataAddr && env[SHARD_ENV.SUBJECT] ? { [SHARD_ENV.DATA_ADDR]: dataAddr, ...env } : env;
}

/** Writes to the head stream; false when its buffer is full (grpc-js `write`). */
type Send = (msg: AgentMessage) => boolean;
/** Resolves when the head stream's buffer drained, or `signal` aborted. */
type Drained = (signal: AbortSignal) => Promise<void>;

/**
 * Log bytes per chunk on the agent stream: small, so a heartbeat written
 * after a chunk waits behind at most one HTTP/2 frame of log data.
 */
export const LOG_CHUNK_BYTES = 16 * 1024;

/** A log read in progress: its abort, and the bytes sent that the head has not credited back. */
interface LogRead {
  abort: AbortController;
  unacked: number;
  wake?: (() => void) | undefined;
}

export class ShardAgent {
  private send: Send | undefined;
  private drained: Drained = async () => {};
  private readonly logReads = new Map<number, LogRead>();
  /** Shards to bridge once ready (key → env), and running bridges (key → server). */
  private readonly toBridge = new Map<string, Record<string, string>>();
  private readonly bridges = new Map<string, Promise<Server | undefined>>();

  constructor(
    private readonly supervisor: ShardSupervisor,
    private readonly log: Logger,
    /** This node's address: a serving rank's (and its HTTP bridge's) direct-path listener binds it (MUSTER_DATA_ADDR, unless the template sets it). */
    private readonly dataAddr?: string,
  ) {}

  /**
   * A new head stream is registered: report everything we run. In parts past
   * AGENT_PART_BYTES, back to back (the head reconciles after the last:
   * common/agent-parts.ts) — only to a head that joins parts (`inParts`,
   * Registered.reads_inventory_parts); an older one gets it whole, as before.
   */
  attach(send: Send, drained?: Drained, inParts = true): void {
    this.send = send;
    if (drained) this.drained = drained;
    const parts = shardInventoryParts(this.supervisor.list().map(report), inParts ? AGENT_PART_BYTES : Number.POSITIVE_INFINITY);
    for (const part of parts) send({ msg: { $case: 'shardInventory', value: part } });
  }

  detach(): void {
    this.send = undefined;
    for (const r of this.logReads.values()) r.abort.abort();
    this.logReads.clear();
  }

  /** The supervisor's hook: forward, and stop the rest of a failed gang attempt here. */
  onStatus(s: ShardStatus): void {
    this.send?.({ msg: { $case: 'shardStatus', value: report(s) } });
    if (s.phase === 'ready' && this.toBridge.has(s.key)) this.bridge(s.key);
    if (s.phase === 'stopping' || s.phase === 'exited') this.unbridge(s.key);
    if (s.phase === 'exited' && !s.stopped) {
      void this.supervisor.stopGang(s.gangId, s.attempt).catch((e: unknown) => this.log.error({ err: e, gang: s.gangId }, 'could not stop the gang after a rank failed'));
    }
  }

  /** Handles the shard messages of the head; false for the others. */
  handle(msg: HeadMessage): boolean {
    switch (msg.msg?.$case) {
      case 'launchShards': {
        const l = msg.msg.value;
        // Traced (the head's order carries the launching call's trace, and this worker traces): a span until the ranks are spawned.
        const span = l.trace && tracingOn() ? startSpan(`muster.agent.launch ${l.gangId}`, SpanKind.CONSUMER, { 'muster.gang': l.gangId, 'muster.attempt': l.attempt, 'muster.ranks': l.shards.length }, contextOfFields(l.trace)) : undefined;
        // launch() reports each rank it could not start as exited; this keeps a bug in it visible.
        void this.launch(l).then(
          () => endSpan(span, 'OK'),
          (e: unknown) => {
            endSpan(span, ErrorCode.INTERNAL, (e as Error).message);
            this.log.error({ err: e, gang: l.gangId }, 'launching shards failed');
          },
        );
        return true;
      }
      case 'stopShards': {
        const { gangId, attempt, reason } = msg.msg.value;
        this.log.info({ gang: gangId, attempt, reason }, 'stopping shards');
        void this.supervisor.stopGang(gangId, attempt || undefined).catch((e: unknown) => {
          // Its ranks report what they are; the head sends the stop again while they still run.
          this.log.error({ err: e, gang: gangId }, 'could not stop the gang as the head asked');
        });
        return true;
      }
      case 'logRequest':
        // streamLog() answers its own failures to the head (an eof chunk with the error); this keeps a bug in it visible.
        void this.streamLog(msg.msg.value).catch((e: unknown) => this.log.error({ err: e }, 'log stream failed'));
        return true;
      case 'logCancel':
        this.logReads.get(msg.msg.value.requestId)?.abort.abort();
        return true;
      case 'logCredit': {
        const read = this.logReads.get(msg.msg.value.requestId);
        if (read) {
          read.unacked = Math.max(0, read.unacked - msg.msg.value.bytes);
          read.wake?.();
        }
        return true;
      }
      default:
        return false;
    }
  }

  private async launch(l: LaunchShards): Promise<void> {
    this.log.info({ gang: l.gangId, attempt: l.attempt, ranks: l.shards.map((s) => s.rank) }, 'launching shards');
    const testRun = process.env[SHARD_ENV.TEST_RUN];
    for (const s of l.shards) {
      const key = `${l.gangId}/${l.attempt}/${s.rank}`;
      // A port of the rank already held on this host: not started, reported so the head allocates another.
      const busy = await firstPortInUse(s.ports);
      if (busy !== undefined) {
        const reason = `port-in-use: port ${busy} is held by another process on this host; rank not started`;
        this.log.warn({ gang: l.gangId, attempt: l.attempt, rank: s.rank, port: busy }, reason);
        this.onStatus({ key, gangId: l.gangId, attempt: l.attempt, rank: s.rank, phase: 'exited', reason, portInUse: busy });
        continue;
      }
      const env = withDataAddr(s.env, this.dataAddr);
      try {
        this.supervisor.launch({
          key,
          gangId: l.gangId,
          attempt: l.attempt,
          rank: s.rank,
          command: s.command,
          args: s.args,
          // The test kit tags every process it starts; shards inherit the tag
          // so a test run can prove none was left behind.
          env: rankEnv(env, testRun),
          cwd: s.cwd || undefined,
          startupDeadlineMs: s.startupDeadlineMs,
          readiness: probe(s.readiness),
          liveness: probe(s.liveness),
          warmup: warmupOf(s.warmup),
          gracePeriodMs: s.gracePeriodMs,
          logMaxBytes: s.logMaxBytes,
        });
        if (s.rank === 0 && httpBridgePort(env) > 0) this.toBridge.set(key, env);
      } catch (e) {
        // Nothing started: report the rank as failed so the head decides.
        const reason = `could not launch: ${e instanceof Error ? e.message : String(e)}`;
        this.onStatus({ key, gangId: l.gangId, attempt: l.attempt, rank: s.rank, phase: 'exited', reason });
      }
    }
  }

  /** Serves a ready HTTP shard's replica subject by forwarding to its port. */
  private bridge(key: string): void {
    const env = this.toBridge.get(key)!;
    this.toBridge.delete(key);
    const port = httpBridgePort(env);
    this.bridges.set(key, (async () => {
      if (!env[SHARD_ENV.NATS_URL]) {
        this.log.error({ key }, 'cannot bridge an HTTP shard: the head gave no NATS access (it runs without --nats-url)');
        return undefined;
      }
      const server = await startHttpBridge(env, port, this.log);
      this.log.info({ key, subject: server.subject, port }, 'HTTP bridge serving');
      return server;
    })().catch((e: unknown) => {
      this.log.error({ key, err: e instanceof Error ? e.message : e }, 'HTTP bridge failed to start');
      return undefined;
    }));
  }

  /** Finishes the bridge's in-flight calls, then stops it. */
  private unbridge(key: string): void {
    this.toBridge.delete(key);
    const b = this.bridges.get(key);
    if (!b) return;
    this.bridges.delete(key);
    void b.then((server) => server?.drain()).catch((e: unknown) => this.log.warn({ key, err: e instanceof Error ? e.message : e }, 'HTTP bridge did not drain cleanly; it is gone all the same'));
  }

  /**
   * Sends a rank's log to the head in LOG_CHUNK_BYTES chunks, flow-controlled
   * twice: when the stream's buffer is full the read waits for it to drain,
   * so log data never piles up in front of heartbeats and status reports;
   * and at most `windowBytes` are sent and not yet credited back by the head
   * (LogCredit, as its reader takes them), so a slow reader slows the read.
   */
  private async streamLog(r: LogRequest): Promise<void> {
    const abort = new AbortController();
    const read: LogRead = { abort, unacked: 0 };
    this.logReads.set(r.requestId, read);
    const credited = async () => {
      while (r.windowBytes > 0 && read.unacked >= r.windowBytes && !abort.signal.aborted) {
        await new Promise<void>((resolve) => {
          read.wake = resolve;
          abort.signal.addEventListener('abort', () => resolve(), { once: true });
        });
        read.wake = undefined;
      }
    };
    const chunk = (data: Uint8Array, eof: boolean, error = '') =>
      this.send?.({ msg: { $case: 'logChunk', value: { requestId: r.requestId, data: Buffer.from(data), eof, error } } }) ?? false;
    try {
      const key = `${r.gangId}/${r.attempt}/${r.rank}`;
      if (!this.supervisor.list().some((s) => s.key === key)) throw new MusterError(ErrorCode.NOT_FOUND, `no log for rank ${r.rank} of ${r.gangId} (attempt ${r.attempt}) on this node`);
      for await (const data of this.supervisor.readLog(key, { tailBytes: r.tailBytes, follow: r.follow, signal: abort.signal })) {
        for (let at = 0; at < data.length && !abort.signal.aborted; at += LOG_CHUNK_BYTES) {
          await credited();
          if (abort.signal.aborted) break;
          const piece = data.subarray(at, at + LOG_CHUNK_BYTES);
          read.unacked += piece.length;
          if (!chunk(piece, false)) await this.drained(abort.signal);
        }
      }
      chunk(new Uint8Array(), true);
    } catch (e) {
      if (!abort.signal.aborted) chunk(new Uint8Array(), true, e instanceof Error ? e.message : String(e));
    } finally {
      this.logReads.delete(r.requestId);
    }
  }
}

function report(s: ShardStatus): ShardStatusReport {
  return {
    gangId: s.gangId,
    attempt: s.attempt,
    rank: s.rank,
    phase: s.phase,
    pid: s.pid ?? 0,
    exitCode: s.exitCode,
    signal: s.signal ?? '',
    reason: s.reason ?? '',
    stopped: s.stopped ?? false,
    logTail: s.logTail ?? '',
    portInUse: s.portInUse ?? 0,
    warmupMs: s.warmupMs ?? 0,
  };
}

function probe(p: Probe | undefined): (ProbeSpec & Partial<ProbeTiming>) | undefined {
  if (!p || !p.kind) return undefined;
  const timing: Partial<ProbeTiming> = {
    ...(p.periodMs ? { periodMs: p.periodMs } : {}),
    ...(p.timeoutMs ? { timeoutMs: p.timeoutMs } : {}),
    ...(p.failureThreshold ? { failureThreshold: p.failureThreshold } : {}),
  };
  switch (p.kind) {
    case 'http':
      return { kind: 'http', port: Number(p.port), path: p.path || '/', ...timing };
    case 'tcp':
      return { kind: 'tcp', port: Number(p.port), ...timing };
    case 'exec':
      return { kind: 'exec', command: p.command[0] ?? '', args: p.command.slice(1), ...timing };
    case 'sdk':
      return { kind: 'sdk', ...timing };
    default:
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `unknown probe kind "${p.kind}"`);
  }
}
