/**
 * A real etcd for tests and benchmarks: started on free loopback ports with a
 * temp data dir. It can be killed and started again on the same ports and
 * data dir (chaos tests: the data survives, as a real etcd's would); stop()
 * ends it for good and removes the dir.
 */
import { waitFor } from '@muster/common';
import { spawnManaged, type ManagedProcess } from './procs.js';
import { tempDir } from './tmp.js';
import { findBinary } from './binaries.js';
import { freePort } from './ports.js';
import { restartable, type Restartable } from './restartable.js';

export interface EtcdServer extends Restartable {
  readonly endpoint: string; // "http://127.0.0.1:<port>"
  readonly dataDir: string;
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

  let server: Restartable;
  try {
    server = await restartable('etcd', launch);
  } catch (e) {
    await dir.remove();
    throw e;
  }
  return Object.assign(server, {
    endpoint,
    dataDir: dir.path,
    async stop() {
      await server.process.stop(2000);
      await dir.remove();
    },
  });
}
