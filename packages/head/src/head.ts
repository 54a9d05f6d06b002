/**
 * A running head: wires store, event log, node registry, liveness, gRPC API
 * and metrics together. `startHead` returns once the gRPC port is bound and
 * persisted state is loaded; `close()` stops everything in reverse order.
 */
import { join } from 'node:path';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import {
  VERSION,
  connectNats,
  loadOrCreateToken,
  parseHostPort,
  startMetrics,
  type Logger,
  type NatsConnection,
} from '@muster/common';
import { AgentServiceService, ClusterServiceService, GangServiceService, NodeState, PlacementGroupServiceService, ReplicaGroupServiceService, type NatsAccess } from '@muster/proto';
import { gangService } from './api/gang-service.js';
import { LogRelay } from './api/log-relay.js';
import { GangController } from './controllers/gangs.js';
import { ReplicaGroupController } from './controllers/replica-groups.js';
import { replicaService } from './api/replica-service.js';
import { agentService } from './api/agent-service.js';
import { clusterService } from './api/cluster-service.js';
import { placementService } from './api/placement-service.js';
import { PlacementGroupController } from './controllers/placement-groups.js';
import { StateWriter } from './state/fence.js';
import { rpcContext } from './api/rpc.js';
import { Liveness } from './cluster/liveness.js';
import { NodeRegistry } from './cluster/registry.js';
import { tokenPath, type HeadConfig } from './config.js';
import { EventLog } from './events/event-log.js';
import { openStore, type StateStore } from './state/index.js';

export interface Head {
  /** Bound gRPC address "host:port". */
  readonly address: string;
  readonly metricsAddress: string | undefined;
  readonly headId: string;
  readonly store: StateStore;
  readonly registry: NodeRegistry;
  readonly events: EventLog;
  readonly placementGroups: PlacementGroupController;
  readonly gangs: GangController;
  close(): Promise<void>;
}

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
    let nats: NatsConnection | undefined;
    let natsAccess: NatsAccess | undefined;
    if (config.natsUrl.length > 0) {
      natsAccess = { servers: config.natsUrl, user: config.natsUser, password: config.natsPassword, subjectPrefix: config.natsSubjectPrefix };
      const conn = await connectNats(natsAccess, `muster-head ${config.headId}`);
      nats = conn;
      cleanups.push(() => conn.drain());
      log.info({ servers: config.natsUrl }, 'connected to NATS');
    } else {
      log.warn('no --nats-url: cluster events are not published on NATS and there is no data plane');
    }

    const metrics = await startMetrics('head', config.metricsListen);
    cleanups.push(() => metrics.close());
    const writer = await StateWriter.claim(store, config.headId);
    const events = new EventLog(writer, log, { retention: config.eventRetention, nats, subjectPrefix: config.natsSubjectPrefix });
    const registry = new NodeRegistry(writer, events, log, config.deadAfterMs);
    await registry.load();
    const placementGroups = new PlacementGroupController(writer, registry, events, log.child({ controller: 'placement-groups' }), {
      metrics: {
        cycleSeconds: metrics.meter.createHistogram('muster_pg_cycle_seconds', { description: 'placement group controller cycle time, by phase (schedule, commit)', unit: 's' }),
        cycleWrites: metrics.meter.createHistogram('muster_pg_cycle_writes', { description: 'records written per controller cycle (group commit size)' }),
      },
    });
    await placementGroups.load();
    const gangs = new GangController(writer, registry, placementGroups, events, log.child({ controller: 'gangs' }), config.shardPortRange);
    await gangs.load();
    const replicaGroups = new ReplicaGroupController(writer, placementGroups, gangs, events, log.child({ controller: 'replica-groups' }), nats && natsAccess ? { conn: nats, access: natsAccess } : undefined);
    await replicaGroups.load();
    cleanups.push(() => replicaGroups.close());
    const logRelay = new LogRelay(registry);
    const liveness = new Liveness(registry, config.deadAfterMs, log);
    liveness.start();
    cleanups.push(() => liveness.stop());

    const nodeGauge = metrics.meter.createObservableGauge('muster_nodes', { description: 'nodes by state' });
    nodeGauge.addCallback((r) => {
      r.observe(registry.count(NodeState.NODE_STATE_ALIVE), { state: 'alive' });
      r.observe(registry.count(NodeState.NODE_STATE_DEAD), { state: 'dead' });
    });
    const silence = metrics.meter.createObservableGauge('muster_node_heartbeat_silence_max_seconds', {
      description: 'longest time since the last heartbeat among alive nodes',
      unit: 's',
    });
    silence.addCallback((r) => r.observe(Math.max(0, ...registry.silences()) / 1000));
    const heartbeatLag = metrics.meter.createHistogram('muster_heartbeat_lag_seconds', {
      description: 'delay between an agent sending a heartbeat and the head handling it',
      unit: 's',
    });

    const ctx = rpcContext(token, metrics);
    const server = new Server({
      'grpc.max_receive_message_length': config.maxMessageBytes,
      'grpc.max_send_message_length': 64 * 1024 * 1024,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.http2.min_ping_interval_without_data_ms': 5_000,
    });
    server.addService(ClusterServiceService, clusterService(ctx, {
      registry,
      events,
      info: { headId: config.headId, version: VERSION, store: store.kind, nats: natsAccess, heartbeatIntervalMs: config.heartbeatIntervalMs, deadAfterMs: config.deadAfterMs },
    }));
    server.addService(AgentServiceService, agentService(ctx, {
      registry,
      log,
      headId: config.headId,
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      deadAfterMs: config.deadAfterMs,
      nats: natsAccess,
      heartbeatLag,
      reservations: placementGroups,
      shards: gangs,
      logs: logRelay,
    }));
    server.addService(GangServiceService, gangService(ctx, gangs, logRelay));
    server.addService(ReplicaGroupServiceService, replicaService(ctx, replicaGroups));
    server.addService(PlacementGroupServiceService, placementService(ctx, placementGroups));
    const { host } = parseHostPort(config.listen, '--listen');
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(config.listen, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
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
    const address = `${host}:${port}`;
    return {
      address,
      metricsAddress: metrics.address,
      headId: config.headId,
      store,
      registry,
      events,
      placementGroups,
      gangs,
      close: closeAll,
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}
