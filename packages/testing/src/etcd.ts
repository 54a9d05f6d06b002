/**
 * A real etcd for tests and benchmarks: started on free loopback ports with a
 * temp data dir, stopped (and its dir removed) by stop().
 */
import { spawnManaged, type ManagedProcess } from './procs.js';
import { tempDir } from './tmp.js';
import { waitFor } from './wait.js';
import { findBinary } from './binaries.js';
import { freePort } from './ports.js';

export interface EtcdServer {
  readonly endpoint: string; // "http://127.0.0.1:<port>"
  readonly process: ManagedProcess;
  stop(): Promise<void>;
}

export async function startEtcd(): Promise<EtcdServer> {
  const bin = await findBinary('etcd');
  const dir = await tempDir('muster-etcd-');
  const [client, peer] = [await freePort(), await freePort()];
  const endpoint = `http://127.0.0.1:${client}`;
  const proc = spawnManaged('etcd', bin, [
    '--name', 'test',
    '--data-dir', dir.path,
    '--listen-client-urls', endpoint,
    '--advertise-client-urls', endpoint,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `test=http://127.0.0.1:${peer}`,
    '--log-level', 'warn',
  ], { env: { ETCD_UNSUPPORTED_ARCH: process.arch === 'x64' ? undefined : process.arch } });
  try {
    await waitFor('etcd health', async () => {
      if (!proc.running) throw new Error(`etcd exited:\n${proc.output()}`);
      const res = await fetch(`${endpoint}/health`).catch(() => undefined);
      return res?.ok ? true : undefined;
    }, { timeoutMs: 20_000 });
  } catch (e) {
    await proc.stop(1000);
    await dir.remove();
    throw e;
  }
  return {
    endpoint,
    process: proc,
    async stop() {
      await proc.stop(2000);
      await dir.remove();
    },
  };
}
