/**
 * A real etcd for tests and benchmarks: started on free loopback ports with a
 * temp data dir. It can be killed and started again on the same ports and
 * data dir (chaos tests: the data survives, as a real etcd's would); stop()
 * ends it for good and removes the dir.
 */
import { spawnManaged, type ManagedProcess } from './procs.js';
import { tempDir } from './tmp.js';
import { waitFor } from './wait.js';
import { findBinary } from './binaries.js';
import { freePort } from './ports.js';

export interface EtcdServer {
  readonly endpoint: string; // "http://127.0.0.1:<port>"
  /** The current etcd process (a new one after each start). */
  readonly process: ManagedProcess;
  readonly dataDir: string;
  /** Ends the process (SIGKILL: a crash; SIGTERM: a clean stop), keeping ports and data. */
  kill(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Starts it again on the same ports and data dir, and waits until it is healthy. */
  start(): Promise<void>;
  /** kill(signal) then start(). */
  restart(opts?: { signal?: 'SIGTERM' | 'SIGKILL' }): Promise<void>;
  /** Stops it for good and removes its data dir. */
  stop(): Promise<void>;
}

export async function startEtcd(opts: { tag?: string } = {}): Promise<EtcdServer> {
  const bin = await findBinary('etcd');
  const dir = await tempDir('muster-etcd-');
  const [client, peer] = [await freePort(), await freePort()];
  const endpoint = `http://127.0.0.1:${client}`;
  const args = [
    '--name', 'test',
    '--data-dir', dir.path,
    '--listen-client-urls', endpoint,
    '--advertise-client-urls', endpoint,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `test=http://127.0.0.1:${peer}`,
    '--log-level', 'warn',
  ];

  const launch = async (): Promise<ManagedProcess> => {
    const p = spawnManaged('etcd', bin, args, {
      env: { ETCD_UNSUPPORTED_ARCH: process.arch === 'x64' ? undefined : process.arch },
      tag: opts.tag,
    });
    try {
      await waitFor('etcd health', async () => {
        if (!p.running) throw new Error(`etcd exited:\n${p.output()}`);
        const res = await fetch(`${endpoint}/health`).catch(() => undefined);
        return res?.ok ? true : undefined;
      }, { timeoutMs: 20_000 });
    } catch (e) {
      await p.stop(1000);
      throw e;
    }
    return p;
  };

  let proc: ManagedProcess;
  try {
    proc = await launch();
  } catch (e) {
    await dir.remove();
    throw e;
  }
  const kill = async (signal: 'SIGTERM' | 'SIGKILL' = 'SIGKILL') => {
    if (signal === 'SIGTERM') return proc.stop(2000);
    proc.signal('SIGKILL');
    await proc.exited;
  };
  const start = async () => {
    if (proc.running) throw new Error('etcd is running: kill() it first');
    proc = await launch();
  };
  return {
    endpoint,
    dataDir: dir.path,
    get process() {
      return proc;
    },
    kill,
    start,
    async restart(o = {}) {
      await kill(o.signal);
      await start();
    },
    async stop() {
      await proc.stop(2000);
      await dir.remove();
    },
  };
}
