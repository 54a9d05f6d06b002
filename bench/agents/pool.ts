/**
 * A pool of simulated agents in one process (see sim-agent.ts): a handful
 * of gRPC channels shared by every stream (HTTP/2 multiplexes them), one
 * ticker that sends each agent's heartbeat when due and reconnects agents
 * whose backoff ran out, and optional churn. Cheap by construction: no
 * timer, channel or logger per agent, so 10,000 agents at 1 Hz cost a
 * fraction of a core. Given several heads (an HA cluster), each agent
 * follows the leader as the real agent does (sim-agent.ts); the pool keeps
 * its channels per head.
 */
import { credentials, Metadata } from '@grpc/grpc-js';
import { grpcChannelCredentials, tokenMetadata } from '@muster/common';
import { clientChannelOptions } from '@muster/contracts';
import { AgentServiceClient, type NodeInventory } from '@muster/proto';
import { discoverInventory } from '@muster/worker';
import { SimAgent, simAddress, type SimState } from './sim-agent.js';

export interface PoolOptions {
  /** The head's "host:port", or every head of an HA cluster comma-separated (agents follow the leader). */
  head: string;
  /** The cluster token: the simulator registers its agents as the admin (any node id). */
  token: string;
  /** The cluster CA file: TLS to the head (LocalCluster's `tls.ca`); unset: plaintext, for an --insecure head. */
  tlsCa?: string | undefined;
  agents: number;
  /** Node ids are `${prefix}${first + i}`. */
  prefix?: string;
  first?: number;
  /** gRPC channels (TCP connections) shared by the agents; default one per 1,250 agents, at least 2. */
  channels?: number;
  /** A machine profile from @muster/contracts (default hgx-h100-8). */
  profile?: string;
  /**
   * Per minute, over the whole pool: agents that die (no goodbye) and agents that come back or join.
   * `keepPopulation`: a join with no dead agent to revive adds none (the pool stays at `agents`,
   * as a soak needs: a growing population reads as growing state).
   */
  churn?: { deathsPerMin: number; joinsPerMin: number; keepPopulation?: boolean };
  /** Acknowledge gang launches as if the ranks ran (sim-agent.ts): gangs on the pool's nodes reach READY. Default off. */
  runShards?: boolean;
  /** Ticker period, ms (default 25). */
  tickMs?: number;
}

export interface PoolStats {
  agents: number;
  registered: number;
  registering: number;
  idle: number;
  dead: number;
  registrations: number;
  refusals: number;
  /** Heartbeat round trips since the last stats() call, ms. */
  lagP50: number;
  lagP99: number;
  lagMax: number;
  /** This process's CPU since the last stats() call, in cores. */
  cpu: number;
  rssMiB: number;
  /** The simulator's own worst ticker delay since the last stats() call, ms (its heartbeats are that late). */
  tickLateMs: number;
  /** Streams of registered agents that ended, by why (error code or "end"), since the start. */
  dropped: Record<string, number>;
}

export class AgentPool {
  readonly agents: SimAgent[] = [];
  private readonly counts: Record<SimState, number> = { idle: 0, registering: 0, registered: 0, dead: 0 };
  /** Per head, its channels. */
  private readonly clients = new Map<string, AgentServiceClient[]>();
  private readonly heads: string[];
  private lags: number[] = [];
  private ticker: NodeJS.Timeout | undefined;
  private churnAt = 0;
  private cpuAt = { usage: process.cpuUsage(), t: performance.now() };
  private extra = 0;
  private lastTick = performance.now();
  private tickLate = 0;
  private readonly dropped: Record<string, number> = {};

  private constructor(
    private readonly opts: PoolOptions,
    private readonly inventory: NodeInventory,
  ) {
    this.heads = opts.head.split(',').map((h) => h.trim()).filter((h) => h !== '');
    if (this.heads.length === 0) throw new Error('AgentPool: no head address');
    for (const head of this.heads) this.channels(head);
    for (let i = 0; i < opts.agents; i++) this.add(opts.first ?? 0);
  }

  static async start(opts: PoolOptions): Promise<AgentPool> {
    const inventory = await discoverInventory({ profile: opts.profile ?? 'hgx-h100-8' });
    const pool = new AgentPool(opts, inventory);
    pool.churnAt = performance.now();
    pool.ticker = setInterval(() => pool.tick(), opts.tickMs ?? 25);
    return pool;
  }

  /** The channels to `head`, made on first use (a leader hint may name a head outside the list). */
  private channels(head: string): AgentServiceClient[] {
    let channels = this.clients.get(head);
    if (!channels) {
      const n = this.opts.channels ?? Math.max(2, Math.ceil(this.opts.agents / 1_250));
      const creds = this.opts.tlsCa ? grpcChannelCredentials({ ca: this.opts.tlsCa }) : credentials.createInsecure();
      // A local subchannel pool per client: each is its own TCP connection.
      channels = Array.from({ length: n }, () => new AgentServiceClient(head, creds, { ...clientChannelOptions({ reconnectMaxMs: 1_000 }), 'grpc.use_local_subchannel_pool': 1 }));
      this.clients.set(head, channels);
    }
    return channels;
  }

  private add(first: number): SimAgent {
    const meta: Metadata = tokenMetadata(this.opts.token);
    const index = this.agents.length;
    const a = new SimAgent(`${this.opts.prefix ?? 'sim-'}${first + index}`, {
      address: simAddress(first + index),
      runShards: this.opts.runShards ?? false,
      heads: this.heads,
      client: (head) => {
        const channels = this.channels(head);
        return channels[index % channels.length]!;
      },
      metadata: meta,
      inventory: this.inventory,
      changed: (agent, from) => {
        this.counts[from]--;
        this.counts[agent.state]++;
      },
      ended: (why, registered) => {
        if (registered) this.dropped[why] = (this.dropped[why] ?? 0) + 1;
      },
      lag: (ms) => {
        if (this.lags.length < 100_000) this.lags.push(ms);
      },
    });
    this.agents.push(a);
    this.counts.idle++;
    return a;
  }

  private tick(): void {
    const now = performance.now();
    this.tickLate = Math.max(this.tickLate, now - this.lastTick - (this.opts.tickMs ?? 25));
    this.lastTick = now;
    for (const a of this.agents) {
      if (a.state === 'idle' && now >= a.dueAt) a.connect(now);
      else a.tick(now);
    }
    const churn = this.opts.churn;
    if (churn) {
      const minutes = (now - this.churnAt) / 60_000;
      this.churnAt = now;
      this.extra += churn.deathsPerMin * minutes;
      while (this.extra >= 1) {
        this.extra--;
        this.killRandom(1);
      }
      let joins = churn.joinsPerMin * minutes;
      while (joins >= 1 || Math.random() < joins) {
        joins--;
        const dead = this.agents.find((a) => a.state === 'dead');
        if (dead) dead.revive(now);
        else if (!churn.keepPopulation) this.add(this.opts.first ?? 0);
      }
    }
  }

  /** Kills `n` random registered agents (no goodbye); returns their node ids. */
  killRandom(n: number): string[] {
    const live = this.agents.filter((a) => a.state === 'registered');
    const ids: string[] = [];
    for (let i = 0; i < n && live.length > 0; i++) {
      const a = live.splice(Math.floor(Math.random() * live.length), 1)[0]!;
      a.kill();
      ids.push(a.nodeId);
    }
    return ids;
  }

  /** A reconnect storm: every stream dropped at once; agents reconnect after their (jittered) backoff. */
  storm(): void {
    for (const a of this.agents) a.disconnect();
  }

  stats(): PoolStats {
    const lags = this.lags.sort((x, y) => x - y);
    this.lags = [];
    const q = (p: number) => (lags.length ? Math.round(lags[Math.min(lags.length - 1, Math.floor(p * lags.length))]!) : 0);
    const t = performance.now();
    const tickLateMs = Math.round(this.tickLate);
    this.tickLate = 0;
    const used = process.cpuUsage(this.cpuAt.usage);
    const cpu = (used.user + used.system) / 1000 / (t - this.cpuAt.t);
    this.cpuAt = { usage: process.cpuUsage(), t };
    let registrations = 0;
    let refusals = 0;
    for (const a of this.agents) {
      registrations += a.registrations;
      refusals += a.refusals;
    }
    return {
      agents: this.agents.length,
      ...this.counts,
      registrations,
      refusals,
      lagP50: q(0.5),
      lagP99: q(0.99),
      lagMax: q(1),
      cpu: Math.round(cpu * 100) / 100,
      rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20),
      tickLateMs,
      dropped: { ...this.dropped },
    };
  }

  async stop(): Promise<void> {
    clearInterval(this.ticker);
    for (const a of this.agents) a.kill();
    for (const channels of this.clients.values()) for (const c of channels) c.close();
  }
}
