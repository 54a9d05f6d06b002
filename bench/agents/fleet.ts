/**
 * Simulated agents over several processes: a Fleet forks P children (this
 * file again, under the same loader), each running an AgentPool of its share
 * of the agents, and sums their once-a-second stats. Commands (a reconnect
 * storm, kill n) go to every child over IPC. Used by simulate.ts (the CLI)
 * and bench/registration.ts.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { AgentPool, type PoolOptions, type PoolStats } from './pool.js';

export interface FleetOptions extends Omit<PoolOptions, 'first' | 'agents'> {
  agents: number;
  processes: number;
}

type ToChild = { cmd: 'storm' } | { cmd: 'kill'; n: number } | { cmd: 'stop' };
type FromChild = { stats: PoolStats } | { killed: string[] };

export class Fleet {
  private readonly latest = new Map<number, PoolStats>();
  private readonly children: ChildProcess[] = [];
  private killed: string[] = [];

  private constructor() {}

  static start(opts: FleetOptions): Fleet {
    const f = new Fleet();
    const per = Math.ceil(opts.agents / opts.processes);
    for (let i = 0; i < opts.processes; i++) {
      const agents = Math.min(per, opts.agents - i * per);
      if (agents <= 0) break;
      const pool: PoolOptions = { ...opts, agents, first: i * per };
      const child = fork(fileURLToPath(import.meta.url), [], { env: { ...process.env, MUSTER_SIM_POOL: JSON.stringify(pool) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      child.on('message', (m: FromChild) => {
        if ('stats' in m) f.latest.set(i, m.stats);
        else f.killed.push(...m.killed);
      });
      f.children.push(child);
    }
    return f;
  }

  /** The sum of the children's latest stats (lags: the worst child's). */
  stats(): PoolStats & { processes: number; pids: number[] } {
    const sum: PoolStats = { agents: 0, registered: 0, registering: 0, idle: 0, dead: 0, registrations: 0, refusals: 0, lagP50: 0, lagP99: 0, lagMax: 0, cpu: 0, rssMiB: 0, tickLateMs: 0, dropped: {} };
    for (const s of this.latest.values()) {
      for (const k of ['agents', 'registered', 'registering', 'idle', 'dead', 'registrations', 'refusals', 'cpu', 'rssMiB'] as const) sum[k] += s[k];
      for (const k of ['lagP50', 'lagP99', 'lagMax', 'tickLateMs'] as const) sum[k] = Math.max(sum[k], s[k]);
      for (const [why, n] of Object.entries(s.dropped)) sum.dropped[why] = (sum.dropped[why] ?? 0) + n;
    }
    sum.cpu = Math.round(sum.cpu * 100) / 100;
    return { ...sum, processes: this.children.length, pids: this.children.map((c) => c.pid ?? 0) };
  }

  storm(): void {
    for (const c of this.children) c.send({ cmd: 'storm' } satisfies ToChild);
  }

  /** Kills n agents in each child; their ids arrive in `killedIds`. */
  kill(nPerProcess: number): void {
    for (const c of this.children) c.send({ cmd: 'kill', n: nPerProcess } satisfies ToChild);
  }

  get killedIds(): readonly string[] {
    return this.killed;
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null) return resolve();
            c.once('exit', () => resolve());
            c.send({ cmd: 'stop' } satisfies ToChild);
            setTimeout(() => c.kill('SIGKILL'), 5_000).unref();
          }),
      ),
    );
  }
}

// A child: run one pool, report once a second, obey the parent.
const spec = process.env.MUSTER_SIM_POOL;
if (spec && process.send) {
  const pool = await AgentPool.start(JSON.parse(spec) as PoolOptions);
  const report = setInterval(() => process.send!({ stats: pool.stats() } satisfies FromChild), 1_000);
  process.on('message', (m: ToChild) => {
    if (m.cmd === 'storm') pool.storm();
    else if (m.cmd === 'kill') process.send!({ killed: pool.killRandom(m.n) } satisfies FromChild);
    else {
      clearInterval(report);
      void pool.stop().then(() => process.exit(0));
    }
  });
  process.on('disconnect', () => void pool.stop().then(() => process.exit(0)));
}
