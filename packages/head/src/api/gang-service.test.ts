/**
 * LaunchGang refuses a spec naming a replica group: such a gang's launch
 * orders carry that group's NATS user (gang-executor.ts), so only the head's
 * replica-group controller may make one.
 */
import { Metadata, status, type ServerUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import type { GangSpec, LaunchGangRequest } from '@muster/proto';
import type { GangController } from '../controllers/gangs.js';
import type { LogRelay } from './log-relay.js';
import { gangService } from './gang-service.js';
import type { RpcContext } from './rpc.js';

describe('GangService.LaunchGang', () => {
  it('refuses spec.replicaGroup (INVALID_ARGUMENT naming the field) and launches nothing', async () => {
    const launched: unknown[] = [];
    const gangs = { launch: async (spec: GangSpec) => (launched.push(spec), {}) } as unknown as GangController;
    const ctx = { token: 't0ken', rpcCount: { add: () => undefined }, rpcLatency: { record: () => undefined } } as unknown as RpcContext;
    const svc = gangService(ctx, gangs, {} as LogRelay);
    const md = new Metadata();
    md.set('authorization', 'Bearer t0ken');
    const call = (spec: Partial<GangSpec>) =>
      new Promise<ServiceError | null>((resolve) => {
        svc.launchGang({ request: { spec: spec as GangSpec, requestId: '' }, metadata: md, getAuthContext: () => ({}), getPath: () => '/muster.v1.GangService/LaunchGang' } as unknown as ServerUnaryCall<LaunchGangRequest, never>, (e) => resolve(e as ServiceError | null));
      });
    const refused = await call({ name: 'g', replicaGroup: 'victim' });
    expect(refused?.code).toBe(status.INVALID_ARGUMENT);
    expect(refused?.details).toMatch(/spec\.replicaGroup: set by the head for the gangs of replica group "victim"/);
    expect(launched).toEqual([]);
    expect(await call({ name: 'g', replicaGroup: '' })).toBeNull();
    expect(launched).toHaveLength(1);
  });
});
