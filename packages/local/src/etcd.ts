/**
 * A real etcd for tests and benchmarks: started on free loopback ports with a
 * temp data dir. It can be killed and started again on the same ports and
 * data dir (chaos tests: the data survives, as a real etcd's would); stop()
 * ends it for good and removes the dir.
 *
 * TLS by default: etcd serves https with its own CA's certificate and
 * `--client-cert-auth`, so only a client certificate of the etcd CA (the
 * heads' `etcd-client`) gets in; no certificate of the cluster CA can. The
 * PKI directory is the cluster's (`pkiDir`, from ensureClusterPki) or, for a
 * lone etcd, one made in its temp dir. `clientTls` is what a client needs
 * (the etcd CA, the etcd client pair); `insecure: true` serves plaintext.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '@muster/common';
import { ensureClusterPki, pairPaths, PKI_FILES } from '@muster/common/pki';
import { spawnManaged, type ManagedProcess } from './procs.js';
import { tempDir } from './tmp.js';
import { findBinary } from './binaries.js';
import { freePort } from './ports.js';
import { restartable, type Restartable } from './restartable.js';

/** Paths of the etcd CA and of a client certificate etcd accepts. */
export interface EtcdClientTls {
  ca: string;
  cert: string;
  key: string;
}

export interface EtcdServer extends Restartable {
  readonly endpoint: string; // "https://127.0.0.1:<port>" ("http://" when insecure)
  readonly dataDir: string;
  /** The files a client connects with; undefined when insecure. */
  readonly clientTls: EtcdClientTls | undefined;
  /** `clientTls` read, as EtcdStore's `credentials` take it. */
  credentials(): { rootCertificate: Buffer; certChain: Buffer; privateKey: Buffer } | undefined;
  /** Stops it for good and removes its data dir. */
  stop(): Promise<void>;
}

export interface EtcdOptions {
  tag?: string | undefined;
  /** A PKI directory with etcd-ca, etcd-server and etcd-client (default: one made in the temp dir). */
  pkiDir?: string | undefined;
  /** Plaintext, no client authentication. */
  insecure?: boolean | undefined;
}

export async function startEtcd(opts: EtcdOptions = {}): Promise<EtcdServer> {
  const bin = await findBinary('etcd');
  const dir = await tempDir('muster-etcd-');
  const [client, peer] = [await freePort(), await freePort()];
  const pki = opts.insecure ? undefined : (opts.pkiDir ?? (await ensureClusterPki(join(dir.path, 'pki'))));
  const endpoint = `${pki ? 'https' : 'http'}://127.0.0.1:${client}`;
  const serverPair = pki === undefined ? undefined : pairPaths(pki, PKI_FILES.etcdServer);
  const clientTls = pki === undefined ? undefined : { ca: pairPaths(pki, PKI_FILES.etcdCa).cert, ...pairPaths(pki, PKI_FILES.etcdClient) };
  const args = [
    ...(serverPair && clientTls ? ['--cert-file', serverPair.cert, '--key-file', serverPair.key, '--client-cert-auth', '--trusted-ca-file', clientTls.ca] : []),
    '--name', 'test',
    '--data-dir', join(dir.path, 'data'),
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
        return (await healthy(endpoint, clientTls)) || undefined;
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
    dataDir: join(dir.path, 'data'),
    clientTls,
    credentials: () =>
      clientTls && { rootCertificate: readFileSync(clientTls.ca), certChain: readFileSync(clientTls.cert), privateKey: readFileSync(clientTls.key) },
    async stop() {
      await server.process.stop(2000);
      await dir.remove();
    },
  });
}

/** etcd's /health, over TLS with the client certificate when it has one. */
async function healthy(endpoint: string, tls: EtcdClientTls | undefined): Promise<boolean> {
  if (!tls) return (await fetch(`${endpoint}/health`).catch(() => undefined))?.ok === true;
  const { request } = await import('node:https');
  return new Promise<boolean>((resolve) => {
    const req = request(`${endpoint}/health`, { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key), timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}
