/**
 * The users the head mints: permissions per role, lifetimes, a caller's
 * inbox prefix kept on renewal only for the identity it was minted for.
 * The JWT encoding itself is checked against @nats-io/jwt in
 * common/src/nats-auth.test.ts, and a real server accepting the users in
 * test/integration/dataplane/nats-users.test.ts.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createNatsTrust } from '@muster/common/nats-auth';
import type { Identity } from '@muster/contracts';
import { headConfigSchema } from '../config.js';
import { callableGroups, dataPlaneUsers, NatsUsers } from './index.js';

/** A JWT's claims (its middle part). */
function decode<T>(jwt: string): { sub: string; exp?: number; nats: T } {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as { sub: string; exp?: number; nats: T };
}

type UserClaims = { pub: { allow: string[] }; sub: { allow: string[] }; issuer_account: string; type: string };

async function users(over: Record<string, unknown> = {}) {
  const trust = await createNatsTrust();
  const dir = await mkdtemp(join(tmpdir(), 'muster-nats-users-'));
  const seedFile = join(dir, 'seed');
  await writeFile(seedFile, `${trust.signingSeed}\n`, { mode: 0o600 });
  const config = headConfigSchema.parse({ natsUrl: ['nats://127.0.0.1:4222'], natsAccount: trust.account, natsAccountSeedFile: seedFile, ...over });
  return { trust, users: await NatsUsers.fromConfig(config, 'cluster-token') };
}

const caller = (name: string, callGroups: Identity['callGroups'], role: Identity['role'] = 'caller'): Identity => ({ role, name, callGroups });

describe('NatsUsers', () => {
  it('mints a replica user of one group, signed by the account signing key, that never expires', async () => {
    const { trust, users: u } = await users();
    const env = u.replicaEnv('llama');
    const c = decode<UserClaims>(env.MUSTER_NATS_JWT!);
    expect(c.nats.sub.allow).toEqual(['muster.rg.llama.>']);
    expect(c.nats.pub.allow).toEqual(['muster.load.llama', '_INBOX.>']);
    expect(c.nats.issuer_account).toBe(trust.account);
    expect(c.exp).toBeUndefined();
    // The JWT's subject is the public key of the seed handed with it.
    expect(env.MUSTER_NATS_SEED).toMatch(/^SU/);
    expect(c.sub).toMatch(/^U[A-Z2-7]{55}$/);
    // A fresh user per launch: nothing to find again, nothing stored.
    expect(u.replicaEnv('llama').MUSTER_NATS_SEED).not.toBe(env.MUSTER_NATS_SEED);
  });

  it('mints a caller of exactly its rights, with its own inbox and an expiry', async () => {
    const { users: u } = await users({ natsCallerTtlMs: 3_600_000 });
    const a = u.caller(caller('app', ['a', 'b']), '', 1_000_000);
    const c = decode<UserClaims>(a.jwt);
    expect(c.nats.pub.allow).toEqual(['muster.rg.a.>', 'muster.demand.a', 'muster.rg.b.>', 'muster.demand.b']);
    expect(c.nats.sub.allow).toEqual(['muster.load.a', 'muster.load.b', `${a.inboxPrefix}.>`]);
    expect(a.expiresAtMs).toBe(1_000_000 + 3_600_000);
    expect(c.exp).toBe(Math.floor(a.expiresAtMs / 1000));
    expect(a.groups).toEqual(['a', 'b']);
  });

  it('keeps a caller\'s inbox prefix on renewal for the same identity only', async () => {
    const { users: u } = await users();
    const first = u.caller(caller('app', ['a']));
    expect(u.caller(caller('app', ['a']), first.inboxPrefix).inboxPrefix).toBe(first.inboxPrefix);
    expect(u.caller(caller('intruder', ['a']), first.inboxPrefix).inboxPrefix).not.toBe(first.inboxPrefix);
    expect(u.caller(caller('app', ['a']), '_INBOX.0000000000000000ffffffffffffffffffffffffffffffff').inboxPrefix).not.toMatch(/f{32}$/);
  });

  it('gives admins every group, viewers none, and drops call rights that are not one subject token', () => {
    expect(callableGroups(caller('root', [], 'admin'))).toEqual(['*']);
    expect(callableGroups(caller('ops', 'all', 'deployer'))).toEqual(['*']);
    expect(callableGroups(caller('look', 'all', 'viewer'))).toEqual([]);
    expect(callableGroups(caller('node-1', ['a'], 'node'))).toEqual([]);
    expect(callableGroups(caller('app', ['a', 'b.>', '*', 'c d']))).toEqual(['a']);
  });

  it('refuses a seed file that holds no account signing key, naming the flag', async () => {
    const trust = await createNatsTrust();
    const dir = await mkdtemp(join(tmpdir(), 'muster-nats-users-'));
    const seedFile = join(dir, 'seed');
    await writeFile(seedFile, 'not a seed\n', { mode: 0o600 });
    const config = headConfigSchema.parse({ natsUrl: ['nats://x:4222'], natsAccount: trust.account, natsAccountSeedFile: seedFile });
    await expect(NatsUsers.fromConfig(config, 'cluster-token')).rejects.toThrow(/--nats-account-seed-file/);
    expect(() => headConfigSchema.parse({ natsUrl: ['nats://x:4222'] })).toThrow(/--nats-account-seed-file|natsAccountSeedFile/);
    expect(() => headConfigSchema.parse({ natsUrl: ['nats://x:4222'], natsUser: 'u', natsAccount: trust.account, natsAccountSeedFile: seedFile })).toThrow(/not both/);
  });

  it('in the legacy shared-user mode hands everyone the one user (and says so: ClusterInfo still carries none)', async () => {
    const config = headConfigSchema.parse({ natsUrl: ['nats://x:4222'], natsUser: 'muster', natsPassword: 'pw' });
    const u = await dataPlaneUsers(config, 'cluster-token');
    expect(u.publicAccess).toMatchObject({ user: '', password: '', jwt: '', seed: '' });
    expect(u.replicaEnv('g')).toEqual({ MUSTER_NATS_URL: 'nats://x:4222', MUSTER_NATS_USER: 'muster', MUSTER_NATS_PASSWORD: 'pw' });
    expect(u.caller(caller('v', [], 'viewer'))).toMatchObject({ user: 'muster', password: 'pw' });
  });
});
