/**
 * Keeps etcd leases alive from a worker thread, beside the etcd3 client's own
 * keepalive on the main thread.
 *
 * Why: a lease is renewed every third of its TTL by a timer; the head's
 * leader lease has a 2 s TTL (the failover target), and on the main thread
 * that timer waits behind the head's own work. At 10,000 agents on a starved
 * 2-core machine the leader's event loop stalled for 1.6 and 1.9 s in a row
 * (a large GC, registration commits), no keepalive went out, etcd deleted the
 * leader key, and the standby took over into the same storm
 * (docs/benchmarks.md, "On etcd, with a standby"). A worker thread has its
 * own event loop and its own etcd connection: its renewals go out whatever
 * the main thread is doing.
 *
 * The main thread still decides: it pings the worker every PING_MS, and the
 * worker renews only while the last ping is under 2 × TTL old — a head whose
 * main thread hangs loses its lease as before, just not one that is slow for
 * a second or two. A frozen or killed process stops both threads. The etcd3
 * lease on the main thread is unchanged (it still says when a lease is
 * lost), so this only adds renewals; if the worker cannot start or fails,
 * the head goes on with the main thread's alone (logged once). A renewal
 * that fails in the worker (its stream cut, etcd away) is posted to the main
 * thread, which reports the first one (onRenewalError, logged once) while
 * the worker keeps trying.
 *
 * The worker is a short CommonJS script (eval) that loads the same etcd3 the
 * head uses, so it runs from built code and from the TypeScript sources under
 * test alike. Its credentials go in workerData (never argv, never a log).
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { etcdChannelOptions } from '@muster/contracts';

/** How often the main thread says it is alive. */
const PING_MS = 250;

export interface LeaseKeeperOptions {
  endpoints: string[];
  credentials?: { rootCertificate: Buffer; certChain?: Buffer; privateKey?: Buffer } | undefined;
  /** Called once if the worker fails (the main thread's keepalive goes on alone). */
  onError?: (err: Error) => void;
  /** Called once, at the first renewal the worker could not make (it keeps trying). */
  onRenewalError?: (err: Error) => void;
}

type ToWorker = { keep: string; ttlSeconds: number } | { drop: string } | { ping: true };

// The worker: per kept lease, a keepalive every ttl/3 on one LeaseKeepAlive stream, while pinged.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { Etcd3 } = require(workerData.etcd3);
const c = workerData.credentials; // structured clone made the Buffers Uint8Arrays; grpc-js wants Buffers
const credentials = c && { rootCertificate: Buffer.from(c.rootCertificate), certChain: c.certChain && Buffer.from(c.certChain), privateKey: c.privateKey && Buffer.from(c.privateKey) };
const client = new Etcd3({ hosts: workerData.endpoints, credentials, grpcOptions: workerData.etcdChannelOptions });
const kept = new Map();
let pingedAt = Date.now();
let stream;
const failed = (e) => parentPort.postMessage({ failed: String((e && e.message) || e) });
const open = () => client.leaseClient.leaseKeepAlive().then((s) => {
  s.on('error', (e) => { if (stream === s) stream = undefined; failed(e); });
  s.on('end', () => { if (stream === s) stream = undefined; });
  s.on('data', () => parentPort.postMessage({ renewed: true }));
  return (stream = s);
});
let opening;
const renew = (id) => {
  if (stream) return stream.write({ ID: id });
  opening ??= open().finally(() => (opening = undefined));
  opening.then((s) => s.write({ ID: id }), failed);
};
setInterval(() => {
  const now = Date.now();
  for (const [id, lease] of kept) {
    if (now - pingedAt > 2000 * lease.ttl || now < lease.dueAt) continue;
    lease.dueAt = now + (1000 * lease.ttl) / 3;
    renew(id);
  }
}, 50);
parentPort.on('message', (m) => {
  if (m.ping) pingedAt = Date.now();
  else if (m.keep) kept.set(m.keep, { ttl: m.ttlSeconds, dueAt: 0 });
  else if (m.drop) kept.delete(m.drop);
});
`;

export class LeaseKeeper {
  private readonly worker: Worker;
  private readonly ping: NodeJS.Timeout;
  private failed = false;
  /** Keepalive answers the worker has had from etcd (tests wait for the first). */
  renewals = 0;
  /** Renewals the worker could not make (each posted by the worker; the first is reported). */
  renewalErrors = 0;

  constructor(opts: LeaseKeeperOptions) {
    const etcd3 = createRequire(import.meta.url).resolve('etcd3');
    this.worker = new Worker(WORKER, {
      eval: true,
      // The same channel options (message limits) as every other etcd client of the head.
      workerData: { etcd3, endpoints: opts.endpoints, credentials: opts.credentials, etcdChannelOptions: etcdChannelOptions() },
    });
    this.worker.unref();
    this.worker.on('message', (m: { renewed?: boolean; failed?: string }) => {
      if (m.renewed) this.renewals++;
      if (m.failed !== undefined && this.renewalErrors++ === 0) opts.onRenewalError?.(new Error(m.failed));
    });
    this.worker.on('error', (e) => {
      if (this.failed) return;
      this.failed = true;
      opts.onError?.(e);
    });
    this.ping = setInterval(() => this.post({ ping: true }), PING_MS);
    this.ping.unref();
  }

  /** Renews lease `id` from the worker too, until `drop`. */
  keep(id: string, ttlSeconds: number): void {
    this.post({ keep: id, ttlSeconds });
  }

  drop(id: string): void {
    this.post({ drop: id });
  }

  private post(m: ToWorker): void {
    if (!this.failed) this.worker.postMessage(m);
  }

  async close(): Promise<void> {
    clearInterval(this.ping);
    this.failed = true;
    await this.worker.terminate();
  }
}
