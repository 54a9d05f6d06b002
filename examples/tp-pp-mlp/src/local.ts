/**
 * Runs a gang on this machine without Muster: `node dist/local.js --tp 4 --pp 2`.
 *
 * It plays the launcher's part of the contract: one process per rank, each
 * with RANK = PP_RANK × TP_SIZE + TP_RANK, one simulated GPU per rank in
 * CUDA_VISIBLE_DEVICES, free loopback ports for MASTER_PORT and each rank's
 * MUSTER_PORT_HTTP, and an IPC channel so ranks can report ready the way
 * Muster's SDK probe sees it. It waits for every rank's ready and the result
 * line, prints the result, stops the ranks with SIGTERM (which they must
 * answer with exit 0), and exits 0 only if the answer was right.
 *
 * The tests drive the same LocalGang class, with `editEnv` to break the layout.
 */
import { portVar, SHARD_ENV } from '@muster/contracts';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

export interface LocalGangOptions {
  tp: number;
  pp: number;
  /** Node arguments that run one rank; default: rank.js beside this file (rank.ts under tsx). */
  rankArgs?: string[];
  /** Extra flags for every rank (e.g. --timeout-ms 3000). */
  extraArgs?: string[];
  /** Changes one rank's environment before it starts (tests use it to break the contract). */
  editEnv?: (rank: number, env: Record<string, string>) => void;
  cwd?: string;
}

export interface RankProcess {
  rank: number;
  child: ChildProcess;
  httpPort: number;
  /** Parsed JSON lines of its stdout so far. */
  lines: Array<Record<string, unknown>>;
  stderr: string;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves when it sent { muster: 'ready' } over IPC. */
  ready: Promise<void>;
}

/** Where freePorts draws from (see there). */
const PORTS = { first: 20_000, last: 29_999 };

/**
 * `n` distinct loopback ports, each free when picked, drawn at random from
 * 20000-29999: below the OS's ephemeral range (32768 and up on Linux), where
 * any other process's `listen(0)` is given its port, and below Muster's shard
 * range (30000-32767). A rank takes a second or so to start and bind its
 * ports; a port the OS picked (`listen(0)`, then closed) could be handed to
 * another process in that time (a test running beside this one did so).
 */
export async function freePorts(n: number): Promise<number[]> {
  const picked = new Set<number>();
  for (let tries = 0; picked.size < n; tries++) {
    if (tries >= 1000) throw new Error(`no ${n} free loopback ports found in ${PORTS.first}-${PORTS.last}`);
    const port = PORTS.first + Math.floor(Math.random() * (PORTS.last - PORTS.first + 1));
    if (!picked.has(port) && (await isFree(port))) picked.add(port);
  }
  return [...picked];
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

function defaultRankArgs(): string[] {
  const here = fileURLToPath(import.meta.url);
  return [...process.execArgv, join(dirname(here), here.endsWith('.ts') ? 'rank.ts' : 'rank.js')];
}

export class LocalGang {
  private constructor(readonly ranks: RankProcess[]) {}

  static async start(opts: LocalGangOptions): Promise<LocalGang> {
    const world = opts.tp * opts.pp;
    const [masterPort, ...httpPorts] = await freePorts(world + 1);
    const ranks: RankProcess[] = [];
    for (let rank = 0; rank < world; rank++) {
      const httpPort = httpPorts[rank]!;
      const env: Record<string, string> = {
        RANK: String(rank),
        WORLD_SIZE: String(world),
        LOCAL_RANK: String(rank),
        LOCAL_WORLD_SIZE: String(world),
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: String(masterPort),
        [SHARD_ENV.TP_RANK]: String(rank % opts.tp),
        [SHARD_ENV.TP_SIZE]: String(opts.tp),
        [SHARD_ENV.PP_RANK]: String(Math.floor(rank / opts.tp)),
        [SHARD_ENV.PP_SIZE]: String(opts.pp),
        [SHARD_ENV.REPLICA_ID]: 'local-0',
        [SHARD_ENV.GROUP]: 'tp-pp-mlp',
        CUDA_VISIBLE_DEVICES: String(rank),
        [portVar('http')]: String(httpPort),
      };
      opts.editEnv?.(rank, env);
      // Only PATH etc. from our environment: a stray RANK or MASTER_PORT here must not leak into the gang.
      const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(RANK|WORLD_SIZE|LOCAL_|MASTER_|MUSTER_|CUDA_VISIBLE)/.test(k)));
      const child = spawn(process.execPath, [...(opts.rankArgs ?? defaultRankArgs()), ...(opts.extraArgs ?? [])], {
        env: { ...base, ...env },
        cwd: opts.cwd,
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      });
      const p: RankProcess = {
        rank,
        child,
        httpPort,
        lines: [],
        stderr: '',
        exited: new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))),
        ready: new Promise((resolve) => child.on('message', (m) => (m as { muster?: string }).muster === 'ready' && resolve())),
      };
      let buf = '';
      child.stdout!.setEncoding('utf8').on('data', (s: string) => {
        buf += s;
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          try {
            p.lines.push(JSON.parse(line) as Record<string, unknown>);
          } catch {
            p.lines.push({ text: line });
          }
        }
      });
      child.stderr!.setEncoding('utf8').on('data', (s: string) => (p.stderr += s));
      ranks.push(p);
    }
    return new LocalGang(ranks);
  }

  /**
   * Every rank ready and the result line printed, or the first rank that
   * exits before that (with its stderr), or a timeout: whichever comes first.
   */
  async waitForResult(timeoutMs: number): Promise<Record<string, unknown>> {
    const failed = this.ranks.map((p) =>
      p.exited.then(({ code, signal }) => {
        throw new Error(`rank ${p.rank} exited early (code ${code}, signal ${signal}): ${p.stderr.trim() || '(no stderr)'}`);
      }),
    );
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no result within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([Promise.all(this.ranks.map((p) => p.ready)), ...failed, timeout]);
    } finally {
      clearTimeout(timer);
      for (const f of failed) f.catch(() => {});
    }
    const result = this.ranks.flatMap((p) => p.lines).find((l) => l['muster'] === 'result');
    if (!result) throw new Error('all ranks ready but no result line');
    return result;
  }

  /** SIGTERM to every rank, SIGKILL to any still there after `graceMs`; resolves with each exit. */
  async stop(graceMs = 3000): Promise<Array<{ code: number | null; signal: NodeJS.Signals | null }>> {
    for (const p of this.ranks) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
    const timer = setTimeout(() => this.kill(), graceMs);
    try {
      return await Promise.all(this.ranks.map((p) => p.exited));
    } finally {
      clearTimeout(timer);
    }
  }

  /** Synchronous last resort (process 'exit' hooks, test teardown). */
  kill(): void {
    for (const p of this.ranks) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { tp: { type: 'string', default: '2' }, pp: { type: 'string', default: '2' }, seed: { type: 'string' }, 'timeout-ms': { type: 'string', default: '60000' } },
  });
  const [tp, pp, timeoutMs] = [Number(values.tp), Number(values.pp), Number(values['timeout-ms'])];
  if (![tp, pp, timeoutMs].every((n) => Number.isInteger(n) && n > 0)) {
    process.stderr.write('usage: local [--tp N] [--pp N] [--seed N] [--timeout-ms N]\n');
    return 2;
  }
  const t0 = performance.now();
  const gang = await LocalGang.start({ tp, pp, extraArgs: values.seed ? ['--seed', values.seed] : [] });
  // Whatever happens next (error, Ctrl-C, kill of this launcher by SIGTERM), no rank outlives us.
  process.on('exit', () => gang.kill());
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(sig === 'SIGINT' ? 130 : 143));
  try {
    const result = await gang.waitForResult(timeoutMs);
    const ms = Math.round(performance.now() - t0);
    process.stdout.write(JSON.stringify(result) + '\n');
    const exits = await gang.stop();
    const unclean = exits.map((e, rank) => ({ rank, ...e })).filter((e) => e.code !== 0);
    process.stderr.write(
      `TP${tp}×PP${pp}: ${tp * pp} ranks ready with the result in ${ms} ms; max abs error ${String(result['maxAbsErrVsReference'])}; ` +
        `${unclean.length === 0 ? 'all ranks exited 0 on SIGTERM' : `unclean exits: ${JSON.stringify(unclean)}`}\n`,
    );
    return result['ok'] === true && unclean.length === 0 ? 0 : 1;
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    for (const p of gang.ranks) for (const l of p.lines) if (l['muster'] === 'result') process.stdout.write(JSON.stringify(l) + '\n');
    gang.kill();
    return 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
}
