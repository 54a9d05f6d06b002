/** The role variables round-trip: what the head writes (roleEnv) is what a rank reads (readRoleEnv). */
import { describe, expect, it } from 'vitest';
import { rankRoleEnv, readRoleEnv, roleAddrVar, roleEnv, sharedRoleEnv } from './role-env.js';
import { SHARD_ENV } from './shard-env.js';

describe('role environment', () => {
  const env = roleEnv({
    role: 'decode', index: 1, count: 2, roles: ['prefill', 'decode'],
    endpoints: [
      { role: 'decode', index: 1, host: '10.0.0.2', ports: { http: 30_003, kv_port: 30_013 } },
      { role: 'prefill', index: 0, host: '10.0.0.1', ports: { http: 30_001 } },
      { role: 'decode', index: 0, host: '10.0.0.2', ports: { http: 30_002, kv_port: 30_012 } },
    ],
  });

  it('names every role instance\'s first rank by role and port, in instance order', () => {
    expect(env[roleAddrVar('decode', 'http')]).toBe('10.0.0.2:30002,10.0.0.2:30003');
    expect(env[roleAddrVar('decode', 'kv_port')]).toBe('10.0.0.2:30012,10.0.0.2:30013');
    expect(env[roleAddrVar('prefill', 'http')]).toBe('10.0.0.1:30001');
    expect(env[SHARD_ENV.ROLE]).toBe('decode');
    expect(env[SHARD_ENV.ROLES]).toBe('prefill,decode');
  });

  it('is a rank\'s own variables over the gang\'s shared ones', () => {
    const shared = sharedRoleEnv(['prefill', 'decode'], [{ role: 'prefill', index: 0, host: '10.0.0.1', ports: { http: 30_001 } }]);
    expect(shared[SHARD_ENV.ROLE]).toBeUndefined();
    expect(rankRoleEnv({ role: 'prefill', index: 0, count: 1 }, shared)).toEqual({ ...shared, [SHARD_ENV.ROLE]: 'prefill', [SHARD_ENV.ROLE_INDEX]: '0', [SHARD_ENV.ROLE_COUNT]: '1' });
  });

  it('reads back what it wrote (a port name with "_" included); no MUSTER_ROLE, no roles', () => {
    expect(readRoleEnv(env)).toEqual({
      role: 'decode', index: 1, count: 2, roles: ['prefill', 'decode'],
      addrs: { decode: { http: ['10.0.0.2:30002', '10.0.0.2:30003'], kv_port: ['10.0.0.2:30012', '10.0.0.2:30013'] }, prefill: { http: ['10.0.0.1:30001'] } },
    });
    expect(readRoleEnv({})).toBeUndefined();
  });
});
