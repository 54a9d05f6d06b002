/**
 * A running head process: store, NATS, metrics and the gRPC server live as
 * long as the process; the leader's work (registry, controllers, liveness)
 * lives for one term of leadership (leader-term.ts).
 *
 *   start ──▶ bind gRPC (calls refused: NOT_LEADER) ──▶ campaign ──▶ won ──▶ load term, serve
 *                                                          ▲                          │
 *                                                          └──── term ended ◀─────────┘
 *
 * Several heads on one etcd elect one leader (ha/election.ts); the others
 * stand by with their port bound, refusing calls with the leader's address
 * so clients and agents move there. `startHead` returns once the port is
 * bound and the first campaign attempt has decided this head's role.
 */
import { join } from 'node:path';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import {
  ErrorCode,
  MusterError,
  connectNats,
  loadOrCreateToken,
  parseHostPort,
  type Logger,
} from '@muster/common';
import { serverChannelOptions } from '@muster/contracts';
import { startMetrics } from '@muster/common/metrics';
import { AgentServiceService, ClusterServiceService, GangServiceService, NodeState, PlacementGroupServiceService, ReplicaGroupServiceService } from '@muster/proto';
import { rpcContext } from './api/rpc.js';
import { tokenPath, type HeadConfig } from './config.js';
import { Election, type Term } from './ha/election.js';
import { LeaderGate } from './ha/gate.js';
import { StateMirror } from './ha/mirror.js';
import { startLeaderTerm, type HeadProcess, type LeaderTerm } from './leader-term.js';
import { LEADER_KEY } from './state/fence.js';
import { openStore, type StateStore } from './state/index.js';

export interface Head {
  /** Bound gRPC address "host:port". */
  readonly address: string;
  /** The address written into the leader key (what clients are sent to). */
  readonly advertiseAddress: string;
  readonly metricsAddress: string | undefined;
  readonly headId: string;
  readonly store: StateStore;
  /** The current term while this head leads, else undefined. */
  readonly term: LeaderTerm | undefined;
  close(): Promise<void>;
}

const SERVICES = [ClusterServiceService, AgentServiceService, GangServiceService, ReplicaGroupServiceService, PlacementGroupServiceService];

export async function startHead(config: HeadConfig, log: Logger): Promise<Head> {
  const token = await loadOrCreateToken(tokenPath(config));
  const store = await openStore(
    config.store === 'etcd'
      ? { kind: 'etcd', endpoints: config.etcdEndpoints }
      : { kind: 'embedded', dataDir: join(config.dataDir, 'store') },
  );
  const cleanups: Array<() => Promise<void> | void> = [() => store.close()];
  const closeAll = async () => {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch (e) {
        log.warn({ err: e }, 'error during shutdown');
      }
    }
  };
  try {
    let nats: HeadProcess['nats'];
    if (config.natsUrl.length > 0) {
      const access = { servers: config.natsUrl, user: config.natsUser, password: config.natsPassword, subjectPrefix: config.natsSubjectPrefix };
      const conn = await connectNats(access, `muster-head ${config.headId}`);
      nats = { conn, access };
      cleanups.push(() => conn.drain());
      log.info({ servers: config.natsUrl }, 'connected to NATS');
    } else {
      log.warn('no --nats-url: cluster events are not published on NATS and there is no data plane');
    }

    const metrics = await startMetrics('head', config.metricsListen);
    cleanups.push(() => metrics.close());
    const meter = metrics.meter;
    const headProcess: HeadProcess = {
      config,
      log,
      storeKind: store.kind,
      nats,
      rpc: rpcContext(token, metrics),
      instruments: {
        pgCycleSeconds: meter.createHistogram('muster_pg_cycle_seconds', { description: 'placement group controller cycle time, by phase (schedule, commit)', unit: 's' }),
        pgCycleWrites: meter.createHistogram('muster_pg_cycle_writes', { description: 'records written per controller cycle (group commit size)' }),
        heartbeatLag: meter.createHistogram('muster_heartbeat_lag_seconds', { description: 'delay between an agent sending a heartbeat and the head handling it', unit: 's' }),
      },
    };

    const server = new Server(serverChannelOptions(config.maxMessageBytes));
    const { host } = parseHostPort(config.listen, '--listen');
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(config.listen, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    const address = `${host}:${port}`;
    const advertiseAddress = config.advertiseAddress || address;
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          const force = setTimeout(() => server.forceShutdown(), 2_000);
          server.tryShutdown(() => {
            clearTimeout(force);
            resolve();
          });
        }),
    );

    const election = new Election(store, { headId: config.headId, address: advertiseAddress, leaseSeconds: config.leaseSeconds, log });
    const gate = new LeaderGate(token, () => {
      const leader = election.leader;
      return leader && leader.headId !== config.headId
        ? new MusterError(ErrorCode.NOT_LEADER, `head ${config.headId} is a standby; the leader is ${leader.headId} at ${leader.address}`, { details: { leader: leader.address } })
        : new MusterError(
            ErrorCode.NOT_LEADER,
            election.lastError
              ? `no leader: the state store is unreachable (${election.lastError}); changes are refused until it returns`
              : `head ${config.headId} is not the leader and no leader is elected yet; retry shortly`,
          );
    });
    for (const s of SERVICES) server.addService(s, gate.serve(s));

    let term: LeaderTerm | undefined;
    let stopping = false;
    let stopNow!: () => void;
    const stopped = new Promise<void>((r) => (stopNow = r));

    meter.createObservableGauge('muster_head_leader', { description: '1 while this head leads, 0 on a standby' }).addCallback((r) => r.observe(term ? 1 : 0));
    const nodeGauge = meter.createObservableGauge('muster_nodes', { description: 'nodes by state (leader only)' });
    nodeGauge.addCallback((r) => {
      if (!term) return;
      r.observe(term.registry.count(NodeState.NODE_STATE_ALIVE), { state: 'alive' });
      r.observe(term.registry.count(NodeState.NODE_STATE_DEAD), { state: 'dead' });
    });
    meter
      .createObservableGauge('muster_node_heartbeat_silence_max_seconds', { description: 'longest time since the last heartbeat among alive nodes (leader only)', unit: 's' })
      .addCallback((r) => {
        if (term) r.observe(Math.max(0, ...term.registry.silences()) / 1000);
      });

    let decided!: () => void;
    const roleDecided = new Promise<void>((r) => (decided = r));
    // A standby on etcd follows the state (ha/mirror.ts); the embedded store has no standbys.
    const follow = () => (store.kind === 'etcd' ? new StateMirror(store, log) : undefined);
    let mirror = follow();

    // Backstop: a failure nothing awaited (a store call during an outage) must
    // not kill the process. The term's memory may have run ahead of the store,
    // so the term ends and the next one starts from the stored state.
    let current: Term | undefined;
    const onUnhandled = (e: unknown) => {
      const msg = e instanceof Error ? e.message : String(e);
      log.error({ err: msg }, current ? 'unhandled failure in the leader term; ending the term' : 'unhandled failure');
      current?.end(`unhandled failure: ${msg}`);
    };
    process.on('unhandledRejection', onUnhandled);
    cleanups.push(() => void process.off('unhandledRejection', onUnhandled));

    /** Serves one won term until it ends; false if its state could not be loaded. */
    const lead = async (won: Term): Promise<boolean> => {
      current = won;
      const started = performance.now();
      const loading = mirror && (await mirror.caughtUp(won.revision, 1_000)) ? mirror.forLoading() : undefined;
      try {
        term = await startLeaderTerm(loading ? won.writer.withStore(loading.store) : won.writer, headProcess);
        loading?.loaded();
      } catch (e) {
        log.error({ err: (e as Error).message }, 'won the election but could not load the state; resigning');
        won.end('state load failed');
        current = undefined;
        await releaseKey(won);
        await election.resign();
        decided();
        return false;
      }
      gate.open(term.services);
      await mirror?.close();
      mirror = undefined;
      log.info(
        { headId: config.headId, address: advertiseAddress, revision: won.revision, loadedFrom: loading ? 'mirror' : 'store', loadMs: Math.round(performance.now() - started) },
        'became leader',
      );
      decided();
      const reason = await Promise.race([won.ended, stopped.then(() => 'head stopping')]);
      gate.close();
      term.close();
      term = undefined;
      current = undefined;
      if (!stopping) mirror = follow();
      if (!stopping) log.warn({ headId: config.headId, reason }, 'leadership lost; standing by');
      await releaseKey(won);
      return true;
    };

    /**
     * Gives the leader key up through the term's fence. When the term ended
     * with the key still ours (a failure here, a stop), a standby can win at
     * once instead of after the lease. When another head already leads, etcd
     * refuses the write, and the log shows a deposed leader's write fenced.
     */
    const releaseKey = (won: Term) =>
      won.writer.txn([{ type: 'delete', key: LEADER_KEY }]).then(
        () => log.info({ headId: config.headId }, 'leader key released'),
        (e: unknown) => log.warn({ headId: config.headId, code: (e as MusterError).code, err: (e as Error).message }, 'leader key not released'),
      );

    const loop = (async () => {
      while (!stopping) {
        let won: Term;
        try {
          won = await election.campaign(decided);
        } catch {
          break; // stopped
        }
        const ok = await lead(won);
        if (!ok) await new Promise((r) => setTimeout(r, 1_000));
      }
    })();
    cleanups.push(async () => {
      stopping = true;
      stopNow();
      election.stop();
      await loop; // a leader's term ends and gives the key up first
      // Hand over at once (the lease is revoked) rather than after its TTL.
      await election.resign();
      await mirror?.close();
    });
    await roleDecided;

    return {
      address,
      advertiseAddress,
      metricsAddress: metrics.address,
      headId: config.headId,
      store,
      get term() {
        return term;
      },
      close: closeAll,
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}
