/**
 * The resource reporter: every second, the sampler's measure of each replica
 * with ranks on this node goes to the head as one usage message
 * (AgentMessage.usage) on the agent's own stream, where the head files it
 * under this node — the node the stream's certificate names — and sums each
 * replica's nodes into its load sample (docs/autoscaling.md, "Resource
 * metrics").
 *
 * Which ranks: every rank the supervisor runs here, launched by this agent
 * or adopted from the one before it (their specs, kept in the shard
 * registry, hold MUSTER_GROUP, MUSTER_REPLICA_ID and CUDA_VISIBLE_DEVICES),
 * so a restarted agent reports its adopted ranks' use at once. Ranks outside
 * a replica group (plain gangs) are not reported. No NATS credential is
 * needed: the agent speaks for its node as itself.
 *
 * Never in front of a heartbeat: the message is small (a few dozen bytes an
 * entry, at most MAX_USAGE_ENTRIES entries, so a node with more replicas
 * sends several), and it is offered, not queued — `send` writes it only
 * while the stream is registered and its write buffer is below its
 * high-water mark (the same back-pressure the log reader obeys), else the
 * sample is dropped and the next second's replaces it. The head counts a
 * node's share for three periods (RESOURCE_REPORT_FRESH_MS), so a skipped
 * second changes nothing it decides.
 */
import { MAX_USAGE_ENTRIES, SHARD_ENV } from '@muster/contracts';
import type { AgentMessage, NodeUsage } from '@muster/proto';
import { visibleDevices } from './gpu.js';
import type { RankRef, ReplicaUsage, ResourceSampler } from './sampler.js';

/** The period of resource reports: the load-report period of serve(). */
export const RESOURCE_INTERVAL_MS = 1_000;

/** A rank the supervisor knows here, as the reporter needs it. */
export interface RankSeen {
  pid?: number | undefined;
  phase: string;
  /** Its environment (the launch order's, NATS secrets aside for adopted ones). */
  env: Readonly<Record<string, string>>;
}

export interface ReporterOptions {
  sampler: Pick<ResourceSampler, 'sample'>;
  /** Every rank known here now, adopted ones included (the supervisor's). */
  ranks: () => Iterable<RankSeen>;
  /** Offers a message to the head: false when not written (not registered, or the stream's buffer is full). */
  send: (m: AgentMessage) => boolean;
  log: { warn(o: object, msg?: string): void; debug(o: object, msg?: string): void };
  intervalMs?: number;
  /** Wall clock, ms (the sample time the message carries). */
  clock?: () => number;
}

/** The replicas' ranks running here, as the sampler takes them. */
export function replicaRanks(ranks: Iterable<RankSeen>): RankRef[] {
  const out: RankRef[] = [];
  for (const r of ranks) {
    const group = r.env[SHARD_ENV.GROUP];
    const replicaId = r.env[SHARD_ENV.REPLICA_ID];
    if (!group || !replicaId || !r.pid || r.phase === 'exited' || r.phase === 'prestart') continue;
    out.push({ group, replicaId, pid: r.pid, devices: visibleDevices(r.env[SHARD_ENV.CUDA_VISIBLE_DEVICES]) });
  }
  return out;
}

/** One sample as usage messages of at most MAX_USAGE_ENTRIES entries each (none when no replica runs here). */
export function usageMessages(sample: readonly ReplicaUsage[], sampledAtMs: number): NodeUsage[] {
  const out: NodeUsage[] = [];
  for (let i = 0; i < sample.length; i += MAX_USAGE_ENTRIES) {
    out.push({
      sampledAtMs,
      replicas: sample.slice(i, i + MAX_USAGE_ENTRIES).map(({ group, replicaId, usage }) => ({
        group,
        replicaId,
        usage: { cpu: usage.cpu, memoryBytes: usage.memoryBytes, gpuUtilization: usage.gpuUtilization, gpuMemoryBytes: usage.gpuMemoryBytes, gpus: usage.gpus ?? 0 },
      })),
    });
  }
  return out;
}

export class ResourceReporter {
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  constructor(private readonly opts: ReporterOptions) {}

  start(): void {
    if (this.timer) return;
    // tick() never throws; the catch only keeps a bug from becoming an unhandled rejection.
    this.timer = setInterval(() => {
      this.tick().catch(() => undefined);
    }, this.opts.intervalMs ?? RESOURCE_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One sample and its messages (public for tests); never throws. Skipped while the last one runs. */
  async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const sample = await this.opts.sampler.sample(replicaRanks(this.opts.ranks()));
      const messages = usageMessages(sample, (this.opts.clock ?? Date.now)());
      for (const [i, value] of messages.entries()) {
        if (this.opts.send({ msg: { $case: 'usage', value } })) continue;
        this.opts.log.debug({ replicas: messages.slice(i).reduce((n, m) => n + m.replicas.length, 0) }, 'resource usage not sent (no head, or its stream is busy); the next sample replaces it');
        break;
      }
    } catch (e) {
      this.opts.log.warn({ err: (e as Error).message }, 'resource sample failed');
    } finally {
      this.busy = false;
    }
  }
}
