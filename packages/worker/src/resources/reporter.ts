/**
 * The resource reporter: every second, the sampler's measure of each replica
 * with ranks on this node goes out as a ResourceReport (@muster/contracts
 * resource-usage.ts) on the replica group's load subject, where the head
 * sums the reports of a replica's nodes into its load sample
 * (docs/autoscaling.md, "Resource metrics").
 *
 * Which NATS user: the agent has none of its own; each launch order carries
 * the group's replica user (in the ranks' environment), whose permissions
 * are exactly "publish this group's load reports". The reporter opens one
 * connection per group with ranks here, with the credential of the first of
 * its ranks it was told about (replica users do not expire), and closes it
 * when the group's last rank here is gone.
 *
 * What it does not cover: ranks adopted after an agent restart (their
 * launch orders, with the credential, were not kept: the registry leaves
 * NATS secrets out) — until their gang restarts, their replicas send no
 * resource reports and a policy on a resource metric holds on them (rule 5).
 */
import { connectNats, encode, type NatsConnection } from '@muster/common';
import { DEFAULT_SUBJECT_PREFIX, loadSubject, readNatsCredentialEnv, SHARD_ENV, type ResourceReport } from '@muster/contracts';
import { visibleDevices } from './gpu.js';
import type { RankRef, ResourceSampler } from './sampler.js';

/** The period of resource reports: the load-report period of serve(). */
export const RESOURCE_INTERVAL_MS = 1_000;

interface Tracked {
  group: string;
  replicaId: string;
  devices: string[];
}

interface GroupLink {
  conn: Promise<NatsConnection | undefined>;
  prefix: string;
}

export interface ReporterOptions {
  node: string;
  sampler: ResourceSampler;
  /** The ranks running here now (key and pid), from the supervisor. */
  running: () => Array<{ key: string; pid?: number | undefined; phase: string }>;
  log: { warn(o: object, msg?: string): void; info(o: object, msg?: string): void };
  intervalMs?: number;
}

export class ResourceReporter {
  private readonly tracked = new Map<string, Tracked>();
  private readonly envs = new Map<string, Record<string, string>>();
  private readonly links = new Map<string, GroupLink>();
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  constructor(private readonly opts: ReporterOptions) {}

  /** A rank was launched here (its launch order's environment); ranks outside a replica group are ignored. */
  track(key: string, env: Record<string, string>): void {
    const group = env[SHARD_ENV.GROUP];
    const replicaId = env[SHARD_ENV.REPLICA_ID];
    if (!group || !replicaId || !env[SHARD_ENV.NATS_URL]) return;
    this.tracked.set(key, { group, replicaId, devices: visibleDevices(env[SHARD_ENV.CUDA_VISIBLE_DEVICES]) });
    if (!this.links.has(group)) this.envs.set(group, env);
  }

  /** A rank exited: once the group has no rank left here, its connection closes. */
  untrack(key: string): void {
    const t = this.tracked.get(key);
    if (!t) return;
    this.tracked.delete(key);
    if ([...this.tracked.values()].some((o) => o.group === t.group)) return;
    this.envs.delete(t.group);
    const link = this.links.get(t.group);
    this.links.delete(t.group);
    if (link) link.conn.then((c) => c?.drain()).catch(() => undefined);
  }

  start(): void {
    if (this.timer) return;
    // tick() never throws; the catch only keeps a bug from becoming an unhandled rejection.
    this.timer = setInterval(() => {
      this.tick().catch(() => undefined);
    }, this.opts.intervalMs ?? RESOURCE_INTERVAL_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    const links = [...this.links.values()];
    this.links.clear();
    await Promise.all(links.map((l) => l.conn.then((c) => c?.drain()).catch(() => undefined)));
  }

  /** One sample and its reports (public for tests); never throws. Skipped while the last one runs. */
  async tick(): Promise<void> {
    if (this.busy || this.tracked.size === 0) return;
    this.busy = true;
    try {
      const ranks: RankRef[] = [];
      for (const s of this.opts.running()) {
        const t = this.tracked.get(s.key);
        if (t && s.pid && s.phase !== 'exited' && s.phase !== 'prestart') ranks.push({ ...t, pid: s.pid });
      }
      const timeMs = Date.now();
      for (const r of await this.opts.sampler.sample(ranks)) {
        const link = this.link(r.group);
        const conn = link && (await link.conn);
        if (!link || !conn) continue;
        const report: ResourceReport = { v: 1, kind: 'resources', replicaId: r.replicaId, node: this.opts.node, timeMs, resources: r.usage };
        try {
          conn.publish(loadSubject(link.prefix, r.group), encode(report));
        } catch {
          // closed: the group's last rank went meanwhile
        }
      }
    } catch (e) {
      this.opts.log.warn({ err: (e as Error).message }, 'resource sample failed');
    } finally {
      this.busy = false;
    }
  }

  /** The group's connection, opened on first use with the credential of one of its ranks. */
  private link(group: string): GroupLink | undefined {
    const have = this.links.get(group);
    if (have) return have;
    const env = this.envs.get(group);
    if (!env) return undefined;
    const prefix = env[SHARD_ENV.NATS_SUBJECT_PREFIX] || DEFAULT_SUBJECT_PREFIX;
    const conn = (async () => {
      const cred = readNatsCredentialEnv(env);
      if (!cred) return undefined;
      return connectNats({ servers: [...cred.servers], jwt: cred.jwt, seed: cred.seed, caPem: cred.caPem, inboxPrefix: '', user: cred.user ?? '', password: cred.password ?? '' }, `muster-worker resources ${group}@${this.opts.node}`);
    })().catch((e: unknown) => {
      this.opts.log.warn({ group, err: (e as Error).message }, 'cannot connect to NATS for resource reports; retrying next period');
      if (this.links.get(group)?.conn === conn) this.links.delete(group);
      return undefined;
    });
    const link = { conn, prefix };
    this.links.set(group, link);
    return link;
  }
}
