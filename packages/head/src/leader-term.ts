/**
 * Everything a head runs while it leads: the node registry, event log,
 * controllers and liveness, loaded from the store at the start of each term
 * and stopped at its end. Nothing survives from one term to the next, so a
 * head that lost leadership and won it back starts from the store exactly as
 * a freshly started standby would. All writes go through the term's fenced
 * writer.
 */
import type { ServiceDefinition, UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Counter, Histogram } from '@opentelemetry/api';
import { VERSION, type Logger, type NatsConnection } from '@muster/common';
import { AgentServiceService, ClusterServiceService, GangServiceService, PlacementGroupServiceService, ReplicaGroupServiceService, type NatsAccess } from '@muster/proto';
import { agentService } from './api/agent-service.js';
import { clusterService } from './api/cluster-service.js';
import { gangService } from './api/gang-service.js';
import { LogRelay } from './api/log-relay.js';
import { placementService } from './api/placement-service.js';
import { replicaService } from './api/replica-service.js';
import type { RpcContext } from './api/rpc.js';
import { Liveness } from './cluster/liveness.js';
import { NodeRegistry } from './cluster/registry.js';
import type { HeadConfig } from './config.js';
import { NodeDrains } from './controllers/drain.js';
import { GangController } from './controllers/gangs.js';
import { PlacementGroupController } from './controllers/placement-groups.js';
import { ReplicaGroupController } from './controllers/replica-groups.js';
import { EventLog } from './events/event-log.js';
import type { StateWriter } from './state/fence.js';
import type { DataPlaneUsers } from './dataplane/index.js';

/** What a head has for its whole life, handed to each term. */
export interface HeadProcess {
  config: HeadConfig;
  log: Logger;
  storeKind: string;
  /** The event bus and data plane: the head's connection, what anyone may know of it, the users it mints. */
  nats: { conn: NatsConnection; access: NatsAccess; users: DataPlaneUsers } | undefined;
  rpc: RpcContext;
  instruments: { pgCycleSeconds: Histogram; pgCycleWrites: Histogram; heartbeatLag: Histogram; reportsDropped: Counter };
}

export interface LeaderTerm {
  readonly registry: NodeRegistry;
  readonly events: EventLog;
  readonly placementGroups: PlacementGroupController;
  readonly gangs: GangController;
  /** The gRPC service implementations of this term. */
  readonly services: Map<ServiceDefinition, UntypedServiceImplementation>;
  close(): void;
}

export async function startLeaderTerm(writer: StateWriter, head: HeadProcess): Promise<LeaderTerm> {
  const { config, log, nats } = head;
  const offset = config.testClockOffsetMs;
  const events = new EventLog(writer, log, {
    retention: config.eventRetention,
    maxAgeMs: config.eventMaxAgeMs,
    nats: nats?.conn,
    subjectPrefix: config.natsSubjectPrefix,
    clock: offset === 0 ? Date.now : () => Date.now() + offset,
  });
  await events.load();
  const registry = new NodeRegistry(writer, events, log, config.deadAfterMs);
  await registry.load();
  const placementGroups = new PlacementGroupController(writer, registry, events, log.child({ controller: 'placement-groups' }), {
    metrics: { cycleSeconds: head.instruments.pgCycleSeconds, cycleWrites: head.instruments.pgCycleWrites },
  });
  await placementGroups.load();
  // A node is not removed while a placement group still holds bundles on it (registry transition 9).
  registry.setHolders((nodeId) => placementGroups.list().filter((pg) => pg.placements.some((p) => p.nodeId === nodeId)).map((pg) => pg.spec?.name ?? pg.id));
  const gangs = new GangController(writer, registry, placementGroups, events, log.child({ controller: 'gangs' }), config.shardPortRange, {
    kept: config.finishedGangsKept,
    maxAgeMs: config.finishedGangMaxAgeMs,
  }, nats && ((group) => nats.users.replicaEnv(group)));
  await gangs.load();
  const dropped = head.instruments.reportsDropped;
  const replicaGroups = new ReplicaGroupController(writer, placementGroups, gangs, events, log.child({ controller: 'replica-groups' }), nats && { ...nats, onReportDropped: (kind, n = 1) => dropped.add(n, { kind }) }, (n) => registry.get(n)?.draining === true);
  registry.onTransition((kind) => {
    if (kind === 'node.draining' || kind === 'node.uncordoned') replicaGroups.nodesChanged();
  });
  const drains = new NodeDrains({ registry, pgs: placementGroups, gangs, replicaGroups }, events, log.child({ controller: 'drains' }));
  const liveness = new Liveness(registry, config.deadAfterMs, log, config.deadNodeTtlMs);
  const close = () => {
    events.close();
    liveness.stop();
    drains.close();
    replicaGroups.close();
    gangs.close();
  };
  try {
    await replicaGroups.load();
    // Replicas move off draining nodes make-before-break (their controller);
    // every other group is moved by the placement group controller, from now on.
    placementGroups.setMoveOwner((pgId) => replicaGroups.owns(pgId));
    // A replica's gang stays (finished or not) while its replica record names it.
    gangs.setOwner((gangId) => replicaGroups.holdsGang(gangId));
  } catch (e) {
    close();
    throw e;
  }
  registry.startJudging(); // the grace of loaded nodes runs from now, not from their read
  liveness.start();

  const logRelay = new LogRelay(registry);
  const services = new Map<ServiceDefinition, UntypedServiceImplementation>([
    [ClusterServiceService, clusterService(head.rpc, {
      registry,
      events,
      drains,
      streamBufferMessages: config.streamBufferMessages,
      groups: { pgs: placementGroups, gangs, replicaGroups },
      dataPlane: nats?.users,
      info: { headId: config.headId, version: VERSION, store: head.storeKind, nats: nats?.access, heartbeatIntervalMs: config.heartbeatIntervalMs, deadAfterMs: config.deadAfterMs },
    })],
    [AgentServiceService, agentService(head.rpc, {
      registry,
      log,
      headId: config.headId,
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      deadAfterMs: config.deadAfterMs,
      nats: nats?.access,
      heartbeatLag: head.instruments.heartbeatLag,
      reservations: placementGroups,
      shards: gangs,
      logs: logRelay,
      usage: replicaGroups,
    })],
    [GangServiceService, gangService(head.rpc, gangs, logRelay)],
    [ReplicaGroupServiceService, replicaService(head.rpc, replicaGroups)],
    [PlacementGroupServiceService, placementService(head.rpc, placementGroups)],
  ] as Array<[ServiceDefinition, UntypedServiceImplementation]>);
  return { registry, events, placementGroups, gangs, services, close };
}
