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
import type { Counter } from '@opentelemetry/api';
import type { Logger } from '@muster/common';
import { startMetrics } from '@muster/common/metrics';
import { startTracing } from '@muster/common/tracing';
import { AgentServiceService, ClusterServiceService, GangServiceService, PlacementGroupServiceService, ReplicaGroupServiceService } from '@muster/proto';
import { rpcContext } from './api/rpc.js';
import type { HeadConfig } from './config.js';
import { Election } from './ha/election.js';
import { LeaderGate } from './ha/gate.js';
import { startDashboardPart } from './dashboard/index.js';
import { connectEventBus, headInstruments, observeHead, openState, serverCredentials, startGrpc, type StartOnce, type Stop } from './head-parts.js';
import { Leadership, notLeaderError } from './leadership.js';
import type { LeaderTerm } from './leader-term.js';
import type { StateStore } from './state/index.js';

export interface Head {
  /** Bound gRPC address "host:port". */
  readonly address: string;
  /** The address written into the leader key (what clients are sent to). */
  readonly advertiseAddress: string;
  readonly metricsAddress: string | undefined;
  /** The web dashboard's URL ("https://host:port"), when --dashboard-listen is set. */
  readonly dashboardUrl: string | undefined;
  readonly headId: string;
  readonly store: StateStore;
  /** The current term while this head leads, else undefined. */
  readonly term: LeaderTerm | undefined;
  close(): Promise<void>;
}

const SERVICES = [ClusterServiceService, AgentServiceService, GangServiceService, ReplicaGroupServiceService, PlacementGroupServiceService];

export async function startHead(config: HeadConfig, log: Logger, once: StartOnce = {}): Promise<Head> {
  const creds = serverCredentials(config, log);
  const { token, store } = await openState(config, log, once);
  const stops: Stop[] = [() => store.close()];
  const close = () => stopAll(stops, log);
  try {
    const bus = await connectEventBus(config, log, token);
    stops.push(bus.stop);
    const metrics = await startMetrics('head', config.metricsListen, { tokenFile: config.metricsTokenFile, tlsCert: config.metricsTlsCert, tlsKey: config.metricsTlsKey });
    stops.push(() => metrics.close());
    const tracing = startTracing({ service: 'muster-head', endpoint: config.otlpEndpoint, warn: (m) => log.warn(m) });
    stops.push(() => tracing.shutdown());
    if (tracing.url) log.info({ traces: tracing.url, sampler: tracing.sampler }, 'tracing on');
    const grpc = await startGrpc(config, creds);
    stops.push(grpc.stop);
    const advertiseAddress = config.advertiseAddress || grpc.address;

    // Every service answers through the gate: NOT_LEADER (with the leader's address) until this head leads.
    const election = new Election(store, { headId: config.headId, address: advertiseAddress, leaseSeconds: config.leaseSeconds, log });
    const gate = new LeaderGate(token, () => notLeaderError(election, config.headId));
    for (const s of SERVICES) grpc.addService(s, gate.serve(s));
    const dashboard = await startDashboardPart(config, log, token, gate);
    if (dashboard) stops.push(() => dashboard.close());

    const leadership = new Leadership(store, election, gate, {
      config,
      log,
      storeKind: store.kind,
      nats: bus.nats,
      rpc: rpcContext(token, metrics),
      instruments: headInstruments(metrics.meter),
    }, advertiseAddress);
    observeHead(metrics.meter, () => leadership.term);
    const unhandled = metrics.meter.createCounter('muster_head_unhandled_failures_total', {
      description: 'failures nothing awaited or caught (a bug: each ended the leader term); 0 in a healthy head',
    });
    stops.push(endTermOnUnhandledFailure(leadership, log, unhandled));
    leadership.start();
    stops.push(() => leadership.stop()); // a leader's term ends and gives the key up first
    await leadership.roleDecided;

    return {
      address: grpc.address,
      advertiseAddress,
      metricsAddress: metrics.address,
      dashboardUrl: dashboard?.url,
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
 * Last resort, not a mechanism: no code path relies on it. Every promise in
 * the head is awaited or has its own catch that logs and says what happens
 * next (retried on the next tick, the term ended deliberately, ...), and the
 * typed lint rules `no-floating-promises` / `no-misused-promises`
 * (eslint.config.js) keep it so. A rejection that still arrives here is a bug:
 * it is logged with its stack, counted (`muster_head_unhandled_failures_total`,
 * 0 in a healthy head) and, since the term's memory may then be off from the
 * store, the term ends and the next one starts from the stored state rather
 * than the process dying.
 */
function endTermOnUnhandledFailure(leadership: Leadership, log: Logger, counter: Counter): Stop {
  const onUnhandled = (e: unknown) => {
    const msg = e instanceof Error ? e.message : String(e);
    counter.add(1);
    const leading = leadership.endTerm(`unhandled failure (a bug): ${msg}`);
    log.error({ err: msg, stack: e instanceof Error ? e.stack : undefined }, leading ? 'unhandled failure in the leader term (a bug); ending the term, state may be off' : 'unhandled failure (a bug)');
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
