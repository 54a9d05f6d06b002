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
 *
 * `startHead` reads top to bottom: each part is a named function
 * (head-parts.ts; the campaign → term loop is leadership.ts), started in
 * order and stopped in reverse; a part that fails to start stops the ones
 * before it.
 */
import type { Logger } from '@muster/common';
import { startMetrics } from '@muster/common/metrics';
import { AgentServiceService, ClusterServiceService, GangServiceService, PlacementGroupServiceService, ReplicaGroupServiceService } from '@muster/proto';
import { rpcContext } from './api/rpc.js';
import type { HeadConfig } from './config.js';
import { Election } from './ha/election.js';
import { LeaderGate } from './ha/gate.js';
import { connectEventBus, headInstruments, observeHead, openState, startGrpc, type StartOnce, type Stop } from './head-parts.js';
import { Leadership, notLeaderError } from './leadership.js';
import type { LeaderTerm } from './leader-term.js';
import type { StateStore } from './state/index.js';

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

export async function startHead(config: HeadConfig, log: Logger, once: StartOnce = {}): Promise<Head> {
  const { token, store } = await openState(config, log, once);
  const stops: Stop[] = [() => store.close()];
  const close = () => stopAll(stops, log);
  try {
    const bus = await connectEventBus(config, log);
    stops.push(bus.stop);
    const metrics = await startMetrics('head', config.metricsListen);
    stops.push(() => metrics.close());
    const grpc = await startGrpc(config);
    stops.push(grpc.stop);
    const advertiseAddress = config.advertiseAddress || grpc.address;

    // Every service answers through the gate: NOT_LEADER (with the leader's address) until this head leads.
    const election = new Election(store, { headId: config.headId, address: advertiseAddress, leaseSeconds: config.leaseSeconds, log });
    const gate = new LeaderGate(token, () => notLeaderError(election, config.headId));
    for (const s of SERVICES) grpc.addService(s, gate.serve(s));

    const leadership = new Leadership(store, election, gate, {
      config,
      log,
      storeKind: store.kind,
      nats: bus.nats,
      rpc: rpcContext(token, metrics),
      instruments: headInstruments(metrics.meter),
    }, advertiseAddress);
    observeHead(metrics.meter, () => leadership.term);
    stops.push(endTermOnUnhandledFailure(leadership, log));
    leadership.start();
    stops.push(() => leadership.stop()); // a leader's term ends and gives the key up first
    await leadership.roleDecided;

    return {
      address: grpc.address,
      advertiseAddress,
      metricsAddress: metrics.address,
      headId: config.headId,
      store,
      get term() {
        return leadership.term;
      },
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

/**
 * Backstop: a failure nothing awaited (a store call during an outage) must
 * not kill the process. The term's memory may have run ahead of the store,
 * so the term ends and the next one starts from the stored state.
 */
function endTermOnUnhandledFailure(leadership: Leadership, log: Logger): Stop {
  const onUnhandled = (e: unknown) => {
    const msg = e instanceof Error ? e.message : String(e);
    const leading = leadership.endTerm(`unhandled failure: ${msg}`);
    log.error({ err: msg }, leading ? 'unhandled failure in the leader term; ending the term' : 'unhandled failure');
  };
  process.on('unhandledRejection', onUnhandled);
  return () => void process.off('unhandledRejection', onUnhandled);
}

/** Stops what was started, last first; a part that fails to stop does not keep the others running. */
async function stopAll(stops: Stop[], log: Logger): Promise<void> {
  for (const stop of stops.splice(0).reverse()) {
    try {
      await stop();
    } catch (e) {
      log.warn({ err: e }, 'error during shutdown');
    }
  }
}
