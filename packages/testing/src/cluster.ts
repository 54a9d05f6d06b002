/**
 * A whole Muster cluster of real processes on this machine: a nats-server, a
 * head (embedded store by default, or a real etcd) and N workers with
 * simulated GPU profiles. `muster up` runs one; tests run many
 * (`createTestCluster()` picks temp dirs, free ports and fast intervals).
 *
 * Every child is in its own process group and is stopped by `stop()`; the
 * head and workers are plain `node dist/main.js` processes, so build first.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { connect, type Cluster } from '@muster/sdk';
import { startEtcd, type EtcdServer } from './etcd.js';
import { startNats, type NatsServer } from './nats.js';
import { spawnManaged, type ManagedProcess } from './procs.js';
import { tempDir } from './tmp.js';
import { waitFor } from './wait.js';

const require = createRequire(import.meta.url);
const binOf = (pkg: string) => join(dirname(require.resolve(`${pkg}/package.json`)), 'dist/main.js');

export interface WorkerSpec {
  nodeId?: string;
  profile?: string;
  labels?: Record<string, string>;
  taints?: string[];
  /** Extra flags for muster-worker. */
  args?: string[];
}

export interface ClusterOptions {
  /** Where data and logs go; a temp dir (removed on stop) when unset. */
  dataDir?: string;
  /** Head gRPC port; 0 = any free one. */
  port?: number;
  workers?: number | WorkerSpec[];
  /** Default GPU profile of workers. */
  profile?: string;
  store?: 'embedded' | 'etcd';
  nats?: boolean;
  heartbeatIntervalMs?: number;
  deadAfterMs?: number;
  /** Called with every line a child prints, prefixed by its name. */
  onLine?: (name: string, line: string) => void;
  /** Extra flags for muster-head. */
  headArgs?: string[];
  /** Flags for node itself when it runs the head (e.g. --cpu-prof). */
  headNodeArgs?: string[];
}

export interface ChildInfo {
  readonly name: string;
  readonly process: ManagedProcess;
  /** Its Prometheus endpoint "host:port", when it serves one. */
  readonly metricsAddress: string | undefined;
}

export interface WorkerHandle extends ChildInfo {
  readonly nodeId: string;
  readonly spec: WorkerSpec;
}

export class LocalCluster {
  head!: ChildInfo;
  /** gRPC address of the head, "127.0.0.1:port". */
  address = '';
  readonly workers = new Map<string, WorkerHandle>();
  private headPort = 0;
  private removeDir: (() => Promise<void>) | undefined;

  private constructor(
    readonly dataDir: string,
    readonly opts: ClusterOptions,
    readonly nats: NatsServer | undefined,
    readonly etcd: EtcdServer | undefined,
  ) {}

  get tokenFile(): string {
    return join(this.dataDir, 'head', 'token');
  }

  static async start(opts: ClusterOptions = {}): Promise<LocalCluster> {
    const tmp = opts.dataDir ? undefined : await tempDir('muster-cluster-');
    const dataDir = opts.dataDir ?? tmp!.path;
    await mkdir(dataDir, { recursive: true });
    let nats: NatsServer | undefined;
    let etcd: EtcdServer | undefined;
    let cluster: LocalCluster | undefined;
    try {
      if (opts.nats ?? true) nats = await startNats({ dir: dataDir });
      if (opts.store === 'etcd') etcd = await startEtcd();
      cluster = new LocalCluster(dataDir, opts, nats, etcd);
      cluster.removeDir = tmp?.remove;
      await cluster.startHead();
      const specs = typeof opts.workers === 'number' || opts.workers === undefined
        ? Array.from({ length: (opts.workers as number | undefined) ?? 0 }, () => ({}))
        : opts.workers;
      await Promise.all(specs.map((s) => cluster!.addWorker(s)));
      return cluster;
    } catch (e) {
      if (cluster) await cluster.stop();
      else {
        await nats?.stop();
        await etcd?.stop();
        await tmp?.remove();
      }
      throw e;
    }
  }

  /** Starts (or restarts) the head on the same data dir and port. */
  async startHead(): Promise<void> {
    const o = this.opts;
    const args = [
      ...(o.headNodeArgs ?? []),
      binOf('@muster/head'),
      '--listen', `127.0.0.1:${this.headPort || o.port || 0}`,
      '--data-dir', join(this.dataDir, 'head'),
      '--metrics-listen', '127.0.0.1:0',
      '--store', o.store ?? 'embedded',
      ...(this.etcd ? ['--etcd-endpoints', this.etcd.endpoint] : []),
      ...(o.heartbeatIntervalMs ? ['--heartbeat-interval-ms', String(o.heartbeatIntervalMs)] : []),
      ...(o.deadAfterMs ? ['--dead-after-ms', String(o.deadAfterMs)] : []),
      ...(this.nats ? ['--nats-url', this.nats.url, '--nats-user', this.nats.access.user] : []),
      ...(o.headArgs ?? []),
    ];
    const proc = spawnManaged('head', process.execPath, args, {
      env: this.nats ? { MUSTER_NATS_PASSWORD: this.nats.access.password } : {},
      onLine: (l) => o.onLine?.('head', l),
    });
    const line = await proc.waitForLine((l) => l.includes('"head ready"'), 30_000).catch(async (e: unknown) => {
      await proc.stop(1_000);
      throw e;
    });
    const ready = JSON.parse(line) as { address: string; metrics?: string };
    this.address = ready.address;
    this.headPort = Number(this.address.split(':').pop());
    this.head = { name: 'head', process: proc, metricsAddress: ready.metrics };
  }

  async stopHead(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    if (signal === 'SIGKILL') {
      this.head.process.signal('SIGKILL');
      await this.head.process.exited;
    } else await this.head.process.stop();
  }

  async addWorker(spec: WorkerSpec = {}, opts: { readyTimeoutMs?: number } = {}): Promise<WorkerHandle> {
    const nodeId = spec.nodeId ?? `node-${this.workers.size + 1}`;
    const args = [
      binOf('@muster/worker'), 'run',
      '--head', this.address,
      '--token-file', this.tokenFile,
      '--node-id', nodeId,
      '--metrics-listen', '127.0.0.1:0',
      '--reconnect-max-ms', '1000',
      '--data-dir', join(this.dataDir, 'workers', nodeId),
      // A local cluster owns its shards: stopping a worker stops them (a
      // SIGKILLed worker leaves them, to be adopted when it comes back).
      '--stop-shards-on-exit', 'true',
      ...(spec.profile ?? this.opts.profile ? ['--profile', (spec.profile ?? this.opts.profile)!] : []),
      ...(spec.labels ? ['--labels', Object.entries(spec.labels).map(([k, v]) => `${k}=${v}`).join(',')] : []),
      ...(spec.taints?.length ? ['--taints', spec.taints.join(',')] : []),
      ...(spec.args ?? []),
    ];
    const proc = spawnManaged(nodeId, process.execPath, args, { onLine: (l) => this.opts.onLine?.(nodeId, l) });
    this.workers.set(nodeId, { name: nodeId, nodeId, spec, process: proc, metricsAddress: undefined });
    const line = await proc.waitForLine((l) => l.includes('"worker registered"'), opts.readyTimeoutMs ?? 30_000).catch(async (e: unknown) => {
      await proc.stop(1_000);
      this.workers.delete(nodeId);
      throw e;
    });
    const handle: WorkerHandle = { name: nodeId, nodeId, spec, process: proc, metricsAddress: (JSON.parse(line) as { metrics?: string }).metrics };
    this.workers.set(nodeId, handle);
    return handle;
  }

  /** Starts a stopped worker again with the same node id and spec. */
  async restartWorker(nodeId: string): Promise<WorkerHandle> {
    const w = this.workers.get(nodeId);
    if (!w) throw new Error(`no worker ${nodeId}`);
    if (w.process.running) await w.process.stop();
    this.workers.delete(nodeId);
    return this.addWorker({ ...w.spec, nodeId });
  }

  async connect(): Promise<Cluster> {
    return connect({ address: this.address, tokenFile: this.tokenFile });
  }

  /** Waits until the head lists `count` alive nodes. */
  async waitForAlive(count: number, timeoutMs = 15_000): Promise<void> {
    const c = await this.connect();
    try {
      await waitFor(`${count} alive nodes`, async () => (await c.nodes({ state: 'alive' })).length === count || undefined, { timeoutMs });
    } finally {
      c.close();
    }
  }

  /** Stops every child (workers, head, NATS, etcd) and removes a temp dir. */
  async stop(): Promise<void> {
    await Promise.all([...this.workers.values()].map((w) => w.process.stop(3_000)));
    if (this.head) await this.head.process.stop(5_000);
    await this.nats?.stop();
    await this.etcd?.stop();
    await this.removeDir?.();
  }
}

/** A cluster for tests: temp dir, free ports, and fast liveness by default. */
export function createTestCluster(opts: ClusterOptions = {}): Promise<LocalCluster> {
  return LocalCluster.start({ heartbeatIntervalMs: 200, deadAfterMs: 1_000, profile: 'hgx-h100-8', ...opts });
}
