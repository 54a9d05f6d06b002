/**
 * A real nats-server in operator (JWT) mode, over TLS, on a free loopback
 * port (or the one given), its config (mode 0600) in `dir`. It can be killed
 * and started again on the same port with the same config (clients
 * reconnect by themselves).
 *
 * Operator mode (docs/security.md, "NATS: users per role"): the config holds
 * the operator JWT and, through a MEMORY resolver, the system account and
 * the Muster account, whose signing key alone can make users. Its seed goes
 * to `<dir>/nats-account.seed` (0600) for the head (`--nats-account-seed-file`);
 * every other process gets a user the head mints for its role. `access` is
 * a user with every permission, minted here for tests and tools that talk
 * to NATS directly; `mint` makes one with chosen permissions.
 *
 * TLS: the server's certificate is the cluster PKI's nats.crt (`<dir>/pki`,
 * made with ensureClusterPki, which keeps what is there), so clients trust
 * only the cluster CA (`--nats-ca`). `tls: false` runs plaintext NATS.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureClusterPki, pairPaths, PKI_FILES } from '@muster/common/pki';
import { createNatsTrust, mintNatsUser, musterAccountJwt, newSigningKey, operatorConfig, publicKeyOf, type NatsSigner } from '@muster/common/nats-auth';
import { DEFAULT_SUBJECT_PREFIX, MAX_MESSAGE_BYTES, type SubjectPermissions } from '@muster/contracts';
import type { NatsAccess } from '@muster/proto';
import { findBinary } from './binaries.js';
import { freePort } from './ports.js';
import { spawnManaged, type ManagedProcess } from './procs.js';
import { restartable, type Restartable } from './restartable.js';

export interface NatsServer extends Restartable {
  /** A user with every permission (`>`: tests and tools that talk to NATS directly), with the server's CA. */
  readonly access: NatsAccess;
  readonly url: string;
  /** The Muster account's public key (the head's `--nats-account`). */
  readonly account: string;
  /** The account signing-key seed file (0600; the head's `--nats-account-seed-file`). */
  readonly accountSeedFile: string;
  /** The CA file clients trust ('' without TLS; the head's `--nats-ca`). */
  readonly caFile: string;
  /** A user with `perms` (tests: what a replica, a caller or a stranger may do), signed by the current signing key. */
  mint(name: string, perms: SubjectPermissions, ttlMs?: number): NatsAccess;
  /**
   * A signing-key rotation, step one: a new signing key next to the old one
   * in the account JWT (server reloaded), its seed written over
   * `accountSeedFile` (heads read it when they start). `retireOld()` is step
   * two: the old key leaves the account JWT, and every user it signed is cut
   * off. docs/security.md, "Rotating credentials".
   */
  rotateSigningKey(): Promise<{ publicKey: string; retireOld(): Promise<void> }>;
  stop(): Promise<void>;
}

export interface StartNatsOptions {
  dir: string;
  port?: number;
  subjectPrefix?: string;
  tag?: string;
  /** TLS with the cluster PKI's NATS certificate (default true). */
  tls?: boolean;
}

export async function startNats(opts: StartNatsOptions): Promise<NatsServer> {
  const bin = await findBinary('nats-server');
  let port = opts.port ?? (await freePort());
  const prefix = opts.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX;
  const trust = await createNatsTrust();
  const accountSeedFile = join(opts.dir, 'nats-account.seed');
  await writeFile(accountSeedFile, `${trust.signingSeed}\n`, { mode: 0o600 });
  let caFile = '';
  let tlsBlock: string[] = [];
  if (opts.tls ?? true) {
    const pki = await ensureClusterPki(join(opts.dir, 'pki'));
    const pair = pairPaths(pki, PKI_FILES.nats);
    caFile = pairPaths(pki, PKI_FILES.ca).cert;
    tlsBlock = ['tls {', `  cert_file: "${pair.cert}"`, `  key_file: "${pair.key}"`, '  timeout: 2', '}'];
  }
  const conf = join(opts.dir, 'nats.conf');
  // The one message limit of every link (gRPC's too): larger payloads fail with MUSTER_RESOURCE_EXHAUSTED.
  const writeConf = () => writeFile(conf, [`listen: "127.0.0.1:${port}"`, `max_payload: ${MAX_MESSAGE_BYTES}`, ...operatorConfig(trust), ...tlsBlock, ''].join('\n'), { mode: 0o600 });
  await writeConf();
  const launch = async (): Promise<ManagedProcess> => {
    const p = spawnManaged('nats-server', bin, ['-c', conf], { tag: opts.tag });
    await p.waitForLine((l) => l.includes('Server is ready'), 15_000).catch(async (e: unknown) => {
      await p.stop(1_000);
      throw e;
    });
    return p;
  };
  // A free port can be taken by another process before nats-server binds it: on a port it chose
  // itself, the first start tries another (restarts keep the port the clients know).
  let started = false;
  const server = await restartable('nats-server', async () => {
    for (let attempt = 1; ; attempt++) {
      try {
        const p = await launch();
        started = true;
        return p;
      } catch (e) {
        if (started || opts.port !== undefined || attempt >= 3 || !/address already in use/.test((e as Error).message)) throw e;
        port = await freePort();
        await writeConf();
      }
    }
  });
  const url = `nats://127.0.0.1:${port}`;
  const caPem = caFile ? await readFile(caFile, 'utf8') : '';
  let signer: NatsSigner = { account: trust.account, seed: trust.signingSeed };
  let signingKeys = [publicKeyOf(trust.signingSeed)];
  /** Writes the account JWT with `keys` and reloads the server (SIGHUP), once it says it did. */
  const resign = async (keys: string[]): Promise<void> => {
    signingKeys = keys;
    trust.accountJwt = await musterAccountJwt(trust, keys);
    await writeConf();
    const reloaded = server.process.waitForLine((l) => l.includes('Reloaded server configuration'), 10_000);
    server.process.signal('SIGHUP');
    await reloaded;
  };
  const rotateSigningKey = async () => {
    const next = newSigningKey();
    const old = signingKeys;
    await resign([...old, next.publicKey]);
    await writeFile(accountSeedFile, `${next.seed}\n`, { mode: 0o600 });
    signer = { account: trust.account, seed: next.seed };
    return { publicKey: next.publicKey, retireOld: () => resign(signingKeys.filter((k) => !old.includes(k))) };
  };
  const mint = (name: string, perms: SubjectPermissions, ttlMs = 0): NatsAccess => {
    const inboxPrefix = perms.sub.find((s) => s.startsWith('_INBOX'))?.replace(/\.>$/, '') ?? '';
    const u = mintNatsUser(signer, name, perms, ttlMs);
    return { servers: [url], user: '', password: '', subjectPrefix: prefix, jwt: u.jwt, seed: u.seed, caPem, inboxPrefix, expiresAtMs: u.expiresAtMs, groups: [] };
  };
  return Object.assign(server, {
    url,
    account: trust.account,
    accountSeedFile,
    caFile,
    mint,
    rotateSigningKey,
    access: mint('test-admin', { pub: ['>'], sub: ['>'] }),
    stop: () => server.process.stop(2_000),
  });
}
