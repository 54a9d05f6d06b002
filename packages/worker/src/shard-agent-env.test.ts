/** Which ranks keep the group's NATS credential: only one that serves on NATS itself. */
import { describe, expect, it } from 'vitest';
import { SHARD_ENV } from '@muster/contracts';
import { rankEnv, withDataAddr } from './shard-agent.js';

const creds = { [SHARD_ENV.NATS_URL]: 'nats://127.0.0.1:4222', [SHARD_ENV.NATS_JWT]: 'jwt', [SHARD_ENV.NATS_SEED]: 'seed' };

describe('rank environment: NATS credential', () => {
  it('a serve() rank (subject, no HTTP bridge) keeps it', () => {
    const env = rankEnv({ ...creds, [SHARD_ENV.SUBJECT]: 'muster.rg.g.r1' }, undefined);
    expect(env[SHARD_ENV.NATS_JWT]).toBe('jwt');
  });

  it('a rank of an HTTP group loses it even when its bridged port does not resolve', () => {
    const env = rankEnv({ ...creds, [SHARD_ENV.SUBJECT]: 'muster.rg.g.r1', [SHARD_ENV.HTTP_BRIDGE]: 'http' }, undefined);
    expect(env[SHARD_ENV.NATS_JWT]).toBeUndefined();
    expect(env[SHARD_ENV.NATS_SEED]).toBeUndefined();
  });

  it('a non-entry role rank (no subject) loses it', () => {
    const env = rankEnv({ ...creds, [SHARD_ENV.ROLE]: 'decode' }, undefined);
    expect(env[SHARD_ENV.NATS_JWT]).toBeUndefined();
    expect(env[SHARD_ENV.NATS_URL]).toBe('nats://127.0.0.1:4222');
  });
});

describe('rank environment: the direct path\'s address', () => {
  it('a rank serving a replica subject gets the node\'s address; a template\'s own wins; others get none', () => {
    expect(withDataAddr({ [SHARD_ENV.SUBJECT]: 'muster.rg.g.r1' }, '10.0.0.5')[SHARD_ENV.DATA_ADDR]).toBe('10.0.0.5');
    expect(withDataAddr({ [SHARD_ENV.SUBJECT]: 'muster.rg.g.r1', [SHARD_ENV.DATA_ADDR]: '192.168.1.9' }, '10.0.0.5')[SHARD_ENV.DATA_ADDR]).toBe('192.168.1.9');
    expect(withDataAddr({ [SHARD_ENV.ROLE]: 'decode' }, '10.0.0.5')[SHARD_ENV.DATA_ADDR]).toBeUndefined();
    expect(withDataAddr({ [SHARD_ENV.SUBJECT]: 'muster.rg.g.r1' }, undefined)[SHARD_ENV.DATA_ADDR]).toBeUndefined();
  });
});
