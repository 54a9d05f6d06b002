/**
 * A whole Muster cluster of real processes on this machine: a nats-server,
 * one head (embedded store by default, or a real etcd) or several heads on
 * one etcd (`heads: 3`: they elect a leader), and N workers with simulated
 * GPU profiles. `muster up` runs one; tests run many (the test kit's
 * `createTestCluster()` picks temp dirs, free ports and fast intervals).
 *
 * Layout under `dataDir`: `head/` (the one head's data dir, and the cluster
 * token `head/token`, shared by every head), `head-<i>/` (head i's data dir
 * when there are several), `workers/<node id>/`, `nats.conf`, and `pki/`
 * (ensureClusterPki: the cluster CA, the heads' certificate for localhost,
 * 127.0.0.1 and ::1, the admin's, a node certificate per worker, etcd's CA
 * and pairs).
 *
 * Secure by default: heads serve mutual TLS, each worker dials with its own
 * node certificate, etcd (when used) serves TLS with client-certificate
 * authentication, and `tls` / `clientOptions()` give a client the admin's
 * certificate. `insecure: true` runs all of it plaintext, as before.
 *
 * Every child is in its own process group and is stopped by `stop()`; the
 * heads and workers are plain `node dist/main.js` processes, so build first.
 * A test cluster tags its children MUSTER_TEST_RUN=<run id>/<cluster id>
 * (`runTag`); workers pass the tag on to their shards, which is how chaos
 * helpers and the invariant checker find this cluster's shard processes.
 *
 * This is `@muster/local`: `muster up` and the test kit both build on it,
 * and it imports nothing of the kit. Test-only behaviour (thawing what chaos
 * froze, shard port blocks) is hooked in by the kit through
 * `onStopping`/`onStop`.
 */
import { CLIENT_ENV, parseHostPort, SHARD_ENV } from '@muster/contracts';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { chmod, mkdir, stat } from 'node:fs/promises';
import { loadOrCreateToken, waitFor } from '@muster/common';
import { ensureClusterPki, ensureNodeCert, pairPaths, PKI_FILES } from '@muster/common/pki';
import { connect, type Cluster, type ConnectOptions } from '@muster/sdk';
import { startEtcd, type EtcdServer } from './etcd.js';
import { binOf, ElectionLog, launchHead } from './heads.js';
import { startNats, type NatsServer } from './nats.js';
import { metricsListen } from './ports.js';
import { killTagged, spawnManaged, WITHOUT_CLIENT_ENV } from './procs.js';
import { tempDir } from './tmp.js';
import type { ClusterOptions, HeadHandle, StopSignal, WorkerHandle, WorkerSpec } from './types.js';

export class LocalCluster {
  /** Every head, by index (`head-<index>`); an entry is replaced when that head restarts. */
  readonly heads: HeadHandle[] = [];
  readonly workers = new Map<string, WorkerHandle>();
  /** MUSTER_TEST_RUN of this cluster's processes and shards; undefined: untagged. */
  readonly runTag: string | undefined;
  private readonly headCount: number;
  /** Head i's port, fixed once it first bound one, so restarts keep the address. */
  private readonly headPorts: number[] = [];
  private readonly dashboardPorts: number[] = [];
  private readonly election = new ElectionLog();
  /** Node ids whose certificate addWorker is issuing (not yet in `workers`). */
  private readonly issuing = new Set<string>();
  private removeDir: (() => Promise<void>) | undefined;
  private readonly stopping: Array<() => void | Promise<void>> = [];
  private readonly stopped: Array<() => Promise<void>> = [];

  private constructor(
    readonly dataDir: string,
    readonly opts: ClusterOptions,
    readonly nats: NatsServer | undefined,
    readonly etcd: EtcdServer | undefined,
  ) {
    this.headCount = opts.heads ?? 1;
    this.runTag = opts.runTag;
  }

  /** The first head (the only one, unless `heads` > 1). */
  get head(): HeadHandle {
    return this.heads[0]!;
  }

  /** gRPC addresses of every head, comma-separated ("127.0.0.1:port" for a single head). */
  get address(): string {
    return this.heads.map((h) => h.address).join(',');
  }

  /** The web dashboard of the first head ("https://127.0.0.1:port"); undefined with `dashboard: false`. */
  get dashboardUrl(): string | undefined {
    return this.heads[0]?.dashboardUrl;
  }

  /** The cluster token, written once before any head starts and shared by all of them. */
  get tokenFile(): string {
    return join(this.dataDir, 'head', 'token');
  }

  /** The cluster's PKI directory (`<dataDir>/pki`); undefined when insecure. */
  get pkiDir(): string | undefined {
    return this.opts.insecure ? undefined : join(this.dataDir, 'pki');
  }

  /** What a client connects with: the cluster CA and the admin's certificate and key (paths); undefined when insecure. */
  get tls(): { ca: string; cert: string; key: string } | undefined {
    const pki = this.pkiDir;
    return pki === undefined ? undefined : { ca: pairPaths(pki, PKI_FILES.ca).cert, ...pairPaths(pki, PKI_FILES.admin) };
  }

  /**
   * Options for the SDK's `connect()` that reach this cluster as its admin:
   * every head's address, the admin's TLS files (or `insecure`), and the
   * cluster token. Tests, benches and examples connect through this, so
   * they follow the cluster's TLS setting.
   */
  clientOptions(): ConnectOptions & { address: string; tokenFile: string } {
    const tls = this.tls;
    return { address: this.address, tokenFile: this.tokenFile, ...(tls ? { tls } : { insecure: true as const }) };
  }

  static async start(opts: ClusterOptions = {}): Promise<LocalCluster> {
    const heads = opts.heads ?? 1;
    if (!Number.isInteger(heads) || heads < 1) throw new Error(`LocalCluster: heads must be a whole number ≥ 1, got ${heads}`);
    if (heads > 1 && opts.store !== 'etcd') {
      throw new Error(`LocalCluster: heads: ${heads} needs store: 'etcd' (the embedded store belongs to a single head)`);
    }
    const tmp = opts.dataDir ? undefined : await tempDir('muster-cluster-');
    const dataDir = opts.dataDir ?? tmp!.path;
    await mkdir(dataDir, { recursive: true });
    await letRanksThrough(dataDir);
    let nats: NatsServer | undefined;
    let etcd: EtcdServer | undefined;
    let cluster: LocalCluster | undefined;
    try {
      const run = process.env[SHARD_ENV.TEST_RUN];
      const tag = opts.runTag ?? (run ? childRunTag(run) : undefined);
      const pkiDir = opts.insecure ? undefined : await ensureClusterPki(join(dataDir, 'pki'), { hosts: ['localhost', '127.0.0.1', '::1'] });
      if (opts.nats ?? true) nats = await startNats({ dir: dataDir, tag });
      if (opts.store === 'etcd') etcd = await startEtcd({ tag, pkiDir, insecure: opts.insecure });
      cluster = new LocalCluster(dataDir, { ...opts, runTag: tag }, nats, etcd);
      cluster.removeDir = tmp?.remove;
      await loadOrCreateToken(cluster.tokenFile);
      // One at a time: head 0 binds `port` first, and on etcd the first head up usually leads.
      for (let i = 0; i < heads; i++) await cluster.startHead(i);
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

  /** Head i's data dir: `head/` for a lone head (as `muster up` always had it), `head-<i>/` for several. */
  headDataDir(index: number): string {
    return join(this.dataDir, this.headCount === 1 ? 'head' : `head-${index}`);
  }

  /** Starts (or restarts) head `index` on its own data dir and port; it must not be running. */
  async startHead(index = 0): Promise<HeadHandle> {
    if (!Number.isInteger(index) || index < 0 || index >= this.headCount) throw new Error(`no head ${index} (the cluster has ${this.headCount})`);
    if (this.heads[index]?.process.running) throw new Error(`head ${index} is running: stop it first (or restartHead(${index}))`);
    const port = this.headPorts[index] ?? (index === 0 ? this.opts.port ?? 0 : 0);
    const name = this.headCount === 1 ? 'head' : `head-${index}`;
    const head = await launchHead({
      index,
      name,
      headId: `head-${index}`,
      dataDir: this.headDataDir(index),
      listen: `127.0.0.1:${port}`,
      metricsListen: await metricsListen(index === 0 ? this.opts.metricsPort : undefined),
      // The same port across restarts of a head, so a browser's URL keeps working.
      dashboardListen: this.opts.dashboard === false ? undefined : await metricsListen(this.dashboardPorts[index] ?? (index === 0 ? this.opts.dashboardPort : undefined)),
      tokenFile: this.tokenFile,
      etcdEndpoint: this.etcd?.endpoint,
      tls: this.pkiDir === undefined ? undefined : { ca: pairPaths(this.pkiDir, PKI_FILES.ca).cert, ...pairPaths(this.pkiDir, PKI_FILES.head) },
      etcdTls: this.etcd?.clientTls,
      nats: this.nats && { url: this.nats.url, account: this.nats.account, accountSeedFile: this.nats.accountSeedFile, caFile: this.nats.caFile },
      tag: this.runTag,
      opts: this.opts,
      onLine: (l) => this.opts.onLine?.(name, l),
      election: this.election,
    });
    this.headPorts[index] = parseHostPort(head.address, 'head address').port;
    if (head.dashboardUrl) this.dashboardPorts[index] = Number(new URL(head.dashboardUrl).port);
    this.heads[index] = head;
    return head;
  }

  /** Stops a head: SIGTERM (clean, the default) or SIGKILL (a crash); waits until it has exited. */
  async stopHead(signal?: StopSignal): Promise<void>;
  async stopHead(index: number, signal?: StopSignal): Promise<void>;
  async stopHead(a: number | StopSignal = 0, b: StopSignal = 'SIGTERM'): Promise<void> {
    const [index, signal] = typeof a === 'number' ? [a, b] : [0, a];
    const h = this.heads[index];
    if (!h) throw new Error(`no head ${index}`);
    if (signal === 'SIGKILL') {
      h.process.signal('SIGKILL');
      await h.process.exited;
    } else await h.process.stop();
  }

  /** stopHead(index, signal), then startHead(index): same id, port and data dir. */
  async restartHead(index = 0, signal: StopSignal = 'SIGTERM'): Promise<HeadHandle> {
    await this.stopHead(index, signal);
    return this.startHead(index);
  }

  /**
   * The head that leads now, from the heads' "became leader" / "leadership
   * lost" log lines (see heads.ts); undefined while none does.
   */
  leader(): HeadHandle | undefined {
    return this.election.leader(this.heads);
  }

  /** Waits for a leader (other than `not`, e.g. a head that was just killed or frozen). */
  async waitForLeader(opts: { timeoutMs?: number; not?: HeadHandle } = {}): Promise<HeadHandle> {
    return waitFor('a leading head', () => {
      const l = this.leader();
      return l && l.index !== opts.not?.index ? l : undefined;
    }, { timeoutMs: opts.timeoutMs ?? 15_000 });
  }

  async addWorker(spec: WorkerSpec = {}, opts: { readyTimeoutMs?: number } = {}): Promise<WorkerHandle> {
    const nodeId = spec.nodeId ?? `node-${this.workers.size + this.issuing.size + 1}`;
    // Counted while its certificate is issued, so workers added together get distinct ids.
    this.issuing.add(nodeId);
    const pki = this.pkiDir;
    let node: { cert: string; key: string } | undefined;
    try {
      node = pki === undefined ? undefined : await ensureNodeCert(pki, nodeId);
    } finally {
      this.issuing.delete(nodeId);
    }
    const args = [
      binOf('@muster/worker'), 'run',
      '--head', this.address,
      '--token-file', this.tokenFile,
      '--node-id', nodeId,
      ...(pki && node ? ['--tls-ca', pairPaths(pki, PKI_FILES.ca).cert, '--tls-cert', node.cert, '--tls-key', node.key] : ['--insecure']),
      '--metrics-listen', await metricsListen(spec.metricsPort),
      '--reconnect-max-ms', '1000',
      '--data-dir', join(this.dataDir, 'workers', nodeId),
      // A local cluster owns its shards: stopping a worker stops them (a
      // SIGKILLed worker leaves them, to be adopted when it comes back).
      '--stop-shards-on-exit', 'true',
      ...(this.opts.shardUser ? ['--shard-user', this.opts.shardUser] : []),
      ...(spec.profile ?? this.opts.profile ? ['--profile', (spec.profile ?? this.opts.profile)!] : []),
      ...(spec.labels ? ['--labels', Object.entries(spec.labels).map(([k, v]) => `${k}=${v}`).join(',')] : []),
      ...(spec.taints?.length ? ['--taints', spec.taints.join(',')] : []),
      ...(spec.args ?? []),
    ];
    const proc = spawnManaged(nodeId, process.execPath, args, { env: { ...WITHOUT_CLIENT_ENV }, onLine: (l) => this.opts.onLine?.(nodeId, l), tag: this.runTag });
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

  /**
   * The same as environment variables (CLIENT_ENV), for a program started
   * against this cluster (`muster up --run`, the examples): the SDK's
   * `connectOptionsFromEnv()` and the CLI read them.
   */
  clientEnv(): Record<string, string> {
    const tls = this.tls;
    return {
      [CLIENT_ENV.ADDRESS]: this.address,
      [CLIENT_ENV.TOKEN_FILE]: this.tokenFile,
      ...(tls ? { [CLIENT_ENV.TLS_CA]: tls.ca, [CLIENT_ENV.TLS_CERT]: tls.cert, [CLIENT_ENV.TLS_KEY]: tls.key } : { [CLIENT_ENV.INSECURE]: 'true' }),
    };
  }

  /** An SDK client of this cluster, as its admin (`clientOptions()`). */
  /** A client of this cluster as its admin; `options` add to (or override) clientOptions(), e.g. `{ direct: true }`. */
  async connect(options: Partial<ConnectOptions> = {}): Promise<Cluster> {
    return connect({ ...this.clientOptions(), ...options });
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

  /**
   * Stops every child (workers, heads, NATS, etcd) and removes a temp dir;
   * runs the `onStopping` hooks first (the test kit thaws what chaos froze).
   */
  async stop(): Promise<void> {
    for (const f of this.stopping.splice(0)) await f();
    await Promise.all([...this.workers.values()].map((w) => w.process.stop(3_000)));
    await Promise.all(this.heads.map((h) => h.process.stop(5_000)));
    await this.nats?.stop();
    await this.etcd?.stop();
    // Shards a SIGKILLed worker left for adoption outlive it; they hold real
    // ports the next cluster in this test process would be given.
    if (this.runTag) await killTagged(this.runTag);
    await this.removeDir?.();
    for (const f of this.stopped.splice(0)) await f();
  }

  /** Runs `f` at the start of `stop()`, before any process is stopped. */
  onStopping(f: () => void | Promise<void>): void {
    this.stopping.push(f);
  }

  /** Runs `f` at the end of `stop()`, once every process is gone. */
  onStop(f: () => Promise<void>): void {
    this.stopped.push(f);
  }
}

/**
 * As root, workers run each gang's ranks under a uid of its own, whose home
 * is below the data dir (`workers/<id>-homes/<gang>`): the data dir must be
 * searchable by other uids. mkdtemp (and many a `--data-dir`) make it 0700,
 * so add o+x, which lets ranks pass through to their own home but list or
 * read nothing here (what is secret below has modes of its own).
 */
async function letRanksThrough(dataDir: string): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const st = await stat(dataDir);
  if ((st.mode & 0o001) === 0 && st.uid === 0) await chmod(dataDir, (st.mode & 0o7777) | 0o001);
}

/** `<parent>/<8 hex>`: a tag below the run's, for one cluster (the test kit tags its clusters so). */
export const childRunTag = (parent: string): string => `${parent}/${randomBytes(4).toString('hex')}`;
