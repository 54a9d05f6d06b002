/**
 * The dashboard as one part of the head process (head.ts starts it after the
 * gRPC services are on the gate, stops it before them): the listener of
 * server.ts over the gate's handlers for the read services, with the head's
 * TLS files. Absent unless --dashboard-listen is set (`muster up` and
 * LocalCluster set it). docs/dashboard.md says what the pages show.
 */
import { readKeyFile, readPemFile, type Logger } from '@muster/common';
import { ClusterServiceService, GangServiceService, PlacementGroupServiceService, ReplicaGroupServiceService } from '@muster/proto';
import { headTlsFiles, type HeadConfig } from '../config.js';
import type { LeaderGate } from '../ha/gate.js';
import { secretFileOptions } from '../head-parts.js';
import { defaultAssetsDir } from './assets.js';
import { GateInvoker } from './invoke.js';
import { startDashboard, type Dashboard } from './server.js';

const READ_SERVICES = [ClusterServiceService, PlacementGroupServiceService, GangServiceService, ReplicaGroupServiceService];

export async function startDashboardPart(config: HeadConfig, log: Logger, token: string, gate: LeaderGate): Promise<Dashboard | undefined> {
  if (!config.dashboardListen) return undefined;
  const files = headTlsFiles(config);
  const tls = files && {
    ca: readPemFile(files.ca, 'TLS CA file'),
    cert: readPemFile(files.cert, 'TLS certificate file'),
    key: readKeyFile(files.key, 'TLS key file', secretFileOptions(config, log)),
  };
  const invoke = new GateInvoker(new Map(READ_SERVICES.map((s) => [s, gate.serve(s)])), token);
  const dashboard = await startDashboard({ listen: config.dashboardListen, tls, assetsDir: config.dashboardAssets ?? defaultAssetsDir(), token, invoke, log });
  log.info({ url: dashboard.url }, 'dashboard serving');
  return dashboard;
}
