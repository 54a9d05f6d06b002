/**
 * The heads of a LocalCluster: how one is launched, and which one leads.
 *
 * Several heads on one etcd elect one leader; each prints JSON log lines the
 * kit reads (nothing is asked over gRPC):
 *
 *   "head ready"       its gRPC port is bound (leader or standby), with `address`
 *   "became leader"    it won the election (with `headId`, `address`)
 *   "leadership lost…" it stepped down (lease lost, fenced); a head that stops
 *                      says nothing more, its exit ends its term here
 *
 * The leader is the running head whose latest "became leader" is the most
 * recent of all and that has not said "leadership lost" since. A head that
 * is frozen (SIGSTOP) cannot say anything, so it may be named leader until
 * another head wins: callers that freeze heads should wait for a *different*
 * leader (`waitForLeader({ not })`).
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { spawnManaged, WITHOUT_CLIENT_ENV, type ManagedProcess } from './procs.js';
import type { ClusterOptions, HeadHandle } from './types.js';

const require = createRequire(import.meta.url);
export const binOf = (pkg: string): string => join(dirname(require.resolve(`${pkg}/package.json`)), 'dist/main.js');

export interface HeadLaunch {
  index: number;
  name: string;
  headId: string;
  dataDir: string;
  /** "127.0.0.1:<port>", port 0 = any free one. */
  listen: string;
  /** The Prometheus listen address, "127.0.0.1:<port>" (0: a free one). */
  metricsListen: string;
  /** The dashboard's listen address; undefined: none. */
  dashboardListen: string | undefined;
  tokenFile: string;
  etcdEndpoint: string | undefined;
  /** The head's gRPC TLS files (cluster CA, head pair); undefined: --insecure. */
  tls: { ca: string; cert: string; key: string } | undefined;
  /** etcd's CA and the heads' etcd client pair; undefined: plaintext etcd (or none). */
  etcdTls: { ca: string; cert: string; key: string } | undefined;
  nats: { url: string; account: string; accountSeedFile: string; caFile: string } | undefined;
  tag: string | undefined;
  opts: ClusterOptions;
  onLine: (line: string) => void;
  election: ElectionLog;
}

/** Starts one muster-head and waits for its "head ready" line. */
export async function launchHead(l: HeadLaunch): Promise<HeadHandle> {
  const o = l.opts;
  const args = [
    ...(o.headNodeArgs ?? []),
    binOf('@muster/head'),
    '--listen', l.listen,
    '--data-dir', l.dataDir,
    '--token-file', l.tokenFile,
    '--head-id', l.headId,
    '--metrics-listen', l.metricsListen,
    ...(l.dashboardListen ? ['--dashboard-listen', l.dashboardListen] : []),
    '--store', o.store ?? 'embedded',
    ...(l.etcdEndpoint ? ['--etcd-endpoints', l.etcdEndpoint] : []),
    ...(l.etcdTls ? ['--etcd-ca', l.etcdTls.ca, '--etcd-cert', l.etcdTls.cert, '--etcd-key', l.etcdTls.key] : []),
    ...(l.tls ? ['--tls-ca', l.tls.ca, '--tls-cert', l.tls.cert, '--tls-key', l.tls.key] : ['--insecure']),
    ...(o.heartbeatIntervalMs ? ['--heartbeat-interval-ms', String(o.heartbeatIntervalMs)] : []),
    ...(o.deadAfterMs ? ['--dead-after-ms', String(o.deadAfterMs)] : []),
    ...(l.nats ? ['--nats-url', l.nats.url, '--nats-account', l.nats.account, '--nats-account-seed-file', l.nats.accountSeedFile, ...(l.nats.caFile ? ['--nats-ca', l.nats.caFile] : [])] : []),
    ...(o.shardPortRange ? ['--shard-port-range', o.shardPortRange] : []),
    ...(o.headArgs ?? []),
  ];
  // Lines arrive asynchronously, so `proc` is set before the first one.
  const proc: ManagedProcess = spawnManaged(l.name, process.execPath, args, {
    env: { ...WITHOUT_CLIENT_ENV },
    onLine: (line) => {
      l.election.onLine(proc, line);
      l.onLine(line);
    },
    tag: l.tag,
  });
  const line = await proc.waitForLine((x) => x.includes('"head ready"'), 30_000).catch(async (e: unknown) => {
    await proc.stop(1_000);
    throw e;
  });
  const ready = JSON.parse(line) as { address: string; metrics?: string; headId?: string; dashboard?: string };
  return { name: l.name, index: l.index, headId: ready.headId ?? l.headId, address: ready.address, process: proc, metricsAddress: ready.metrics, dashboardUrl: ready.dashboard };
}

/** Who leads, from the heads' log lines (see the file comment). */
export class ElectionLog {
  private seq = 0;
  /** Head process → sequence number of its latest "became leader", while it leads. */
  private readonly leading = new WeakMap<ManagedProcess, number>();
  /** Whether any head ever printed an election line (heads built before HA print none). */
  private seen = false;

  onLine(proc: ManagedProcess, line: string): void {
    if (!line.includes('leader')) return; // the cheap test first: most lines are not about the election
    let msg: unknown;
    try {
      msg = (JSON.parse(line) as { msg?: unknown }).msg;
    } catch {
      return;
    }
    if (typeof msg !== 'string') return;
    if (msg.startsWith('became leader')) {
      this.seen = true;
      this.leading.set(proc, ++this.seq);
    } else if (msg.startsWith('leadership lost')) {
      this.seen = true;
      this.leading.delete(proc);
    }
  }

  leader(heads: readonly HeadHandle[]): HeadHandle | undefined {
    let best: HeadHandle | undefined;
    let bestSeq = 0;
    for (const h of heads) {
      const s = this.leading.get(h.process);
      if (s !== undefined && s > bestSeq && h.process.running) [best, bestSeq] = [h, s];
    }
    if (best) return best;
    // Before election existed, a lone head simply led while it ran.
    const only = heads.length === 1 ? heads[0] : undefined;
    return !this.seen && only?.process.running ? only : undefined;
  }
}
