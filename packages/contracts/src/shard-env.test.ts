import { describe, expect, it } from 'vitest';
import { httpBridgePort, natsCredentialEnv, portsOf, portVar, rankEnv, readNatsCredentialEnv, readShardEnv, replicaEnv, SHARD_ENV, ShardEnvError, type RankEnvInput } from './shard-env.js';

const rank: RankEnvInput = {
  rank: 5, worldSize: 8, localRank: 1, localWorldSize: 4, masterAddr: '10.0.0.1', masterPort: 30_001,
  tpRank: 1, tpSize: 4, ppRank: 1, ppSize: 2, replicaId: 'r-7', group: 'llm', gangId: 'g-1', attempt: 2,
  cudaVisibleDevices: '2,3', ports: { http: 30_002, dist: 30_003 },
};

describe('the shard environment', () => {
  it('reads back what the head writes', () => {
    const env = rankEnv(rank);
    expect(env).toMatchObject({ RANK: '5', WORLD_SIZE: '8', MUSTER_TP_RANK: '1', MUSTER_PP_SIZE: '2', MUSTER_GANG_ID: 'g-1', MUSTER_ATTEMPT: '2', MUSTER_PORT_HTTP: '30002', CUDA_DEVICE_ORDER: 'PCI_BUS_ID' });
    const { gangId: _g, attempt: _a, ...view } = rank;
    expect(readShardEnv(env)).toEqual(view);
  });

  it('names the variable that is missing or malformed', () => {
    const env = rankEnv(rank);
    const bad = (e: Record<string, string | undefined>): ShardEnvError => {
      try {
        readShardEnv(e);
      } catch (err) {
        return err as ShardEnvError;
      }
      throw new Error('accepted');
    };
    expect(bad({ ...env, [SHARD_ENV.TP_RANK]: undefined })).toMatchObject({ field: 'MUSTER_TP_RANK', message: expect.stringMatching(/MUSTER_TP_RANK is missing/) });
    expect(bad({ ...env, [SHARD_ENV.MASTER_PORT]: '-1' })).toMatchObject({ field: 'MASTER_PORT', message: expect.stringMatching(/"-1", not a non-negative integer/) });
    expect(bad({ ...env, [SHARD_ENV.WORLD_SIZE]: '6' })).toMatchObject({ field: 'WORLD_SIZE' });
    expect(bad({ ...env, [SHARD_ENV.RANK]: '4' })).toMatchObject({ field: 'RANK' });
    expect(bad({})).toBeInstanceOf(ShardEnvError);
  });

  it('gives ports by lower-case name', () => {
    expect(portVar('http')).toBe('MUSTER_PORT_HTTP');
    expect(portsOf({ MUSTER_PORT_HTTP: '8000', MUSTER_PORT_DIST: '', OTHER: '1' })).toEqual({ http: 8000 });
  });

  it('adds the data-plane variables of a replica, the NATS access only when there is one', () => {
    const withNats = { ...replicaEnv({ subject: 's', revision: 'abc', subjectPrefix: 'muster', httpBridge: 'http' }), ...natsCredentialEnv({ servers: ['n1:4222', 'n2:4222'], jwt: 'j', seed: 'SU', caPem: 'pem' }) };
    expect(withNats).toEqual({ MUSTER_SUBJECT: 's', MUSTER_REVISION: 'abc', MUSTER_NATS_SUBJECT_PREFIX: 'muster', MUSTER_HTTP_BRIDGE: 'http', MUSTER_NATS_URL: 'n1:4222,n2:4222', MUSTER_NATS_JWT: 'j', MUSTER_NATS_SEED: 'SU', MUSTER_NATS_CA: 'pem' });
    expect(readNatsCredentialEnv(withNats)).toEqual({ servers: ['n1:4222', 'n2:4222'], jwt: 'j', seed: 'SU', caPem: 'pem' });
    expect(readNatsCredentialEnv({})).toBeUndefined();
    expect(() => readNatsCredentialEnv({ MUSTER_NATS_URL: 'n1:4222', MUSTER_NATS_JWT: 'j' })).toThrow(/MUSTER_NATS_SEED is missing/);
    expect(() => readNatsCredentialEnv({ MUSTER_NATS_URL: 'n1:4222' })).toThrow(/MUSTER_NATS_JWT is missing/);
    // The legacy shared user (a head started with --nats-user).
    const legacy = natsCredentialEnv({ servers: ['n1:4222'], jwt: '', seed: '', caPem: '', user: 'u', password: 'p' });
    expect(legacy).toEqual({ MUSTER_NATS_URL: 'n1:4222', MUSTER_NATS_USER: 'u', MUSTER_NATS_PASSWORD: 'p' });
    expect(readNatsCredentialEnv(legacy)).toEqual({ servers: ['n1:4222'], jwt: '', seed: '', caPem: '', user: 'u', password: 'p' });
    expect(Object.keys(replicaEnv({ subject: 's', revision: 'abc', subjectPrefix: 'muster', httpBridge: '' }))).toEqual(['MUSTER_SUBJECT', 'MUSTER_REVISION', 'MUSTER_NATS_SUBJECT_PREFIX']);
  });

  it('finds the HTTP bridge port, 0 when none or not a port', () => {
    expect(httpBridgePort({ MUSTER_HTTP_BRIDGE: 'http', MUSTER_PORT_HTTP: '8000' })).toBe(8000);
    expect(httpBridgePort({ MUSTER_PORT_HTTP: '8000' })).toBe(0);
    expect(httpBridgePort({ MUSTER_HTTP_BRIDGE: 'http' })).toBe(0);
    expect(httpBridgePort({ MUSTER_HTTP_BRIDGE: 'http', MUSTER_PORT_HTTP: '70000' })).toBe(0);
  });
});
