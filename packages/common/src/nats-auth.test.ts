/**
 * The user JWTs mintNatsUser encodes by hand read back through
 * @nats-io/jwt's decoder as the library's own would (same header, claims,
 * signature by the account signing key, user key matching the seed).
 */
import { decode, encodeUser } from '@nats-io/jwt';
import { fromPublic, fromSeed } from '@nats-io/nkeys';
import { describe, expect, it } from 'vitest';
import { createNatsTrust, mintNatsUser, operatorConfig } from './nats-auth.js';

const enc = new TextEncoder();

describe('nats-auth', () => {
  it('mints a user JWT the library decodes, issued by the signing key for the account, signed correctly', async () => {
    const trust = await createNatsTrust();
    const u = mintNatsUser({ account: trust.account, seed: trust.signingSeed }, 'r', { pub: ['p.load.g', '_INBOX.>'], sub: ['p.rg.g.>'] }, 60_000, 2_000_000);
    const c = decode<{ pub: { allow: string[] }; sub: { allow: string[] }; issuer_account: string; type: string; version: number }>(u.jwt);
    const signer = fromSeed(enc.encode(trust.signingSeed));
    expect(c.iss).toBe(signer.getPublicKey());
    expect(c.nats).toMatchObject({ pub: { allow: ['p.load.g', '_INBOX.>'] }, sub: { allow: ['p.rg.g.>'] }, issuer_account: trust.account, type: 'user', version: 2 });
    expect(c.exp).toBe(2_060);
    expect(c.sub).toBe(fromSeed(enc.encode(u.seed)).getPublicKey());
    const [h, b, sig] = u.jwt.split('.') as [string, string, string];
    expect(JSON.parse(Buffer.from(h, 'base64url').toString())).toEqual({ typ: 'JWT', alg: 'ed25519-nkey' });
    expect(fromPublic(signer.getPublicKey()).verify(enc.encode(`${h}.${b}`), Buffer.from(sig, 'base64url'))).toBe(true);
    // Same shape as the library's own encoding of the same user.
    const lib = decode<Record<string, unknown>>(await encodeUser('r', c.sub, trust.account, { pub: { allow: ['p.load.g', '_INBOX.>'] }, sub: { allow: ['p.rg.g.>'] } }, { signer: trust.signingSeed }));
    expect(Object.keys(c.nats).sort()).toEqual(Object.keys(lib.nats).sort());
    expect(c.nats).toEqual({ ...(lib.nats as object), issuer_account: trust.account });
  });

  it('writes an operator-mode config with both accounts preloaded in a memory resolver', async () => {
    const trust = await createNatsTrust();
    const text = operatorConfig(trust).join('\n');
    expect(text).toContain(`system_account: ${trust.systemAccount}`);
    expect(text).toContain('resolver: MEMORY');
    expect(text).toContain(`${trust.account}: ${trust.accountJwt}`);
    expect(text).not.toContain(trust.signingSeed);
  });
});
