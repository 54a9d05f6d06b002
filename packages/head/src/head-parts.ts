/**
 * The process-long parts a head is made of, one function each, in the order
 * `startHead` (head.ts) starts them: the TLS credentials (checked first, so a
 * head without certificates refuses before it opens anything), the state
 * (token and store), the event bus (NATS), the gRPC server, the metrics a
 * head exports about itself.
 * Each returns what it started together with how to stop it, so head.ts
 * only has to stop them in reverse.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Server, ServerCredentials, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Meter } from '@opentelemetry/api';
import { connectNats, ErrorCode, grpcServerCredentials, loadOrCreateToken, MusterError, parseHostPort, readKeyFile, readPemFile, withoutCredentials, type Logger, type SecretFileOptions } from '@muster/common';
import { serverChannelOptions } from '@muster/contracts';
import { NodeState } from '@muster/proto';
import { headTlsFiles, tokenPath, type HeadConfig } from './config.js';
import { dataPlaneUsers } from './dataplane/index.js';
import type { HeadProcess, LeaderTerm } from './leader-term.js';
import { openStore, type StateStore } from './state/index.js';

/** Stops what a part started. */
export type Stop = () => Promise<void> | void;

/** What one start of the head is asked to do beyond its config (flags that must not persist). */
export interface StartOnce {
  /** --repair-wal: truncate a damaged embedded store log at its bad frame instead of refusing. */
  repairWal?: boolean;
}

/**
 * The gRPC server's credentials: mutual TLS on the cluster CA (the head's
 * certificate, role head; clients' certificates asked for, not required),
 * or plaintext with --insecure, said loudly. A head with neither refuses to
 * start and says how to make the files.
 */
export function serverCredentials(config: HeadConfig, log: Logger): ServerCredentials {
  const files = headTlsFiles(config);
  if (!files) {
    log.warn('--insecure: gRPC is plaintext, with no TLS: the cluster token and every call travel in clear and anyone on the network can pose as this head');
    return ServerCredentials.createInsecure();
  }
  const missing = Object.entries(files).filter(([, path]) => !existsSync(path)).map(([what, path]) => `${what} ${path}`);
  if (missing.length > 0) {
    throw new MusterError(
      ErrorCode.FAILED_PRECONDITION,
      `no TLS ${missing.join(', ')}: create the cluster's certificates with \`muster cert init --dir ${join(config.dataDir, 'pki')} --host <this head's addresses>\` ` +
        '(or give --tls-ca, --tls-cert, --tls-key), or run plaintext with --insecure',
      { details: { field: 'tlsCert' } },
    );
  }
  return grpcServerCredentials(files, secretFileOptions(config, log));
}

/** etcd's TLS: its CA and the head's etcd client certificate (from the etcd CA), when --etcd-ca is given. */
function etcdCredentials(config: HeadConfig, log: Logger): { rootCertificate: Buffer; certChain?: Buffer; privateKey?: Buffer } | undefined {
  if (!config.etcdCa) return undefined;
  return {
    rootCertificate: readPemFile(config.etcdCa, '--etcd-ca'),
    ...(config.etcdCert && config.etcdKey
      ? { certChain: readPemFile(config.etcdCert, '--etcd-cert'), privateKey: readKeyFile(config.etcdKey, '--etcd-key', secretFileOptions(config, log)) }
      : {}),
  };
}

/** How this head treats a secret file its group or others can read (--allow-insecure-permissions). */
export function secretFileOptions(config: HeadConfig, log: Logger): SecretFileOptions {
  return { allowInsecurePermissions: config.allowInsecurePermissions, warn: (m) => log.warn(m) };
}

/** The cluster token (made on first start) and the state store the config names. */
export async function openState(config: HeadConfig, log: Logger, once: StartOnce = {}): Promise<{ token: string; store: StateStore }> {
  const token = await loadOrCreateToken(tokenPath(config), secretFileOptions(config, log));
  if (config.store === 'etcd' && config.etcdEndpoints.some((e) => e.startsWith('http://'))) {
    log.warn({ endpoints: config.etcdEndpoints }, 'etcd over http://: the state store link is plaintext and unauthenticated; use https:// with --etcd-ca, --etcd-cert, --etcd-key');
  } else if (config.store === 'etcd' && !config.etcdCa) {
    log.warn({ endpoints: config.etcdEndpoints }, 'no --etcd-ca: etcd is checked against the system CAs, not the etcd CA, and the head shows no client certificate');
  }
  const store = await openStore(
    config.store === 'etcd'
      ? { kind: 'etcd', endpoints: config.etcdEndpoints, credentials: etcdCredentials(config, log), onWarning: (msg, details) => log.warn(details, msg) }
      : { kind: 'embedded', dataDir: join(config.dataDir, 'store'), repairWal: once.repairWal, onWarning: (msg, details) => log.warn(details, msg) },
  );
  return { token, store };
}

/** The NATS connection events are published on (none without --nats-url: no data plane then). */
export async function connectEventBus(config: HeadConfig, log: Logger, token: string): Promise<{ nats: HeadProcess['nats']; stop: Stop }> {
  if (config.natsUrl.length === 0) {
    log.warn('no --nats-url: cluster events are not published on NATS and there is no data plane');
    return { nats: undefined, stop: () => undefined };
  }
  const users = await dataPlaneUsers(config, token, secretFileOptions(config, log));
  if (config.natsUser) log.warn('--nats-user: legacy shared NATS user — every replica and caller gets its password and may read and publish anything; use operator mode (--nats-account, docs/security.md)');
  const conn = await connectNats(users.head(config.headId), `muster-head ${config.headId}`);
  log.info({ servers: config.natsUrl.map(withoutCredentials), tls: users.publicAccess.caPem !== '' }, 'connected to NATS');
  if (!users.publicAccess.caPem) log.warn('no --nats-ca: NATS traffic (requests, replies, credentials presented) is not encrypted');
  return { nats: { conn, access: users.publicAccess, users }, stop: () => conn.drain() };
}

/**
 * The gRPC server, bound to --listen before any service is added (a standby
 * binds its port too, and refuses calls with the leader's address).
 * Its channel options (keepalive, message sizes) are the one table in
 * @muster/contracts that agents and clients dial with.
 */
export async function startGrpc(config: HeadConfig, creds: ServerCredentials): Promise<{ address: string; addService(s: ServiceDefinition, impl: UntypedServiceImplementation): void; stop: Stop }> {
  const server = new Server(serverChannelOptions(config.maxMessageBytes));
  const { host } = parseHostPort(config.listen, '--listen');
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(config.listen, creds, (err, p) => (err ? reject(err) : resolve(p))),
  );
  // Calls in flight get two seconds to finish.
  const stop = () =>
    new Promise<void>((resolve) => {
      const force = setTimeout(() => server.forceShutdown(), 2_000);
      server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  return { address: `${host}:${port}`, addService: (s, impl) => server.addService(s, impl), stop };
}

/** The histograms a term records into; they live as long as the process, so a new term keeps adding to them. */
export function headInstruments(meter: Meter): HeadProcess['instruments'] {
  return {
    pgCycleSeconds: meter.createHistogram('muster_pg_cycle_seconds', { description: 'placement group controller cycle time, by phase (schedule, commit)', unit: 's' }),
    pgCycleWrites: meter.createHistogram('muster_pg_cycle_writes', { description: 'records written per controller cycle (group commit size)' }),
    heartbeatLag: meter.createHistogram('muster_heartbeat_lag_seconds', { description: 'delay between an agent sending a heartbeat and the head handling it', unit: 's' }),
    reportsDropped: meter.createCounter('muster_load_reports_dropped_total', { description: 'reports refused, by kind: load and demand reports their decoder refused (negative, fractional or absurd counts, no id; on the load subject also resource reports of older workers), and (kind resources) entries of agents\' usage reports that were malformed, past the cap, or for a replica with no rank on the sending node' }),
  };
}

/** Gauges read from the current term when observed: leader or not, nodes by state, the longest heartbeat silence. */
export function observeHead(meter: Meter, term: () => LeaderTerm | undefined): void {
  meter.createObservableGauge('muster_head_leader', { description: '1 while this head leads, 0 on a standby' }).addCallback((r) => r.observe(term() ? 1 : 0));
  meter.createObservableGauge('muster_nodes', { description: 'nodes by state (leader only)' }).addCallback((r) => {
    const t = term();
    if (!t) return;
    r.observe(t.registry.count(NodeState.NODE_STATE_ALIVE), { state: 'alive' });
    r.observe(t.registry.count(NodeState.NODE_STATE_DEAD), { state: 'dead' });
  });
  meter
    .createObservableGauge('muster_node_heartbeat_silence_max_seconds', { description: 'longest time since the last heartbeat among alive nodes (leader only)', unit: 's' })
    .addCallback((r) => {
      const t = term();
      if (t) r.observe(Math.max(0, ...t.registry.silences()) / 1000);
    });
}
